"""CLIP contrastive loss (FLYP's ERM term) on the global batch across ranks.

Features are gathered from all ranks *with* gradient
(:func:`~drm_mm.models.rank_shards.gather_with_grad`), so each rank computes
the loss of the whole global batch; after DDP averages the gradients they
equal those of one process that sees the whole batch. Ranks may hold
batches of different sizes (the gather pads and trims).
"""
import torch
import torch.nn.functional as F
from torch import nn

from drm_mm.registry import MODELS
from ..rank_shards import gather_with_grad, rank_and_world


def contrastive_loss(image_features: torch.Tensor,
                     text_features: torch.Tensor,
                     logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image->text and text->image cross-entropy,
    pair ``i`` matching pair ``i``.

    Args:
        image_features (torch.Tensor): ``(N, D)``, L2-normalised.
        text_features (torch.Tensor): ``(N, D)``, L2-normalised.
        logit_scale (torch.Tensor): the training scale, already clamped
            (``OpenCLIP.training_logit_scale``, the one clamp of drm_mm).
    """
    if image_features.shape != text_features.shape:
        raise ValueError(f'contrastive loss: image features '
                         f'{tuple(image_features.shape)} and text features '
                         f'{tuple(text_features.shape)} must match.')
    logits = logit_scale * image_features @ text_features.t()
    target = torch.arange(logits.size(0), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) +
                  F.cross_entropy(logits.t(), target))


@MODELS.register_module()
class ContrastiveLoss(nn.Module):
    """CLIP image<->caption loss on the global batch.

    Args:
        gather (bool): gather features across ranks (with gradient) so the
            loss is that of the global batch; False computes a per-rank
            loss. Defaults to True.
    """

    def __init__(self, gather: bool = True) -> None:
        super().__init__()
        self.gather = gather

    def forward(self, image_features: torch.Tensor,
                text_features: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        """The loss of the (global) batch; see :func:`contrastive_loss`."""
        if image_features.shape != text_features.shape:
            raise ValueError(f'ContrastiveLoss: image features '
                             f'{tuple(image_features.shape)} and text '
                             f'features {tuple(text_features.shape)} must '
                             f'match (one caption per image).')
        if self.gather and rank_and_world() is not None:
            # one collective for both: pairs stay aligned row by row
            dim = image_features.size(1)
            both = gather_with_grad(
                torch.cat([image_features, text_features.to(
                    image_features.dtype)], dim=1))
            image_features, text_features = both[:, :dim], both[:, dim:]
        return contrastive_loss(image_features, text_features, logit_scale)
