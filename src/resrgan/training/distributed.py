"""Multi-process training through torchrun (DDP) and the data order shared by all ranks.

``torchrun --nproc_per_node K -m resrgan train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK;
``init_distributed`` joins the process group (NCCL on CUDA, gloo on CPU). Every rank degrades its
own share of the batch with its own seed; only rank 0 writes files.

``ShardedBatchSampler`` makes the data order a pure function of (seed, position): batch ``j`` of the
run is the same whatever the number of DataLoader workers and whether the run was resumed, which is
what makes "train 2N" equal "train N, resume, train N".
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..seeds import derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1; otherwise a single-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("rank %d/%d joined the %s process group", rank, world, backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup_distributed() -> None:
    """Leave the process group. The DDP wrappers of the finished run hold the group through
    reference cycles; collecting them first lets the group (and gloo's threads) end here rather
    than during interpreter teardown, where gloo aborted a rank now and then (SIGABRT,
    "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar logs over ranks (a no-op in a single process)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if info.device.type == "cuda":
        t = t.to(info.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t = (t / info.world_size).cpu()
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def make_generator(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator seeded with :func:`resrgan.seeds.derive_seed` of ``parts`` (e.g. seed,
    purpose, rank, step)."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))


class ShardedBatchSampler:
    """Infinite sampler of ``(draw_epoch, index)`` keys, ``batch_size`` per rank per step.

    Epoch ``e`` is a permutation of the dataset drawn from (seed, e); when the dataset is smaller
    than one global batch, further permutations are appended. Global batch ``j`` of an epoch is the
    slice ``[j * B * W, (j + 1) * B * W)``, of which rank ``r`` takes ``[r * B, (r + 1) * B)``.
    ``start`` is the number of batches already consumed (the resume position).
    """

    def __init__(
        self,
        num_items: int,
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        if num_items < 1:
            raise ValueError("the dataset is empty")
        self.n = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        global_batch = batch_size * world_size
        self.repeats = -(-global_batch // num_items)  # ceil: passes over the data per epoch
        self.epoch_len = max(num_items * self.repeats // global_batch, 1) * global_batch
        self.batches_per_epoch = self.epoch_len // global_batch

    def epoch_order(self, epoch: int) -> list[tuple[int, int]]:
        """``(draw_epoch, index)`` keys of one epoch. A small dataset is passed over several times
        per epoch; each pass gets its own draw epoch ``epoch * repeats + pass`` so that repeated
        images get their own flips and crops."""
        keys: list[tuple[int, int]] = []
        for r in range(self.repeats):
            g = make_generator(self.seed, "data-order", epoch, r)
            draw_epoch = epoch * self.repeats + r
            keys += [(draw_epoch, i) for i in torch.randperm(self.n, generator=g).tolist()]
        return keys[: self.epoch_len]

    def position(self, batches_done: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) after ``batches_done`` batches."""
        return divmod(batches_done, self.batches_per_epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, j = self.position(self.start)
        gb = self.batch_size * self.world_size
        while True:
            order = self.epoch_order(epoch)
            while j < self.batches_per_epoch:
                lo = j * gb + self.rank * self.batch_size
                yield from order[lo : lo + self.batch_size]
                j += 1
            epoch, j = epoch + 1, 0


class EpochIndexed(torch.utils.data.Dataset):
    """Adapts a dataset with ``set_epoch(e)`` and ``[i]`` to ``(epoch, index)`` keys.

    Each DataLoader worker holds its own copy, so setting the epoch per item is cheap and exact, and
    the workers can stay alive across epochs.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]
