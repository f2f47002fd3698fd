"""clip_block_wrap_policy picks exactly the transformer blocks."""
from open_clip.transformer import ResidualAttentionBlock

from drm_mm.engine.strategies import clip_block_wrap_policy
from drm_mm.models.clip import OpenCLIP


def test_wraps_every_block_of_both_towers_and_nothing_else():
    clip = OpenCLIP(model_name='drm-tiny-vit', pretrained=None)
    picked = [name for name, m in clip.named_modules()
              if clip_block_wrap_policy(m, recurse=False,
                                        nonwrapped_numel=0)]
    blocks = [name for name, m in clip.named_modules()
              if isinstance(m, ResidualAttentionBlock)]
    assert picked == blocks
    visual = len(clip.model.visual.transformer.resblocks)
    text = len(clip.model.transformer.resblocks)
    assert len(picked) == visual + text
    assert clip_block_wrap_policy(clip, recurse=True, nonwrapped_numel=0)
