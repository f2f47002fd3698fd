"""``ImageNetAccuracy``: ImageNet-family top-1, with class subsets / folding.

* plain sets (ImageNet, V2, Sketch): argmax of ``pred_score`` (or
  ``pred_label``) against ``gt_label``;
* class subsets (ImageNet-R / -A, ``dataset_meta['class_subset']``):
  ``gt_label`` is a subset position. A model that already restricted its
  logits (``set_class_subset``) gives subset-wide scores that are used as
  they are; 1000-way scores are restricted to the subset here, so a class
  outside the subset can never be predicted;
* folded sets (ObjectNet, ``dataset_meta['class_folding']``): a model that
  already folded its logits (``set_class_folding``: each head's logits
  folded, then softmax, then the β mixture, as the authors evaluate) gives
  target-wide scores that are used as they are; 1000-way scores are folded
  here, each target class taking the max over its ImageNet classes (the
  same argmax for a single softmax head, not for a mixture of two).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

from drm_mm.evaluation.metrics.sample_utils import (LabelMetric, as_int,
                                                    require)
from drm_mm.registry import METRICS


def fold_scores(scores: torch.Tensor,
                folding: Sequence[Sequence[int]]) -> torch.Tensor:
    """``(N, C)`` -> ``(N, len(folding))``: max over each index group."""
    columns = []
    for k, indices in enumerate(folding):
        if len(indices) == 0:
            raise ValueError(f'fold_scores: target class {k} folds no source '
                             f'class.')
        columns.append(scores[:, list(indices)].max(dim=1).values)
    return torch.stack(columns, dim=1)


@METRICS.register_module()
class ImageNetAccuracy(LabelMetric):
    """Top-1 ``accuracy`` (fraction in [0, 1]) honouring subsets and folding.

    Needs ``pred_score`` when the dataset has ``class_subset`` or
    ``class_folding``; otherwise ``pred_score`` or ``pred_label``.
    """

    def _target(self) -> tuple:
        meta = self.dataset_meta or {}
        subset = meta.get('class_subset')
        folding = meta.get('class_folding')
        if subset is not None and folding is not None:
            raise ValueError('ImageNetAccuracy: dataset_meta has both '
                             'class_subset and class_folding; use one.')
        return subset, folding

    def _prediction(self, sample: dict, subset: Optional[List[int]],
                    folding: Optional[List[List[int]]]) -> int:
        name = type(self).__name__
        score = sample.get('pred_score')
        if score is None:
            if subset is not None or folding is not None:
                raise KeyError(
                    f'{name}: data samples lack "pred_score", needed to '
                    f'restrict or fold predictions for this dataset '
                    f'(class_subset / class_folding in its metainfo).')
            return as_int(require(sample, 'pred_label', name), 'pred_label',
                          name)
        score = torch.as_tensor(score).reshape(1, -1).float()
        width = score.shape[1]
        if folding is not None:
            if width != len(folding):
                needed = max(max(ix) for ix in folding) + 1
                if width < needed:
                    raise ValueError(
                        f'{name}: pred_score has {width} classes but '
                        f'class_folding refers to class {needed - 1}.')
                score = fold_scores(score, folding)
        elif subset is not None:
            if width != len(subset):
                if width <= max(subset):
                    raise ValueError(
                        f'{name}: pred_score has {width} classes, neither '
                        f'the {len(subset)}-class subset nor enough for '
                        f'ImageNet index {max(subset)}.')
                score = score[:, list(subset)]
        return int(score.argmax(dim=1).item())

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        subset, folding = self._target()
        name = type(self).__name__
        for sample in data_samples:
            self.results.append((
                self._prediction(sample, subset, folding),
                as_int(require(sample, 'gt_label', name), 'gt_label', name)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        data = torch.tensor(results, dtype=torch.long).reshape(-1, 2)
        if len(data) == 0:
            return {'accuracy': 0.0}
        return {'accuracy': float((data[:, 0] == data[:, 1]).double().mean())}
