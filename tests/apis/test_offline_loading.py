"""A model whose weights come from a full checkpoint is built offline: the
CLIP's ``pretrained`` weights are loaded by ``init_weights`` (the Runner
calls it before training), never by the constructor, so ``get_model``,
the inferencer, ``demo/image_demo.py --checkpoint``, ``tools/test.py`` and
``init_cfg=dict(type='Pretrained')`` fetch nothing.

The tiny CLIP gets an open_clip hub tag ('fakehub') whose every fetch
raises; sockets are blocked (root conftest guard in-process, the plugin in
subprocesses).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import open_clip
import open_clip.factory
import open_clip.pretrained
import pytest
import torch
from mmengine.config import Config
from PIL import Image

import drm_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
SMOKE = osp.join(ROOT, 'configs', 'smoke', 'drm_tiny_fake_iwildcam.py')
DEMO = osp.join(ROOT, 'demo', 'image_demo.py')
CLASSES = ['cat', 'dog', 'bird']
MODEL = dict(classnames=CLASSES, templates=['a photo of a {c}.'],
             descriptions=dict(cat=['whiskers and fur'], dog=['a wet snout'],
                               bird=['feathers']))
FETCH_ERROR = 'offline test: open_clip tried to fetch weights'


def _no_fetch(*args, **kwargs):
    raise RuntimeError(FETCH_ERROR)


@pytest.fixture
def fakehub(monkeypatch):
    """'fakehub' is a tag of drm-tiny-vit; fetching it raises."""
    tags = dict(open_clip.pretrained._PRETRAINED.get('drm-tiny-vit', {}))
    tags['fakehub'] = open_clip.pretrained._pcfg(
        hf_hub='nobody/drm-tiny-vit/')
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, 'drm-tiny-vit',
                        tags)
    for module in (open_clip, open_clip.factory, open_clip.pretrained):
        for name in ('download_pretrained', 'download_pretrained_from_hf',
                     'download_pretrained_from_url'):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _no_fetch)


def _config(pretrained='fakehub', **model):
    cfg = Config.fromfile(SMOKE)
    cfg.merge_from_dict(dict(model=dict(
        clip=dict(pretrained=pretrained),
        **dict(MODEL, descriptions=dict(MODEL['descriptions'],
                                        _delete_=True)), **model)))
    return cfg


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A full checkpoint of the tiny model (random weights, seed 0)."""
    from mmpretrain import get_model
    torch.manual_seed(0)
    model = get_model(_config(pretrained=None))
    path = tmp_path_factory.mktemp('ckpt') / 'full.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return str(path)


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('img') / 'img.png'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(
        path)
    return str(path)


def _assert_weights_of(model, checkpoint):
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    state = model.state_dict()
    assert sorted(state) == sorted(saved)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


def test_building_fetches_nothing_and_init_weights_fetches(fakehub):
    """The constructor does not fetch; init_weights (the Runner's step
    before training) is where the pretrained weights load."""
    from drm_mm.models.clip import OpenCLIP
    clip = OpenCLIP(model_name='drm-tiny-vit', pretrained='fakehub')
    assert clip.pretrained_pending
    with pytest.raises(RuntimeError, match="Could not get open_clip weights "
                       "'drm-tiny-vit'/'fakehub'"):
        clip.init_weights()


def test_get_model_with_checkpoint_is_offline(fakehub, checkpoint):
    from mmpretrain import get_model
    model = get_model(_config(), pretrained=checkpoint)
    _assert_weights_of(model, checkpoint)
    assert not model.clip.pretrained_pending


def test_inferencer_with_checkpoint_is_offline(fakehub, checkpoint, image):
    from mmpretrain import ImageClassificationInferencer, get_model
    inferencer = ImageClassificationInferencer(_config(),
                                               pretrained=checkpoint)
    _assert_weights_of(inferencer.model, checkpoint)
    reference = get_model(_config(pretrained=None), pretrained=checkpoint)
    expected = ImageClassificationInferencer(reference)(
        image, return_datasamples=True)[0]
    got = inferencer(image, return_datasamples=True)[0]
    assert torch.equal(got.pred_score, expected.pred_score)


def test_init_cfg_checkpoint_is_offline(fakehub, checkpoint):
    from drm_mm.registry import MODELS, build_in_scope
    cfg = _config(init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    model = build_in_scope(MODELS, cfg.model)
    model.init_weights()
    _assert_weights_of(model, checkpoint)


def test_runner_init_weights_loads_the_pretrained_clip(tmp_path):
    """Training still starts from the pretrained CLIP: init_weights loads
    the ``pretrained`` file into the towers (and the frozen soft-label
    teacher rebuilt from the config loads it too)."""
    from drm_mm.models.clip import OpenCLIP
    from drm_mm.registry import MODELS, build_in_scope
    torch.manual_seed(1)
    source = OpenCLIP(model_name='drm-tiny-vit')
    weights = tmp_path / 'clip.pt'
    torch.save(source.model.state_dict(), weights)
    cfg = _config(pretrained=str(weights),
                  soft_labels=dict(source='cache'))
    model = build_in_scope(MODELS, cfg.model)
    assert model.clip.pretrained_pending
    model.init_weights()
    assert not model.clip.pretrained_pending
    for key, value in source.model.state_dict().items():
        assert torch.equal(model.clip.model.state_dict()[key], value), key
    teacher = model.soft_labels.build_teacher()
    for key, value in source.model.state_dict().items():
        assert torch.equal(teacher.model.state_dict()[key], value), key


def _child_config(tmp_path, **model):
    """A user config on disk: the smoke config with the 'fakehub' tag."""
    path = tmp_path / 'offline_child.py'
    body = dict(MODEL, **model)
    body['descriptions'] = dict(body['descriptions'], _delete_=True)
    path.write_text(
        f'_base_ = [{SMOKE!r}]\n'
        f"custom_imports = dict(imports=['drm_mm', 'offline_tag_plugin'], "
        f'allow_failed_imports=False)\n'
        f'model = dict(clip=dict(pretrained="fakehub"), **{body!r})\n')
    return str(path)


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]),
                HF_HUB_OFFLINE='1')


def test_image_demo_with_checkpoint_is_offline(tmp_path, checkpoint, image):
    from mmpretrain import ImageClassificationInferencer, get_model
    proc = subprocess.run(
        [sys.executable, DEMO, image, _child_config(tmp_path),
         '--checkpoint', checkpoint, '--cfg-options', 'model.head.beta=1.0'],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert FETCH_ERROR not in proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1].split('\r')[-1]
                     .split('0:00:00')[-1])
    reference = get_model(_config(pretrained=None, head=dict(beta=1.0)),
                          pretrained=checkpoint)
    expected = ImageClassificationInferencer(reference)(
        image, return_datasamples=True)[0]
    label = int(expected.pred_label)
    assert out['pred_label'] == label
    assert out['pred_class'] == CLASSES[label]
    # --cfg-options took effect: beta = 1 is the df head alone
    assert out['df_class'] == out['pred_class']
    assert out['pred_score'] == round(float(expected.pred_score[label]), 4)


def test_tools_test_with_checkpoint_is_offline(tmp_path, checkpoint,
                                               fake_iwildcam_root):
    from drm_mm.datasets.classnames import get_classnames
    classes = list(get_classnames('iwildcam'))[:6]
    config = _child_config(tmp_path, classnames=classes,
                           descriptions={c: ['x'] for c in classes})
    torch.manual_seed(0)
    from mmpretrain import get_model
    cfg = Config.fromfile(SMOKE)
    cfg.merge_from_dict(dict(model=dict(
        classnames=classes, templates=MODEL['templates'],
        descriptions=dict({c: ['x'] for c in classes}, _delete_=True))))
    ckpt = tmp_path / 'six.pth'
    torch.save(dict(state_dict=get_model(cfg).state_dict()), ckpt)
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config,
         str(ckpt), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'test_dataloader.dataset.data_root={fake_iwildcam_root}'],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert FETCH_ERROR not in proc.stdout + proc.stderr


def test_clip_override_in_get_model(checkpoint):
    """``get_model(name, **{'clip.pretrained': None})`` is a TypeError
    (MMPretrain merges keyword arguments into ``model`` as nested keys,
    so a dotted key reaches the constructor as is); the override is
    ``clip=dict(pretrained=None)``."""
    from mmpretrain import get_model
    model = get_model('drm_tiny_fake_iwildcam', clip=dict(pretrained=None),
                      **dict(MODEL, descriptions=dict(
                          MODEL['descriptions'], _delete_=True)))
    assert model.clip.pretrained is None
    assert model.clip.model_name == 'drm-tiny-vit'


def test_runner_test_without_checkpoint_starts_from_the_pretrained_clip(
        tmp_path, fake_iwildcam_root):
    """``runner.test()`` of a config with no checkpoint at all (a zero-shot
    config) evaluates the pretrained CLIP, not open_clip's random
    initialisation: the runner calls ``init_weights`` as training does."""
    from drm_mm.models.clip import OpenCLIP
    from tools.tool_utils import build_runner
    torch.manual_seed(1)
    source = OpenCLIP(model_name='drm-tiny-vit')
    weights = tmp_path / 'clip.pt'
    torch.save(source.model.state_dict(), weights)
    cfg = Config.fromfile(SMOKE)
    cfg.merge_from_dict(dict(model=dict(clip=dict(pretrained=str(weights)))))
    cfg.data_root = str(fake_iwildcam_root)
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    assert runner.model.clip.pretrained_pending
    runner.test()
    assert not runner.model.clip.pretrained_pending
    for key, value in source.model.state_dict().items():
        assert torch.equal(runner.model.clip.model.state_dict()[key],
                           value), key
