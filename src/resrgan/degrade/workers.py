"""Sample-parallel CPU execution for the degradation pipeline.

The degradation is dozens of small passes per sample (filters, resizes, noise, JPEG). Splitting
every one of them across torch's intra-op threads costs a synchronisation per op and moves each
sample between the cores' caches; giving each thread whole chunks of samples, with torch
single-threaded inside, avoids both (1.4-1.6x on the 2-core development machine, measured with the
same batches). Values do not depend on it: every sample's noise has its own generator and the
chunking is tested not to change a byte.

The pool's threads set torch to one thread for themselves. torch's thread count is per thread
(OpenMP's and MKL's settings are thread-local), but ``torch.set_num_threads`` also records a
process-wide default for threads that have not used torch yet, so the pool puts that default back
once its threads are set up. Inside a worker ``torch.get_num_threads()`` is 1, which the ops use to
pick their single-threaded paths (one sample at a time, no nested thread pools).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_failed = False


def _forget_pool_in_child() -> None:
    """A forked child (a DataLoader worker, say) has none of the parent's pool threads."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _init_worker(barrier: threading.Barrier) -> None:
    torch.set_num_threads(1)
    torch.get_num_threads()  # completes torch's per-thread set-up now, with one thread
    barrier.wait(timeout=60)


def cpu_workers() -> int:
    """How many sample-parallel workers :func:`map_samples` uses on CPU (torch's thread count)."""
    return max(1, torch.get_num_threads())


def _get_pool(n: int) -> ThreadPoolExecutor | None:
    global _pool, _pool_size, _failed
    with _lock:
        if _failed:
            return None
        if _pool is not None and _pool_size == n:
            return _pool
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None
        barrier = threading.Barrier(n + 1)
        pool = ThreadPoolExecutor(
            n, thread_name_prefix="resrgan-degrade", initializer=_init_worker, initargs=(barrier,)
        )
        try:
            for _ in range(n):  # one task per thread: every thread starts and meets the barrier
                pool.submit(lambda: None)
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            log.warning("degradation worker threads did not start; running single-threaded")
            pool.shutdown(wait=False)
            _failed = True
            return None
        finally:
            torch.set_num_threads(n)  # the workers changed the default for new threads; restore
        _pool, _pool_size = pool, n
        return pool


def map_samples(fn: Callable[[T], R], items: Sequence[T], device: torch.device) -> list[R]:
    """``[fn(x) for x in items]``, on the single-threaded worker pool for CPU work with several
    items and several torch threads (from the calling thread's view), in order otherwise.
    ``fn`` must only read shared state (or guard it); results keep the order of ``items``."""
    n = cpu_workers()
    if device.type != "cpu" or n <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    pool = _get_pool(n)
    if pool is None:
        return [fn(x) for x in items]
    return list(pool.map(fn, items))
