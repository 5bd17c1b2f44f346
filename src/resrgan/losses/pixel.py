"""Pixel loss of both stages (spec §2.4): L1 with mean reduction, times a weight (1.0 in the
original)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1_loss(output: torch.Tensor, target: torch.Tensor, *, weight: float = 1.0) -> torch.Tensor:
    """``weight * mean(|output - target|)`` (BasicSR ``L1Loss``, reduction 'mean')."""
    return weight * F.l1_loss(output, target, reduction="mean")
