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


# ------------------------------------------------ checkpoints that do not fit
TINY = dict(classnames=['a', 'b'], templates=['a photo of a {c}.'])


def _tiny_model_cfg():
    return dict(TINY, descriptions=dict(_delete_=True, a=['x'], b=['y']))


@pytest.fixture
def unfit(tmp_path):
    """A checkpoint of the tiny model with one key missing, one unknown key
    and one tensor of another shape: MMEngine's loader only warns."""
    from mmpretrain import get_model
    state = get_model('drm_tiny_fake_iwildcam', **_tiny_model_cfg()
                      ).state_dict()
    state.pop('clip.model.logit_scale')
    state['head.linear.weight'] = torch.zeros(2, 4)
    key = 'clip.model.visual.proj'
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    path = tmp_path / 'unfit.pth'
    torch.save(dict(state_dict=state, meta={}), path)
    return str(path)


EXPECTED = (r"checkpoint '{path}' does not fit the model of this config "
            r"\(1 missing key\(s\), first \['clip\.model\.logit_scale'\]; 1 "
            r"unexpected key\(s\), first \['head\.linear\.weight'\]; key "
            r"'clip\.model\.visual\.proj' is \(\d+, \d+\) in the checkpoint "
            r"but \(\d+, \d+\) in the model\)\. It was written for another "
            r"architecture .*load a checkpoint of the same model config")


def _expected(path):
    import re
    return EXPECTED.format(path=re.escape(path))


def test_get_model_refuses_a_checkpoint_that_does_not_fit(unfit):
    from mmpretrain import get_model

    from drm_mm.utils.checkpoint_utils import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError, match=_expected(unfit)):
        get_model('drm_tiny_fake_iwildcam', pretrained=unfit,
                  **_tiny_model_cfg())


def test_inferencer_refuses_a_checkpoint_that_does_not_fit(unfit):
    from mmpretrain import ImageClassificationInferencer, get_model

    from drm_mm.utils.checkpoint_utils import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError, match=_expected(unfit)):
        ImageClassificationInferencer('drm_tiny_fake_iwildcam',
                                      pretrained=unfit, **_tiny_model_cfg())
    model = get_model('drm_tiny_fake_iwildcam', **_tiny_model_cfg())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError, match=_expected(unfit)):
        ImageClassificationInferencer(model, pretrained=unfit)
    # refused before any weight changed
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_runner_gives_the_same_error(tmp_path, unfit):
    from drm_mm.utils.checkpoint_utils import CheckpointMismatchError
    runner = _runner(tmp_path, load_from=unfit)
    with pytest.raises(CheckpointMismatchError) as runner_err:
        runner.load_or_resume()
    from mmpretrain import get_model
    with pytest.raises(CheckpointMismatchError) as api_err:
        get_model(SMOKE, pretrained=unfit, **_tiny_model_cfg())
    assert str(runner_err.value) == str(api_err.value)


def test_image_demo_refuses_a_checkpoint_that_does_not_fit(tmp_path, unfit):
    import numpy as np
    from PIL import Image
    image = tmp_path / 'img.png'
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{SMOKE!r}]\n'
                     f"model = dict(classnames=['a', 'b'], templates=['a "
                     f"photo of a {{c}}.'], descriptions=dict(_delete_=True, "
                     f"a=['x'], b=['y']))\n")
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'demo', 'image_demo.py'), str(image),
         str(child), '--checkpoint', unfit],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout[-1000:]
    errors = [ln for ln in proc.stderr.splitlines()
              if ln.startswith('error: ')]
    assert len(errors) == 1, proc.stderr[-2000:]
    import re
    assert re.match('error: CheckpointMismatchError: ' + _expected(unfit),
                    errors[0])
    assert 'pred_class' not in proc.stdout


def test_partial_load_goes_to_the_submodule(unfit):
    """A partial load through the model is refused even with torch's
    ``strict=False`` (torch calls the hook with ``strict=True``); loading
    into the submodule that owns the weights is the way to do it."""
    from mmpretrain import get_model

    from drm_mm.utils.checkpoint_utils import CheckpointMismatchError
    model = get_model('drm_tiny_fake_iwildcam', **_tiny_model_cfg())
    saved = torch.load(unfit, weights_only=True)['state_dict']
    part = {k: v for k, v in saved.items()
            if k.startswith('clip.model.transformer.')}
    with pytest.raises(CheckpointMismatchError,
                       match=r"the state dict being loaded does not fit"):
        model.load_state_dict(part, strict=False)
    inner = {k[len('clip.model.'):]: v for k, v in part.items()}
    result = model.clip.model.load_state_dict(inner, strict=False)
    assert not result.unexpected_keys
    key = next(iter(inner))
    assert torch.equal(model.clip.model.state_dict()[key], inner[key])


def test_config_key_allows_named_classes_for_its_runner(tmp_path):
    """``checkpoint_safe_globals`` in a config allows those classes while
    its runner loads; without it the same file is refused."""
    import argparse

    from mmpretrain import get_model
    state = get_model('drm_tiny_fake_iwildcam', **_tiny_model_cfg()
                      ).state_dict()
    path = tmp_path / 'foreign.pth'
    torch.save(dict(state_dict=state,
                    meta=dict(args=argparse.Namespace(lr=0.1))), path)
    from drm_mm.engine.runners import DRMRunner

    def _runner(tmp_path, **overrides):  # the configs' runner
        cfg = Config.fromfile(SMOKE)
        cfg.merge_from_dict(dict(model=_tiny_model_cfg(),
                                 work_dir=str(tmp_path / 'work'),
                                 **overrides))
        return DRMRunner.from_cfg(cfg)

    refused = _runner(tmp_path, load_from=str(path))
    with pytest.raises(UnsafeCheckpointError,
                       match=r"checkpoint_safe_globals=\['argparse\."
                       r"Namespace'\] \(config\)"):
        refused.load_or_resume()
    runner = _runner(tmp_path, load_from=str(path),
                     checkpoint_safe_globals=['argparse.Namespace'])
    runner.load_or_resume()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, state[key]), key
