"""No checkpoint loading path runs code from a crafted pickle, even with
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (which only changes torch's default):
``load_from``, ``--resume PATH``, ``--resume auto``, ``init_cfg``
Pretrained, MMPretrain's ``get_model(pretrained=...)``, tools/test.py."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import drm_mm  # noqa: F401  registers the safe CheckpointLoader schemes
from drm_mm.utils import UnsafeCheckpointError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMOKE = osp.join(ROOT, 'configs', 'smoke', 'drm_tiny_fake_iwildcam.py')


class Payload:

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A checkpoint whose unpickling would create ``pwned`` (eval)."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'pwned'
    path = tmp_path / 'work' / 'epoch_1.pth'
    path.parent.mkdir()
    torch.save({'meta': {}, 'state_dict': {},
                'x': Payload(eval, f'open({str(marker)!r}, "w").close()')},
               path)
    yield str(path), marker
    assert not marker.exists()


def _runner(tmp_path, **overrides):
    from mmengine.runner import Runner
    cfg = Config.fromfile(SMOKE)
    cfg.model.classnames = ['a', 'b']
    cfg.model.templates = ['a photo of a {c}.']
    cfg.model.descriptions = dict(a=['x'], b=['y'])
    cfg.work_dir = str(tmp_path / 'work')
    cfg.merge_from_dict(overrides)
    return Runner.from_cfg(cfg)


@pytest.mark.parametrize('mode', ['load_from', 'resume_path', 'resume_auto'])
def test_runner_paths_refuse(tmp_path, evil, mode):
    path, _ = evil
    overrides = dict(load_from=None if mode == 'resume_auto' else path,
                     resume=mode != 'load_from')
    if mode == 'resume_auto':
        (tmp_path / 'work' / 'last_checkpoint').write_text(path)
    runner = _runner(tmp_path, **overrides)
    with pytest.raises(UnsafeCheckpointError,
                       match=r"global builtins\.eval is not allowed"):
        runner.load_or_resume()


def test_init_cfg_pretrained_refuses(evil):
    from mmengine.model import BaseModule
    path, _ = evil

    class Net(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='Pretrained',
                                           checkpoint=path))
            self.w = torch.nn.Linear(1, 1)

    with pytest.raises(UnsafeCheckpointError, match='builtins.eval'):
        Net().init_weights()


def test_mmpretrain_get_model_refuses(evil):
    from mmpretrain import get_model
    path, _ = evil
    with pytest.raises(UnsafeCheckpointError, match='builtins.eval'):
        get_model('drm_tiny_fake_iwildcam', pretrained=path,
                  classnames=['a', 'b'], templates=['a photo of a {c}.'],
                  descriptions=dict(_delete_=True, a=['x'], b=['y']))


def test_tools_test_refuses(tmp_path, evil, fake_iwildcam_root):
    path, _ = evil
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), SMOKE, path,
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'test_dataloader.dataset.data_root={fake_iwildcam_root}'],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    line = next(ln for ln in proc.stderr.splitlines()
                if ln.startswith('error: '))
    assert line.startswith('error: UnsafeCheckpointError: Refused to load')
    assert 'global builtins.eval is not allowed' in line


def test_http_checkpoints_load_safely(tmp_path, evil, monkeypatch):
    """``get_model(pretrained='https://...')`` and ``init_cfg`` URLs go
    through the http(s) scheme: downloaded, then loaded like a file."""
    import functools
    import http.server
    import threading

    from mmengine.runner.checkpoint import _load_checkpoint
    path, _ = evil
    served = tmp_path / 'served'
    served.mkdir()
    os.replace(path, served / 'evil.pth')
    torch.save({'state_dict': {'w': torch.ones(2)}}, served / 'good.pth')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f'http://127.0.0.1:{server.server_address[1]}'
        good = _load_checkpoint(f'{url}/good.pth', map_location='cpu')
        assert torch.equal(good['state_dict']['w'], torch.ones(2))
        with pytest.raises(UnsafeCheckpointError,
                           match=r"Refused to load 'http://127\.0\.0\.1:\d+"
                           r"/evil\.pth': global builtins\.eval is not "
                           r"allowed"):
            _load_checkpoint(f'{url}/evil.pth', map_location='cpu')
    finally:
        server.shutdown()
        server.server_close()
