"""Training-state checkpoints: atomic writes, newest-valid resume, last-K retention.

A state is one ``torch.save`` file ``RUN_DIR/checkpoints/state_{step:08d}.pt`` holding only tensors
and plain containers (so it loads with ``weights_only=True``): step, networks, optimizers,
schedulers, scalers, the pair pool, every RNG state (as tensors) and the resolved config (a plain
dict).

Writing goes to a temporary file in the same folder, is flushed and fsynced, then renamed with
``os.replace``: a run killed at any moment leaves either the previous states or the new complete
one. On resume the newest file that loads and has the expected keys wins; unreadable ones are
skipped with a warning.

Debugging aids (used by the tests): ``RESRGAN_DEBUG_SAVE_SLEEP=SECONDS[@STEP]`` sleeps after half of
the temporary file is written, so a test can ``kill -9`` the process in the middle of a save;
``RESRGAN_DEBUG_SAVE_EXIT=STEP`` makes the process die (``os._exit(137)``, no cleanup, like a kill
-9) half-way through writing the state of that step.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..paths import atomic_path

log = logging.getLogger(__name__)

STATE_FORMAT = "resrgan-train-state"
STATE_VERSION = 1
_STATE_RE = re.compile(r"^state_(\d{8,})\.pt$")
REQUIRED_KEYS = ("format", "version", "step", "config", "net_g", "net_g_ema", "optim_g")


def checkpoint_dir(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / "checkpoints"


def state_path(run_dir: str | os.PathLike[str], step: int) -> Path:
    return checkpoint_dir(run_dir) / f"state_{step:08d}.pt"


def list_states(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(step, path) of every state file, oldest first."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STATE_RE.match(p.name))]
    return sorted(found)


def _debug_sleep(step: str) -> float:
    """``RESRGAN_DEBUG_SAVE_SLEEP`` = ``SECONDS`` (every save) or ``SECONDS@STEP`` (that step
    only)."""
    raw = os.environ.get("RESRGAN_DEBUG_SAVE_SLEEP", "")
    if not raw:
        return 0.0
    seconds, _, only = raw.partition("@")
    if only and only != step:
        return 0.0
    return float(seconds)


def atomic_torch_save(obj: Any, path: Path, *, debug_hooks: bool = False) -> Path:
    """``torch.save`` through :func:`resrgan.paths.atomic_path` (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getbuffer()
    step = str(obj.get("step")) if isinstance(obj, Mapping) else ""
    sleep_s = _debug_sleep(step) if debug_hooks else 0.0
    exit_in = os.environ.get("RESRGAN_DEBUG_SAVE_EXIT", "") if debug_hooks else ""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        half = len(data) // 2
        fh.write(data[:half])
        if sleep_s > 0:
            fh.flush()
            log.warning(
                "RESRGAN_DEBUG_SAVE_SLEEP: sleeping %.1f s in the middle of a save", sleep_s
            )
            time.sleep(sleep_s)
        if exit_in and step == exit_in:
            fh.flush()
            log.warning("RESRGAN_DEBUG_SAVE_EXIT: dying in the middle of saving %s", path.name)
            os._exit(137)
        fh.write(data[half:])
    return path


def save_state(run_dir: str | os.PathLike[str], state: Mapping[str, Any], *, keep: int) -> Path:
    """Write ``state`` (must hold 'step') atomically and delete all but the newest ``keep``
    states."""
    step = int(state["step"])
    full = {"format": STATE_FORMAT, "version": STATE_VERSION, **state}
    path = atomic_torch_save(full, state_path(run_dir, step), debug_hooks=True)
    states = list_states(run_dir)
    for _, old in states[: max(0, len(states) - keep)]:
        try:
            old.unlink()
        except OSError as e:
            log.warning("could not delete old checkpoint %s: %s", old, e)
    # leftovers of saves that were killed half-way
    for tmp in checkpoint_dir(run_dir).glob(".state_*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink()
        except OSError:
            pass
    return path


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load one state file safely (weights_only=True) and check its keys; raises ValueError if
    invalid."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a resrgan training state")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"{path}: training state lacks {', '.join(missing)}")
    return obj


def load_latest_state(run_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """The newest state that loads and validates, or None when there is none. Skips corrupt
    files."""
    for step, path in reversed(list_states(run_dir)):
        try:
            state = load_state(path)
        except Exception as e:  # a truncated/corrupt file: any unpickling or zip error
            log.warning(
                "skipping unreadable checkpoint %s (%s)", path, str(e).splitlines()[0][:200]
            )
            continue
        if int(state["step"]) != step:
            log.warning("skipping checkpoint %s: it holds step %s", path, state["step"])
            continue
        return path, state
    return None


def scheduler_state(sched: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """A scheduler's state with plain containers only (MultiStepLR keeps a Counter)."""
    sd = dict(sched.state_dict())
    for k, v in list(sd.items()):
        if isinstance(v, Counter):
            sd[k] = {int(m): int(c) for m, c in v.items()}
    return sd


def load_scheduler_state(
    sched: torch.optim.lr_scheduler.LRScheduler, sd: Mapping[str, Any]
) -> None:
    sd = dict(sd)
    if "milestones" in sd and isinstance(sd["milestones"], dict):
        sd["milestones"] = Counter({int(m): int(c) for m, c in sd["milestones"].items()})
    sched.load_state_dict(sd)
