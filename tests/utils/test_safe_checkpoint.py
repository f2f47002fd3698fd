"""Loading MMEngine checkpoints with weights_only=True and an allowlist,
whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import drm_mm  # noqa: F401  registers the safe CheckpointLoader schemes
from drm_mm.utils import UnsafeCheckpointError, load_trusted_checkpoint
from drm_mm.utils.safe_checkpoint import HISTORY_STATS


class Payload:
    """Pickles as ``func(*args)``: what a crafted checkpoint runs."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    """name, payload, the global torch sees: each would create ``marker``."""
    code = f'open({str(marker)!r}, "w").close()'
    return [
        ('eval', Payload(eval, code), 'builtins.eval'),
        ('exec', Payload(exec, code), 'builtins.exec'),
        ('system', Payload(os.system, f'touch {marker}'), 'posix.system'),
        ('import', Payload(__import__, 'os'), 'builtins.__import__'),
    ]


def crafted(tmp_path, index):
    marker = tmp_path / 'pwned'
    name, payload, refused = payloads(marker)[index]
    path = tmp_path / f'evil_{name}.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': payload}, path)
    return str(path), marker, refused


def assert_refused(err, path, refused):
    text = str(err.value)
    assert text == text.strip() and '\n' not in text
    assert text.startswith(f'Refused to load {path!r}: global {refused} is '
                           'not allowed')
    assert 'weights_only=False' not in text and 'Re-running' not in text


def test_mmengine_objects_load(tmp_path):
    hub = MessageHub.get_instance('safe_ckpt_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(1e-3))
    ckpt = dict(meta=dict(epoch=1, iter=np.int64(7), seed=np.int32(3)),
                message_hub=hub.state_dict(),
                state_dict={'w': torch.ones(2)})
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError,
                       match='Weights only load failed'):
        torch.load(path)  # torch's default refuses MMEngine's objects
    loaded = load_trusted_checkpoint(str(path))
    assert loaded['meta']['iter'] == 7
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 0.5


@pytest.mark.parametrize('index', range(4), ids=['eval', 'exec', 'system',
                                                 'import'])
@pytest.mark.parametrize('force_unsafe_env', [False, True])
def test_code_payloads_refused(tmp_path, monkeypatch, index,
                               force_unsafe_env):
    if force_unsafe_env:
        monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    path, marker, refused = crafted(tmp_path, index)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_trusted_checkpoint(path)
    assert_refused(err, path, refused)
    assert not marker.exists()


@pytest.mark.parametrize(
    'name', sorted(set(dir(HistoryBuffer)) - set(HISTORY_STATS)))
def test_getattr_only_history_buffer_stats(tmp_path, name):
    path = tmp_path / 'attr.pth'
    torch.save({'x': Payload(getattr, HistoryBuffer, name)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_trusted_checkpoint(str(path))
    assert (f'getattr({HistoryBuffer!r}, {name!r}) is not allowed'
            in str(err.value))


@pytest.mark.parametrize('name', HISTORY_STATS)
def test_getattr_history_buffer_stats_allowed(tmp_path, name):
    path = tmp_path / 'stat.pth'
    torch.save({'x': Payload(getattr, HistoryBuffer, name)}, path)
    assert load_trusted_checkpoint(str(path))['x'] is getattr(
        HistoryBuffer, name)


def test_getattr_of_other_objects_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': Payload(getattr, HistoryBuffer.__init__, '__globals__')},
               path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_trusted_checkpoint(str(path))


# ------------------------------------------- allowing named classes one trusts
@pytest.fixture
def foreign(tmp_path):
    """Another project's trusted checkpoint: argparse.Namespace and
    pathlib.PosixPath in its meta."""
    import argparse
    import pathlib
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'w': torch.arange(3.)},
                'meta': {'args': argparse.Namespace(lr=0.1),
                         'root': pathlib.PosixPath('/data/x')}}, path)
    return str(path)


def _mmengine_load(path):
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(path, map_location='cpu')


def test_foreign_types_are_refused_with_the_way_to_allow_them(foreign):
    with pytest.raises(UnsafeCheckpointError) as err:
        _mmengine_load(foreign)
    message = str(err.value)
    assert '\n' not in message
    assert 'is not allowed' in message
    assert "DRM_MM_SAFE_GLOBALS='argparse.Namespace,pathlib.PosixPath'" in \
        message
    assert "checkpoint_safe_globals=['argparse.Namespace', " \
        "'pathlib.PosixPath']" in message
    assert 'allow_checkpoint_globals' in message
    assert 'docs/safe_loading.md' in message


def _check_loaded(checkpoint):
    import pathlib
    assert checkpoint['meta']['args'].lr == 0.1
    assert checkpoint['meta']['root'] == pathlib.PosixPath('/data/x')
    assert torch.equal(checkpoint['state_dict']['w'], torch.arange(3.))


def test_environment_variable_allows_named_classes(foreign, monkeypatch):
    monkeypatch.setenv('DRM_MM_SAFE_GLOBALS',
                       'argparse.Namespace, pathlib.PosixPath')
    _check_loaded(_mmengine_load(foreign))
    _check_loaded(load_trusted_checkpoint(foreign))
    monkeypatch.setenv('DRM_MM_SAFE_GLOBALS', 'argparse.Namespace')
    with pytest.raises(UnsafeCheckpointError,
                       match=r"DRM_MM_SAFE_GLOBALS='pathlib\.PosixPath'"):
        _mmengine_load(foreign)


def test_context_manager_allows_named_classes_for_its_block(foreign):
    import argparse

    from drm_mm.utils import allow_checkpoint_globals
    with allow_checkpoint_globals(argparse.Namespace, 'pathlib.PosixPath'):
        _check_loaded(_mmengine_load(foreign))
    with pytest.raises(UnsafeCheckpointError):
        _mmengine_load(foreign)


@pytest.mark.parametrize('name, match', [
    ('builtins.eval', r"DRM_MM_SAFE_GLOBALS: 'builtins\.eval' is not a "
     r"class \(only classes can be allowed"),
    ('os.system', r"'os\.system' is not a class"),
    ('nowhere.Thing', r"DRM_MM_SAFE_GLOBALS: cannot import 'nowhere\.Thing'"),
    ('not a name', r"'not a name' is not a class name"),
])
def test_only_importable_classes_can_be_allowed(foreign, monkeypatch, name,
                                                match):
    monkeypatch.setenv('DRM_MM_SAFE_GLOBALS', name)
    with pytest.raises(ValueError, match=match):
        _mmengine_load(foreign)


def test_refusing_a_function_suggests_no_allowing(tmp_path):
    path, _, _ = crafted(tmp_path, 0)
    with pytest.raises(UnsafeCheckpointError) as err:
        _mmengine_load(path)
    assert 'builtins.eval is not allowed' in str(err.value)
    assert 'DRM_MM_SAFE_GLOBALS' not in str(err.value)
