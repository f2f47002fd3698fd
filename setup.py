"""Install drm_mm: ``pip install -e .`` (or build a wheel: ``pip wheel .``).

Configs, the model index, tools/ and demo/ ship inside the package the
OpenMMLab way, as ``drm_mm/.mim/{configs,model-index.yml,tools,demo}``:
symbolic links in an editable install, copies made in the build folder for
a wheel (never in the checkout, where they would shadow later edits), so
``get_config_path``, ``mmpretrain.list_models`` and ``mim train/test
drm_mm`` find them after any install. The wheel also installs the commands
``drm-mm-image-demo`` and ``drm-mm-make-fake-wilds``.

mmcv: drm_mm needs no compiled mmcv ops. Install ``mmcv-lite`` (the
``[mmcv-lite]`` extra) unless you already have a full ``mmcv``; the choice
is yours, never made while building.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
#: What ships in ``drm_mm/.mim`` (as MMPretrain ships its configs and tools,
#: so that ``mim train/test drm_mm`` find ``.mim/tools/train.py``).
MIM_FILES = ('configs', 'model-index.yml', 'tools', 'demo')
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.py[co]')


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'drm_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def _remove(path: str) -> None:
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def link_mim_files() -> None:
    """Editable installs: ``drm_mm/.mim/<name>`` are links to the checkout,
    so edits of configs/ and tools/ show up at once."""
    mim_dir = osp.join(HERE, 'drm_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        source, target = osp.join(HERE, name), osp.join(mim_dir, name)
        if osp.exists(source):
            _remove(target)
            os.symlink(osp.relpath(source, mim_dir), target)


def remove_stale_mim_copies() -> None:
    """Copies (not links) in the checkout's ``drm_mm/.mim``, left by an
    older build, would shadow the checkout's configs/: remove them."""
    mim_dir = osp.join(HERE, 'drm_mm', '.mim')
    for name in MIM_FILES:
        target = osp.join(mim_dir, name)
        if osp.exists(target) and not osp.islink(target):
            _remove(target)


class BuildPyWithMim(build_py):
    """``build_py`` that copies the ``.mim`` files into the build folder
    (the wheel), never into the checkout."""

    def run(self) -> None:
        super().run()
        mim_dir = osp.join(self.build_lib, 'drm_mm', '.mim')
        os.makedirs(mim_dir, exist_ok=True)
        for name in MIM_FILES:
            source, target = osp.join(HERE, name), osp.join(mim_dir, name)
            if not osp.exists(source):
                continue
            _remove(target)
            if osp.isdir(source):
                shutil.copytree(source, target, ignore=MIM_IGNORE)
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

if {'develop', 'editable_wheel'} & set(sys.argv):
    link_mim_files()
else:
    remove_stale_mim_copies()

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
            'models/clip/model_configs/*.json'
        ]
    },
    cmdclass={'build_py': BuildPyWithMim},
    # the demo and the fake-data writer for wheel users (the scripts ship
    # in drm_mm/.mim; these commands run them)
    entry_points={
        'console_scripts': [
            'drm-mm-image-demo = drm_mm.commands:image_demo',
            'drm-mm-make-fake-wilds = drm_mm.commands:make_fake_wilds',
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
