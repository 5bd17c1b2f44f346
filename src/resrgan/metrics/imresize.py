"""MATLAB ``imresize`` with the bicubic kernel, as BasicSR's ``basicsr/utils/matlab_functions.py``.

MATLAB's bicubic (Keys, a = -0.5) with antialiasing when shrinking: the kernel is stretched by
1/scale and scaled by ``scale``, so a 0.5 downscale uses 8 taps
``[-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625,
-0.01171875]``. Weights are normalised to sum 1 per output sample. Borders are handled by symmetric
(half-sample) reflection: index -1 reads pixel 0, -2 reads pixel 1, and so on. Output size is
``ceil(in * scale)`` per side. Rows are resized first, then columns; the op is separable and is
applied tap by tap along rows, then columns, which equals BasicSR's per-row loop up to
floating-point summation order. No clamping.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ResrganError


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``cubic``); support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def _fold(pos: np.ndarray, length: int) -> np.ndarray:
    """Fold 0-based positions back into [0, length) by symmetric (edge-repeating) reflection."""
    period = 2 * length
    m = np.mod(pos, period)
    return np.where(m >= length, period - 1 - m, m)


def resize_taps(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output taps of MATLAB bicubic ``imresize`` along one axis.

    Returns ``(weights, positions)``, both (out_length, taps): float64 weights that sum to 1 per
    row, and 0-based input positions already folded back into [0, in_length) by symmetric
    reflection. Mirrors BasicSR ``calculate_weights_indices`` plus its symmetric border copy.
    """
    if in_length < 1 or out_length < 1 or not scale > 0:
        raise ResrganError(
            f"imresize: invalid sizes in={in_length} out={out_length} scale={scale}; "
            "lengths must be >= 1 and scale > 0"
        )
    kernel_width = 4.0
    shrink_aa = scale < 1 and antialiasing
    if shrink_aa:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate of each output centre
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    w = scale * cubic(dist * scale) if shrink_aa else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    return w, _fold(idx.astype(np.int64) - 1, in_length)


def resize_weights(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True
) -> np.ndarray:
    """The (out_length, in_length) float64 matrix of :func:`resize_taps`; each row sums to 1."""
    w, pos = resize_taps(in_length, out_length, scale, antialiasing=antialiasing)
    mat = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], pos.shape)
    np.add.at(mat, (rows, pos), w)
    return mat


def _resize_axis0(a: np.ndarray, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    w, pos = resize_taps(a.shape[0], out_length, scale, antialiasing=antialiasing)
    w = w.astype(a.dtype)
    extra = (1,) * (a.ndim - 1)
    out = np.zeros((out_length, *a.shape[1:]), dtype=a.dtype)
    for t in range(w.shape[1]):  # one tap at a time, in order: plain IEEE ops, no BLAS
        out += w[:, t].reshape(-1, *extra) * a[pos[:, t]]
    return out


def imresize(
    img: np.ndarray,
    scale: float,
    *,
    antialiasing: bool = True,
    dtype: type[np.floating] = np.float64,
) -> np.ndarray:
    """Resize an HxW or HxWxC float array like MATLAB ``imresize(img, scale, 'bicubic')``.

    Output shape ``(ceil(H*scale), ceil(W*scale)[, C])`` in ``dtype``, not clamped or rounded; the
    value range is whatever the input uses (BasicSR calls it on [0, 1]). Each output is accumulated
    tap by tap in ``dtype`` with elementwise operations, so the result does not depend on the BLAS
    library; BasicSR works in float32 (pass ``np.float32`` to follow it).
    """
    arr = np.asarray(img, dtype=dtype)
    if arr.ndim not in (2, 3):
        raise ResrganError(f"imresize: expected an HxW or HxWxC array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    rows = _resize_axis0(arr, out_h, scale, antialiasing)
    cols = _resize_axis0(np.swapaxes(rows, 0, 1), out_w, scale, antialiasing)
    return np.ascontiguousarray(np.swapaxes(cols, 0, 1))
