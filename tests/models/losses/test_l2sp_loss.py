"""L2SPLoss: α/2 ‖w − w⁰‖² + β/2 ‖w_new‖² against hand computations."""
import copy

import pytest
import torch
from torch import nn

from drm_mm.models.losses import L2SPLoss
from drm_mm.registry import MODELS

EPS = torch.finfo(torch.float32).eps


def _tol(n_terms: int, magnitude: float) -> float:
    """float32 rounding bound of a sum of ``n_terms`` terms of ``magnitude``
    (a few operations each)."""
    return 4 * n_terms * EPS * max(magnitude, 1.0)


def test_explicit_numbers():
    params = {'a': torch.tensor([1.0, 2.0]), 'b': torch.tensor([[0.5]])}
    ref = {'a': torch.tensor([0.0, 1.0]), 'b': torch.tensor([[1.5]]),
           'unused': torch.zeros(3)}
    new = [torch.tensor([3.0, 4.0])]
    # ‖a − a0‖² = 1 + 1, ‖b − b0‖² = 1 -> 0.1/2 · 3 = 0.15;
    # ‖new‖² = 25 -> 0.01/2 · 25 = 0.125.
    loss = L2SPLoss()(params, ref, new)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.275, abs=_tol(5, 25))
    only_sp = L2SPLoss(alpha=2.0, beta=0.0)(params, ref)
    assert only_sp.item() == pytest.approx(3.0, abs=_tol(3, 3))


def test_paper_defaults_and_registry():
    loss = MODELS.build(dict(type='L2SPLoss'))
    assert (loss.alpha, loss.beta) == (0.1, 0.01)


def test_matches_flattened_computation_with_teacher_as_reference():
    """The frozen teacher's named_parameters() serve as the reference (no
    copy); the result equals the flattened-vector formula."""
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    teacher = copy.deepcopy(student).requires_grad_(False)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    head = nn.Linear(3, 2)
    loss = L2SPLoss(alpha=0.3, beta=0.07)(
        dict(student.named_parameters()), dict(teacher.named_parameters()),
        dict(head.named_parameters()))
    flat = nn.utils.parameters_to_vector
    diff = flat(student.parameters()) - flat(teacher.parameters())
    hand = (0.15 * diff.double().pow(2).sum()
            + 0.035 * flat(head.parameters()).double().pow(2).sum())
    n = diff.numel() + sum(p.numel() for p in head.parameters())
    assert loss.item() == pytest.approx(hand.item(),
                                        abs=_tol(n, hand.item()))


def test_gradients_reach_only_the_fine_tuned_and_new_parameters():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    w0 = torch.tensor([0.5, 0.5], requires_grad=True)
    new = torch.tensor([2.0], requires_grad=True)
    L2SPLoss(alpha=0.2, beta=0.5)({'w': w}, {'w': w0}, [new]).backward()
    # d/dw α/2 ‖w − w0‖² = α (w − w0); d/dnew β/2 ‖new‖² = β new.
    assert torch.equal(w.grad, torch.tensor([0.1, -0.5]))
    assert torch.equal(new.grad, torch.tensor([1.0]))
    assert w0.grad is None


def test_zero_at_the_starting_point():
    torch.manual_seed(1)
    model = nn.Linear(5, 4)
    teacher = copy.deepcopy(model).requires_grad_(False)
    loss = L2SPLoss()(dict(model.named_parameters()),
                      dict(teacher.named_parameters()))
    assert loss.item() == 0.0
    loss.backward()
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_low_precision_parameters_are_summed_in_float32():
    w = torch.full((1000, ), 1.0, dtype=torch.bfloat16)
    w0 = torch.zeros(1000, dtype=torch.bfloat16)
    loss = L2SPLoss(alpha=1.0, beta=0.0)({'w': w}, {'w': w0})
    assert loss.dtype == torch.float32
    assert loss.item() == 500.0


@pytest.mark.parametrize('kwargs, match', [
    (dict(alpha=-0.1), 'L2SPLoss.alpha'),
    (dict(beta=float('nan')), 'L2SPLoss.beta'),
    (dict(alpha=True), 'L2SPLoss.alpha'),
    (dict(alpha='0.1'), 'L2SPLoss.alpha'),
    (dict(alpha=0, beta=0), 'both 0'),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L2SPLoss(**kwargs)


def test_bad_inputs():
    loss = L2SPLoss()
    with pytest.raises(KeyError, match='no pre-trained value'):
        loss({'a': torch.ones(2)}, {'b': torch.ones(2)})
    with pytest.raises(ValueError, match='shape'):
        loss({'a': torch.ones(2)}, {'a': torch.ones(3)})
    with pytest.raises(ValueError, match='params is empty'):
        loss({}, {})
