"""DRM on the user's own image folder, as a new user runs it: a tiny
dataset with its own classes and descriptions, a config of at most 12 lines
in the user's project folder inheriting drm_mm's image-folder DRM config,
MMPretrain's train.py, drm_mm's train.py --resume auto, MMPretrain's
test.py, then MMPretrain's get_model + ImageClassificationInferencer on the
checkpoint (inference_model needs a model-index entry)."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mmpretrain
from drm_mm.utils import get_config_path

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MM_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
CLASSES = ['cat', 'dog', 'red fox']
DESCRIPTIONS = {
    'cat': ['a small furry animal with pointed ears and whiskers'],
    'dog': ['a four-legged animal with a wet nose and floppy ears'],
    'red fox': ['a slender canid with orange-red fur and a bushy tail'],
}

USER_CONFIG = '''_base_ = [{base!r}]
data_root = {root!r}
classes = {classes!r}
model = dict(classnames=classes, descriptions={desc!r}, clip=dict(model_name='drm-tiny-vit', pretrained=None))
test_pipeline = [dict(type='drm_mm.LoadImageDraft'), dict(type='ResizeEdge', scale=32, edge='short', backend='pillow'), dict(type='CenterCrop', crop_size=32), dict(type='PackInputs', meta_keys=('sample_idx', 'img_path'))]
train_pipeline = test_pipeline
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=4, **loader, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(**loader, val=dict(dataset=dict(pipeline=test_pipeline)))
test_dataloader = dict(**loader, dataset=dict(pipeline=test_pipeline), val=dict(dataset=dict(pipeline=test_pipeline)))
train_cfg = dict(max_epochs=2)
'''  # noqa: E501


def _write_dataset(root):
    rng = np.random.default_rng(0)
    colours = {'cat': (200, 60, 60), 'dog': (60, 200, 60),
               'red_fox': (60, 60, 200)}
    for split, n in (('train', 4), ('val', 2)):
        for folder, colour in colours.items():
            (root / split / folder).mkdir(parents=True)
            for i in range(n):
                img = np.clip(np.array(colour) + rng.integers(
                    -20, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / folder / f'{i}.png')
    with open(root / 'descriptions.json', 'w') as f:
        json.dump(DESCRIPTIONS, f)


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_own_image_folder_trains_resumes_tests_and_serves(tmp_path):
    from mmengine import load
    data = tmp_path / 'my_pets'
    _write_dataset(data)
    project = tmp_path / 'my_project'
    project.mkdir()
    config = project / 'my_drm.py'
    config.write_text(USER_CONFIG.format(
        base=get_config_path('drm/vitb16_image_folder.py'), root=str(data),
        classes=CLASSES, desc=str(data / 'descriptions.json')))
    assert len(config.read_text().splitlines()) <= 12
    work = str(tmp_path / 'work')

    # the README's check of the descriptions: the zero-shot cd head alone
    log = _run([osp.join(ROOT, 'tools', 'test.py'), str(config), 'none',
                '--work-dir', str(tmp_path / 'zs'), '--cfg-options',
                'model.head.beta=0.0'], str(project))
    assert 'val/accuracy/top1' in log

    _run([osp.join(MM_TOOLS, 'train.py'), str(config), '--work-dir', work],
         str(project))
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    best = [f for f in os.listdir(work) if f.startswith('best_val_accuracy')]
    assert len(best) == 1, os.listdir(work)

    log = _run([osp.join(ROOT, 'tools', 'train.py'), str(config),
                '--work-dir', work, '--resume', 'auto', '--cfg-options',
                'train_cfg.max_epochs=3'], str(project))
    assert 'epoch_2.pth' in log
    assert osp.isfile(osp.join(work, 'epoch_3.pth'))

    out = str(tmp_path / 'preds.pkl')
    log = _run([osp.join(MM_TOOLS, 'test.py'), str(config),
                osp.join(work, 'epoch_3.pth'), '--work-dir', work, '--out',
                out], str(project))
    assert 'val/accuracy/top1' in log and 'val/single-label/f1-score' in log
    preds = load(out)
    assert list(preds) == ['val']
    val = preds['val']
    assert sorted(p['sample_idx'] for p in val) == list(range(6))
    # each prediction is the argmax of the model's own scores, and the
    # logged accuracy is the share of them that are right
    assert all(int(p['pred_label']) == int(p['pred_score'].argmax())
               for p in val)
    right = sum(int(p['pred_label']) == int(p['gt_label']) for p in val)
    logged = re.search(r'val/accuracy/top1: ([0-9.]+)', log)
    assert float(logged.group(1)) == pytest.approx(100 * right / 6,
                                                   abs=1e-4)

    cm_out = str(tmp_path / 'cm.pkl')
    _run([osp.join(ROOT, 'tools', 'analysis', 'confusion_matrix.py'),
          str(config), osp.join(work, 'epoch_3.pth'), '--out', cm_out,
          '--show-path', str(tmp_path / 'cm.png')], str(project))
    assert osp.getsize(tmp_path / 'cm_val.png') > 0
    cm = load(cm_out)['val']
    assert tuple(cm.shape) == (3, 3) and int(cm.sum()) == 6
    assert cm.sum(dim=1).tolist() == [2, 2, 2]  # 2 val images per class

    from mmpretrain import ImageClassificationInferencer, get_model
    model = get_model(str(config), pretrained=osp.join(work, 'epoch_3.pth'),
                      device='cpu')
    inferencer = ImageClassificationInferencer(model)
    result = inferencer(str(data / 'val' / 'red_fox' / '0.png'))[0]
    assert len(result['pred_scores']) == len(CLASSES)
    assert abs(float(np.sum(result['pred_scores'])) - 1.0) < 1e-5
    assert result['pred_class'] == CLASSES[result['pred_label']]
