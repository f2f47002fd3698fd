"""Register drm_mm's model index with MMPretrain's ``ModelHub``.

After ``import drm_mm``, ``mmpretrain.list_models('*drm*')``,
``get_model('drm_vitb16_iwildcam', pretrained=CKPT)`` and the inferencers
know our configs by name (``configs/*/metafile.yml``).
"""
import os.path as osp
from typing import Optional, Tuple

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def model_index_path() -> Optional[Tuple[str, str]]:
    """``(model-index.yml, root its config paths are relative to)`` of the
    installed package (``drm_mm/.mim``) or the source checkout."""
    for root in (osp.join(_PACKAGE, '.mim'), osp.dirname(_PACKAGE)):
        index = osp.join(root, 'model-index.yml')
        if osp.isfile(index):
            return index, root
    return None


def register_model_index() -> bool:
    """Add our models to MMPretrain's ``ModelHub`` (once); False when no
    model index is installed."""
    from mmpretrain.apis.model import ModelHub
    found = model_index_path()
    if found is None:
        return False
    index, root = found
    if ModelHub.has('drm_vitb16_iwildcam'):
        return True
    ModelHub.register_model_index(index, config_prefix=root)
    return True
