"""Rank shards: contiguous, in rank order, covering every row once."""
from drm_mm.models.rank_shards import rank_and_world, shard_bounds


def test_shards_cover_the_rows_in_rank_order():
    assert [shard_bounds(7, r, 2) for r in range(2)] == [(0, 4), (4, 7)]
    assert [shard_bounds(5, r, 4) for r in range(4)] == [(0, 2), (2, 4),
                                                         (4, 5), (5, 5)]
    assert shard_bounds(3, 0, 1) == (0, 3)


def test_no_shards_outside_a_process_group():
    assert rank_and_world() is None
