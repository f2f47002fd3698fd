"""Install drm_mm: ``pip install -e .``

mmcv is handled the OpenMMLab way: ``mmcv-lite`` (no compiled ops, which
drm_mm does not need) is required only when neither ``mmcv`` nor
``mmcv-lite`` is installed, so a full mmcv built for a GPU is never replaced.
"""
import os.path as osp
from importlib.util import find_spec

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'drm_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def mmcv_requirement() -> list:
    """``mmcv-lite`` unless some mmcv is already installed."""
    if find_spec('mmcv') is not None:
        return []
    return ['mmcv-lite>=2.0.0,<2.3.0']


INSTALL_REQUIRES = [
    'torch>=2.1',
    'torchvision',
    'mmengine>=0.10,<1',
    'mmpretrain>=1.2,<2',
    'open_clip_torch>=2.24',
    'wilds>=2.0',
    'numpy',
    'pandas',
    'scikit-learn',
    'pillow',
    'matplotlib',
] + mmcv_requirement()

setup(
    name='drm_mm',
    version=get_version(),
    description='Dual Risk Minimization (DRM) robust fine-tuning of CLIP '
    'as an OpenMMLab (MMPretrain / MMEngine) plugin',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    package_data={
        'drm_mm': [
            'prompts/*.json', 'datasets/class_names/*',
            'models/clip/model_configs/*.json'
        ]
    },
    python_requires='>=3.8',
    install_requires=INSTALL_REQUIRES,
    extras_require={'tests': ['pytest', 'pytest-timeout']},
    license='Apache License 2.0',
    zip_safe=False,
)
