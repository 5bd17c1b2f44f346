"""A watch on a training run that stops it when it goes wrong, before hours are spent on a bad
model: colour drift, collapse to a constant or grey picture, a network stuck at its input, NaN or
exploding losses.

Users of the original see these only afterwards (upstream issues #205, #210, #745, #793). Here the
validation outputs are measured against their gt at every validation (``output_stats``), every
logged loss is checked, and :class:`Guard` raises :class:`TrainingStopped` with the step, the
measured value and the threshold. The loop then keeps the last good checkpoint and model
(``keep_last_good``).
"""

from __future__ import annotations

import math
import shutil
import statistics
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ResrganError
from .config import GuardConfig


class TrainingStopped(ResrganError):
    """The guard stopped the run; the message says why. ``last_good``: the newest step whose
    state is trusted (checkpoints after it are set aside)."""

    def __init__(self, message: str, *, last_good: int) -> None:
        super().__init__(message)
        self.last_good = last_good


def output_stats(
    out: torch.Tensor,
    gt: torch.Tensor,
    *,
    grey_out: torch.Tensor | None = None,
    lq: torch.Tensor | None = None,
) -> dict[str, float]:
    """Colour and spread of validation outputs against their gt, both (N, 3, H, W) in [0, 1].

    ``val_color_shift``: max over channels of |mean output - mean gt| (means over the whole set),
    with the per-channel signed shifts ``val_shift_r/g/b``; ``val_std_ratio``: mean spatial std of
    the outputs over that of the gt; ``val_chroma_ratio``: mean |channel - pixel mean| of the
    outputs over that of the gt (nan when the gt is grey). ``val_false_color``: with ``grey_out``
    (the outputs for grey copies of the inputs), their mean |channel - pixel mean| in [0, 1] units:
    colour a network invents where there is none (the fringes a perceptual loss with random VGG
    weights grows). ``val_input_change``: with ``lq`` (the inputs), mean |output - nearest(lq)| over
    mean |gt - nearest(lq)|, nearest-neighbour upscaled to the output's size: near 0 when the
    network hands its input through and does nothing else (SRVGGNetCompact's own skip is that
    upscaling), 1 when it changes as much as the gt asks. A non-finite output gives nan everywhere.
    """
    out = out.double()
    gt = gt.double()
    if not bool(torch.isfinite(out).all()) or (
        grey_out is not None and not bool(torch.isfinite(grey_out).all())
    ):
        nan = float("nan")
        return {
            "val_color_shift": nan,
            "val_shift_r": nan,
            "val_shift_g": nan,
            "val_shift_b": nan,
            "val_std_ratio": nan,
            "val_chroma_ratio": nan,
            "val_false_color": nan,
            "val_input_change": nan,
        }
    shift = out.mean(dim=(0, 2, 3)) - gt.mean(dim=(0, 2, 3))
    std_o = out.std(dim=(2, 3)).mean()
    std_g = gt.std(dim=(2, 3)).mean()

    def chroma(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=1, keepdim=True)).abs().mean()

    c_g = chroma(gt)
    change = float("nan")
    if lq is not None:
        near = F.interpolate(lq.double(), size=out.shape[-2:], mode="nearest")
        wanted = (gt - near).abs().mean()
        if wanted > 1e-6:
            change = float((out - near).abs().mean() / wanted)
    return {
        "val_color_shift": float(shift.abs().max()),
        "val_shift_r": float(shift[0]),
        "val_shift_g": float(shift[1]),
        "val_shift_b": float(shift[2]),
        "val_std_ratio": float(std_o / std_g) if std_g > 1e-6 else float("nan"),
        "val_chroma_ratio": float(chroma(out) / c_g) if c_g > 2e-3 else float("nan"),
        "val_false_color": float("nan") if grey_out is None else float(chroma(grey_out)),
        "val_input_change": change,
    }


# losses watched for explosions; GAN terms swing by design, so only their finiteness is checked
_WATCHED = ("l_g_pix", "l_g_percep")


class Guard:
    """Checks losses (every logged record) and validation statistics; remembers the last step
    whose validation passed (``last_good``)."""

    def __init__(self, cfg: GuardConfig, *, start: int = 0) -> None:
        self.cfg = cfg
        self.last_good = start
        self._recent: dict[str, deque[float]] = {}
        self._false_least = math.inf  # the least false colour seen by this run's validations
        self._stuck: list[tuple[int, float]] = []  # (step, value) of the current stuck streak
        self._good_before_stuck = start

    def state_dict(self) -> dict[str, Any]:
        """What the guard remembers (plain containers, for the checkpoint): the last good step,
        the stuck streak, the least false colour and the recent losses, so that a resumed run
        is judged as if it had not stopped."""
        return {
            "last_good": self.last_good,
            "false_least": self._false_least,
            "stuck": [[s, v] for s, v in self._stuck],
            "good_before_stuck": self._good_before_stuck,
            "recent": {k: list(v) for k, v in self._recent.items()},
        }

    def load_state_dict(self, st: Mapping[str, Any]) -> None:
        self.last_good = int(st["last_good"])
        self._false_least = float(st["false_least"])
        self._stuck = [(int(s), float(v)) for s, v in st["stuck"]]
        self._good_before_stuck = int(st["good_before_stuck"])
        self._recent = {
            k: deque(map(float, v), maxlen=self.cfg.loss_window) for k, v in st["recent"].items()
        }

    def _stop(self, step: int, what: str, *, last_good: int) -> TrainingStopped:
        return TrainingStopped(
            f"step {step}: {what}; the run was stopped by its guard (turn it off with "
            "--set guard.enabled=false, or change the threshold named)",
            last_good=last_good,
        )

    def check_losses(self, step: int, losses: Mapping[str, float]) -> None:
        """Raises on a NaN/Inf loss, or a pixel/perceptual loss far above its recent median."""
        if not self.cfg.enabled:
            return
        for k, v in losses.items():
            if not k.startswith("l_"):
                continue
            if not math.isfinite(v):
                raise self._stop(step, f"loss {k} is {v}", last_good=step - 1)
            if k not in _WATCHED:
                continue
            hist = self._recent.setdefault(k, deque(maxlen=self.cfg.loss_window))
            if len(hist) >= max(1, self.cfg.loss_window // 4):
                med = statistics.median(hist)
                if med > 0 and v > self.cfg.loss_ratio * med:
                    raise self._stop(
                        step,
                        f"loss {k} exploded to {v:.4g}, {v / med:.1f}x its recent median "
                        f"{med:.4g} (guard.loss_ratio {self.cfg.loss_ratio:g})",
                        last_good=step - 1,
                    )
            hist.append(v)

    def check_validation(self, step: int, stats: Mapping[str, float]) -> None:
        """Raises on colour drift, a flat or grey collapse, false colour, non-finite outputs, or
        outputs stuck at the input for ``guard.stuck_validations`` validations in a row; otherwise
        records ``step`` as the last good one (not while a stuck streak lasts)."""
        if not self.cfg.enabled:
            self.last_good = step
            return
        c = self.cfg
        shift = stats["val_color_shift"]
        if not math.isfinite(shift):
            raise self._stop(step, "validation outputs hold NaN or Inf", last_good=self.last_good)
        if shift > c.color_shift:
            rgb = ", ".join(f"{ch} {stats[f'val_shift_{ch.lower()}']:+.3f}" for ch in "RGB")
            raise self._stop(
                step,
                f"colour drift: validation outputs are off their gt by {shift:.3f} ({rgb}) "
                f"> guard.color_shift {c.color_shift:g}",
                last_good=self.last_good,
            )
        ratio = stats["val_std_ratio"]
        if math.isfinite(ratio) and ratio < c.min_std_ratio:
            raise self._stop(
                step,
                f"collapse: validation outputs are nearly flat (std {ratio:.3f} of the gt's "
                f"< guard.min_std_ratio {c.min_std_ratio:g})",
                last_good=self.last_good,
            )
        chroma = stats["val_chroma_ratio"]
        if math.isfinite(chroma) and chroma < c.min_chroma_ratio:
            raise self._stop(
                step,
                f"collapse to grey: validation outputs keep {chroma:.3f} of the gt's colour "
                f"(< guard.min_chroma_ratio {c.min_chroma_ratio:g})",
                last_good=self.last_good,
            )
        false = stats.get("val_false_color", float("nan"))
        if math.isfinite(false):
            # a random or young network invents colour too: it is a failure only when it grows
            # past the threshold AND past twice the least this run has shown
            least = min(self._false_least, false)
            if false > c.false_color and false > 2 * self._false_least:
                raise self._stop(
                    step,
                    f"false colour: validation outputs for grey inputs carry colour {false:.4f} "
                    f"(> guard.false_color {c.false_color:g} and > 2x this run's least, "
                    f"{self._false_least:.4f})",
                    last_good=self.last_good,
                )
            self._false_least = least
        change = stats.get("val_input_change", float("nan"))
        if math.isfinite(change) and change < c.min_input_change:
            # a young net passes through this (our compact stage 1: 0.03 at step 250, 0.17 at
            # 500); one that stays there has stopped learning
            if not self._stuck:
                self._good_before_stuck = self.last_good
            self._stuck.append((step, change))
            if len(self._stuck) >= c.stuck_validations:
                seen = ", ".join(f"{v:.4f} at step {s}" for s, v in self._stuck)
                raise self._stop(
                    step,
                    "stuck at the input: the outputs differ from the nearest-neighbour upscaled "
                    f"inputs by {change:.4f} of what the gt does (< guard.min_input_change "
                    f"{c.min_input_change:g} at {len(self._stuck)} validations in a row: {seen}; "
                    "a compact net from scratch wants network_g.init: he, docs/training.md)",
                    last_good=self._good_before_stuck,
                )
            return
        self._stuck.clear()
        self.last_good = step


def keep_last_good(run_dir: Path, last_good: int) -> int | None:
    """After a stop: move checkpoints newer than ``last_good`` into ``checkpoints/rejected/``, so
    ``--resume`` and ``model.safetensors`` start from the last good state. Returns the step of the
    newest checkpoint kept (None when there is none)."""
    from .checkpoint import checkpoint_dir, list_states

    kept = None
    for step, path in list_states(run_dir):
        if step > last_good:
            dest = checkpoint_dir(run_dir) / "rejected"
            dest.mkdir(exist_ok=True)
            shutil.move(str(path), dest / path.name)
        else:
            kept = step
    return kept


__all__ = ["Guard", "GuardConfig", "TrainingStopped", "keep_last_good", "output_stats"]
