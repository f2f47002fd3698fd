"""OpenCLIP module: encoders, freezing, gradient checkpointing."""
import pytest
import torch

from drm_mm.models.clip import OpenCLIP, frozen_copy


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
    loss = (clip.encode_image(torch.randn(2, 3, 32, 32)) *
            clip.encode_text(['a', 'b'])).sum()
    loss.backward()
    assert not clip.text_trainable
    assert clip.model.visual.conv1.weight.grad is not None
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


def test_frozen_copy_is_independent():
    clip = OpenCLIP('drm-tiny-vit')
    teacher = frozen_copy(clip)
    assert all(not p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        clip.model.logit_scale.add_(1.0)
    assert not torch.equal(clip.model.logit_scale,
                           teacher.model.logit_scale)
