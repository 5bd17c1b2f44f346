"""PSNR and SSIM with BasicSR's conventions (``basicsr/metrics/psnr_ssim.py``).

Inputs are HxW or HxWxC arrays in [0, 255] (see :mod:`resrgan.metrics.color`: uint8 as is, uint16
scaled by 255/65535, float taken as [0, 255]); both images must have the same shape.
``crop_border`` pixels are cut from every side first; with ``test_y_channel`` a 3-channel image is
reduced to its BT.601 luma (MATLAB ``rgb2ycbcr`` Y, not rounded; 1-channel images are used as is).

* PSNR: MSE in float64 over all pixels and channels, ``10 log10(255^2 / MSE)``; ``inf`` when the
  images are identical.
* SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5, ``cv2.getGaussianKernel``),
  statistics by ``cv2.filter2D`` with the 2-D window in float64, as BasicSR (``cv2.sepFilter2D``
  was tried: faster, but off by ~3e-10), over the valid region only (5 pixels trimmed on each
  side). C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2; the mean SSIM of each channel, averaged over
  channels.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ResrganError
from .color import ChannelOrder, luma_or_gray, to_float255

SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5


def _prepare(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int,
    test_y_channel: bool,
    channel_order: ChannelOrder,
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 HxWxC, cropped and (optionally) reduced to luma."""
    a = to_float255(img, name="first image")
    b = to_float255(img2, name="second image")
    if a.shape != b.shape:
        raise ResrganError(
            f"image shapes differ: {a.shape} vs {b.shape}; compare images of the same size "
            "and channel count (resize or crop one of them first)"
        )
    if crop_border < 0:
        raise ResrganError(f"crop_border={crop_border} must be >= 0")
    h, w = a.shape[:2]
    if 2 * crop_border >= min(h, w):
        raise ResrganError(
            f"crop_border={crop_border} leaves nothing of a {w}x{h} image; "
            "use a smaller crop_border"
        )
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border, ...]
        b = b[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        a = luma_or_gray(a, channel_order=channel_order)
        b = luma_or_gray(b, channel_order=channel_order)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(
    img: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int = 0,
    test_y_channel: bool = False,
    channel_order: ChannelOrder = "rgb",
) -> float:
    """PSNR in dB (BasicSR ``calculate_psnr``); ``inf`` for identical images."""
    a, b = _prepare(img, img2, crop_border, test_y_channel, channel_order)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(255.0 * 255.0 / mse)


def ssim_window() -> np.ndarray:
    """The 11x11 Gaussian window (sigma 1.5) BasicSR builds with ``cv2.getGaussianKernel``."""
    import cv2

    k = cv2.getGaussianKernel(SSIM_WINDOW_SIZE, SSIM_SIGMA)
    return np.outer(k, k.transpose())


def ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two HxW float64 images in [0, 255] over the valid region (BasicSR ``_ssim``)."""
    import cv2

    h, w = a.shape
    if min(h, w) < SSIM_WINDOW_SIZE:
        raise ResrganError(
            f"SSIM needs images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} px after "
            f"cropping, got {w}x{h}; use a smaller crop_border or larger images"
        )
    win = ssim_window()
    r = SSIM_WINDOW_SIZE // 2

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[r:-r, r:-r]

    mu1, mu2 = filt(a), filt(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(a * a) - mu1_sq
    s2 = filt(b * b) - mu2_sq
    s12 = filt(a * b) - mu12
    num = (2 * mu12 + SSIM_C1) * (2 * s12 + SSIM_C2)
    den = (mu1_sq + mu2_sq + SSIM_C1) * (s1 + s2 + SSIM_C2)
    return float(np.mean(num / den))


def ssim(
    img: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int = 0,
    test_y_channel: bool = False,
    channel_order: ChannelOrder = "rgb",
) -> float:
    """Structural similarity (BasicSR ``calculate_ssim``); 1.0 for identical images."""
    a, b = _prepare(img, img2, crop_border, test_y_channel, channel_order)
    return float(np.mean([ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))
