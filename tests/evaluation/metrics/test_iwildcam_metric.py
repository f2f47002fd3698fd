"""IWildCamMetric: wilds' acc / macro recall / macro-F1 over labels present."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample
from sklearn.metrics import f1_score, recall_score

from drm_mm.evaluation.metrics.iwildcam_metric import IWildCamMetric
from drm_mm.registry import METRICS


def test_values_follow_sklearn_over_labels_present():
    rng = np.random.default_rng(0)
    y_true = rng.choice([0, 3, 4, 9], size=60)
    y_pred = rng.integers(0, 12, size=60)
    metric = METRICS.build(dict(type='IWildCamMetric'))
    assert isinstance(metric, IWildCamMetric)
    metric.process(None, [DataSample().set_gt_label(int(t)).set_pred_label(
        int(p)).to_dict() for t, p in zip(y_true, y_pred)])
    out = metric.compute_metrics(metric.results)
    labels = np.unique(y_true)
    assert out['acc'] == pytest.approx((y_true == y_pred).mean(), abs=1e-7)
    assert out['macro_f1'] == pytest.approx(
        f1_score(y_true, y_pred, average='macro', labels=labels), abs=1e-7)
    assert out['recall_macro'] == pytest.approx(
        recall_score(y_true, y_pred, average='macro', labels=labels),
        abs=1e-7)
    assert set(out) == {'acc', 'recall_macro', 'macro_f1'}


def test_multi_label_sample_is_refused():
    metric = IWildCamMetric()
    sample = dict(gt_label=torch.tensor([1, 2]), pred_label=torch.tensor([1]))
    with pytest.raises(ValueError, match='gt_label'):
        metric.process(None, [sample])
