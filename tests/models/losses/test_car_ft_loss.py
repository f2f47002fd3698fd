"""CARFTLoss: KL(p_0 ‖ p_θ) of the context distributions against hand
computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from drm_mm.models.losses import CARFTLoss
from drm_mm.models.losses.car_ft_loss import context_weights
from drm_mm.registry import MODELS

EPS = torch.finfo(torch.float32).eps


def _tol(n_terms: int, magnitude: float) -> float:
    """float32 rounding bound: ``n_terms`` terms, each through exp / log /
    a dot product of ``magnitude``."""
    return 8 * n_terms * EPS * max(magnitude, 1.0)


def test_closed_form_on_two_contexts():
    """f = e1, f0 = e2, contexts e1, e2, scale s: p_θ = softmax(s, 0),
    p_0 = softmax(0, s), and KL(p_0 ‖ p_θ) = s·(e^s − 1)/(e^s + 1)
    = s·tanh(s/2). A second image with f = f0 adds 0 to the mean."""
    s = 2.0
    image = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    teacher = torch.tensor([[0.0, 1.0], [0.6, 0.8]])
    contexts = torch.eye(2)
    loss = CARFTLoss(loss_weight=0.5)(image, teacher, contexts, s)
    hand = 0.5 * s * math.tanh(s / 2) / 2
    assert loss.item() == pytest.approx(hand, abs=_tol(4, s))


def _hand_kl(image, teacher, contexts, scale):
    """Straightforward per-image loops in float64."""
    total = 0.0
    for f, f0 in zip(image.double(), teacher.double()):
        f, f0 = f / f.norm(), f0 / f0.norm()
        w = contexts.double() / contexts.double().norm(dim=1, keepdim=True)
        z, z0 = scale * (w @ f), scale * (w @ f0)
        log_p = z - torch.logsumexp(z, 0)
        log_p0 = z0 - torch.logsumexp(z0, 0)
        total += float((log_p0.exp() * (log_p0 - log_p)).sum())
    return total / len(image)


def test_matches_a_loop_over_images_unnormalised_inputs():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(6, 8, generator=g) * 3
    teacher = torch.randn(6, 8, generator=g)
    contexts = torch.randn(5, 8, generator=g)
    scale = torch.tensor(100.0)
    loss = CARFTLoss()(image, teacher, contexts, scale)
    hand = _hand_kl(image, teacher, contexts, 100.0)
    # 6 × 5 terms; the logits reach |s| = 100 before the softmax.
    assert loss.item() == pytest.approx(hand, abs=_tol(30, 100.0))


def test_context_weights_average_normalised_class_embeddings():
    # template 0: classes (1, 0) and (0, 2) -> mean of unit vectors
    # (0.5, 0.5) -> (1, 1)/√2; template 1: (3, 0), (5, 0) -> (1, 0).
    feats = torch.tensor([[[1.0, 0.0], [0.0, 2.0]],
                          [[3.0, 0.0], [5.0, 0.0]]])
    weights = context_weights(feats)
    r = 1 / math.sqrt(2)
    assert torch.allclose(weights, torch.tensor([[r, r], [1.0, 0.0]]),
                          atol=4 * EPS)
    with pytest.raises(ValueError, match='templates, classes, dim'):
        context_weights(torch.ones(2, 3))


def test_gradient_reaches_only_the_fine_tuned_features():
    g = torch.Generator().manual_seed(1)
    image = torch.randn(4, 8, generator=g, requires_grad=True)
    teacher = torch.randn(4, 8, generator=g, requires_grad=True)
    contexts = torch.randn(3, 8, generator=g, requires_grad=True)
    scale = torch.tensor(10.0, requires_grad=True)
    CARFTLoss()(image, teacher, contexts, scale).backward()
    assert torch.count_nonzero(image.grad) > 0
    assert teacher.grad is None and contexts.grad is None
    assert scale.grad is None


def test_zero_when_fine_tuned_equals_pre_trained():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(5, 8, generator=g)
    image = feats.clone().requires_grad_(True)
    contexts = torch.randn(4, 8, generator=g)
    loss = CARFTLoss()(image, feats, contexts, 100.0)
    assert loss.item() == 0.0
    loss.backward()
    # ∂KL/∂z = (p_θ − p_0)/N, each p ≤ 1 and computed the same way.
    assert image.grad.abs().max().item() <= 100 * 8 * EPS


def test_defaults_registry_and_bad_input():
    assert MODELS.build(dict(type='CARFTLoss')).loss_weight == 1.0
    with pytest.raises(ValueError, match='CARFTLoss.loss_weight'):
        CARFTLoss(loss_weight=-1)
    with pytest.raises(ValueError, match='differ'):
        CARFTLoss()(torch.ones(2, 4), torch.ones(3, 4), torch.ones(2, 4), 1.)
    with pytest.raises(ValueError, match=r'\(K, 4\)'):
        CARFTLoss()(torch.ones(2, 4), torch.ones(2, 4), torch.ones(2, 5), 1.)


def test_log_softmax_reference_agrees():
    """The loss equals torch's KL of the two log-softmaxes (batchmean)."""
    g = torch.Generator().manual_seed(3)
    image, teacher = torch.randn(3, 4, generator=g), torch.randn(
        3, 4, generator=g)
    contexts = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    z = 7.0 * F.normalize(image, dim=1) @ contexts.t()
    z0 = 7.0 * F.normalize(teacher, dim=1) @ contexts.t()
    p0 = z0.softmax(1)
    ref = (p0 * (p0.log() - z.log_softmax(1))).sum(1).mean()
    loss = CARFTLoss()(image, teacher, contexts, 7.0)
    assert loss.item() == pytest.approx(ref.item(), abs=_tol(18, 7.0))
