"""``MultiDatasetValLoop``: validate on several named sets at once."""
from __future__ import annotations

from typing import Any, Dict

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

    Args:
        runner: the runner.
        dataloader: dict of named dataloader configs (or DataLoaders).
        evaluator: metric config(s), shared or keyed by set name.
        fp16: autocast the forward pass.
    """

    _stage = 'val'

    def __init__(self, runner: Any, dataloader: Dict[str, Any],
                 evaluator: Any, fp16: bool = False) -> None:
        self._init_sets(runner, dataloader, evaluator)
        self.fp16 = fp16
        self.val_loss: Dict[str, Any] = dict()
