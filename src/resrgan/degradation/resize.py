"""Random-resize op (spec §1.4 steps 2, 6 and 8): ``F.interpolate`` exactly as upstream calls it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import RESIZE_MODES


def resize(
    img: Tensor,
    *,
    mode: str,
    scale_factor: float | None = None,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Resize (B, C, H, W) with mode 'area', 'bilinear' or 'bicubic' (up or down), not clamped.

    Give exactly one of ``scale_factor`` (first stage upstream: output ⌊H·f⌋ x ⌊W·f⌋, and torch maps
    coordinates with 1/f, as ``F.interpolate(x, scale_factor=f, mode=mode)``) or ``size`` (second
    and final stages). ``align_corners`` is left at its default (False) and there is no
    antialiasing, as upstream. 'area' is adaptive average pooling. Bicubic can overshoot [0, 1];
    upstream clamps only later (noise, JPEG, final quantisation), so this op does not clamp either.
    Half-precision input is computed in float32 on CPU (where half interpolation is not implemented)
    and cast back.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize: mode {mode!r} is not one of {list(RESIZE_MODES)}")
    if (scale_factor is None) == (size is None):
        raise ValueError("resize: give exactly one of scale_factor or size")
    x = img
    if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"resize: output size {size} must be at least 1x1")
        if tuple(x.shape[-2:]) == size:
            return img.clone()  # F.interpolate to the same size is the identity for all 3 modes
        out = F.interpolate(x, size=size, mode=mode)
    else:
        if int(x.shape[-2] * scale_factor) < 1 or int(x.shape[-1] * scale_factor) < 1:
            raise ValueError(
                f"resize: scale factor {scale_factor} gives an empty image "
                f"from {tuple(x.shape[-2:])}"
            )
        out = F.interpolate(x, scale_factor=scale_factor, mode=mode)
    return out.to(img.dtype)
