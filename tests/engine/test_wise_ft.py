"""Tests of drm_mm/engine/wise_ft.py: interpolation, checks, I/O, sweep."""
import csv
from collections import OrderedDict
from typing import Dict, List

import pytest
import torch
from torch import nn

from drm_mm.engine.wise_ft import (CheckpointMismatchError, check_alphas,
                                   check_compatible, interpolate_state_dicts,
                                   load_state_dict_file, load_weights,
                                   make_checkpoint, pick_axes, plot_id_ood,
                                   save_checkpoint, scalar_metrics,
                                   state_dict_of, wise_ft_sweep,
                                   write_metrics_csv)
from drm_mm.utils.safe_checkpoint import load_trusted_checkpoint


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


def test_interpolation_keeps_half_dtype(pair):
    _, zs, ft = pair
    zs16 = OrderedDict((k, v.half() if v.is_floating_point() else v)
                       for k, v in zs.items())
    ft16 = OrderedDict((k, v.half() if v.is_floating_point() else v)
                       for k, v in ft.items())
    mixed = interpolate_state_dicts(zs16, ft16, 0.5)
    assert mixed['visual.weight'].dtype == torch.float16
    expected = (0.5 * zs16['visual.weight'].float() +
                0.5 * ft16['visual.weight'].float()).half()
    assert torch.equal(mixed['visual.weight'], expected)


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


def test_state_dict_of_accepts_formats(pair):
    _, zs, _ = pair
    assert list(state_dict_of({'state_dict': zs, 'meta': {}}, 'x')) == \
        list(zs)
    assert list(state_dict_of(zs, 'x')) == list(zs)
    wrapped = OrderedDict((f'module.{k}', v) for k, v in zs.items())
    assert list(state_dict_of({'state_dict': wrapped}, 'x')) == list(zs)
    with pytest.raises(CheckpointMismatchError, match='no "state_dict"'):
        state_dict_of({'optimizer': {}, 'meta': {}}, 'ckpt.pth')
    with pytest.raises(CheckpointMismatchError, match='checkpoint dict'):
        state_dict_of([1, 2], 'ckpt.pth')


def test_save_and_load_roundtrip(pair, tmp_path):
    _, zs, _ = pair
    path = tmp_path / 'sub' / 'w.pth'
    save_checkpoint(make_checkpoint(zs, dict(wise_ft=dict(alpha=0.5))),
                    str(path))
    assert [p.name for p in path.parent.iterdir()] == ['w.pth']
    raw = load_trusted_checkpoint(str(path))
    assert raw['meta'] == {'wise_ft': {'alpha': 0.5}}
    loaded = load_state_dict_file(str(path))
    assert all(torch.equal(loaded[k], zs[k]) for k in zs)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_state_dict_file(str(tmp_path / 'nope.pth'))


def test_load_weights_invalidates_prototypes(pair):
    model, _, ft = pair
    load_weights(model, ft, 'ft')
    assert model.invalidations == 1
    assert torch.equal(model.visual.weight.detach(), ft['visual.weight'])
    bad = OrderedDict(ft)
    bad['text.weight'] = torch.zeros(2, 2)
    with pytest.raises(CheckpointMismatchError, match="'text.weight'"):
        load_weights(model, bad, 'bad.pth')


def test_scalar_metrics():
    assert scalar_metrics({'a/b': 1, 'c': torch.tensor(0.5), 'd': [1, 2],
                           'e': 'x', 'f': True}) == {'a/b': 1.0, 'c': 0.5}


def test_pick_axes():
    keys = ['id_test/accuracy', 'id_test/macro_f1', 'test/accuracy',
            'test/macro_f1']
    assert pick_axes(keys) == ('id_test/accuracy', 'test/accuracy')
    assert pick_axes(keys, id_metric='id_test/macro_f1') == (
        'id_test/macro_f1', 'test/macro_f1')
    assert pick_axes(['imagenet_r/accuracy', 'id_val/top1']) == (
        'id_val/top1', 'imagenet_r/accuracy')
    assert pick_axes(['a', 'b']) == ('a', 'b')
    assert pick_axes(['accuracy/top1']) == ('accuracy/top1', None)
    with pytest.raises(KeyError, match='available'):
        pick_axes(keys, ood_metric='val/nope')
    with pytest.raises(ValueError, match='no scalar metric'):
        pick_axes([])


def test_csv_and_plot(tmp_path):
    rows = [dict(alpha=a, **{'id_test/acc': 0.5 + a / 4,
                             'test/acc': 0.4 + a * (1 - a)})
            for a in (0.0, 0.5, 1.0)]
    rows[1]['extra'] = 3.0
    path = tmp_path / 'w.csv'
    header = write_metrics_csv(rows, str(path))
    assert header == ['alpha', 'id_test/acc', 'test/acc', 'extra']
    with open(path) as f:
        table = list(csv.DictReader(f))
    assert [float(r['alpha']) for r in table] == [0.0, 0.5, 1.0]
    assert float(table[2]['id_test/acc']) == 0.75
    assert table[0]['extra'] == ''
    for ood in ('test/acc', None):
        png = tmp_path / f'plot_{ood is None}.png'
        plot_id_ood(rows, 'id_test/acc', ood, str(png))
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


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
