"""Install drm_mm: ``pip install -e .`` (or build a wheel: ``pip wheel .``).

Configs and the model index ship inside the package the OpenMMLab way, as
``drm_mm/.mim/{configs,model-index.yml}``: symbolic links in an editable
install, copies in a wheel or sdist (so ``get_config_path`` and
``mmpretrain.list_models`` find them after any install).

mmcv: drm_mm needs no compiled mmcv ops. Install ``mmcv-lite`` (the
``[mmcv-lite]`` extra) unless you already have a full ``mmcv``; the choice
is yours, never made while building.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'model-index.yml')


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'drm_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def link_or_copy_mim_files() -> None:
    """Fill ``drm_mm/.mim``: links for editable installs (edits show up at
    once), copies for wheels and source distributions."""
    editable = {'develop', 'editable_wheel'} & set(sys.argv)
    packaged = {'bdist_wheel', 'sdist', 'build', 'install'} & set(sys.argv)
    if not editable and not packaged:
        return
    mim_dir = osp.join(HERE, 'drm_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        source, target = osp.join(HERE, name), osp.join(mim_dir, name)
        if not osp.exists(source):
            continue
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        elif osp.isdir(target):
            shutil.rmtree(target)
        if editable:
            os.symlink(osp.relpath(source, mim_dir), target)
        elif osp.isdir(source):
            shutil.copytree(source, target,
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(source, target)


INSTALL_REQUIRES = [
    # torch.serialization.safe_globals with (function, name) entries and
    # get_unsafe_globals_in_checkpoint: torch 2.6
    'torch>=2.6',
    'torchvision>=0.21',
    'mmengine>=0.10,<1',
    'mmpretrain>=1.2,<2',
    'open_clip_torch>=2.24',
    'wilds>=2.0',
    # MMEngine imports pkg_resources (removed from setuptools 81) to resolve
    # `pkg::path` configs, mmpretrain:: included.
    'setuptools<81',
    'numpy',
    'pandas',
    'scikit-learn',
    'pillow',
    'matplotlib',
]

link_or_copy_mim_files()

setup(
    name='drm_mm',
    version=get_version(),
    description='Dual Risk Minimization (DRM) robust fine-tuning of CLIP '
    'as an OpenMMLab (MMPretrain / MMEngine) plugin',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    url='https://arxiv.org/abs/2411.19757',
    keywords='computer vision, CLIP, robust fine-tuning, OpenMMLab',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    package_data={
        'drm_mm': [
            'prompts/*.json', 'datasets/class_names/*',
            'models/clip/model_configs/*.json', '.mim/model-index.yml',
            '.mim/configs/*/*.py', '.mim/configs/*/*/*.py',
            '.mim/configs/*/*.yml'
        ]
    },
    python_requires='>=3.9',
    install_requires=INSTALL_REQUIRES,
    extras_require={
        'mmcv-lite': ['mmcv-lite>=2.0.0,<2.3.0'],
        'tensorboard': ['tensorboard'],
        'wandb': ['wandb'],
        'tests': ['pytest', 'pytest-timeout'],
    },
    license='Apache License 2.0',
    classifiers=[
        'Development Status :: 4 - Beta',
        'License :: OSI Approved :: Apache Software License',
        'Operating System :: OS Independent',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.9',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
