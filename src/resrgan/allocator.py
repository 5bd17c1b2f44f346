"""Keep freed memory in the process instead of handing it back to the OS (glibc only).

glibc serves every allocation above 32 MB (its largest mmap threshold) with a fresh ``mmap`` and
unmaps it on free, so a network that makes a 33 MB map per layer makes the kernel fault in and zero
every page of it, layer after layer: at 512x512, RealESRGAN_x4plus in bf16 touched 9.6-13 GB of
fresh pages (4.6-7.4 s of system time) in one upscale. With mmap off and the heap's top kept,
freed blocks are reused: 0.6 GB of faults, and the upscale took 12.1-13.1 s instead of
14.8-21.9 s (fp32: 26.7-29.0 s instead of 29.2-29.7 s). This is what PyTorch's CPU tuning guide
gets from preloading jemalloc or tcmalloc, without a preload.

The cost: memory freed by the process stays in it (its peak stays resident) until it exits. The
``resrgan`` CLI turns this on for its own process; library users call :func:`reuse_freed_memory`
themselves if they want it.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def reuse_freed_memory() -> bool:
    """Serve large allocations from the heap and keep freed memory for reuse (glibc's
    ``mallopt``: no mmap, trim threshold 2 GiB). True when applied; False (and nothing changed)
    on other C libraries and systems."""
    if sys.platform != "linux" or not _glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a name this system knows
        return False
