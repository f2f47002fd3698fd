"""Affinity normalisations that turn cd affinities into soft labels p_c."""
import pytest
import torch

from drm_mm.models.soft_labels import (affinities, minmax_soft_labels,
                                       plain_soft_labels,
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
