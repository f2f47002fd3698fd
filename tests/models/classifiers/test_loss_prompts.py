"""The loss ablation options of DRMClassifier / DualRiskLoss:
``loss.erm_prompts`` (ERM on df or cd), ``loss.wrm_prompts`` (WRM trains the
cd or the df logits) and ``loss.erm_weight`` (0: WRM only). Each changes
exactly the term it names, checked against hand computations."""
import pytest
import torch
import torch.nn.functional as F

from drm_mm.models.losses.contrastive_loss import ContrastiveLoss
from drm_mm.models.losses.dual_risk_loss import (DualRiskLoss,
                                                 soft_cross_entropy)

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.classifiers.text_prototypes import class_prototypes
from drm_mm.models.heads.clip_text_head import TextRequest
from mmpretrain.structures import DataSample

CLASSES = ['cat', 'dog', 'bird']
TEMPLATES = ['a photo of {c}.', 'a drawing of a {c}.']
DESCRIPTIONS = {'cat': 'a small feline with whiskers',
                'dog': ['a canine with floppy ears', 'a barking pet'],
                'bird': 'a feathered animal with a beak'}


def build(frozen=(), beta=0.5, loss=None, **kw):
    torch.manual_seed(0)
    kw.setdefault('descriptions', DESCRIPTIONS)
    return DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit', frozen=frozen),
        classnames=CLASSES, templates=TEMPLATES,
        head=dict(beta=beta, **kw.pop('head', {})),
        loss=loss or dict(erm='contrastive', wrm_weight=1.0),
        soft_labels=dict(source='online'), **kw)


def batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    samples = []
    for i in range(n):
        s = DataSample().set_gt_label(i % len(CLASSES))
        s.set_metainfo(dict(sample_idx=i))
        samples.append(s)
    return x, samples


def manual_prototypes(model, prompts):
    with torch.no_grad():
        feats = model.clip.encode_text([p for ps in prompts for p in ps])
    return class_prototypes(feats, [len(p) for p in prompts])

#: One description a class: a cd caption draw is deterministic.
ONE_EACH = {'cat': 'a small feline with whiskers',
            'dog': 'a canine with floppy ears',
            'bird': 'a feathered animal with a beak'}


def losses(model, seed=3):
    x, samples = batch()
    torch.manual_seed(seed)  # the same caption draws for every model
    return model(x, samples, mode='loss'), x, samples


def features(model, x):
    with torch.no_grad():
        return model.clip.encode_image(x), model.clip.training_logit_scale


def df_prompts():
    return [[t.replace('{c}', c) for t in TEMPLATES] for c in CLASSES]


def cd_prompts(descriptions=DESCRIPTIONS):
    return [[d] if isinstance(d, str) else list(d)
            for d in (descriptions[c] for c in CLASSES)]


@pytest.mark.parametrize('frozen', [(), ('text', )])
def test_erm_on_cd_ce_is_cross_entropy_on_the_cd_logits(frozen):
    model = build(frozen=frozen, loss=dict(erm='ce', wrm_weight=1.0,
                                           erm_prompts='cd'))
    out, x, samples = losses(model)
    img, scale = features(model, x)
    labels = torch.tensor([s.gt_label.item() for s in samples])
    cd = manual_prototypes(model, cd_prompts())
    hand = F.cross_entropy(scale * img @ cd.t(), labels)
    assert out['loss_erm'].item() == pytest.approx(hand.item(), abs=1e-5)
    # the WRM term is the default model's
    default, _, _ = losses(build(frozen=frozen,
                                 loss=dict(erm='ce', wrm_weight=1.0)))
    assert out['loss_wrm'].item() == pytest.approx(
        default['loss_wrm'].item(), abs=1e-6)
    assert out['loss_erm'].item() != pytest.approx(
        default['loss_erm'].item(), abs=1e-4)


@pytest.mark.parametrize('frozen', [(), ('text', )])
def test_erm_on_cd_contrastive_captions_are_descriptions(frozen):
    model = build(frozen=frozen, descriptions=ONE_EACH,
                  loss=dict(erm='contrastive', wrm_weight=1.0,
                            erm_prompts='cd'))
    out, x, samples = losses(model)
    img, scale = features(model, x)
    labels = torch.tensor([s.gt_label.item() for s in samples])
    with torch.no_grad():
        captions = model.clip.encode_text([ONE_EACH[CLASSES[y]]
                                           for y in labels.tolist()])
    hand = ContrastiveLoss(gather=False)(img, captions, scale)
    assert out['loss_erm'].item() == pytest.approx(hand.item(), abs=1e-5)


def test_cd_captions_draw_every_description_of_the_class():
    """Classes have different numbers of descriptions ('dog' has 2): each
    drawn caption is one of its class's descriptions, and both of 'dog'
    are drawn."""
    model = build(frozen=('text', ))
    rows = model.text._cached_rows(model.clip, 'cd')
    starts = {'cat': [0], 'dog': [1, 2], 'bird': [3]}
    labels = torch.tensor([0, 1, 2, 1] * 25)
    torch.manual_seed(0)
    out = model.text.training_text(model.clip, labels,
                                   TextRequest(captions='cd'))
    seen = set()
    for y, feat in zip(labels.tolist(), out['caption']):
        match = [i for i in starts[CLASSES[y]]
                 if torch.allclose(feat, rows[i], atol=1e-6)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {0, 1, 2, 3}


def test_wrm_on_df_trains_the_df_logits_on_the_same_soft_labels():
    model = build(loss=dict(erm='contrastive', wrm_weight=1.0,
                            wrm_prompts='df'))
    out, x, samples = losses(model)
    img, scale = features(model, x)
    soft = model.soft_labels(x, samples)  # core-based: the cd teacher
    df = manual_prototypes(model, df_prompts())
    hand = soft_cross_entropy(scale * img @ df.t(), soft)
    assert out['loss_wrm'].item() == pytest.approx(hand.item(), abs=1e-5)
    default, _, _ = losses(build())
    assert out['loss_erm'].item() == pytest.approx(
        default['loss_erm'].item(), abs=1e-6)
    assert out['wrm_raw'].item() != pytest.approx(
        default['wrm_raw'].item(), abs=1e-4)


def test_erm_weight_scales_only_the_erm_term():
    default, _, _ = losses(build())
    double, _, _ = losses(build(loss=dict(erm='contrastive', wrm_weight=1.0,
                                          erm_weight=2.0)))
    wrm_only, _, _ = losses(build(loss=dict(erm='contrastive',
                                            wrm_weight=1.0, erm_weight=0.0)))
    assert double['loss_erm'].item() == pytest.approx(
        2 * default['loss_erm'].item(), abs=1e-6)
    assert wrm_only['loss_erm'].item() == 0.0
    for out in (double, wrm_only):
        assert out['loss_wrm'].item() == pytest.approx(
            default['loss_wrm'].item(), abs=1e-6)


def test_wrm_only_gets_gradient_from_wrm_alone():
    model = build(loss=dict(erm='contrastive', wrm_weight=1.0,
                            erm_weight=0.0))
    out, _, _ = losses(model)
    sum(v for k, v in out.items() if 'loss' in k).backward()
    image = [p.grad for n, p in model.clip.named_parameters()
             if 'visual' in n and p.grad is not None]
    assert image and any(g.abs().sum() > 0 for g in image)


@pytest.mark.parametrize('kwargs, message', [
    (dict(erm_prompts='captions'),
     "DualRiskLoss.erm_prompts='captions'; choose from ('df', 'cd')."),
    (dict(wrm_prompts='both'),
     "DualRiskLoss.wrm_prompts='both'; choose from ('df', 'cd')."),
    (dict(erm_weight=-1.0),
     'DualRiskLoss.erm_weight must be >= 0 and a finite number, got -1.0.'),
    (dict(erm_weight=0.0, wrm_weight=0.0),
     'DualRiskLoss: erm_weight and wrm_weight are both 0, nothing to '
     'train; set one of them > 0.'),
])
def test_bad_loss_options_are_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        DualRiskLoss(**kwargs)
    assert str(err.value) == message


def test_erm_on_cd_needs_descriptions_and_no_linear_head():
    with pytest.raises(ValueError, match="erm_prompts='cd'"):
        build(beta=1.0, descriptions=None,
              loss=dict(erm='ce', wrm_weight=0.0, erm_prompts='cd'))
    with pytest.raises(ValueError, match="use loss.erm_prompts='df'"):
        build(head=dict(linear=True),
              loss=dict(erm='ce', wrm_weight=0.0, erm_prompts='cd'))


def test_defaults_are_the_paper_objective():
    loss = DualRiskLoss()
    assert (loss.erm_weight, loss.erm_prompts, loss.wrm_prompts) == (
        1.0, 'df', 'cd')
