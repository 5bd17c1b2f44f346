"""The data order: a pure function of (seed, position), sharded across ranks, resumable."""

from __future__ import annotations

from itertools import islice

from resrgan.training.distributed import ShardedBatchSampler


def _take(s: ShardedBatchSampler, batches: int) -> list[list[tuple[int, int]]]:
    it = iter(s)
    return [list(islice(it, s.batch_size)) for _ in range(batches)]


def test_one_epoch_visits_each_image_at_most_once_and_drops_the_remainder() -> None:
    s = ShardedBatchSampler(10, batch_size=3, seed=0)
    assert s.batches_per_epoch == 3
    first = [k for b in _take(s, 3) for k in b]
    assert len({i for _, i in first}) == 9 and {e for e, _ in first} == {0}
    second = [k for b in _take(s, 6)[3:] for k in b]
    assert {e for e, _ in second} == {1}
    assert [i for _, i in first] != [i for _, i in second]  # a new permutation per epoch


def test_ranks_split_each_global_batch_without_overlap() -> None:
    a = _take(ShardedBatchSampler(20, batch_size=2, seed=4, rank=0, world_size=2), 5)
    b = _take(ShardedBatchSampler(20, batch_size=2, seed=4, rank=1, world_size=2), 5)
    single = _take(ShardedBatchSampler(20, batch_size=4, seed=4), 5)
    for x, y, whole in zip(a, b, single, strict=True):
        assert not set(x) & set(y)
        assert x + y == whole  # rank r takes slice r of the global batch


def test_start_position_continues_the_same_stream() -> None:
    full = _take(ShardedBatchSampler(7, batch_size=2, seed=1), 12)
    resumed = _take(ShardedBatchSampler(7, batch_size=2, seed=1, start=5), 7)
    assert resumed == full[5:]


def test_small_dataset_repeats_with_distinct_draws() -> None:
    s = ShardedBatchSampler(3, batch_size=4, seed=0)
    assert s.repeats == 2 and s.batches_per_epoch == 1
    (batch,) = _take(s, 1)
    assert len(set(batch)) == 4  # a repeated image comes with another draw epoch
    assert sorted({e for e, _ in batch}) == [0, 1]


def test_seed_changes_the_order() -> None:
    assert _take(ShardedBatchSampler(50, batch_size=5, seed=0), 2) != _take(
        ShardedBatchSampler(50, batch_size=5, seed=1), 2
    )
