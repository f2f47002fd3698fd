"""``clip_block_wrap_policy``: FSDP auto-wrap policy that makes every
transformer block of both CLIP towers its own FSDP unit."""
import torch.nn as nn
from open_clip.transformer import ResidualAttentionBlock

from drm_mm.registry import FUNCTIONS


@FUNCTIONS.register_module()
def clip_block_wrap_policy(module: nn.Module, recurse: bool,
                           nonwrapped_numel: int) -> bool:
    """FSDP ``auto_wrap_policy``: wrap each open_clip
    ``ResidualAttentionBlock`` (image and text towers); everything else
    (embeddings, final norms, projections, ``logit_scale``) stays in the
    root unit. Config: ``auto_wrap_policy='drm_mm.clip_block_wrap_policy'``.
    """
    if recurse:
        return True
    return isinstance(module, ResidualAttentionBlock)
