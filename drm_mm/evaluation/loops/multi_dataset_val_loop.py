"""``MultiDatasetValLoop``: validate on several named sets at once."""
from __future__ import annotations

from mmengine.runner import ValLoop

from drm_mm.evaluation.loops.multi_dataset_base import MultiDatasetLoopMixin
from drm_mm.registry import LOOPS


@LOOPS.register_module()
class MultiDatasetValLoop(MultiDatasetLoopMixin, ValLoop):
    """``val_cfg = dict(type='MultiDatasetValLoop')``.

    ``val_dataloader`` is a dict of named sets and ``val_evaluator`` one
    metric config for all or a dict per set (see
    :mod:`drm_mm.evaluation.loops.multi_dataset_base`). Returns and logs
    ``<set>/<metric>`` keys, e.g. ``id_val/macro_f1`` for
    ``CheckpointHook(save_best='id_val/macro_f1', rule='greater')``.

    Args: those of :class:`MultiDatasetLoopMixin`.
    """

    _stage = 'val'
