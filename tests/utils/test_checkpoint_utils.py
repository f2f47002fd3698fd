"""Tests of drm_mm/utils/checkpoint_utils.py: reading, checking, writing and
loading state dicts."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from drm_mm.utils.checkpoint_utils import (CheckpointMismatchError,
                                           CheckpointReadError,
                                           load_state_dict_file, load_weights,
                                           make_checkpoint, model_state_dict,
                                           save_checkpoint, state_dict_of)
from drm_mm.utils.safe_checkpoint import load_trusted_checkpoint


class TinyModel(nn.Module):
    """Float weights, an integer buffer and a prototype cache like
    DRMClassifier's."""

    def __init__(self) -> None:
        super().__init__()
        self.text = nn.Linear(4, 4, bias=False)
        self.norm = nn.BatchNorm1d(4)
        self.invalidations = 0

    def invalidate_prototypes(self) -> None:
        self.invalidations += 1


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyModel()


def test_state_dict_of_accepts_formats(model):
    zs = model.state_dict()
    assert list(state_dict_of({'state_dict': zs, 'meta': {}}, 'x')) == \
        list(zs)
    assert list(state_dict_of(zs, 'x')) == list(zs)
    wrapped = OrderedDict((f'module.{k}', v) for k, v in zs.items())
    assert list(state_dict_of({'state_dict': wrapped}, 'x')) == list(zs)
    with pytest.raises(CheckpointMismatchError, match='no "state_dict"'):
        state_dict_of({'optimizer': {}, 'meta': {}}, 'ckpt.pth')
    with pytest.raises(CheckpointMismatchError, match='checkpoint dict'):
        state_dict_of([1, 2], 'ckpt.pth')


def test_save_and_load_roundtrip(model, tmp_path):
    zs = model.state_dict()
    path = tmp_path / 'sub' / 'w.pth'
    save_checkpoint(make_checkpoint(zs, dict(wise_ft=dict(alpha=0.5))),
                    str(path))
    assert [p.name for p in path.parent.iterdir()] == ['w.pth']
    raw = load_trusted_checkpoint(str(path))
    assert raw['meta'] == {'wise_ft': {'alpha': 0.5}}
    loaded = load_state_dict_file(str(path))
    assert list(loaded) == list(zs)
    assert all(torch.equal(loaded[k], zs[k]) for k in zs)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_state_dict_file(str(tmp_path / 'nope.pth'))


def test_load_weights_invalidates_prototypes(model):
    ft = OrderedDict((k, v + 1) for k, v in model.state_dict().items())
    load_weights(model, ft, 'ft')
    assert model.invalidations == 1
    assert torch.equal(model.text.weight.detach(), ft['text.weight'])
    bad = OrderedDict(ft)
    bad['text.weight'] = torch.zeros(2, 2)
    with pytest.raises(CheckpointMismatchError, match="'text.weight'"):
        load_weights(model, bad, 'bad.pth')
    assert model.invalidations == 1  # nothing loaded


def test_model_state_dict_is_a_snapshot(model):
    """Loading other weights leaves an earlier snapshot unchanged."""
    snapshot = model_state_dict(model)
    before = snapshot['text.weight'].clone()
    load_weights(model, OrderedDict(
        (k, v + 1) for k, v in model.state_dict().items()), 'ft')
    assert torch.equal(snapshot['text.weight'], before)
    assert not torch.equal(model.text.weight.detach(), before)


def test_unreadable_checkpoint_names_the_file(model, tmp_path):
    path = tmp_path / 'w.pth'
    save_checkpoint(make_checkpoint(model.state_dict()), str(path))
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(CheckpointReadError) as info:
        load_state_dict_file(str(path))
    message = str(info.value)
    assert message.startswith(f'checkpoint {str(path)!r} cannot be read (')
    assert message.endswith('it is truncated or corrupt: pass another file '
                            'or re-save it.')
    assert '\n' not in message


def test_save_checkpoint_refuses_a_directory(tmp_path):
    from drm_mm.utils.checkpoint_utils import CheckpointWriteError
    (tmp_path / 'out.pth').mkdir()
    with pytest.raises(CheckpointWriteError) as err:
        save_checkpoint(make_checkpoint({'w': torch.zeros(1)}),
                        str(tmp_path / 'out.pth'))
    assert str(err.value) == (
        f'cannot write the checkpoint {tmp_path / "out.pth"}: it is a '
        'directory; pass a file path (e.g. ending in .pth).')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pth']


def test_failed_write_leaves_no_tmp(tmp_path, monkeypatch):
    from drm_mm.utils.checkpoint_utils import CheckpointWriteError

    def full_disk(obj, path):  # what torch's zip writer raises
        with open(path, 'wb') as f:
            f.write(b'PK partial')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . '
                           'unexpected pos 64 vs 0\nframe #0: c10::...')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(CheckpointWriteError) as err:
        save_checkpoint(make_checkpoint({'w': torch.zeros(1)}),
                        str(tmp_path / 'a.pth'))
    assert str(err.value) == (
        f'cannot write the checkpoint {tmp_path / "a.pth"} (RuntimeError: '
        '[enforce fail at inline_container.cc:672] . unexpected pos 64 vs '
        '0); free disk space or choose another path.')
    assert list(tmp_path.iterdir()) == []
