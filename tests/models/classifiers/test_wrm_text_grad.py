"""The cheaper WRM path ``wrm_text_grad=False``: L_WRM gives the text tower
no gradient (the image tower still gets one), and the cd prototypes are
re-encoded every ``wrm_text_refresh`` steps; and ``wrm_text_classes``: the
text gradient of L_WRM for a class subset only, unbiased."""
import itertools

import pytest
import torch
from mmpretrain.structures import DataSample

from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.models.clip.open_clip_model import is_text_param

CLASSES = ['cat', 'dog', 'bird']

# Float32 tolerances from the arithmetic, not from one machine: a float32 sum
# of n terms is exact to about n * eps of the largest magnitude in it, and
# two CPUs (AVX-512 or not) may block the same sum differently. The longest
# sums of the tiny CLIP's backward pass run over batch x tokens x width.
EPS32 = torch.finfo(torch.float32).eps
BATCH, TOKENS, WIDTH = 4, 32, 64  # drm-tiny-vit: 17 image, 32 text tokens
N_SUM = BATCH * TOKENS * WIDTH


def assert_float32_close(actual: torch.Tensor, expected: torch.Tensor,
                         n: int = N_SUM) -> None:
    """``actual`` equals ``expected`` up to ``n`` float32 roundings of the
    tensor's largest magnitude (elementwise)."""
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=0.0,
                               atol=n * EPS32 * max(scale, 1e-30))
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


def encodes_over_seven_steps(model, monkeypatch, backward=False):
    """The steps (1-based) at which ``model`` encodes a prompt set without
    gradient (its no-grad cache) over 7 training steps, as
    ``[(step, name), ...]``."""
    calls, step = [], [0]
    inner = model.text.encode

    def counted(clip, name):
        calls.append((step[0], name))
        return inner(clip, name)

    monkeypatch.setattr(model.text, 'encode', counted)
    for step[0] in range(1, 8):
        losses = model.loss(*batch())
        if backward:
            losses['loss_wrm'].backward()
    return calls


def test_cd_prototypes_are_re_encoded_every_refresh_steps(monkeypatch):
    model = make_model(wrm_text_grad=False, wrm_text_refresh=3)
    calls = encodes_over_seven_steps(model, monkeypatch)
    assert calls == [(1, 'cd'), (4, 'cd'), (7, 'cd')]


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


# ---------------------------------------------------------------- subset
# wrm_text_classes=m: only the cd prompts of a class subset S get gradient
# (the ceil(m/2) classes of most p_c mass + the rest drawn, gradient / q).

SIX = ['cat', 'dog', 'bird', 'fish', 'horse', 'frog']
SIX_DESCRIPTIONS = dict(DESCRIPTIONS, fish=['it swims', 'it has fins'],
                        horse='a large hoofed animal', frog='an amphibian')


def make_six(erm_weight=0.0, **kwargs):
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=SIX, templates=['a photo of {c}.'],
        descriptions=SIX_DESCRIPTIONS,
        loss=dict(erm='contrastive', wrm_weight=1.0, erm_weight=erm_weight),
        **kwargs)
    g = torch.Generator().manual_seed(3)
    model.set_soft_labels(torch.softmax(2 * torch.randn(4, 6, generator=g),
                                        dim=1))
    return model.train()


def loss_and_grads(model):
    """The losses and the gradient of their sum on every CLIP
    parameter."""
    model.zero_grad()
    torch.manual_seed(5)  # the same caption draws on every path
    losses = model.loss(*batch())
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    return losses, {n: p.grad.clone()
                    for n, p in model.clip.model.named_parameters()
                    if p.grad is not None}


def test_the_subset_text_gradient_is_unbiased(monkeypatch):
    exact_loss, exact = loss_and_grads(make_six())
    model = make_six(wrm_text_classes=4)  # 2 top, 2 of the other 4 drawn
    draws, rows = [], []
    pairs = list(itertools.combinations(range(4), 2))

    def draw(rest, n):  # each pair of the 4 other classes once
        assert rest.numel() == 4 and n == 2
        draws.append(rest[list(pairs[len(draws)])])
        return draws[-1]

    monkeypatch.setattr(model.text.wrm_text, 'draw', draw)
    inner = model.clip.encode_text

    def counted(tokens, *args, **kwargs):
        if torch.is_grad_enabled():
            rows.append(tokens.size(0))
        return inner(tokens, *args, **kwargs)

    monkeypatch.setattr(model.clip, 'encode_text', counted)
    total = {n: torch.zeros_like(g) for n, g in exact.items()}
    text = [n for n in exact if is_text_param(n)]
    single = []  # one draw's text gradient differs from the exact one
    for _ in pairs:
        losses, grads = loss_and_grads(model)
        single.append(max(float((grads[n] - exact[n]).abs().max())
                          for n in text))
        assert float(losses['loss_wrm']) == pytest.approx(
            float(exact_loss['loss_wrm']), abs=1e-6)
        assert set(grads) == set(exact)
        for name, grad in grads.items():
            total[name] += grad / len(pairs)
            if not is_text_param(name):  # image tower, logit scale
                assert_float32_close(grad, exact[name])
    # the 2 top classes and each pair drawn: 4 of the 6 classes' prompts
    counts = {c: len(d) if isinstance(d, list) else 1
              for c, d in SIX_DESCRIPTIONS.items()}
    # the 2 classes of most p_c mass over the batch, by hand
    mass = model.soft_label_table.sum(dim=0)
    top = sorted(mass.argsort(descending=True)[:2].tolist())
    assert all(not set(d.tolist()) & set(top) for d in draws)
    for drawn, n_rows in zip(draws, rows):
        assert n_rows == sum(counts[SIX[c]] for c in top + drawn.tolist())
    assert len(draws) == 6 and len({tuple(d.tolist()) for d in draws}) == 6
    assert text and min(single) > 1e-3 * max(
        float(exact[n].abs().max()) for n in text)
    for name in text:  # the mean of the draws is the exact gradient
        assert_float32_close(total[name], exact[name])


def test_the_real_draw_is_uniform_over_the_classes_not_on_top():
    """Without a stand-in draw: over many steps every drawn class lies
    outside the top classes, each pair of the 4 others is drawn, and each
    of them about equally often (q = 2/4)."""
    model = make_six(wrm_text_classes=4)
    mass = model.soft_label_table.sum(dim=0)
    top = set(mass.argsort(descending=True)[:2].tolist())
    counts = torch.zeros(6)
    for _ in range(400):
        classes, scale = model.text.wrm_text.subset(model.soft_label_table)
        assert set(classes[:2].tolist()) == top
        drawn = classes[2:].tolist()
        assert len(set(drawn)) == 2 and not set(drawn) & top
        assert scale.tolist() == [1.0, 1.0, 2.0, 2.0]  # 1 / q, q = 2/4
        counts[drawn] += 1
    assert counts[sorted(top)].sum() == 0
    # each of the 4 others: 200 expected draws, binomial sd 10
    others = counts[[c for c in range(6) if c not in top]]
    assert float((others - 200).abs().max()) < 50


def test_as_many_classes_as_there_are_is_the_exact_path():
    exact_loss, exact = loss_and_grads(make_six(erm_weight=1.0))
    loss, grads = loss_and_grads(make_six(erm_weight=1.0,
                                          wrm_text_classes=6))
    for key in ('loss_erm', 'loss_wrm'):
        assert torch.equal(loss[key], exact_loss[key])
    assert set(grads) == set(exact)
    assert all(torch.equal(grads[n], exact[n]) for n in exact)


def test_the_subset_loss_value_is_the_exact_one():
    exact = make_six(erm_weight=1.0)
    subset = make_six(erm_weight=1.0, wrm_text_classes=2)
    for _ in range(3):  # several draws
        torch.manual_seed(5)
        want = exact.loss(*batch())
        torch.manual_seed(5)
        got = subset.loss(*batch())
        for key in ('loss_erm', 'loss_wrm'):
            assert float(got[key]) == pytest.approx(float(want[key]),
                                                    abs=1e-6)


def test_subset_cache_is_re_encoded_every_refresh_steps(monkeypatch):
    model = make_six(wrm_text_classes=2, wrm_text_refresh=3)
    calls = encodes_over_seven_steps(model, monkeypatch, backward=True)
    assert calls == [(1, 'cd'), (4, 'cd'), (7, 'cd')]


@pytest.mark.parametrize('kwargs, message', [
    (dict(wrm_text_classes=1),
     'DRMClassifier.wrm_text_classes must be None or an integer >= 2 '
     '(classes whose cd prompts get gradient each step), got 1.'),
    (dict(wrm_text_classes=True),
     'DRMClassifier.wrm_text_classes must be None or an integer >= 2 '
     '(classes whose cd prompts get gradient each step), got True.'),
    (dict(wrm_text_classes=4.0),
     'DRMClassifier.wrm_text_classes must be None or an integer >= 2 '
     '(classes whose cd prompts get gradient each step), got 4.0.'),
    (dict(wrm_text_classes=7),
     'DRMClassifier.wrm_text_classes=7 exceeds the 6 classes; set it to at '
     'most 6 (the exact path) or None.'),
    (dict(wrm_text_classes=4, wrm_text_grad=False),
     'DRMClassifier.wrm_text_classes needs wrm_text_grad=True '
     '(wrm_text_grad=False drops the cd gradient of every class); set one '
     'of them.'),
    (dict(wrm_text_classes=4, loss=dict(wrm_prompts='df')),
     "DRMClassifier.wrm_text_classes applies to L_WRM's cd prompts; with "
     "loss.wrm_prompts='df' leave it None."),
    (dict(wrm_text_classes=4, loss=dict(erm='ce', erm_prompts='cd')),
     "DRMClassifier.wrm_text_classes saves nothing with loss.erm='ce' and "
     "loss.erm_prompts='cd' (L_ERM encodes every cd prompt with gradient); "
     "leave it None."),
])
def test_bad_subset_values_are_named(kwargs, message):
    loss = dict(dict(erm='contrastive', wrm_weight=1.0),
                **kwargs.pop('loss', {}))
    with pytest.raises(ValueError) as err:
        DRMClassifier(
            clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
            classnames=SIX, templates=['a photo of {c}.'],
            descriptions=SIX_DESCRIPTIONS, loss=loss, **kwargs)
    assert str(err.value) == message
