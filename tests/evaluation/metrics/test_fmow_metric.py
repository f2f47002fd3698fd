"""FMoWMetric keys and errors (identity with wilds: test_wilds_fmow.py)."""
from __future__ import annotations

import pytest
from mmpretrain.structures import DataSample

from drm_mm.evaluation.metrics.fmow_metric import FMoWMetric


def _samples(rows):
    out = []
    for pred, gt, region, year in rows:
        s = DataSample().set_gt_label(gt).set_pred_label(pred)
        s.set_metainfo(dict(region=region, year=year))
        out.append(s.to_dict())
    return out


def test_keys_and_worst_groups():
    metric = FMoWMetric()
    metric.dataset_meta = dict(regions=('Asia', 'Other', 'Europe'))
    metric.process(None, _samples([(1, 1, 0, 2016), (0, 1, 0, 2017),
                                   (0, 1, 1, 2017), (2, 2, 2, 2016)]))
    out = metric.compute_metrics(metric.results)
    assert out['acc'] == 0.5
    assert out['acc_region:Asia'] == 0.5 and out['acc_region:Other'] == 0.0
    assert out['acc_worst_region'] == 0.5  # 'Other' excluded
    assert out['acc_year:2016'] == 1.0 and out['acc_year:2017'] == 0.0
    assert out['acc_worst_year'] == 0.0


def test_needs_region_names():
    metric = FMoWMetric()
    metric.process(None, _samples([(1, 1, 0, 2016)]))
    with pytest.raises(KeyError, match='regions'):
        metric.compute_metrics(metric.results)
