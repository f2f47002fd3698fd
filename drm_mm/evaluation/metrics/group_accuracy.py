"""Per-group and worst-group accuracy over a metadata key, in plain torch.

wilds averages per group with ``torch_scatter``, a compiled extension that
cannot be installed everywhere; :func:`group_accuracy` computes the same
float32 numbers (sums of 0/1 are exact in float32, one division each) with
``index_add_``. :class:`GroupAccuracy` is the registered metric.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from drm_mm.evaluation.metrics.sample_utils import LabelMetric
from drm_mm.registry import METRICS


def group_accuracy(correct: torch.Tensor, groups: torch.Tensor,
                   n_groups: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-group mean of ``correct`` (float32, 0 for empty groups) and counts.

    Same contract as ``wilds.common.utils.avg_over_groups``.
    """
    correct = correct.reshape(-1).float()
    groups = groups.reshape(-1).long()
    if correct.numel() != groups.numel():
        raise ValueError(f'group_accuracy: {correct.numel()} values but '
                         f'{groups.numel()} group ids.')
    if groups.numel() and (groups.min() < 0 or groups.max() >= n_groups):
        raise ValueError(f'group_accuracy: group ids must lie in '
                         f'0..{n_groups - 1}, got {groups.min().item()}..'
                         f'{groups.max().item()}.')
    sums = torch.zeros(n_groups, dtype=torch.float32).index_add_(
        0, groups, correct)
    counts = torch.zeros(n_groups, dtype=torch.float32).index_add_(
        0, groups, torch.ones_like(correct))
    return sums / counts.clamp(min=1), counts


def worst_group(values: torch.Tensor, counts: torch.Tensor,
                keep: Optional[Sequence[bool]] = None) -> float:
    """Minimum over non-empty (and kept) groups; 0.0 if none (as wilds)."""
    mask = counts > 0
    if keep is not None:
        mask &= torch.as_tensor(list(keep), dtype=torch.bool)
    if not bool(mask.any()):
        return 0.0
    return float(values[mask].min().item())


@METRICS.register_module()
class GroupAccuracy(LabelMetric):
    """Accuracy per value of a metadata key, and the worst group.

    Reports ``acc_<key>:<name>`` for every group present and
    ``acc_worst_<key>`` (minimum over present groups not in ``exclude``).

    Args:
        key: data-sample metadata key holding an int group id (must be in
            ``PackInputs``' ``meta_keys``).
        names_key: ``dataset_meta`` key listing group names by id (e.g.
            ``'regions'``); None uses the ids themselves.
        exclude: group names (or ids) left out of the worst group, like
            FMoW's ``'Other'`` region.
    """

    def __init__(self,
                 key: str,
                 names_key: Optional[str] = None,
                 exclude: Sequence = (),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.key = key
        self.meta_keys = (key,)
        self.names_key = names_key
        self.exclude = tuple(str(e) for e in exclude)

    def group_names(self, n_groups: int) -> List[str]:
        if self.names_key is None:
            return [str(i) for i in range(n_groups)]
        meta = self.dataset_meta or {}
        if self.names_key not in meta:
            raise KeyError(
                f'{type(self).__name__}: dataset_meta lacks '
                f'{self.names_key!r} (keys: {sorted(meta)}); the dataset must '
                f'list its group names there.')
        names = [str(n) for n in meta[self.names_key]]
        if len(names) < n_groups:
            raise ValueError(
                f'{type(self).__name__}: group id {n_groups - 1} has no name '
                f'in dataset_meta[{self.names_key!r}] ({len(names)} names).')
        return names

    def compute_metrics(self, results: list) -> Dict[str, float]:
        data = torch.tensor(results, dtype=torch.long).reshape(-1, 3)
        pred, gt, groups = data[:, 0], data[:, 1], data[:, 2]
        n_groups = int(groups.max().item()) + 1 if len(data) else 0
        names = self.group_names(n_groups)
        n_groups = max(n_groups, len(names))
        values, counts = group_accuracy(pred == gt, groups, n_groups)
        metrics = {}
        for g in range(n_groups):
            if counts[g] > 0:
                metrics[f'acc_{self.key}:{names[g]}'] = float(values[g].item())
        keep = [names[g] not in self.exclude and str(g) not in self.exclude
                for g in range(n_groups)]
        metrics[f'acc_worst_{self.key}'] = worst_group(values, counts, keep)
        return metrics
