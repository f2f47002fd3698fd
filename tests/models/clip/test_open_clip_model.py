"""OpenCLIP module: encoders, freezing, gradient checkpointing."""
import pytest
import torch

from drm_mm.models.clip import OpenCLIP


def test_encoders_normalised():
    clip = OpenCLIP('drm-tiny-vit')
    img = clip.encode_image(torch.randn(2, 3, 32, 32))
    txt = clip.encode_text(['a photo of a cat.', 'a dog'])
    assert img.shape == (2, 32) and txt.shape == (2, 32)
    assert torch.allclose(img.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert float(clip.logit_scale) == pytest.approx(1 / 0.07, rel=1e-4)


def test_frozen_text_tower_gets_no_gradient():
    clip = OpenCLIP('drm-tiny-vit', frozen=('text', ))
    both = OpenCLIP('drm-tiny-vit', frozen=())
    both.model.load_state_dict(clip.model.state_dict())
    images = torch.randn(2, 3, 32, 32)
    for model in (clip, both):
        (model.encode_image(images) *
         model.encode_text(['a', 'b'])).sum().backward()
    assert not clip.text_trainable
    # freezing the text tower leaves the image tower's gradient unchanged
    grad = clip.model.visual.conv1.weight.grad
    assert grad.abs().sum() > 0
    # (up to float32 rounding over a 2 images x 16 patches x 64 dims sum)
    eps = torch.finfo(torch.float32).eps
    assert torch.allclose(grad, both.model.visual.conv1.weight.grad, rtol=0,
                          atol=2 * 16 * 64 * eps * float(grad.abs().max()))
    assert clip.model.token_embedding.weight.grad is None


def test_unknown_frozen_tower():
    with pytest.raises(ValueError, match="unknown tower.*'eyes'"):
        OpenCLIP('drm-tiny-vit', frozen=('eyes', ))


def test_grad_checkpointing_same_gradients():
    torch.manual_seed(0)
    a = OpenCLIP('drm-tiny-vit')
    b = OpenCLIP('drm-tiny-vit', grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for m in (a, b):
        m.encode_image(x).sum().backward()
    assert b.model.visual.transformer.grad_checkpointing
    assert torch.allclose(a.model.visual.conv1.weight.grad,
                          b.model.visual.conv1.weight.grad, atol=1e-6)


# ---- padding-free text forward (fast path; must equal the padded one)

PROMPTS = ['x', 'a cat', 'a photo of a small dog.',
           'a long description of a large striped cat with a ringed tail '
           'and pale whiskers sitting in tall grass', 'a bird',
           'a camera trap frame at night with a deer walking past']


def _trim_pair(buckets):
    torch.manual_seed(0)
    full = OpenCLIP('drm-tiny-vit', trim_text=False)
    trimmed = OpenCLIP('drm-tiny-vit', text_length_buckets=buckets)
    trimmed.load_state_dict(full.state_dict())
    trimmed.text_encoder.text_bucket_overhead = 0  # bucket even tiny batches
    return full, trimmed


@pytest.mark.parametrize('buckets', [1, 3])
def test_trimmed_text_forward_equals_the_padded_one(buckets):
    full, trimmed = _trim_pair(buckets)
    assert trimmed.trim_text and not full.trim_text
    seen = []
    trimmed.model.transformer.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(args[0].shape[1]),
        with_kwargs=True)
    tokens = full.tokenize(PROMPTS)
    a, b = full.encode_text(tokens), trimmed.encode_text(tokens)
    assert torch.allclose(a, b, atol=1e-5)
    context = tokens.size(1)
    assert max(seen) < context and len(seen) <= buckets
    a.pow(2).sum().backward()
    b.pow(2).sum().backward()
    grads = dict(trimmed.model.named_parameters())
    for name, param in full.model.named_parameters():
        if param.grad is None:
            assert grads[name].grad is None, name
            continue
        assert torch.allclose(param.grad, grads[name].grad, atol=1e-5,
                              rtol=1e-4), name


def test_text_lengths_and_bound_hints():
    full, trimmed = _trim_pair(2)
    tokens = full.tokenize(PROMPTS)
    lengths = trimmed.text_lengths(tokens)
    assert lengths.device.type == 'cpu'
    assert lengths.tolist() == (tokens.argmax(-1) + 1).tolist()
    assert full.text_lengths(tokens).tolist() == [tokens.size(1)] * len(
        PROMPTS)
    # upper bounds (e.g. the longest caption) give the same embeddings
    bound = torch.full_like(lengths, int(lengths.max()))
    assert torch.allclose(trimmed.encode_text(tokens, lengths=bound),
                          full.encode_text(tokens), atol=1e-5)
