"""OpenCLIPVision backbone."""
import torch

from drm_mm.models.backbones import OpenCLIPVision


def test_tuple_output_and_no_text_tower():
    backbone = OpenCLIPVision('drm-tiny-vit', normalize=True)
    (feats, ) = backbone(torch.randn(3, 3, 32, 32))
    assert feats.shape == (3, 32)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-5)
    names = [n for n, _ in backbone.named_parameters()]
    assert names and all(n.startswith('visual.') for n in names)


def test_frozen_backbone_stays_eval():
    backbone = OpenCLIPVision('drm-tiny-vit', frozen=True)
    backbone.train()
    assert not backbone.visual.training
    assert all(not p.requires_grad for p in backbone.parameters())
