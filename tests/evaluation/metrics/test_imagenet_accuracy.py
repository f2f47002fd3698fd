"""ImageNetAccuracy: plain, class-subset (R/A) and folded (ObjectNet)."""
from __future__ import annotations

import pytest
import torch
from mmpretrain.structures import DataSample

from drm_mm.evaluation.metrics.imagenet_accuracy import (ImageNetAccuracy,
                                                         fold_scores)


def _run(meta, samples):
    metric = ImageNetAccuracy()
    metric.dataset_meta = meta
    metric.process(None, [s.to_dict() for s in samples])
    return metric.compute_metrics(metric.results)['accuracy']


def _sample(gt, score=None, label=None):
    s = DataSample().set_gt_label(gt)
    if score is not None:
        s.set_pred_score(torch.as_tensor(score, dtype=torch.float))
    if label is not None:
        s.set_pred_label(label)
    return s


def test_plain_accuracy_from_scores_or_labels():
    scores = torch.eye(5)
    samples = [_sample(i, scores[i]) for i in range(4)]
    samples.append(_sample(0, scores[3]))
    assert _run({}, samples) == pytest.approx(0.8)
    assert _run({}, [_sample(2, label=2), _sample(1, label=0)]) == 0.5


def test_subset_never_predicts_outside_the_subset():
    subset = [3, 7, 11]
    score = torch.zeros(20)
    score[15] = 9.0  # best class overall, outside the subset
    score[7] = 1.0   # best within the subset: position 1
    meta = dict(class_subset=subset)
    assert _run(meta, [_sample(1, score)]) == 1.0
    # Scores already restricted by the model are used as they are.
    assert _run(meta, [_sample(2, torch.tensor([0., 1., 2.]))]) == 1.0


def test_subset_errors():
    meta = dict(class_subset=[3, 7, 11])
    with pytest.raises(KeyError, match='pred_score'):
        _run(meta, [_sample(0, label=0)])
    with pytest.raises(ValueError, match='neither'):
        _run(meta, [_sample(0, torch.zeros(5))])


def test_folding_takes_the_max_over_mapped_classes():
    folding = [[0], [2, 5], [9]]
    scores = torch.tensor([[0.1, 0., 0., 0., 0., 0.3, 0., 0., 0., 0.2]])
    folded = fold_scores(scores, folding)
    assert torch.allclose(folded, torch.tensor([[0.1, 0.3, 0.2]]))
    meta = dict(class_folding=folding)
    assert _run(meta, [_sample(1, scores[0])]) == 1.0
    # Class 7 (unmapped) wins overall, but cannot be predicted.
    other = scores[0].clone()
    other[7] = 5.0
    assert _run(meta, [_sample(1, other)]) == 1.0


def test_subset_and_folding_together_is_an_error():
    with pytest.raises(ValueError, match='both'):
        _run(dict(class_subset=[1], class_folding=[[1]]),
             [_sample(0, torch.zeros(3))])
