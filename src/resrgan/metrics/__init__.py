"""Image-quality metrics with BasicSR's conventions: NIQE (no reference), PSNR and SSIM.

    >>> from resrgan.metrics import niqe, psnr, ssim
    >>> niqe(rgb_uint8)                     # pristine parameters: see load_niqe_params
    >>> psnr(sr, gt, crop_border=4, test_y_channel=True)

Importing this package loads numpy only (scipy and cv2 are imported on first use). The functions are
bound eagerly on purpose: ``niqe`` and ``imresize`` are also submodule names, and a lazy lookup
would hand out the module once the submodule had been imported.
"""

from __future__ import annotations

from .color import rgb_to_y
from .imresize import imresize
from .niqe import (
    NiqeImageTooSmallError,
    NiqeParams,
    load_niqe_params,
    niqe,
    read_niqe_params,
    write_niqe_params,
)
from .psnr_ssim import psnr, ssim

__all__ = [
    "NiqeImageTooSmallError",
    "NiqeParams",
    "imresize",
    "load_niqe_params",
    "niqe",
    "psnr",
    "read_niqe_params",
    "rgb_to_y",
    "ssim",
    "write_niqe_params",
]
