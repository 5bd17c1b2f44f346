"""Training losses: L1 pixel loss, VGG19 perceptual loss and the vanilla GAN loss (spec §2.4)."""

from __future__ import annotations

from .gan import gan_loss
from .perceptual import DEFAULT_LAYER_WEIGHTS, PerceptualLoss
from .pixel import chroma_l1_loss, l1_loss

__all__ = ["DEFAULT_LAYER_WEIGHTS", "PerceptualLoss", "chroma_l1_loss", "gan_loss", "l1_loss"]
