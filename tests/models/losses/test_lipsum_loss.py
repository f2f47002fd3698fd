"""LipsumLoss: 1/(2M) ‖v_θ(x) − v_θ0(x)‖² against hand computations, and the
random-text draw."""
import copy
import math
from types import SimpleNamespace

import pytest
import torch

from drm_mm.models.clip import build_tokenizer
from drm_mm.models.clip.open_clip_model import OpenCLIP
from drm_mm.models.losses import LipsumLoss, random_text_tokens
from drm_mm.registry import MODELS

EPS = torch.finfo(torch.float32).eps


def _tol(n_terms: int, magnitude: float) -> float:
    """float32 rounding bound: ``n_terms`` squared gaps of ``magnitude``."""
    return 8 * n_terms * EPS * max(magnitude, 1.0)


def test_explicit_numbers():
    """f = e1, f0 = e2, texts e1, e2, (e1 + e2)/√2, s = 2:
    v_θ = 2·(1, 0, 1/√2), v_0 = 2·(0, 1, 1/√2), gap (2, −2, 0),
    ‖gap‖² / (2·3) = 8/6; a second image with f = f0 adds 0."""
    r = 1 / math.sqrt(2)
    image = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    teacher = torch.tensor([[0.0, 1.0], [0.6, 0.8]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [r, r]])
    loss = LipsumLoss(loss_weight=0.5)(image, teacher, texts, 2.0)
    assert loss.item() == pytest.approx(0.5 * (8 / 6) / 2, abs=_tol(6, 4))


def test_matches_a_loop_over_images_and_texts():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(4, 8, generator=g) * 2
    teacher = torch.randn(4, 8, generator=g)
    texts = torch.randn(5, 8, generator=g)
    loss = LipsumLoss()(image, teacher, texts, torch.tensor(100.0))
    total = 0.0
    for f, f0 in zip(image.double(), teacher.double()):
        for t in texts.double():
            t = t / t.norm()
            v = 100 * float(t @ (f / f.norm()))
            v0 = 100 * float(t @ (f0 / f0.norm()))
            total += (v - v0)**2 / (2 * len(texts))
    hand = total / len(image)
    # 20 gaps, each up to 2 × 100, squared.
    assert loss.item() == pytest.approx(hand, abs=_tol(20, 4e4))


def test_gradient_reaches_only_the_fine_tuned_features():
    g = torch.Generator().manual_seed(1)
    image = torch.randn(3, 8, generator=g, requires_grad=True)
    teacher = torch.randn(3, 8, generator=g, requires_grad=True)
    texts = torch.randn(6, 8, generator=g, requires_grad=True)
    scale = torch.tensor(100.0, requires_grad=True)
    LipsumLoss()(image, teacher, texts, scale).backward()
    assert torch.count_nonzero(image.grad) > 0
    assert teacher.grad is None and texts.grad is None
    assert scale.grad is None


def test_defaults_registry_and_bad_options():
    loss = MODELS.build(dict(type='LipsumLoss'))
    assert (loss.loss_weight, loss.num_texts, loss.text_length) == (1.0, 80,
                                                                    8)
    with pytest.raises(ValueError, match='LipsumLoss.loss_weight'):
        LipsumLoss(loss_weight=float('inf'))
    with pytest.raises(ValueError, match='LipsumLoss.num_texts'):
        LipsumLoss(num_texts=0)
    with pytest.raises(ValueError, match='LipsumLoss.text_length'):
        LipsumLoss(text_length=2.5)
    with pytest.raises(ValueError, match='differ'):
        LipsumLoss()(torch.ones(2, 4), torch.ones(3, 4), torch.ones(2, 4), 1.)
    with pytest.raises(ValueError, match=r'\(M, 4\)'):
        LipsumLoss()(torch.ones(2, 4), torch.ones(2, 4), torch.ones(4), 1.)


# ---------------------------------------------------------------- the draw
def _toy_tokenizer(context_length=12):
    """Vocabulary 0..5, of which 4 (SOT) and 5 (EOT) are special."""
    return SimpleNamespace(vocab_size=6, all_special_ids=[4, 5],
                           sot_token_id=4, eot_token_id=5,
                           context_length=context_length)


def test_draw_layout_and_vocabulary_without_special_tokens():
    tokens = random_text_tokens(_toy_tokenizer(), num_texts=200,
                                text_length=3, seed=7, step=0)
    assert tokens.shape == (200, 12) and tokens.dtype == torch.long
    assert torch.all(tokens[:, 0] == 4) and torch.all(tokens[:, 4] == 5)
    assert torch.all(tokens[:, 5:] == 0)
    body = tokens[:, 1:4]
    # 600 uniform draws over 4 ids: every ordinary id appears, no special.
    assert set(body.unique().tolist()) == {0, 1, 2, 3}


def test_draw_is_a_function_of_seed_and_step():
    tok = _toy_tokenizer()
    first = random_text_tokens(tok, 16, 5, seed=3, step=10)
    assert torch.equal(first, random_text_tokens(tok, 16, 5, seed=3,
                                                 step=10))
    assert not torch.equal(first, random_text_tokens(tok, 16, 5, seed=3,
                                                     step=11))
    assert not torch.equal(first, random_text_tokens(tok, 16, 5, seed=4,
                                                     step=10))
    # The global RNG neither influences nor is consumed by the draw.
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert torch.equal(first, random_text_tokens(tok, 16, 5, seed=3,
                                                 step=10))
    assert torch.equal(before, torch.get_rng_state())


def test_draw_with_the_clip_tokenizer():
    tok = build_tokenizer('drm-tiny-vit')
    loss = LipsumLoss()
    tokens = loss.draw_tokens(tok, seed=0, step=0)
    assert tokens.shape == (80, tok.context_length)
    body = tokens[:, 1:9]
    assert int(body.min()) >= 0 and int(body.max()) < tok.vocab_size
    assert not torch.isin(body, torch.tensor(tok.all_special_ids)).any()
    assert torch.all(tokens[:, 9] == tok.eot_token_id)


def test_bad_draw_options():
    with pytest.raises(ValueError, match='does not fit'):
        random_text_tokens(_toy_tokenizer(context_length=6), 2, 5)
    with pytest.raises(ValueError, match='num_texts'):
        random_text_tokens(_toy_tokenizer(), 0, 5)
    with pytest.raises(TypeError, match='SimpleTokenizer'):
        random_text_tokens(object(), 2, 3)


def test_zero_for_the_pre_trained_clip_and_positive_once_it_moves():
    """With a tiny CLIP: a copy of the teacher gives 0 (up to the rounding
    of two forwards, with and without autograd); after a
    perturbation of its image tower the gap is > 0 and its gradient reaches
    the fine-tuned image tower, never the teacher."""
    torch.manual_seed(0)
    teacher = OpenCLIP(model_name='drm-tiny-vit').requires_grad_(False)
    student = copy.deepcopy(teacher).requires_grad_(True)
    loss_fn = LipsumLoss(num_texts=6)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        texts = teacher.encode_text(loss_fn.draw_tokens(teacher.tokenizer,
                                                        seed=1, step=0))
        frozen = teacher.encode_image(images)
    scale = teacher.training_logit_scale
    # Each v differs by at most a few float32 roundings of s · cos.
    same = loss_fn(student.encode_image(images), frozen, texts, scale)
    assert same.item() <= (64 * EPS * float(scale))**2
    with torch.no_grad():
        student.model.visual.proj.add_(
            0.5 * torch.randn_like(student.model.visual.proj))
    loss = loss_fn(student.encode_image(images), frozen, texts, scale)
    assert loss.item() > 0
    loss.backward()
    assert torch.count_nonzero(student.model.visual.proj.grad) > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert student.model.token_embedding.weight.grad is None
