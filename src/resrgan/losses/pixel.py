"""Pixel loss of both stages (spec §2.4): L1 with mean reduction, times a weight (1.0 in the
original); and our chroma term, the colour part of that L1 weighted on its own."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l1_loss(output: torch.Tensor, target: torch.Tensor, *, weight: float = 1.0) -> torch.Tensor:
    """``weight * mean(|output - target|)`` (BasicSR ``L1Loss``, reduction 'mean')."""
    return weight * F.l1_loss(output, target, reduction="mean")


def chroma_l1_loss(
    output: torch.Tensor, target: torch.Tensor, *, weight: float = 1.0
) -> torch.Tensor:
    """``weight * mean(|chroma(output) - chroma(target)|)`` for (B, 3, H, W) RGB, where ``chroma``
    is each channel minus the pixel's mean over the channels: zero for a grey picture, blind to
    a change of brightness (ours, ``losses.chroma_weight``)."""

    def chroma(x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=1, keepdim=True)

    return weight * F.l1_loss(chroma(output), chroma(target), reduction="mean")
