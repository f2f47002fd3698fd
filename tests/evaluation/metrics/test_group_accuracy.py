"""group_accuracy / GroupAccuracy: group means, worst group, exclusions."""
from __future__ import annotations

import pytest
import torch
from mmpretrain.structures import DataSample

from drm_mm.evaluation.metrics.group_accuracy import (GroupAccuracy,
                                                      group_accuracy,
                                                      worst_group)


def test_group_accuracy_matches_per_group_means():
    g = torch.randint(0, 6, (200,), generator=torch.Generator().manual_seed(0))
    correct = torch.rand(200, generator=torch.Generator().manual_seed(1)) > .4
    values, counts = group_accuracy(correct, g, 8)
    for i in range(8):
        expected = correct[g == i].float().mean() if counts[i] else 0.0
        assert values[i].item() == pytest.approx(float(expected), abs=0)
        assert counts[i].item() == int((g == i).sum())
    assert values.dtype == torch.float32
    assert worst_group(values, counts) == min(
        values[i].item() for i in range(8) if counts[i])


def test_group_ids_out_of_range():
    with pytest.raises(ValueError, match='0..2'):
        group_accuracy(torch.ones(2), torch.tensor([0, 3]), 3)


def test_metric_reports_named_groups_and_excludes():
    metric = GroupAccuracy(key='region', names_key='regions',
                           exclude=('Other',))
    metric.dataset_meta = dict(regions=('Asia', 'Other', 'Europe'))
    rows = [(0, 0, 0), (1, 0, 0), (0, 1, 1), (2, 2, 2), (2, 2, 2)]
    samples = []
    for pred, gt, region in rows:
        s = DataSample().set_gt_label(gt).set_pred_label(pred)
        s.set_metainfo(dict(region=region))
        samples.append(s.to_dict())
    metric.process(None, samples)
    out = metric.compute_metrics(metric.results)
    assert out == {'acc_region:Asia': 0.5, 'acc_region:Other': 0.0,
                   'acc_region:Europe': 1.0, 'acc_worst_region': 0.5}


def test_missing_key_says_how_to_pack_it():
    metric = GroupAccuracy(key='location')
    sample = DataSample().set_gt_label(0).set_pred_label(0)
    with pytest.raises(KeyError, match="meta_keys"):
        metric.process(None, [sample.to_dict()])
