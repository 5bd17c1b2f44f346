"""Training-state checkpoints: weights_only round trip, retention, corrupt files, death mid-save."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from resrgan.training.checkpoint import (
    list_states,
    load_latest_state,
    load_scheduler_state,
    load_state,
    save_state,
    scheduler_state,
    state_path,
)


def _state(step: int) -> dict:
    return {
        "step": step,
        "config": {"name": "t", "optim": {"betas": [0.9, 0.99]}},
        "net_g": {"w": torch.full((2, 2), float(step))},
        "net_g_ema": {"w": torch.zeros(2, 2)},
        "optim_g": {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.99)}]},
        "rng": {"torch_cpu": torch.get_rng_state()},
    }


def test_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    save_state(tmp_path, _state(7), keep=3)
    st = load_state(state_path(tmp_path, 7))
    assert st["step"] == 7 and st["format"] == "resrgan-train-state"
    torch.testing.assert_close(st["net_g"]["w"], torch.full((2, 2), 7.0))
    assert torch.equal(st["rng"]["torch_cpu"], torch.get_rng_state())


def test_only_the_newest_k_are_kept(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8):
        save_state(tmp_path, _state(step), keep=2)
    assert [s for s, _ in list_states(tmp_path)] == [6, 8]


def test_resume_skips_corrupt_and_truncated_newest_states(tmp_path: Path) -> None:
    save_state(tmp_path, _state(2), keep=5)
    save_state(tmp_path, _state(4), keep=5)
    good = state_path(tmp_path, 4).read_bytes()
    state_path(tmp_path, 6).write_bytes(good[: len(good) // 2])  # torn write
    state_path(tmp_path, 8).write_bytes(b"not a checkpoint")
    (tmp_path / "checkpoints" / ".state_00000010.pt.abc.tmp").write_bytes(good)  # stray temp file
    found = load_latest_state(tmp_path)
    assert found is not None
    path, st = found
    assert path == state_path(tmp_path, 4) and st["step"] == 4


def test_no_checkpoint_gives_none(tmp_path: Path) -> None:
    assert load_latest_state(tmp_path) is None


def test_scheduler_state_round_trips_through_weights_only(tmp_path: Path) -> None:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 5], gamma=0.5)
    for _ in range(4):
        opt.step()
        sched.step()
    p = tmp_path / "s.pt"
    torch.save(scheduler_state(sched), p)
    sd = torch.load(p, weights_only=True)
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    opt2.load_state_dict(opt.state_dict())  # the run restores the optimizer (its lr) too
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, milestones=[100], gamma=0.1)
    load_scheduler_state(sched2, sd)
    assert sched2.milestones == Counter({3: 1, 5: 1})
    assert sched2.last_epoch == 4 and sched2.get_last_lr() == [0.5]
    opt2.step()
    sched2.step()
    sched2.step()
    assert sched2.get_last_lr() == [0.25]


_DIE_SCRIPT = """
import sys, torch
from resrgan.training.checkpoint import save_state
run = sys.argv[1]
for step in (1, 2):
    save_state(run, {"step": step, "config": {}, "net_g": {"w": torch.ones(64, 64) * step},
                     "net_g_ema": {}, "optim_g": {}}, keep=3)
"""


def test_kill_9_during_a_save_leaves_the_previous_state(tmp_path: Path) -> None:
    env = dict(os.environ, RESRGAN_DEBUG_SAVE_SLEEP="120@2")  # stall half-way through step 2
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIE_SCRIPT, str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "checkpoints").glob(".state_00000002.pt.*.tmp")):
            assert proc.poll() is None and time.monotonic() < deadline, "the save never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert [s for s, _ in list_states(tmp_path)] == [1]
    found = load_latest_state(tmp_path)
    assert found is not None and found[1]["step"] == 1


def test_death_in_the_middle_of_a_save_leaves_the_previous_state(tmp_path: Path) -> None:
    env = dict(os.environ, RESRGAN_DEBUG_SAVE_EXIT="2")
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 137, proc.stderr
    assert [s for s, _ in list_states(tmp_path)] == [1]
    leftovers = list((tmp_path / "checkpoints").glob(".state_00000002.pt.*.tmp"))
    assert len(leftovers) == 1  # the half-written temp file never got the final name
    found = load_latest_state(tmp_path)
    assert found is not None and found[1]["step"] == 1
    torch.testing.assert_close(found[1]["net_g"]["w"], torch.ones(64, 64))
