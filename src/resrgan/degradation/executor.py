"""How a batch's chunks are run: in order, or on sample-parallel CPU threads (an explicit object).

The degradation is dozens of small passes per sample (filters, resizes, noise, JPEG). Splitting
every one of them across torch's intra-op threads costs a synchronisation per op and moves each
sample between the cores' caches; giving each thread whole chunks of samples, with torch
single-threaded inside, avoids both (1.4-1.6x on the 2-core development machine, measured with the
same batches). Values do not depend on it: every sample's noise has its own generator, and the
chunking and the executor are tested not to change a byte.

:class:`SampleThreads` owns its threads: make one and pass it to
:func:`~resrgan.degradation.pipeline.make_training_batch` (``executor=``) to keep it across batches,
and ``close()`` it (or use ``with``). Without one, each call makes its own for the call
(:func:`default_executor`). There is no process-global pool.

torch's thread count is per thread (OpenMP's and MKL's settings are thread-local), but
``torch.set_num_threads`` also records a process-wide default for threads that have not used torch
yet, so the workers put that default back once they are set up. Inside a worker
``torch.get_num_threads()`` is 1, which the ops use to pick their single-threaded paths (one sample
at a time, no nested thread pools).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` over a batch's chunks; results keep the order of ``items``."""

    workers: int

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...


class Serial:
    """Chunks in order, on the calling thread (accelerators, one CPU thread)."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(x) for x in items]


def _init_worker(barrier: threading.Barrier) -> None:
    torch.set_num_threads(1)
    torch.get_num_threads()  # completes torch's per-thread set-up now, with one thread
    barrier.wait(timeout=60)


class SampleThreads:
    """``workers`` single-threaded torch threads that each run whole chunks of a batch.

    ``fn`` must only read shared state. Falls back to running in order (with a warning) if the
    threads do not start. The caller's torch thread settings are left as they were.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, torch.get_num_threads() if workers is None else int(workers))
        self._pool: ThreadPoolExecutor | None = None
        if self.workers > 1:
            self._pool = self._start(self.workers)

    @staticmethod
    def _start(n: int) -> ThreadPoolExecutor | None:
        default = torch.get_num_threads()
        barrier = threading.Barrier(n + 1)
        pool = ThreadPoolExecutor(
            n, thread_name_prefix="resrgan-degrade", initializer=_init_worker, initargs=(barrier,)
        )
        try:
            for _ in range(n):  # one task per thread: every thread starts and meets the barrier
                pool.submit(lambda: None)
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            log.warning("degradation worker threads did not start; running in order")
            pool.shutdown(wait=False)
            return None
        finally:
            torch.set_num_threads(default)  # the workers changed the default for new threads
        return pool

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Every item on a worker thread, even a single one: the ops then always run
        single-threaded, and the bytes do not depend on the caller's thread count."""
        if self._pool is None:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> SampleThreads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def default_executor(device: torch.device) -> Iterator[Executor]:
    """For one call: :class:`SampleThreads` with torch's thread count for CPU work when that is
    more than one, :class:`Serial` otherwise."""
    if device.type != "cpu" or torch.get_num_threads() <= 1:
        yield Serial()
        return
    with SampleThreads() as ex:
        yield ex
