"""``DRMClassifier(regularizer=...)``: L2-SP, CAR-FT and Lipsum-FT added to
the fine-tuning loss with their inputs from the one frozen teacher of the
soft-label component."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.clip.open_clip_model import OpenCLIP
from drm_mm.models.losses import CARFTLoss, L2SPLoss, LipsumLoss
from drm_mm.models.losses.car_ft_loss import context_weights

CLASSES = ['cat', 'dog', 'bird']
TEMPLATES = ['a photo of {c}.', 'a sketch of {c}.', 'a painting of {c}.']
EPS32 = torch.finfo(torch.float32).eps
LIPSUM = dict(type='drm_mm.LipsumLoss', num_texts=5, text_length=4)
CARFT = dict(type='drm_mm.CARFTLoss', context_templates=TEMPLATES)
L2SP = dict(type='drm_mm.L2SPLoss', alpha=0.1, beta=0.01)
KEYS = {'L2SPLoss': 'loss_l2sp', 'CARFTLoss': 'loss_carft',
        'LipsumLoss': 'loss_lipsum'}


def make_model(regularizer, **kwargs):
    torch.manual_seed(0)
    return DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        head=dict(beta=1.0), loss=dict(erm='ce', wrm_weight=0.0),
        regularizer=regularizer, **kwargs).train()


def batch():
    torch.manual_seed(1)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % 3)
               for i in range(4)]
    return torch.randn(4, 3, 32, 32), samples


def perturb(model):
    """Move the student away from the teacher."""
    with torch.no_grad():
        for param in model.clip.parameters():
            param.add_(0.01 * torch.randn_like(param))


def close(actual, expected, n=4 * 64 * 64):
    scale = max(float(expected.abs()), 1e-30)
    assert abs(float(actual) - float(expected)) <= n * EPS32 * scale


@pytest.mark.parametrize('cfg', [L2SP, CARFT, LIPSUM])
def test_zero_at_start_and_positive_after_a_change(cfg):
    model = make_model(cfg)
    key = KEYS[cfg['type'].split('.')[-1]]
    losses = model.loss(*batch())
    assert float(losses[key]) == pytest.approx(0.0, abs=1e-6)
    assert set(losses) >= {'loss_erm', key}
    perturb(model)
    assert float(model.loss(*batch())[key]) > 1e-6


@pytest.mark.parametrize('cfg', [L2SP, CARFT, LIPSUM])
def test_term_equals_the_component_by_hand(cfg):
    model = make_model(cfg)
    perturb(model)
    inputs, samples = batch()
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 7)
    hub.update_info('seed', 3)
    losses = model.loss(inputs, samples)
    teacher = model.soft_labels.build_teacher()
    feats = model.clip.encode_image(inputs)
    with torch.no_grad():
        t_feats = teacher.encode_image(inputs)
    scale = teacher.training_logit_scale
    name = cfg['type'].split('.')[-1]
    if name == 'L2SPLoss':
        params = dict(model.clip.named_parameters())
        ref = dict(teacher.named_parameters())
        by_hand = 0.1 / 2 * sum(float((params[n] - ref[n]).pow(2).sum())
                                for n in params)
        expected = torch.tensor(by_hand)
        close(L2SPLoss(0.1, 0.01)(params, ref), expected)
    elif name == 'CARFTLoss':
        with torch.no_grad():
            text = torch.stack([teacher.encode_text(
                [t.replace('{c}', c) for c in CLASSES]) for t in TEMPLATES])
        expected = CARFTLoss()(feats, t_feats, context_weights(text), scale)
    else:
        tokens = LipsumLoss(num_texts=5, text_length=4).draw_tokens(
            teacher.tokenizer, 3, 7)
        with torch.no_grad():
            text = teacher.encode_text(tokens)
        expected = LipsumLoss()(feats, t_feats, text, scale)
        # another step draws other texts
        hub.update_info('iter', 8)
        assert float(model.loss(inputs, samples)['loss_lipsum']) != \
            float(losses['loss_lipsum'])
    close(losses[KEYS[name]], expected)


@pytest.mark.parametrize('cfg', [L2SP, CARFT, LIPSUM])
def test_gradient_reaches_the_student_only(cfg):
    model = make_model(cfg)
    perturb(model)
    key = KEYS[cfg['type'].split('.')[-1]]
    model.loss(*batch())[key].backward()
    teacher = model.soft_labels.build_teacher()
    assert all(p.grad is None and not p.requires_grad
               for p in teacher.parameters())
    grads = [p.grad for p in model.clip.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_one_teacher_kept_and_no_teacher_in_state_dict():
    model = make_model([L2SP, CARFT, LIPSUM])
    clips = [m for m in model.modules() if isinstance(m, OpenCLIP)]
    assert len(clips) == 1  # the student; the teacher is no submodule
    losses = model.loss(*batch())
    assert {'loss_l2sp', 'loss_carft', 'loss_lipsum'} <= set(losses)
    assert len(model.soft_labels._kept_teacher) == 1
    first = model.soft_labels.build_teacher()
    model.loss(*batch())
    assert model.soft_labels.build_teacher() is first
    n_student = sum(p.numel() for p in model.parameters())
    n_teacher = sum(p.numel() for p in first.parameters())
    assert n_teacher == sum(p.numel() for p in model.clip.parameters())
    assert n_student == n_teacher  # no second copy among the parameters
    assert not any(k.startswith('soft_labels') for k in model.state_dict())


def test_default_none_keeps_no_teacher():
    model = make_model(None)
    assert model.regularizer is None
    assert model.soft_labels._kept_teacher == []
    assert not any(k.startswith('loss_l2sp') or k in ('loss_carft',
                                                      'loss_lipsum')
                   for k in model.loss(*batch()))


def test_one_line_errors():
    with pytest.raises(ValueError, match='CARFTLoss.context_templates'):
        make_model(dict(type='drm_mm.CARFTLoss',
                        context_templates=['a photo of {c}.']))
    with pytest.raises(ValueError, match='at most once'):
        make_model([LIPSUM, LIPSUM])
    with pytest.raises(ValueError, match='no regulariser'):
        make_model(dict(type='drm_mm.ContrastiveLoss'))
    model = make_model(L2SP)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)
    with pytest.raises(ValueError, match='weight_decay=0.0'):
        model.regularizer.check_optimizer(opt, list(model.clip.parameters()))
    model = make_model(L2SP)
    model.regularizer.check_optimizer(
        torch.optim.AdamW(model.parameters(), weight_decay=0.0),
        list(model.clip.parameters()))


def test_with_drm_the_soft_labels_and_the_regulariser_share_the_teacher():
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=CLASSES, templates=['a photo of {c}.'],
        descriptions={c: f'a {c} with its core features' for c in CLASSES},
        loss=dict(erm='contrastive', wrm_weight=1.0),
        soft_labels=dict(source='online'), regularizer=LIPSUM).train()
    losses = model.loss(*batch())
    assert {'loss_erm', 'loss_wrm', 'loss_lipsum'} <= set(losses)
    assert float(losses['loss_lipsum']) == pytest.approx(0.0, abs=1e-6)
    assert len(model.soft_labels._kept_teacher) == 1


def test_train_step_refuses_weight_decay_with_l2sp():
    from mmengine.optim import OptimWrapper
    model = make_model(L2SP)
    data = dict(inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                        for _ in range(2)],
                data_samples=batch()[1][:2])
    decayed = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-5,
                                             weight_decay=0.1))
    with pytest.raises(ValueError, match='weight_decay=0.0'):
        model.train_step(data, decayed)
    plain = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-5,
                                           weight_decay=0.0))
    assert 'loss_l2sp' in model.train_step(data, plain)
