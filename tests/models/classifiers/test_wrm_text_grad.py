"""The cheaper WRM path ``wrm_text_grad=False``: L_WRM gives the text tower
no gradient (the image tower still gets one), and the cd prototypes are
re-encoded every ``wrm_text_refresh`` steps."""
import pytest
import torch
from mmpretrain.structures import DataSample

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.clip.open_clip_model import is_text_param

CLASSES = ['cat', 'dog', 'bird']
DESCRIPTIONS = {'cat': 'a small feline', 'dog': ['a canine', 'a pet'],
                'bird': 'a feathered animal'}


def make_model(**kwargs):
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        descriptions=DESCRIPTIONS,
        loss=dict(erm='contrastive', wrm_weight=1.0), **kwargs)
    model.set_soft_labels(torch.softmax(torch.randn(4, 3), dim=1))
    return model.train()


def batch():
    torch.manual_seed(1)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % 3)
               for i in range(4)]
    return torch.randn(4, 3, 32, 32), samples


def wrm_grads(model):
    """Gradient norms of L_WRM alone on the text / image parameters."""
    model.zero_grad()
    model.loss(*batch())['loss_wrm'].backward()
    text = image = 0.0
    for name, param in model.clip.model.named_parameters():
        norm = 0.0 if param.grad is None else float(param.grad.norm())
        if is_text_param(name):
            text += norm
        elif name != 'logit_scale':
            image += norm
    return text, image


def test_the_text_tower_gets_no_gradient_from_wrm():
    exact_text, exact_image = wrm_grads(make_model())
    assert exact_text > 0 and exact_image > 0  # the default: both towers
    text, image = wrm_grads(make_model(wrm_text_grad=False))
    assert text == 0.0
    assert image == pytest.approx(exact_image, rel=1e-5)


def test_the_same_loss_values_as_the_exact_path():
    exact = make_model().loss(*batch())
    cheap = make_model(wrm_text_grad=False).loss(*batch())
    for key in ('loss_erm', 'loss_wrm'):
        assert float(cheap[key]) == pytest.approx(float(exact[key]),
                                                  abs=1e-6)


def test_cd_prototypes_are_re_encoded_every_refresh_steps(monkeypatch):
    model = make_model(wrm_text_grad=False, wrm_text_refresh=3)
    calls = []
    inner = model.text.encode

    def counted(clip, name):
        calls.append(name)
        return inner(clip, name)

    monkeypatch.setattr(model.text, 'encode', counted)
    for _ in range(7):
        model.loss(*batch())
    assert calls == ['cd'] * 3  # steps 1, 4 and 7


@pytest.mark.parametrize('kwargs, message', [
    (dict(wrm_text_grad='no'),
     "DRMClassifier.wrm_text_grad must be True or False, got 'no'."),
    (dict(wrm_text_refresh=0),
     'DRMClassifier.wrm_text_refresh must be a positive integer (steps), '
     'got 0.'),
])
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        make_model(**kwargs)
    assert str(err.value) == message
