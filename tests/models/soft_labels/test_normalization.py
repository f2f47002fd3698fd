"""Affinity normalisations that turn cd affinities into soft labels p_c."""
import math

import pytest
import torch

from drm_mm.models.soft_labels import (DEFAULT_TAU, affinities,
                                       class_bounds, class_minmax_soft_labels,
                                       default_tau, minmax_prob_soft_labels,
                                       minmax_soft_labels, plain_soft_labels,
                                       soft_labels_from_affinities,
                                       softmax_soft_labels)

A = torch.tensor([[0.20, 0.25, 0.30, 0.22],
                  [0.31, 0.30, 0.29, 0.28]])


def test_minmax_least_similar_class_is_exactly_zero_and_rows_sum_to_one():
    p = minmax_soft_labels(A, tau=0.1)
    assert p[0, 0].item() == 0.0 and p[1, 3].item() == 0.0
    assert torch.allclose(p.sum(dim=1), torch.ones(2))
    assert (p.argmax(dim=1) == A.argmax(dim=1)).all()


def test_minmax_tau_one_is_the_linear_form():
    p = minmax_soft_labels(A, tau=1.0)
    scaled = torch.tensor([0.0, 0.5, 1.0, 0.2])
    assert torch.allclose(p[0], scaled / scaled.sum(), atol=1e-6)


def test_minmax_tau_sharpens_as_power_one_over_tau():
    scaled = torch.tensor([0.0, 0.5, 1.0, 0.2])
    for tau in (0.5, 0.25, 0.1):
        powered = scaled ** (1 / tau)
        assert torch.allclose(minmax_soft_labels(A, tau)[0],
                              powered / powered.sum(), atol=1e-6)
    # sharper: the top class gains mass as tau falls
    tops = [minmax_soft_labels(A, tau)[0, 2].item() for tau in (1, .5, .1)]
    assert tops[0] < tops[1] < tops[2]


def test_minmax_flat_row_is_uniform():
    p = minmax_soft_labels(torch.full((1, 4), 0.3))
    assert torch.allclose(p, torch.full((1, 4), 0.25))


def test_softmax_equals_a_hand_computation():
    scale, tau = 100.0, 2.0
    p = softmax_soft_labels(A, scale, tau)
    row = A[1].tolist()
    exps = [torch.tensor(scale * a / tau).exp().item() for a in row]
    hand = torch.tensor([e / sum(exps) for e in exps])
    assert torch.allclose(p[1], hand, atol=1e-6)


def test_none_only_makes_a_distribution():
    p = plain_soft_labels(torch.tensor([[0.2, -0.1, 0.6]]))
    assert torch.allclose(p, torch.tensor([[0.25, 0.0, 0.75]]))


def test_dispatch_and_errors():
    assert torch.equal(soft_labels_from_affinities(A, 'minmax', 0.1),
                       minmax_soft_labels(A, 0.1))
    assert torch.allclose(soft_labels_from_affinities(A, 'softmax', 1.0, 50.),
                          softmax_soft_labels(A, 50.))
    with pytest.raises(ValueError, match='minmax'):
        soft_labels_from_affinities(A, 'zscore')
    with pytest.raises(ValueError, match='logit_scale'):
        soft_labels_from_affinities(A, 'softmax', 1.0)
    with pytest.raises(ValueError, match='tau'):
        minmax_soft_labels(A, tau=0)
    with pytest.raises(ValueError, match='shape'):
        minmax_soft_labels(A[0])


def test_affinities_are_cosines_of_normalised_features():
    img = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    assert torch.allclose(affinities(img, protos),
                          torch.nn.functional.cosine_similarity(
                              img[:, None], protos[None], dim=-1), atol=1e-6)


def test_minmax_prob_is_minmax_of_the_zero_shot_probabilities():
    """softmax(s·a), per row (q - min q) / (max q - min q), ^(1/τ),
    renormalised; by hand for row 0 at s = 10."""
    scale = 10.0
    exps = [math.exp(scale * a) for a in (0.20, 0.25, 0.30, 0.22)]
    q = [e / sum(exps) for e in exps]
    scaled = [(v - min(q)) / (max(q) - min(q)) for v in q]
    for tau in (1.0, 0.1):
        powered = [v ** (1 / tau) for v in scaled]
        hand = torch.tensor([v / sum(powered) for v in powered])
        p = minmax_prob_soft_labels(A, scale, tau)
        assert torch.allclose(p[0], hand, atol=1e-6)
        assert p[0, 0].item() == 0.0 and p[1, 3].item() == 0.0
    # not the min-max of the affinities: 0.25 is 1/2 of the span in a, but
    # (e^2.5 - e^2) / (e^3 - e^2) = 0.3775 of it in q
    assert scaled[1] == pytest.approx(0.3775407, abs=1e-6)
    linear = minmax_soft_labels(A, 1.0)[0]
    assert not torch.allclose(minmax_prob_soft_labels(A, scale, 1.0)[0],
                              linear, atol=1e-2)


B = torch.tensor([[0.1, 0.5],
                  [0.3, 0.2],
                  [0.2, 0.4]])


def test_minmax_class_scales_each_class_over_the_set():
    """Class 0 spans 0.1..0.3 -> (0, 1, 0.5); class 1 spans 0.2..0.5 ->
    (1, 0, 2/3); then per row ^(1/τ) and renormalised."""
    linear = class_minmax_soft_labels(B, tau=1.0)
    hand = torch.tensor([[0.0, 1.0], [1.0, 0.0],
                         [0.5 / (0.5 + 2 / 3), (2 / 3) / (0.5 + 2 / 3)]])
    assert torch.allclose(linear, hand, atol=1e-6)
    squared = class_minmax_soft_labels(B, tau=0.5)
    assert torch.allclose(squared[2], torch.tensor([0.36, 0.64]), atol=1e-6)
    # per image min-max would make row 2 one-hot
    assert torch.equal(minmax_soft_labels(B, 1.0)[2], torch.tensor([0., 1.]))
    assert torch.equal(soft_labels_from_affinities(B, 'minmax_class', 1.0),
                       linear)


def test_minmax_class_with_given_bounds_and_edge_cases():
    # the bounds of a larger set: row 2 alone scaled as in the whole set
    bounds = class_bounds(B)
    assert torch.equal(bounds[0], torch.tensor([0.1, 0.2]))
    assert torch.equal(bounds[1], torch.tensor([0.3, 0.5]))
    assert torch.allclose(class_minmax_soft_labels(B[2:], 1.0, bounds),
                          class_minmax_soft_labels(B, 1.0)[2:], atol=0)
    # an empty shard has neutral bounds for a min / max across ranks
    low, high = class_bounds(torch.zeros(0, 2))
    assert low.tolist() == [math.inf] * 2 and high.tolist() == [-math.inf] * 2
    # a constant class scales to 1; a row at every class's minimum: uniform
    flat = class_minmax_soft_labels(torch.tensor([[0.2, 0.1], [0.2, 0.3]]),
                                    1.0)
    assert torch.allclose(flat, torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
    low_row = class_minmax_soft_labels(torch.tensor([[0.1, 0.1],
                                                     [0.3, 0.4]]), 1.0)
    assert torch.equal(low_row[0], torch.tensor([0.5, 0.5]))


def test_tau_defaults_per_normalization():
    assert DEFAULT_TAU == dict(minmax=0.1, softmax=1.0, none=1.0,
                               minmax_prob=0.1, minmax_class=0.1)
    assert default_tau('softmax') == 1.0 and default_tau('minmax') == 0.1
    # tau=None: softmax at the plain logit scale, min-max sharpened by 10
    assert torch.equal(soft_labels_from_affinities(A, 'softmax', None, 50.),
                       softmax_soft_labels(A, 50., 1.0))
    assert torch.equal(soft_labels_from_affinities(A, 'minmax'),
                       minmax_soft_labels(A, 0.1))
    assert torch.equal(soft_labels_from_affinities(A, 'minmax_prob', None,
                                                   10.),
                       minmax_prob_soft_labels(A, 10., 0.1))
    with pytest.raises(ValueError, match='minmax_prob'):
        default_tau('zscore')
    with pytest.raises(ValueError, match='logit_scale'):
        soft_labels_from_affinities(A, 'minmax_prob')
