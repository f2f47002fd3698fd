"""Where drm_mm's configs live, for projects that inherit them."""
import os.path as osp

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: ``drm_mm/.mim/configs``: copies in a wheel, a link in an editable install.
_INSTALLED_CONFIGS = osp.join(_PACKAGE, '.mim', 'configs')
#: ``configs/`` of a source checkout (before ``pip install -e .``).
_REPO_CONFIGS = osp.join(osp.dirname(_PACKAGE), 'configs')


def configs_root() -> str:
    """The configs directory of this installation."""
    for root in (_INSTALLED_CONFIGS, _REPO_CONFIGS):
        if osp.isdir(root):
            return root
    raise FileNotFoundError(
        f'drm_mm configs not found: neither {_INSTALLED_CONFIGS} (installed '
        f'package) nor {_REPO_CONFIGS} (source checkout) exists; reinstall '
        f'drm_mm (pip install . or pip install -e .).')


def get_config_path(name: str = '') -> str:
    """Absolute path of the drm_mm config ``name`` (e.g.
    ``'drm/vitb16_iwildcam.py'``), from the installed package or the source
    checkout.

    MMEngine resolves ``_base_ = 'pkg::path'`` only for the OpenMMLab
    packages it knows, so another project inherits ours through the path
    this returns (or a path relative to its config).
    """
    root = configs_root()
    path = osp.join(root, name)
    if not osp.exists(path):
        raise FileNotFoundError(
            f'drm_mm config {name!r} does not exist under {root}; see '
            f'{osp.join(root, "{drm,baselines,smoke}")} for the shipped '
            f'configs.')
    return path
