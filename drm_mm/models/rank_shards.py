"""Rank shards: which contiguous rows of a job each rank of a distributed
run takes (df / cd prompts of a training step, samples of the soft-label
pass), in rank order so that an all-gather puts them back together, and
that all-gather, differentiable (text prototypes, the contrastive loss)."""
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist


def shard_bounds(total: int, rank: int, world: int) -> Tuple[int, int]:
    """Rows ``[lo, hi)`` of ``total`` that ``rank`` of ``world`` takes:
    ``ceil(total / world)`` each (the last ranks may get fewer or none)."""
    per_rank = -(-total // world)
    return min(rank * per_rank, total), min((rank + 1) * per_rank, total)


def rank_and_world() -> Optional[Tuple[int, int]]:
    """``(rank, world)`` in a process group of more than one rank, else
    None."""
    if (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1):
        return dist.get_rank(), dist.get_world_size()
    return None


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
    differentiable; the identity outside a process group. Ranks may hold
    different numbers of rows (the gather pads and trims)."""
    if rank_and_world() is None:
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
