"""resrgan.allocator: large freed blocks are reused instead of being faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resrgan import allocator

_PROBE = r"""
import resource, sys
import torch
if sys.argv[1] == "on":
    from resrgan.allocator import reuse_freed_memory
    assert reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def layers(n):  # a network's pattern: each step a new 40 MiB map, the one before it freed
    x = torch.ones(10 << 20)
    for _ in range(n):
        y = x * 2.0
        x = y + 1.0
layers(10)  # the heap grows to its working size
before = faults()
layers(10)
print(faults() - before)
"""


@pytest.mark.skipif(not allocator._glibc(), reason="glibc's mallopt")
def test_large_blocks_are_reused_instead_of_faulted_in_again() -> None:
    def run(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    pages = 21 * (40 << 20) // 4096  # every page of every map, faulted in anew
    assert run("off") > 0.9 * pages
    assert run("on") < 0.2 * pages  # a few maps while the heap settles, then none


def test_other_systems_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.reuse_freed_memory() is False
