"""drm_mm: Dual Risk Minimization for CLIP as an OpenMMLab plugin.

Importing the package registers drm_mm's registries (children of
MMPretrain's, scope ``drm_mm``), so ``custom_imports=dict(imports=['drm_mm'])``
is all another project needs: the components' modules are imported on the
first lookup (registry ``locations``), the subpackages on first access.

What the import changes for the rest of the process (see
``docs/safe_loading.md``): MMEngine's local and http(s) checkpoint loaders
load with ``weights_only=True`` and an allowlist; MMPretrain's ``ModelHub``
knows drm_mm's model names; mmcv-lite's import-time warning about
``MultiScaleDeformableAttention`` is not shown.
"""
import importlib
import warnings

from .version import __version__, version_info  # noqa: F401

# mmcv-lite (what drm_mm installs) has no compiled ops; MMPretrain's model
# zoo imports mmcv's MultiScaleDeformableAttention for backbones drm_mm never
# builds, and mmcv warns about the missing op at import. The warning does not
# apply to any drm_mm run: this filter matches exactly that message, from
# exactly that module.
warnings.filterwarnings(
    'ignore', message=r'Fail to import ``MultiScaleDeformableAttention``',
    category=UserWarning, module=r'mmcv\.cnn\.bricks\.transformer')

from . import registry  # noqa: F401,E402
from .utils.safe_checkpoint import register_safe_loaders  # noqa: E402

# Every checkpoint MMEngine / MMPretrain load from now on (load_from, resume,
# init_cfg Pretrained, get_model, inferencers) uses weights_only=True.
register_safe_loaders()

# mmpretrain.list_models / get_model / inferencers know our configs by name.
from .apis import register_model_index, zero_shot_classifier  # noqa: E402

register_model_index()

#: Names imported on first access (PEP 562), not by ``import drm_mm``.
_LAZY = {
    'DRMRunner': 'drm_mm.engine.runners',
    'DRMFlexibleRunner': 'drm_mm.engine.runners',
}
_SUBPACKAGES = ('datasets', 'engine', 'evaluation', 'models', 'prompts')


def __getattr__(name: str):
    # ``runner_type='drm_mm.DRMRunner'`` must resolve from MMEngine's root
    # RUNNERS registry too (as MMPretrain's own tools/train.py builds it),
    # which only searches its direct children and then falls back to the
    # import path ``drm_mm.DRMRunner``.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['__version__', 'version_info', 'DRMRunner', 'DRMFlexibleRunner',
           'zero_shot_classifier']
