"""Vanilla GAN loss (spec §2.4, BasicSR ``GANLoss`` type 'vanilla').

``BCEWithLogits`` averaged over all per-pixel logits, real label 1, fake label 0. The generator term
carries the loss weight (0.1 in Real-ESRGAN); discriminator terms have weight 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(logits: torch.Tensor, target_is_real: bool, *, weight: float = 1.0) -> torch.Tensor:
    """``weight * BCEWithLogits(logits, 1 if target_is_real else 0)``, mean over every element."""
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    return weight * F.binary_cross_entropy_with_logits(logits, target, reduction="mean")
