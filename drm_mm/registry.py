"""Registries of drm_mm: children of MMPretrain's under the scope ``drm_mm``.

A config with ``default_scope='drm_mm'`` finds every drm_mm component and,
through the parent registries, every MMPretrain / MMEngine one
(``PackInputs``, ``Accuracy``, ``ClsDataPreprocessor``...). A config of
another project reaches ours as ``type='drm_mm.<Name>'`` once
``custom_imports=dict(imports=['drm_mm'])`` has run. ``locations`` make the
registries import their modules (and their MMPretrain parent's) lazily on
the first lookup, so ``import drm_mm`` imports neither.
"""
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES
from mmengine.registry import Registry
from mmpretrain.registry import DATA_SAMPLERS as MMPRETRAIN_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import EVALUATORS as MMPRETRAIN_EVALUATORS
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import LOG_PROCESSORS as MMPRETRAIN_LOG_PROCESSORS
from mmpretrain.registry import LOOPS as MMPRETRAIN_LOOPS
from mmpretrain.registry import METRICS as MMPRETRAIN_METRICS
from mmpretrain.registry import MODEL_WRAPPERS as MMPRETRAIN_MODEL_WRAPPERS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS as \
    MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import OPTIM_WRAPPERS as MMPRETRAIN_OPTIM_WRAPPERS
from mmpretrain.registry import OPTIMIZERS as MMPRETRAIN_OPTIMIZERS
from mmpretrain.registry import PARAM_SCHEDULERS as \
    MMPRETRAIN_PARAM_SCHEDULERS
from mmpretrain.registry import RUNNERS as MMPRETRAIN_RUNNERS
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS
from mmpretrain.registry import VISBACKENDS as MMPRETRAIN_VISBACKENDS
from mmpretrain.registry import VISUALIZERS as MMPRETRAIN_VISUALIZERS

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS', 'OPTIMIZERS',
    'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
    'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS', 'STRATEGIES',
    'FUNCTIONS'
]


class DRMRegistry(Registry):
    """A ``drm_mm``-scoped registry that imports its modules on the first
    lookup (``locations``), together with those of its MMPretrain parent.

    MMEngine's ``Registry.get`` imports only the locations of the registry
    it is called on, and falls through to the parent's table: without this,
    a lookup under the ``drm_mm`` scope of an MMPretrain component
    (``PackInputs``, ``ClsDataPreprocessor``) would need every MMPretrain
    module imported up front, which ``import drm_mm`` then pays for.
    """

    def import_from_location(self) -> None:
        super().import_from_location()
        parent = self.parent
        if parent is not None and parent.scope == 'mmpretrain':
            parent.import_from_location()


def _child(name: str, parent: Registry, locations: list) -> Registry:
    """A ``drm_mm``-scoped child of an MMPretrain registry."""
    return DRMRegistry(name, parent=parent, scope='drm_mm',
                       locations=locations)


RUNNERS = _child('runner', MMPRETRAIN_RUNNERS, ['drm_mm.engine'])
LOOPS = _child('loop', MMPRETRAIN_LOOPS,
               ['drm_mm.engine', 'drm_mm.evaluation'])
HOOKS = _child('hook', MMPRETRAIN_HOOKS, ['drm_mm.engine'])
LOG_PROCESSORS = _child('log processor', MMPRETRAIN_LOG_PROCESSORS,
                        ['drm_mm.engine'])
OPTIMIZERS = _child('optimizer', MMPRETRAIN_OPTIMIZERS, ['drm_mm.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMPRETRAIN_OPTIM_WRAPPERS,
                        ['drm_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['drm_mm.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMPRETRAIN_PARAM_SCHEDULERS,
                          ['drm_mm.engine'])
DATASETS = _child('dataset', MMPRETRAIN_DATASETS, ['drm_mm.datasets'])
DATA_SAMPLERS = _child('data sampler', MMPRETRAIN_DATA_SAMPLERS,
                       ['drm_mm.datasets'])
TRANSFORMS = _child('transform', MMPRETRAIN_TRANSFORMS, ['drm_mm.datasets'])
MODELS = _child('model', MMPRETRAIN_MODELS, ['drm_mm.models'])
MODEL_WRAPPERS = _child('model_wrapper', MMPRETRAIN_MODEL_WRAPPERS,
                        ['drm_mm.models'])
METRICS = _child('metric', MMPRETRAIN_METRICS, ['drm_mm.evaluation'])
EVALUATORS = _child('evaluator', MMPRETRAIN_EVALUATORS, ['drm_mm.evaluation'])
VISUALIZERS = _child('visualizer', MMPRETRAIN_VISUALIZERS,
                     ['drm_mm.engine'])
VISBACKENDS = _child('vis_backend', MMPRETRAIN_VISBACKENDS,
                     ['drm_mm.engine'])
# MMPretrain has neither: children of MMEngine's (FlexibleRunner strategies,
# FSDP wrap policies).
STRATEGIES = _child('strategy', MMENGINE_STRATEGIES, ['drm_mm.engine'])
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, ['drm_mm.engine'])


def build_in_scope(registry: Registry, cfg: dict, **kwargs):
    """Build ``cfg`` with ``drm_mm`` as the scope, whatever the caller's
    default scope is (a config of another project builds
    ``type='drm_mm.DRMClassifier'`` under ``mmpretrain``; its nested
    ``DualRiskLoss`` must still resolve). An explicit ``_scope_`` wins."""
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'drm_mm')
    return registry.build(cfg, **kwargs)
