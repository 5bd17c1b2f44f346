"""Deterministic shares of a job list for many workers (pure functions, no I/O).

``--shard i/N`` gives worker ``i`` (0-based) of ``N`` its share of the sorted inputs. Without the
flag the share comes from the environment a launcher sets:

* torchrun / ``torch.distributed``: ``RANK`` and ``WORLD_SIZE`` (``LOCAL_RANK`` picks the GPU);
* Slurm: ``SLURM_PROCID`` and ``SLURM_NTASKS`` (``SLURM_LOCALID`` picks the GPU), and for job
  arrays ``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT`` (with ``SLURM_ARRAY_TASK_MIN`` and
  ``SLURM_ARRAY_TASK_STEP``), combined with the task rank when both are present.

A share is a contiguous block of the sorted list (sizes differ by at most one), so a worker that
splits one long video by segment decodes one stretch of it. Every item belongs to exactly one
share, and the shares depend only on the list, ``i`` and ``N``; with skip-existing outputs any
scheduler can rerun a failed worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..errors import UsageError

__all__ = ["Shard", "gpu_index", "parse_shard", "resolve_shard", "share", "shard_from_env"]

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Worker ``index`` (0-based) of ``count``; ``source`` says where it came from."""

    index: int
    count: int
    source: str = "--shard"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise UsageError(
                f"{self.source}: shard {self.index}/{self.count} is out of range; "
                f"the index runs from 0 to count-1 (e.g. 0/{max(self.count, 2)})"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"i/N"`` -> Shard(i, N); raises UsageError naming the flag for anything else."""
    parts = text.strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise UsageError(
            f"--shard: {text!r} is not INDEX/COUNT; use e.g. 0/4 for the first of 4 workers"
        ) from None
    return Shard(index, count)


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"environment: {name}={value!r} is not a whole number") from None


def shard_from_env(env: Mapping[str, str]) -> Shard | None:
    """The share a launcher asked for, or None when the environment names none (or one worker).

    ``RANK``/``WORLD_SIZE`` first (torchrun); else Slurm's task rank and job-array index: with
    ``SLURM_NTASKS`` tasks in each of ``SLURM_ARRAY_TASK_COUNT`` array jobs, worker
    ``array_index * ntasks + procid`` of ``count * ntasks``.
    """
    rank, world = _env_int(env, "RANK"), _env_int(env, "WORLD_SIZE")
    if world is not None:
        if rank is None:
            raise UsageError("environment: WORLD_SIZE is set but RANK is not")
        return Shard(rank, world, "RANK/WORLD_SIZE") if world > 1 else None
    procid, ntasks = _env_int(env, "SLURM_PROCID") or 0, _env_int(env, "SLURM_NTASKS") or 1
    task, count = _env_int(env, "SLURM_ARRAY_TASK_ID"), _env_int(env, "SLURM_ARRAY_TASK_COUNT")
    array_index = 0
    if task is not None and count is not None and count > 1:
        first = _env_int(env, "SLURM_ARRAY_TASK_MIN") or 0
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
        array_index = (task - first) // max(step, 1)
    else:
        count = 1
    if ntasks * count <= 1:
        return None
    source = "SLURM_PROCID/SLURM_NTASKS" if count == 1 else "SLURM_ARRAY_TASK_ID"
    return Shard(array_index * ntasks + procid, count * ntasks, source)


def resolve_shard(flag: str | None, env: Mapping[str, str]) -> Shard | None:
    """``--shard`` when given, else :func:`shard_from_env`."""
    return parse_shard(flag) if flag is not None else shard_from_env(env)


def share(items: Sequence[T], shard: Shard | None) -> list[T]:
    """Worker ``shard.index``'s contiguous block of ``items`` (all of them for ``None``).

    Block ``i`` is ``items[i * n // N : (i + 1) * n // N]``: the blocks partition the list, in
    order, and their sizes differ by at most one.
    """
    if shard is None:
        return list(items)
    n = len(items)
    return list(items[shard.index * n // shard.count : (shard.index + 1) * n // shard.count])


def gpu_index(env: Mapping[str, str], device_count: int) -> int | None:
    """The GPU a launched worker should use: ``LOCAL_RANK`` (torchrun) or ``SLURM_LOCALID``
    modulo the GPUs it sees; None when neither is set or there is no GPU."""
    if device_count <= 0:
        return None
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        value = _env_int(env, name)
        if value is not None:
            return value % device_count
    return None
