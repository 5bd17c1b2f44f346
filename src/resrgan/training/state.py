"""The objects a run resumes: networks, optimisers, schedulers, grad scalers and the pair pool.

:meth:`TrainState.state_dict` gives the checkpoint entries and :meth:`TrainState.load_state_dict`
reads them back, so saving and resuming are one symmetric place. The keys are the checkpoint
format's (``net_g``, ``net_g_ema``, ``optim_g``, ``sched_g``, ``scaler_g``, ``pool``; in stage 2
also ``net_d``, ``optim_d``, ``sched_d``, ``scaler_d``); the step, the config and the RNG states
are the loop's (:mod:`resrgan.training.checkpoint` writes the file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .checkpoint import load_scheduler_state, scheduler_state
from .ema import unwrap

if TYPE_CHECKING:
    from ..degradation.pool import PairPool

Scheduler = torch.optim.lr_scheduler.LRScheduler


@dataclass
class TrainState:
    """References to the live objects of a run (nothing is copied); the discriminator's four are
    all None in stage 1, and ``pool`` is None without a training-pair pool."""

    net_g: nn.Module
    net_g_ema: nn.Module
    opt_g: torch.optim.Optimizer
    sched_g: Scheduler
    scaler_g: torch.amp.GradScaler
    net_d: nn.Module | None = None
    opt_d: torch.optim.Optimizer | None = None
    sched_d: Scheduler | None = None
    scaler_d: torch.amp.GradScaler | None = None
    pool: PairPool | None = None

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint entries, tensors and plain containers only (the pool on the CPU)."""
        st: dict[str, Any] = {
            "net_g": unwrap(self.net_g).state_dict(),
            "net_g_ema": self.net_g_ema.state_dict(),
            "optim_g": self.opt_g.state_dict(),
            "sched_g": scheduler_state(self.sched_g),
            "scaler_g": self.scaler_g.state_dict(),
            "pool": to_device(self.pool.state_dict(), "cpu") if self.pool is not None else None,
        }
        for key, value in self._discriminator().items():
            st[key] = value.state_dict() if key != "sched_d" else scheduler_state(value)
        return st

    def load_state_dict(self, st: Mapping[str, Any], *, device: torch.device | str) -> None:
        """Restore every object from checkpoint entries (the pool's tensors go to ``device``)."""
        self.net_g.load_state_dict(st["net_g"])
        self.net_g_ema.load_state_dict(st["net_g_ema"])
        self.opt_g.load_state_dict(st["optim_g"])
        load_scheduler_state(self.sched_g, st["sched_g"])
        self.scaler_g.load_state_dict(st["scaler_g"])
        for key, value in self._discriminator().items():
            if key == "sched_d":
                load_scheduler_state(value, st[key])
            else:
                value.load_state_dict(st[key])
        if self.pool is not None and st.get("pool") is not None:
            self.pool.load_state_dict(to_device(st["pool"], device))

    def _discriminator(self) -> dict[str, Any]:
        """Checkpoint key -> object for the stage-2 discriminator (empty in stage 1)."""
        if self.net_d is None:
            return {}
        assert self.opt_d is not None and self.sched_d is not None and self.scaler_d is not None
        return {
            "net_d": self.net_d,
            "optim_d": self.opt_d,
            "sched_d": self.sched_d,
            "scaler_d": self.scaler_d,
        }


def to_device(obj: Any, device: torch.device | str) -> Any:
    """``obj`` with every tensor in nested dicts, lists and tuples moved to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj
