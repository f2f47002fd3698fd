"""``MultiDatasetTestLoop``: test on several named sets (ID + OOD table)."""
from __future__ import annotations

from typing import Any, Dict

from mmengine.runner import TestLoop

from drm_mm.evaluation.loops.multi_dataset_base import MultiDatasetLoopMixin
from drm_mm.registry import LOOPS


@LOOPS.register_module()
class MultiDatasetTestLoop(MultiDatasetLoopMixin, TestLoop):
    """``test_cfg = dict(type='MultiDatasetTestLoop')``.

    ``test_dataloader`` is a dict of named sets and ``test_evaluator`` one
    metric config for all or a dict per set (see
    :mod:`drm_mm.evaluation.loops.multi_dataset_base`); ``tools/test.py``
    then prints ``<set>/<metric>`` for every set (e.g. ``id_test/macro_f1``,
    ``test/macro_f1``, ``imagenet_r/accuracy``).

    Args:
        runner: the runner.
        dataloader: dict of named dataloader configs (or DataLoaders).
        evaluator: metric config(s), shared or keyed by set name.
        fp16: autocast the forward pass.
    """

    _stage = 'test'

    def __init__(self, runner: Any, dataloader: Dict[str, Any],
                 evaluator: Any, fp16: bool = False) -> None:
        self._init_sets(runner, dataloader, evaluator)
        self.fp16 = fp16
        self.test_loss: Dict[str, Any] = dict()
