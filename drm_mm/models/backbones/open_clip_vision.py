"""``OpenCLIPVision``: the image tower of an open_clip CLIP as a backbone."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from drm_mm.registry import MODELS
from ..clip.open_clip_adapter import build_open_clip, freeze_module


@MODELS.register_module()
class OpenCLIPVision(BaseModule):
    """CLIP image tower for MMPretrain classifiers (``ImageClassifier``).

    The text tower is dropped after loading, so a linear-probe or FT model
    holds only what it uses. Returns a one-element tuple, as MMPretrain
    backbones do.

    Args:
        model_name: open_clip architecture, e.g. ``'ViT-B-16'``.
        pretrained: open_clip tag, local weights file or None.
        normalize: L2-normalise the embedding (CLIP's zero-shot space).
        frozen: freeze the whole tower (linear probing).
        grad_checkpointing: recompute activations in backward.
        image_size: override the architecture's input resolution.
    """

    def __init__(self,
                 model_name: str,
                 pretrained: Optional[str] = None,
                 normalize: bool = False,
                 frozen: bool = False,
                 grad_checkpointing: bool = False,
                 image_size: Optional[int] = None,
                 cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        clip = build_open_clip(model_name, pretrained=pretrained,
                               cache_dir=cache_dir,
                               force_image_size=image_size)
        self.visual = clip.visual
        del clip
        self.normalize = normalize
        self.frozen = frozen
        if grad_checkpointing:
            self.visual.set_grad_checkpointing(True)
        if frozen:
            freeze_module(self.visual)

    def init_weights(self) -> None:
        """Keep open_clip's initialisation / the loaded weights."""

    def train(self, mode: bool = True) -> 'OpenCLIPVision':
        super().train(mode)
        if self.frozen:
            self.visual.eval()
        return self

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor]:
        feats = self.visual(images)
        if self.normalize:
            feats = F.normalize(feats, dim=-1)
        return (feats, )
