"""``MultiDatasetTestLoop``: test on several named sets (ID + OOD table)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric, DumpResults
from mmengine.evaluator.metric import _to_cpu
from mmengine.fileio import dump
from mmengine.logging import print_log
from mmengine.runner import TestLoop

from drm_mm.evaluation.loops.multi_dataset_base import (
    SINGLE_SET, MultiDatasetLoopMixin)
from drm_mm.registry import LOOPS


class SetPredictions(BaseMetric):
    """Collects one set's predictions (as ``DumpResults`` does) into
    ``sink[name]``; computes no metric."""

    def __init__(self, sink: Dict[str, List], name: str) -> None:
        super().__init__(collect_device='cpu')
        self.sink, self.name = sink, name

    def process(self, data_batch: Any, predictions: Any) -> None:
        self.results.extend(_to_cpu(predictions))

    def compute_metrics(self, results: list) -> dict:
        self.sink[self.name] = results
        return {}


@LOOPS.register_module()
class MultiDatasetTestLoop(MultiDatasetLoopMixin, TestLoop):
    """``test_cfg = dict(type='drm_mm.MultiDatasetTestLoop')``.

    ``test_dataloader`` is a dict of named sets and ``test_evaluator`` one
    metric config for all or a dict per set (see
    :mod:`drm_mm.evaluation.loops.multi_dataset_base`); ``tools/test.py``
    then prints ``<set>/<metric>`` for every set (e.g. ``id_test/macro_f1``,
    ``test/macro_f1``, ``imagenet_r/accuracy``).

    MMPretrain's ``tools/test.py --out preds.pkl`` adds one ``DumpResults``
    to ``runner.test_evaluator`` (the first set's); the loop then writes
    every set's predictions to that file as ``{set name: [predictions]}``
    (a plain one-set loader keeps MMEngine's list of predictions).

    Args: those of :class:`MultiDatasetLoopMixin`.
    """

    _stage = 'test'

    def __init__(self, runner: Any, dataloader: Dict[str, Any],
                 evaluator: Any, fp16: bool = False) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self._initial_metrics = [
            {id(m) for m in s.evaluator.metrics} for s in self.sets
        ]

    def _added_dumps(self, index: int) -> List[DumpResults]:
        return [
            m for m in self.sets[index].evaluator.metrics
            if isinstance(m, DumpResults)
            and id(m) not in self._initial_metrics[index]
        ]

    def _take_single_dump(self) -> Optional[str]:
        """The path of a ``DumpResults`` added to the first set only (as
        MMPretrain's tools/test.py does); it is replaced by per-set
        collectors."""
        if [s.name for s in self.sets] == [SINGLE_SET]:
            return None  # one plain loader: MMEngine's list of predictions
        first = self._added_dumps(0)
        if not first or any(
                self._added_dumps(i) for i in range(1, len(self.sets))):
            return None
        evaluator = self.sets[0].evaluator
        evaluator.metrics = [m for m in evaluator.metrics if m not in first]
        self._sink: Dict[str, List] = {}
        for eval_set in self.sets:
            eval_set.evaluator.metrics.append(
                SetPredictions(self._sink, eval_set.name))
        return first[-1].out_file_path

    def run(self) -> Dict[str, Any]:
        out = self._take_single_dump()
        metrics = super().run()
        if out is not None:
            for eval_set in self.sets:
                eval_set.evaluator.metrics = [
                    m for m in eval_set.evaluator.metrics
                    if not isinstance(m, SetPredictions)
                ]
            if is_main_process():
                dump({s.name: self._sink[s.name] for s in self.sets}, out)
                print_log(f'predictions of sets {[s.name for s in self.sets]}'
                          f' written to {out} as {{set: [predictions]}}',
                          logger='current')
        return metrics
