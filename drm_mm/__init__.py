"""drm_mm: Dual Risk Minimization for CLIP as an OpenMMLab plugin.

Importing the package registers every component in the ``drm_mm`` scope,
so ``custom_imports=dict(imports=['drm_mm'])`` is all another project needs.
"""
from .version import __version__, version_info  # noqa: F401
from . import registry  # noqa: F401,E402
from . import datasets, engine, evaluation, models  # noqa: F401,E402
# ``runner_type='drm_mm.DRMRunner'`` must resolve from MMEngine's root
# RUNNERS registry too (as MMPretrain's own tools/train.py builds it), which
# only searches its direct children and then falls back to the import path.
from .engine.runners import DRMFlexibleRunner, DRMRunner  # noqa: E402
from .utils.safe_checkpoint import register_safe_loaders  # noqa: E402

# Every checkpoint MMEngine / MMPretrain load from now on (load_from, resume,
# init_cfg Pretrained, get_model, inferencers) uses weights_only=True.
register_safe_loaders()

# mmpretrain.list_models / get_model / inferencers know our configs by name.
from .apis import register_model_index, zero_shot_classifier  # noqa: E402

register_model_index()

__all__ = ['__version__', 'version_info', 'DRMRunner', 'DRMFlexibleRunner',
           'zero_shot_classifier']
