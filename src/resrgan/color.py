"""Colour constants shared by the data, inference and loss code."""

from __future__ import annotations

import torch

# ITU-R BT.601 luma weights for R, G, B: OpenCV's COLOR_RGB2GRAY / COLOR_BGR2GRAY, PIL's "L", and
# the Y row of the JPEG YCbCr matrix
BT601_LUMA = (0.299, 0.587, 0.114)


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB pictures (..., 3, H, W) as (..., 1, H, W)."""
    w = torch.tensor(BT601_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True)


__all__ = ["BT601_LUMA", "luma"]
