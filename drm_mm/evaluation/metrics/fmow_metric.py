"""``FMoWMetric``: WILDS ``FMoWDataset.eval`` metrics, without torch_scatter.

Overall accuracy from wilds' ``Accuracy``; per-year and per-region accuracy
with :func:`~drm_mm.evaluation.metrics.group_accuracy.group_accuracy`
(plain torch, same float32 values); worst-region accuracy over the regions
present, ``'Other'`` excluded, as ``acc_worst_region``.
"""
from __future__ import annotations

from typing import Dict

import torch

from drm_mm.evaluation.metrics.group_accuracy import (group_accuracy,
                                                      worst_group)
from drm_mm.evaluation.metrics.sample_utils import LabelMetric
from drm_mm.registry import METRICS

OTHER_REGION = 'Other'


@METRICS.register_module()
class FMoWMetric(LabelMetric):
    """WILDS FMoW metrics.

    Reports ``acc`` (wilds ``acc_avg``), ``acc_worst_region`` (the OOD
    metric), ``acc_worst_year``, and ``acc_region:<name>`` /
    ``acc_year:<year>`` for every region / year present (wilds' key names).
    Values are fractions in [0, 1].

    Needs ``region`` (index into ``dataset_meta['regions']``) and ``year``
    (calendar year) in each data sample: put them in ``PackInputs``'
    ``meta_keys`` (``WILDSFMoW`` provides both, and ``regions`` in its
    metainfo).
    """

    meta_keys = ('region', 'year')

    def _region_names(self) -> list:
        meta = self.dataset_meta or {}
        if 'regions' not in meta:
            raise KeyError(
                f'FMoWMetric: dataset_meta lacks "regions" (keys: '
                f'{sorted(meta)}); evaluate a WILDSFMoW dataset, whose '
                f'metainfo lists wilds\' region names.')
        return [str(r) for r in meta['regions']]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        from wilds.common.metrics.all_metrics import Accuracy
        data = torch.tensor(results, dtype=torch.long).reshape(-1, 4)
        pred, gt, region, year = data.unbind(1)
        correct = pred == gt
        metrics = {'acc': Accuracy().compute(pred, gt)['acc_avg']}

        first_year = int(year.min().item()) if len(data) else 0
        year_ids = year - first_year
        n_years = int(year_ids.max().item()) + 1 if len(data) else 0
        year_acc, year_count = group_accuracy(correct, year_ids, n_years)
        for g in range(n_years):
            if year_count[g] > 0:
                metrics[f'acc_year:{first_year + g}'] = float(
                    year_acc[g].item())
        metrics['acc_worst_year'] = worst_group(year_acc, year_count)

        names = self._region_names()
        if len(data) and int(region.max().item()) >= len(names):
            raise ValueError(
                f'FMoWMetric: region id {int(region.max().item())} has no '
                f'name in dataset_meta["regions"] ({names}).')
        region_acc, region_count = group_accuracy(correct, region,
                                                  len(names))
        for g, region_name in enumerate(names):
            if region_count[g] > 0:
                metrics[f'acc_region:{region_name}'] = float(
                    region_acc[g].item())
        metrics['acc_worst_region'] = worst_group(
            region_acc, region_count, [n != OTHER_REGION for n in names])
        return metrics
