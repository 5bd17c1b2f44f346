"""Resume: "train 2N" == "train N, stop, resume, train N", and a run killed mid-save resumes.

CPU, fp32, the smoke config with one DataLoader worker process, small N. Everything a step draws
is a function of (seed, rank, step), and the data order a function of (seed, position), so the
final states must match bit for bit (the pool, the optimisers and the EMA included).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _train_data import make_hr_folder
from resrgan.cli import main
from resrgan.training.checkpoint import list_states, load_latest_state, load_state

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")
# cheaper than the smoke defaults: VGG up to conv2_2, a checkpoint every 2 iterations
FAST = (
    "--set", "losses.layer_weights=[0.1, 0.1, 0, 0, 0]", "--set", "checkpoint.every=2",
    "--set", "log_every=1", "--set", "checkpoint.keep=5", "--set", "data.num_workers=1",
)  # fmt: skip


def _args(hr: Path, out: Path, iters: int, *extra: str) -> list[str]:
    return ["train", SMOKE, "--data", str(hr), "--out", str(out), "--iters", str(iters),
            "--quiet", *FAST, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def hr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hr_folder(tmp_path_factory.mktemp("resume_data") / "hr", 5, seed=3)


@pytest.fixture(scope="module")
def straight(hr: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 iterations in one go (states at 2 and 4)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(_args(hr, out, 4)) == 0
    return out


def _assert_same(a: object, b: object, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: max diff {(a.double() - b.double()).abs().max()}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _final(run: Path, step: int = 4) -> dict:
    st = load_state(run / "checkpoints" / f"state_{step:08d}.pt")
    st.pop("config")  # total_iters differs between the halves of a resumed run
    return st


def test_train_n_resume_n_equals_train_2n(hr: Path, straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "halves"
    assert main(_args(hr, out, 2)) == 0
    assert [s for s, _ in list_states(out)] == [2]
    assert main(_args(hr, out, 4, "--resume")) == 0
    ref = _final(straight)
    assert ref["pool"]["ptr"] == 4  # the pool was full and swapping across the resume point
    _assert_same(_final(out), ref)


def test_kill_9_during_a_checkpoint_write_then_resume_matches(
    hr: Path, straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    # same intra-op thread count as this process: float reductions then run in the same order
    env = dict(os.environ, RESRGAN_DEBUG_SAVE_SLEEP="300@4",
               OMP_NUM_THREADS=str(torch.get_num_threads()))  # fmt: skip
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "resrgan", *_args(hr, out, 4)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:  # kill -9 while the step-4 state is half written
            deadline = time.monotonic() + 600
            while not list((out / "checkpoints").glob(".state_00000004.pt.*.tmp")):
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "the step-4 save never started"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert [s for s, _ in list_states(out)] == [2]  # the half-written step-4 state never landed
    found = load_latest_state(out)
    assert found is not None and found[1]["step"] == 2
    assert main(_args(hr, out, 4, "--resume")) == 0
    _assert_same(_final(out), _final(straight))


def test_death_by_os_exit_mid_save_then_resume_matches(
    hr: Path, straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exited"
    env = dict(os.environ, RESRGAN_DEBUG_SAVE_EXIT="4",
               OMP_NUM_THREADS=str(torch.get_num_threads()))  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "resrgan", *_args(hr, out, 4)], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert [s for s, _ in list_states(out)] == [2]
    assert list((out / "checkpoints").glob(".state_00000004.pt.*.tmp"))  # left behind, ignored
    assert main(_args(hr, out, 4, "--resume")) == 0
    _assert_same(_final(out), _final(straight))
