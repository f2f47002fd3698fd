"""Logit scale: unclamped ``exp(logit_scale)`` at evaluation, clamped to 100
in the training losses only (as the authors evaluate and CLIP trains)."""
import math

import pytest
import torch
import torch.nn.functional as F

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.clip import OpenCLIP
from drm_mm.models.losses.contrastive_loss import contrastive_loss
from mmpretrain.structures import DataSample

CLASSES = ['cat', 'dog', 'bird']
DESCRIPTIONS = {'cat': 'a small feline', 'dog': ['a canine', 'a pet'],
                'bird': 'a feathered animal'}


def _set_scale(clip: OpenCLIP, value: float) -> None:
    with torch.no_grad():
        clip.model.logit_scale.fill_(math.log(value))


def test_open_clip_scale_is_unclamped_and_training_scale_clamped():
    clip = OpenCLIP('drm-tiny-vit')
    _set_scale(clip, 250.0)
    assert float(clip.logit_scale) == pytest.approx(250.0, rel=1e-5)
    assert float(clip.training_logit_scale) == pytest.approx(100.0, rel=1e-6)


def test_the_contrastive_erm_of_a_step_uses_the_clamped_scale():
    """The one clamp (``OpenCLIP.training_logit_scale``) reaches the
    contrastive L_ERM: scale 250 trains as 100."""
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        head=dict(beta=1.0), loss=dict(erm='contrastive', wrm_weight=0.0))
    _set_scale(model.clip, 250.0)
    x = torch.randn(3, 3, 32, 32)
    samples = [DataSample().set_gt_label(i) for i in range(3)]
    with torch.no_grad():  # one template a class: the captions are fixed
        loss = model(x, samples, mode='loss')['loss_erm']
        img = model.clip.encode_image(x)
        captions = model.prototypes('df')
    expected = contrastive_loss(img, captions, torch.tensor(100.0))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_classifier_predicts_with_unclamped_scale_and_trains_clamped():
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        descriptions=DESCRIPTIONS, head=dict(beta=0.5),
        loss=dict(erm='ce', wrm_weight=0.0)).eval()
    _set_scale(model.clip, 250.0)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        img = model.clip.encode_image(x)
        df, cd = model.prototypes('df'), model.prototypes('cd')
        hand = 0.5 * (250.0 * img @ df.t()).softmax(1) + 0.5 * (
            250.0 * img @ cd.t()).softmax(1)
        scores = model(x, mode='tensor')
    assert (scores - hand).abs().max() < 1e-5
    samples = [DataSample().set_gt_label(i) for i in range(3)]
    with torch.no_grad():
        loss = model(x, samples, mode='loss')['loss_erm']
    expected = F.cross_entropy(100.0 * img @ df.t(), torch.arange(3))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
