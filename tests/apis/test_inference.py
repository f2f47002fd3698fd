"""MMPretrain's APIs on drm_mm models: list_models, get_model,
ImageClassificationInferencer and inference_model (class names = the
model's ``classnames``, scores = ``DRMClassifier.predict``), the zero-shot
entry point and demo/image_demo.py."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import drm_mm
from drm_mm.utils import get_config_path

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'demo', 'image_demo.py')
CLASSES = ['cat', 'dog', 'bird']


def tiny():
    """Model overrides for get_model (a fresh dict: merging pops
    ``_delete_``)."""
    return dict(classnames=CLASSES, templates=['a photo of a {c}.'],
                descriptions=dict(_delete_=True, cat=['whiskers and fur'],
                                  dog=['a wet snout'], bird=['feathers']))


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp('img') / 'img.png'
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(
        path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mmpretrain import get_model
    torch.manual_seed(0)
    model = get_model('drm_tiny_fake_iwildcam', **tiny())
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return str(path)


def test_list_models_has_our_configs():
    from mmpretrain import list_models
    names = list_models('*drm*')
    for arch in ('vitb16', 'vitl14', 'vitl14-336'):
        for data in ('iwildcam', 'fmow', 'imagenet'):
            assert f'drm_{arch}_{data}' in names
    assert 'flyp_vitb16_iwildcam' in list_models('flyp*')


@pytest.mark.parametrize('name', ['drm_vitb16_iwildcam', 'drm_vitb16_fmow',
                                  'drm_vitb16_imagenet'])
def test_paper_configs_build_in_get_model_and_inferencer(name):
    """Multi-set test dataloaders: get_model and the inferencer read the
    shared ``test_dataloader.dataset``."""
    from mmpretrain import ImageClassificationInferencer, get_model
    model = get_model(name, clip=dict(model_name='drm-tiny-vit',
                                      pretrained=None), **tiny())
    assert model._dataset_meta['classes'] == tuple(CLASSES)
    inferencer = ImageClassificationInferencer(model)
    steps = [type(t).__name__ for t in inferencer.pipeline.transforms]
    # LoadImageDraft passes through the image the inferencer decoded
    assert steps == ['LoadImageDraft', 'ResizeEdge', 'CenterCrop',
                     'PackInputs']
    assert inferencer.classes == tuple(CLASSES)


def _expected(model, image):
    """What DRMClassifier.predict gives for the test pipeline's image."""
    from mmpretrain import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(model)
    data = next(inferencer.preprocess([image]))
    data = model.data_preprocessor(data, False)
    with torch.no_grad():
        return model.predict(data['inputs'])[0]


def test_get_model_inferencer_inference_model(checkpoint, image):
    from mmpretrain import (ImageClassificationInferencer, get_model,
                            inference_model)
    model = get_model('drm_tiny_fake_iwildcam', pretrained=checkpoint,
                      **tiny())
    assert model.classnames == CLASSES
    expected = _expected(model, image)
    result = inference_model(model, image)
    assert result['pred_class'] == CLASSES[int(expected.pred_label)]
    torch.testing.assert_close(torch.as_tensor(result['pred_scores']),
                               expected.pred_score, rtol=0, atol=1e-6)
    sample = ImageClassificationInferencer(model)(
        image, return_datasamples=True)[0]
    torch.testing.assert_close(sample.pred_score, expected.pred_score,
                               rtol=0, atol=1e-6)
    beta = model.head.beta
    torch.testing.assert_close(
        beta * sample.df_score + (1 - beta) * sample.cd_score,
        sample.pred_score, rtol=0, atol=1e-6)


def test_zero_shot_classifier(image):
    model = drm_mm.zero_shot_classifier(
        ['apple', 'pear'], {'apple': ['a red round fruit'],
                            'pear': ['a green bell-shaped fruit']},
        config='smoke/drm_tiny_fake_iwildcam.py')
    from mmpretrain import inference_model
    assert model.classnames == ['apple', 'pear']
    assert model.head.beta == 0.5
    assert inference_model(model, image)['pred_class'] in ('apple', 'pear')
    df_only = drm_mm.zero_shot_classifier(
        ['apple', 'pear'], config='smoke/drm_tiny_fake_iwildcam.py')
    assert df_only.head.beta == 1.0


def test_zero_shot_missing_descriptions():
    with pytest.raises(KeyError, match=r"descriptions lack the classes "
                       r"\['pear'\]"):
        drm_mm.zero_shot_classifier(
            ['apple', 'pear'], {'apple': ['red']},
            config='smoke/drm_tiny_fake_iwildcam.py')


def test_image_demo_zero_shot(tmp_path, image):
    table = tmp_path / 'desc.json'
    table.write_text(json.dumps({'cat': ['whiskers'], 'dog': ['snout']}))
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, DEMO, image,
         'smoke/drm_tiny_fake_iwildcam.py', '--classes',
         'cat', 'dog', '--descriptions', str(table)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1].split('\r')[-1]
                     .split('0:00:00')[-1])
    assert set(out) == {'pred_class', 'pred_label', 'pred_score',
                        'df_class', 'cd_class'}
    assert out['pred_class'] in ('cat', 'dog')


def test_image_demo_with_checkpoint(checkpoint, image):
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1')
    proc = subprocess.run(
        [sys.executable, DEMO, image,
         get_config_path('smoke/drm_tiny_fake_iwildcam.py'), '--checkpoint',
         checkpoint], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1].split('0:00:00')[-1])
    from drm_mm.datasets.classnames import get_classnames
    assert out['pred_class'] in get_classnames('iwildcam')
    assert set(out) == {'pred_class', 'pred_label', 'pred_score',
                        'df_class', 'cd_class'}
