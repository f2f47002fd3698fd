"""CLIP contrastive loss (FLYP's ERM term) on the global batch across ranks.

Features are gathered from all ranks *with* gradient, so each rank computes
the loss of the whole global batch; after DDP averages the gradients they
equal those of one process that sees the whole batch. Ranks may hold
batches of different sizes (the gather pads and trims).
"""
from typing import List

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from drm_mm.registry import MODELS
from ..clip.open_clip_model import MAX_LOGIT_SCALE


def _distributed() -> bool:
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient of every rank's copy and
    returns this rank's slice (``torch.distributed.nn.all_gather`` does the
    same but is deprecated in recent torch)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), tensor.size(0)
        parts = [torch.empty_like(tensor)
                 for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = ctx.rank * ctx.rows
        return grad[start:start + ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` of every rank along dim 0 (rank order),
    differentiable; the identity outside a process group."""
    if not _distributed():
        return tensor
    world = dist.get_world_size()
    size = torch.tensor([tensor.size(0)], device=tensor.device)
    sizes: List[torch.Tensor] = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    if longest != tensor.size(0):
        pad = tensor.new_zeros((longest - tensor.size(0), ) +
                               tuple(tensor.shape[1:]))
        tensor = torch.cat([tensor, pad], dim=0)
    gathered = _AllGatherWithGrad.apply(tensor)
    return torch.cat([
        gathered[r * longest:r * longest + n] for r, n in enumerate(counts)
    ], dim=0)


def contrastive_loss(image_features: torch.Tensor,
                     text_features: torch.Tensor,
                     logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image->text and text->image cross-entropy,
    pair ``i`` matching pair ``i`` (features L2-normalised, scale applied
    after clamping it to 100)."""
    if image_features.shape != text_features.shape:
        raise ValueError(f'contrastive loss: image features '
                         f'{tuple(image_features.shape)} and text features '
                         f'{tuple(text_features.shape)} must match.')
    # clamped as in CLIP training (evaluation uses the unclamped scale)
    logits = torch.as_tensor(logit_scale).clamp(
        max=MAX_LOGIT_SCALE) * image_features @ text_features.t()
    target = torch.arange(logits.size(0), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) +
                  F.cross_entropy(logits.t(), target))


@MODELS.register_module()
class ContrastiveLoss(nn.Module):
    """CLIP image<->caption loss on the global batch.

    Args:
        gather: gather features across ranks (with gradient) so the loss is
            that of the global batch; False computes a per-rank loss.
    """

    def __init__(self, gather: bool = True) -> None:
        super().__init__()
        self.gather = gather

    def forward(self, image_features: torch.Tensor,
                text_features: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        if image_features.shape != text_features.shape:
            raise ValueError(f'ContrastiveLoss: image features '
                             f'{tuple(image_features.shape)} and text '
                             f'features {tuple(text_features.shape)} must '
                             f'match (one caption per image).')
        if self.gather and _distributed():
            # one collective for both: pairs stay aligned row by row
            dim = image_features.size(1)
            both = gather_with_grad(
                torch.cat([image_features, text_features.to(
                    image_features.dtype)], dim=1))
            image_features, text_features = both[:, :dim], both[:, dim:]
        return contrastive_loss(image_features, text_features, logit_scale)
