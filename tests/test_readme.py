"""The README's plugin sections do what they say: the visualizer one-liners
parse into a list of dicts, the inheriting snippet loads, ``drm_mm::``
fails as explained, the MMPretrain tools path exists, and the Inference
examples run (tiny model, tiny checkpoint)."""
import argparse
import os.path as osp
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from PIL import Image

import drm_mm  # noqa: F401
from drm_mm.datasets.classnames import get_classnames
from drm_mm.utils import get_config_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def section(title):
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    start = text.index(f'\n{title}\n')
    following = re.search(r'\n#{2,3} ', text[start + len(title) + 2:])
    return text[start:start + len(title) + 2 + following.start()]


def blocks(text, lang):
    return re.findall(rf'```{lang}\n(.*?)```', text, flags=re.S)


def test_visualizer_one_liners_parse_into_list_of_dicts():
    from mmpretrain.registry import VISBACKENDS
    lines = blocks(section('### Logging backends'), 'bash')[0].splitlines()
    assert len(lines) == 2
    parser = argparse.ArgumentParser()
    parser.add_argument('script')
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    got = []
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        cfg = Config.fromfile(get_config_path('_base_/default_runtime.py'))
        cfg.merge_from_dict(args.cfg_options)
        backends = cfg.visualizer.vis_backends
        assert isinstance(backends, list)
        assert all(isinstance(b, dict) for b in backends)
        assert VISBACKENDS.get(backends[0]['type']) is not None
        got.append(backends)
    assert got == [[dict(type='TensorboardVisBackend')],
                   [dict(type='WandbVisBackend',
                         init_kwargs=dict(project='drm_mm'))]]


def test_inheriting_snippet_and_drm_mm_scheme(tmp_path):
    text = section('### From another OpenMMLab project')
    snippet = blocks(text, 'python')[0].replace(
        '/path/to/drm_mm/configs/drm/vitb16_iwildcam.py',
        get_config_path('drm/vitb16_iwildcam.py'))
    path = tmp_path / 'my_drm.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.loss.wrm_weight == 0.5
    assert cfg.runner_type == 'drm_mm.DRMRunner'
    # the printed path of the comment is the one used above
    command = re.search(r'# (python -c ".*")', snippet).group(1)
    out = subprocess.run(shlex.split(command)[0:1] and
                         [sys.executable] + shlex.split(command)[1:],
                         capture_output=True, text=True, check=True,
                         env={'PYTHONPATH': ROOT, 'HF_HUB_OFFLINE': '1'})
    assert out.stdout.strip().splitlines()[-1] == get_config_path(
        'drm/vitb16_iwildcam.py')
    (tmp_path / 'scheme.py').write_text(
        "_base_ = 'drm_mm::drm/vitb16_iwildcam.py'\n")
    with pytest.raises(AssertionError,
                       match='mmengine does not support to load drm_mm '
                       'config'):
        Config.fromfile(str(tmp_path / 'scheme.py'))
    tools = re.search(r'MMPRETRAIN_TOOLS=\$\(python -c "(.*?)"\)', text,
                      flags=re.S).group(1).replace('\n', ' ')
    out = subprocess.run([sys.executable, '-c', tools], capture_output=True,
                         text=True, check=True)
    for tool in ('train.py', 'test.py'):
        assert osp.isfile(osp.join(out.stdout.strip(), tool))


def test_inference_examples_run(tmp_path):
    from mmpretrain import get_model
    image = tmp_path / 'demo.jpg'
    Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (40, 52, 3), dtype=np.uint8)).save(image)
    torch.manual_seed(0)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=get_model(
        'drm_tiny_fake_iwildcam').state_dict()), ckpt)
    first, zero_shot = blocks(section('## Inference'), 'python')

    def run(code, scope):
        code = (code.replace("'drm_vitb16_iwildcam'",
                             "'drm_tiny_fake_iwildcam'")
                .replace("'CKPT'", repr(str(ckpt)))
                .replace("'demo.jpg'", repr(str(image)))
                .replace('zero_shot_classifier(\n', 'zero_shot_classifier(\n'
                         "    config='smoke/drm_tiny_fake_iwildcam.py',\n"))
        exec(compile(code, 'README.md', 'exec'), scope)  # noqa: S102
        return scope

    scope = run(first, {})
    assert 'drm_vitb16_iwildcam' in scope['names']
    assert scope['model'].classnames == get_classnames('iwildcam')
    assert scope['result']['pred_class'] in scope['model'].classnames
    assert set(scope['sample'].keys()) >= {'df_score', 'cd_score'}
    scope = run(zero_shot, scope)
    assert scope['model'].classnames == ['red fox', 'grey wolf']
    assert scope['model'].head.beta == 0.5
