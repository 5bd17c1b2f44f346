"""Pixel-range and luma conventions shared by the metrics (BasicSR ``basicsr/utils/color_util.py``).

Every metric works on images in the [0, 255] range, the BasicSR convention:

* ``uint8`` is used as is;
* ``uint16`` is scaled by 255/65535 (BasicSR would treat 16-bit values as [0, 255]: nonsense);
* floating-point input is assumed to be in [0, 255] already and is not rescaled.

The luma is MATLAB's BT.601 ``rgb2ycbcr`` Y: ``16 + (65.481 R + 128.553 G + 24.966 B)`` with R, G, B
in [0, 1], on the 0-255 scale (limited range, 16..235), not rounded. Its float32/float64 steps
mirror BasicSR's ``to_y_channel`` so that rounded values (NIQE) agree bit for bit.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from ..errors import ResrganError

log = logging.getLogger(__name__)

ChannelOrder = Literal["rgb", "bgr"]

# MATLAB rgb2ycbcr luma coefficients for R, G, B in [0, 1], output on the 0-255 scale.
Y_COEFFS_RGB = np.array([65.481, 128.553, 24.966], dtype=np.float64)
Y_OFFSET = 16.0


def to_float255(img: np.ndarray, *, name: str = "image") -> np.ndarray:
    """``img`` as a float array in [0, 255], HW or HWC (dtype rules: see the module docstring).

    uint8 and float16/float32 give float32; uint16 and float64 give float64 (no precision is lost:
    BasicSR keeps float64 input as it is for PSNR/SSIM).
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ResrganError(
            f"{name}: expected an HxW or HxWxC array, got shape {arr.shape}; "
            "pass one image, channels last"
        )
    if arr.dtype == np.uint8:
        return arr.astype(np.float32)
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) * (255.0 / 65535.0)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32)
        if out.size and 0 < float(out.max()) <= 1.0:
            log.warning(
                "%s: float pixels are all <= 1; metrics expect [0, 255] (multiply by 255)", name
            )
        return out
    raise ResrganError(
        f"{name}: unsupported dtype {arr.dtype}; use uint8, uint16 or float in [0, 255]"
    )


def _check_order(channel_order: str) -> None:
    if channel_order not in ("rgb", "bgr"):
        raise ResrganError(f"channel_order={channel_order!r} is not valid; use 'rgb' or 'bgr'")


def rgb_to_y(img: np.ndarray, *, channel_order: ChannelOrder = "rgb") -> np.ndarray:
    """BT.601 luma (MATLAB ``rgb2ycbcr`` Y) of an HxWx3 image in [0, 255]; returns HxW float32.

    Reproduces BasicSR ``to_y_channel`` (``bgr2ycbcr(y_only=True)``) including its dtypes: the
    input is divided by 255 in float32, the dot product is float64, the result is stored as float32
    and multiplied by 255 in float32. Not rounded.
    """
    _check_order(channel_order)
    x = np.asarray(img)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ResrganError(f"rgb_to_y: expected an HxWx3 image, got shape {x.shape}")
    x32 = x.astype(np.float32) / np.float32(255.0)
    coeffs = Y_COEFFS_RGB if channel_order == "rgb" else Y_COEFFS_RGB[::-1]
    y64 = np.dot(x32.astype(np.float64), coeffs) + Y_OFFSET
    return (y64 / 255.0).astype(np.float32) * np.float32(255.0)


def luma_or_gray(img: np.ndarray, *, channel_order: ChannelOrder = "rgb") -> np.ndarray:
    """HxW float in [0, 255]: the BT.601 luma (float32) of a 3-channel image, or the one channel.

    This is BasicSR's rule: ``to_y_channel`` converts only 3-channel images, a grey image is used as
    it is (no 16..235 limited-range mapping). Other channel counts (alpha) are refused: drop alpha
    first.
    """
    x = to_float255(img)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        return x
    if x.shape[2] != 3:
        raise ResrganError(
            f"expected 1 or 3 channels, got {x.shape[2]} (shape {x.shape}); "
            "drop the alpha channel first (e.g. img[..., :3])"
        )
    return rgb_to_y(x, channel_order=channel_order)
