"""Where drm_mm's configs live, for projects that inherit them."""
import os.path as osp

_REPO_CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs')


def get_config_path(name: str = '') -> str:
    """Absolute path of ``configs/<name>`` of this drm_mm checkout.

    MMEngine resolves ``_base_ = 'pkg::path'`` only for OpenMMLab packages it
    knows, so another project inherits ours through a plain path: print this
    once (``python -c "from drm_mm.utils import get_config_path;
    print(get_config_path('drm/vitb16_iwildcam.py'))"``) and use it (or a
    path relative to your config) in ``_base_``.
    """
    path = osp.join(_REPO_CONFIGS, name)
    if not osp.exists(path):
        raise FileNotFoundError(
            f'{path} does not exist. drm_mm configs ship with the source '
            f'checkout (pip install -e .); available: '
            f'{osp.join(_REPO_CONFIGS, "{drm,baselines,smoke}")}.')
    return path
