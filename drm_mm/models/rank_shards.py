"""Rank shards: which contiguous rows of a job each rank of a distributed
run takes (df / cd prompts of a training step, samples of the soft-label
pass), in rank order so that an all-gather puts them back together."""
from typing import Optional, Tuple

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
