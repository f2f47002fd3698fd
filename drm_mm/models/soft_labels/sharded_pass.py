"""``ShardedPass``: one teacher pass over a training set, sharded across
ranks.

Each rank labels a contiguous slice of the samples (:func:`shard_bounds`)
through the test-time pipeline and the model's data preprocessor, with the
component's :meth:`~.CoreSoftLabels.pass_labels`. Its rows then either go
to a ``sink`` batch by batch (the memmap file: nothing is gathered), or
are turned into p_c by :meth:`~.CoreSoftLabels.finish_shard` (per-class
scaling may communicate) and all-gathered into the whole table. Rank 0
shows a progress bar with an ETA.
"""
from typing import Any, Callable, List, Optional

import torch
from mmengine import dist as mm_dist
from mmengine.dataset import Compose, pseudo_collate
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader

from drm_mm.registry import TRANSFORMS, build_in_scope
from ..rank_shards import shard_bounds
from .pipeline_view import PipelineView

#: ``sink(first_row, rows)``: where the rows of each batch go.
Sink = Callable[[int, torch.Tensor], None]


class ShardedPass:
    """The teacher pass of the soft-label cache.

    Args:
        batch_size (int): images per teacher forward. Defaults to 64.
        num_workers (int): data-loading workers. Defaults to 0.
    """

    def __init__(self, batch_size: int = 64, num_workers: int = 0) -> None:
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)

    @torch.no_grad()
    def run(self, component: Any, preprocessor: Any, dataset: Any,
            pipeline: List[dict],
            sink: Optional[Sink] = None) -> Optional[torch.Tensor]:
        """Label ``dataset`` with ``component`` (after its
        ``start_pass()``); returns the ``(N, C)`` table on every rank, or
        None when the rows went to ``sink``."""
        rank, world = mm_dist.get_dist_info()
        total = len(dataset)
        start, stop = shard_bounds(total, rank, world)
        transforms = Compose([
            build_in_scope(TRANSFORMS, t) if isinstance(t, dict) else t
            for t in pipeline
        ])
        loader = DataLoader(PipelineView(dataset, transforms,
                                         range(start, stop)),
                            batch_size=self.batch_size,
                            num_workers=self.num_workers, shuffle=False,
                            collate_fn=pseudo_collate)
        bar = ProgressBar(stop - start) if rank == 0 else None
        parts: List[torch.Tensor] = []
        row = start
        for batch in loader:
            rows = component.pass_labels(preprocessor(batch, False)['inputs'])
            if sink is not None:
                sink(row, rows)
                row += rows.size(0)
            else:
                parts.append(rows.float().cpu())
            if bar is not None:
                bar.update(rows.size(0))
        if bar is not None:
            bar.file.write('\n')
        if sink is not None:
            return None
        num_classes = component.num_classes
        shard = component.finish_shard(
            torch.cat(parts) if parts else torch.zeros(0, num_classes))
        if world == 1:
            return shard
        per_rank = -(-total // world)
        padded = shard.new_zeros(per_rank, num_classes)
        padded[:shard.size(0)] = shard
        gathered = mm_dist.all_gather(padded)
        return torch.cat([g.cpu() for g in gathered])[:total]
