"""Tests of drm_mm/engine/wise_ft.py: interpolation, alpha checks, sweep."""
from collections import OrderedDict
from typing import Dict, List

import pytest
import torch
from torch import nn

from drm_mm.engine.wise_ft import (check_alphas, interpolate_state_dicts,
                                   scalar_metrics, wise_ft_sweep)
from drm_mm.utils.checkpoint_utils import (CheckpointMismatchError,
                                           check_compatible, load_weights)


class TinyModel(nn.Module):
    """Float weights, a logit scale, BN with an integer buffer, a prototype
    cache like DRMClassifier's."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Linear(3, 4)
        self.text = nn.Linear(4, 4, bias=False)
        self.norm = nn.BatchNorm1d(4)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.invalidations = 0

    def invalidate_prototypes(self) -> None:
        self.invalidations += 1


def perturbed(model: nn.Module, seed: int) -> 'OrderedDict':
    gen = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            out[k] = v + torch.randn(v.shape, generator=gen)
        else:
            out[k] = v + 7  # integer buffer of the "fine-tuned" model
    return out


@pytest.fixture
def pair():
    torch.manual_seed(0)
    model = TinyModel()
    zs = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    return model, zs, perturbed(model, 1)


def test_interpolation_is_exact(pair):
    _, zs, ft = pair
    for alpha in (0.0, 0.3, 1.0):
        mixed = interpolate_state_dicts(zs, ft, alpha)
        assert list(mixed) == list(ft)
        for k in ft:
            if ft[k].is_floating_point():
                assert torch.equal(mixed[k], (1 - alpha) * zs[k] +
                                   alpha * ft[k])
            else:
                assert torch.equal(mixed[k], ft[k])  # from fine-tuned
    assert torch.equal(interpolate_state_dicts(zs, ft, 0)['visual.weight'],
                       zs['visual.weight'])
    assert torch.equal(interpolate_state_dicts(zs, ft, 1)['logit_scale'],
                       ft['logit_scale'])


def _half(state: 'OrderedDict') -> 'OrderedDict':
    return OrderedDict((k, v.half() if v.is_floating_point() else v)
                       for k, v in state.items())


@pytest.mark.parametrize('alpha', [0.5, 0.3])
def test_half_tensors_are_mixed_in_float32(pair, alpha):
    """Half weights are mixed in float32 and rounded once: at alpha=0.3
    (unlike 0.5) the half-precision arithmetic gives other values."""
    _, zs, ft = pair
    zs16, ft16 = _half(zs), _half(ft)
    mixed = interpolate_state_dicts(zs16, ft16, alpha)
    for key in ('visual.weight', 'text.weight', 'logit_scale'):
        assert mixed[key].dtype == torch.float16
        expected = ((1 - alpha) * zs16[key].float() +
                    alpha * ft16[key].float()).half()
        assert torch.equal(mixed[key], expected), key
    if alpha == 0.3:  # the test can see a half-precision mix
        in_half = (1 - alpha) * zs16['text.weight'] + \
            alpha * ft16['text.weight']
        assert not torch.equal(in_half, mixed['text.weight'])


@pytest.mark.parametrize('alpha', [-0.1, 1.5, float('nan')])
def test_alpha_outside_unit_interval(pair, alpha):
    _, zs, ft = pair
    with pytest.raises(ValueError, match=r'outside \[0, 1\]'):
        interpolate_state_dicts(zs, ft, alpha)
    with pytest.raises(ValueError, match=r'outside \[0, 1\]'):
        check_alphas([0.0, alpha])


def test_check_alphas_dedupes_and_needs_one():
    assert check_alphas([0, 0.5, 0.5, 1]) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match='no alpha'):
        check_alphas([])


def test_missing_key_is_named(pair):
    _, zs, ft = pair
    del zs['text.weight']
    with pytest.raises(CheckpointMismatchError) as info:
        interpolate_state_dicts(zs, ft, 0.5)
    message = str(info.value)
    assert "'text.weight'" in message and 'different architectures' in \
        message
    ft['extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="'text.weight'"):
        check_compatible(ft, zs, 'A', 'B')  # first key of B missing in A


def test_shape_mismatch_is_named(pair):
    _, zs, ft = pair
    zs['visual.weight'] = torch.zeros(5, 3)
    with pytest.raises(CheckpointMismatchError) as info:
        interpolate_state_dicts(zs, ft, 0.5, 'zs.pth', 'ft.pth')
    message = str(info.value)
    assert "'visual.weight'" in message
    assert '(4, 3)' in message and '(5, 3)' in message
    assert 'zs.pth' in message and 'ft.pth' in message


def test_float_vs_integer_mismatch(pair):
    _, zs, ft = pair
    zs['logit_scale'] = torch.tensor(2)
    with pytest.raises(CheckpointMismatchError, match="'logit_scale'"):
        interpolate_state_dicts(zs, ft, 0.5)


def test_scalar_metrics():
    assert scalar_metrics({'a/b': 1, 'c': torch.tensor(0.5), 'd': [1, 2],
                           'e': 'x', 'f': True}) == {'a/b': 1.0, 'c': 0.5}


class FakeRunner:
    """``model`` + ``test()``; the metrics are functions of the weights."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.seen: List[Dict[str, torch.Tensor]] = []

    def test(self) -> Dict[str, float]:
        sd = self.model.state_dict()
        self.seen.append({k: v.clone() for k, v in sd.items()})
        return {'id_test/acc': float(sd['visual.weight'].sum()),
                'test/acc': float(sd['logit_scale']),
                'confusion': [[1, 0], [0, 1]]}


def test_sweep_defaults_to_model_as_zero_shot(pair):
    model, zs, ft = pair
    runner = FakeRunner(model)
    lines: List[str] = []
    rows = wise_ft_sweep(runner, ft, [0.0, 0.5, 1.0], log=lines.append,
                         progress=False)
    assert [r['alpha'] for r in rows] == [0.0, 0.5, 1.0]
    for row, seen in zip(rows, runner.seen):
        a = row['alpha']
        expected = (1 - a) * zs['visual.weight'] + a * ft['visual.weight']
        assert torch.allclose(seen['visual.weight'], expected)
        assert row['test/acc'] == pytest.approx(
            float((1 - a) * zs['logit_scale'] + a * ft['logit_scale']))
        assert 'confusion' not in row
    assert model.invalidations == 3
    assert any('ETA' in line for line in lines)
    assert any('confusion' in line for line in lines)  # reported, not lost


def test_sweep_with_explicit_zero_shot_and_mismatch(pair):
    model, _, ft = pair
    other = perturbed(model, 2)
    runner = FakeRunner(model)
    rows = wise_ft_sweep(runner, ft, [0.0], zeroshot=other,
                         log=lambda s: None, progress=True)
    assert torch.equal(runner.seen[0]['visual.weight'],
                       other['visual.weight'])
    assert rows[0]['alpha'] == 0.0
    bad = OrderedDict(ft)
    bad.pop('norm.running_var')
    with pytest.raises(CheckpointMismatchError, match='running_var'):
        wise_ft_sweep(runner, bad, [0.5], log=lambda s: None,
                      progress=False, finetuned_name='ft.pth')


def test_sweep_order_does_not_matter(pair):
    """The zero-shot snapshot shares no memory with the live weights: a
    descending sweep sees the same weights and metrics per alpha as an
    ascending one (a shared snapshot would be overwritten by alpha=1)."""
    model, zs, ft = pair
    seen = {}
    for alphas in ([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]):
        load_weights(model, zs, 'zs')  # the same start for both sweeps
        runner = FakeRunner(model)
        rows = wise_ft_sweep(runner, ft, alphas, log=lambda s: None,
                             progress=False)
        seen[alphas[0]] = {r['alpha']: (r, w) for r, w in zip(rows,
                                                               runner.seen)}
    for alpha in (0.0, 0.5, 1.0):
        up_row, up_weights = seen[0.0][alpha]
        down_row, down_weights = seen[1.0][alpha]
        assert up_row == down_row, alpha
        for key, value in up_weights.items():
            assert torch.equal(value, down_weights[key]), (alpha, key)
    expected = 0.5 * zs['visual.weight'] + 0.5 * ft['visual.weight']
    assert torch.equal(seen[1.0][0.5][1]['visual.weight'], expected)
    assert torch.equal(seen[1.0][0.0][1]['visual.weight'],
                       zs['visual.weight'])


def test_sweep_reports_each_row(pair):
    model, _, ft = pair
    got = []
    rows = wise_ft_sweep(FakeRunner(model), ft, [0.0, 1.0],
                         log=lambda s: None, progress=False,
                         on_row=lambda i, row: got.append((i, dict(row))))
    assert got == [(0, rows[0]), (1, rows[1])]
