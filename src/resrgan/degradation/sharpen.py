"""Unsharp masking of the GT (spec §1.5, upstream ``basicsr.utils.img_process_util.USMSharp``).

Upstream filters with the 51x51 outer product of ``cv2.getGaussianKernel(51, 0)`` (sigma 8.0)
through a dense 2-D conv, which is most of its CPU time. The kernel is separable and reflect padding
is linear, so here each 1-D pass (reflect pad + 51-tap correlation) is one (n, n) banded matrix and
the 2-D filter is ``A_h @ X @ A_w.T``: the same linear map, evaluated with two batched matmuls.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

USM_RADIUS = 51  # upstream USMSharp(radius=50): made odd -> 51
USM_WEIGHT = 0.5  # upstream USMSharp's weight
USM_SIGMA = 0.3 * ((USM_RADIUS - 1) * 0.5 - 1) + 0.8  # OpenCV's rule for sigma <= 0: 8.0


def gaussian_1d(
    size: int = USM_RADIUS,
    sigma: float = USM_SIGMA,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """``cv2.getGaussianKernel(size, sigma)`` as a (size,) tensor: exp(-(i-c)²/(2σ²)), sum 1."""
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def usm_kernel(*, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """The upstream (1, 51, 51) USM kernel: outer product of :func:`gaussian_1d` with itself."""
    g = gaussian_1d(device=device)
    return torch.outer(g, g)[None].to(dtype)


def reflect_filter_matrix(n: int, taps: Tensor) -> Tensor:
    """(n, n) matrix M: ``M @ x`` = reflect-101 pad by len(taps)//2, correlate with taps."""
    k = taps.numel()
    p = k // 2
    if p >= n:
        raise ValueError(f"reflect padding {p} needs a side longer than {p}, got {n}")
    i = torch.arange(n, device=taps.device).repeat_interleave(k)
    j = torch.arange(-p, p + 1, device=taps.device).repeat(n)
    src = i + j
    src = torch.where(src < 0, -src, src)
    src = torch.where(src > n - 1, 2 * (n - 1) - src, src)
    m = torch.zeros(n, n, device=taps.device, dtype=taps.dtype)
    m.index_put_((i, src), taps.repeat(n), accumulate=True)
    return m


def _band_blocks(n: int, taps: Tensor) -> list[tuple[int, int, int, int, Tensor]]:
    """Row blocks of the banded (n, n) filter matrix: (first row, end row, first column,
    end column, block)."""
    m = reflect_filter_matrix(n, taps)
    p = taps.numel() // 2
    bs = max(2 * p, 1)
    out = []
    for s in range(0, n, bs):
        e = min(n, s + bs)
        cs, ce = max(0, s - p), min(n, e + p)
        out.append((s, e, cs, ce, m[s:e, cs:ce].contiguous()))
    return out


@functools.lru_cache(maxsize=16)
def _usm_blocks(
    n: int, device: torch.device, dtype: torch.dtype
) -> list[tuple[int, int, int, int, Tensor]]:
    return _band_blocks(n, gaussian_1d(device=device, dtype=dtype))


def separable_filter(img: Tensor, taps: Tensor | None = None) -> Tensor:
    """Filter (B, C, H, W) with the outer product ``taps ⊗ taps`` under reflect-101 padding.

    Equals :func:`~resrgan.degradation.filter.filter2d` with the 2-D kernel (to float rounding).
    Each 1-D pass multiplies by the banded reflect-filter matrix, split into row blocks of
    2·(k//2) rows that only touch the columns they need (about 3x fewer flops than the dense
    matrix for k = 51 on 400 px); every block's product is written straight into its slice of the
    output. ``taps=None`` uses the USM Gaussian (its matrices are cached per size, device and
    dtype). Work in float32 (float64 for float64 input); output in the input's dtype; no clamping.
    """
    work = torch.float64 if img.dtype == torch.float64 else torch.float32
    h, w = img.shape[-2:]
    if taps is None:
        bh, bw = _usm_blocks(h, img.device, work), _usm_blocks(w, img.device, work)
    else:
        t = taps.to(device=img.device, dtype=work)
        bh = _band_blocks(h, t)
        bw = bh if w == h else _band_blocks(w, t)
    x = img.to(work).contiguous().view(-1, h, w)
    # along W: rows of all planes at once, (N·H, cols) @ block.T into column slices
    rows = torch.empty_like(x)
    xr, rr = x.view(-1, w), rows.view(-1, w)
    for s, e, cs, ce, a in bw:
        torch.mm(xr[:, cs:ce], a.T, out=rr[:, s:e])
    # along H: block @ (N, rows, W) into row slices
    out = torch.empty_like(x)
    for s, e, cs, ce, a in bh:
        torch.matmul(a, rows[:, cs:ce], out=out[:, s:e])
    return out.view(img.shape).to(img.dtype)


def usm_sharpen(img: Tensor, weight: float = USM_WEIGHT, threshold: float = 10.0) -> Tensor:
    """Unsharp-mask (B, C, H, W) images in [0, 1]; upstream ``USMSharp()(img)`` with its defaults.

    ``residual = img - blur``; ``mask = |residual|·255 > threshold``; ``soft = blur(mask)``;
    ``sharp = clamp(img + weight·residual, 0, 1)``; output ``soft·sharp + (1 - soft)·img`` (so the
    output stays in [0, 1] when the input does). ``blur`` is the 51x51, sigma-8 Gaussian with
    reflect padding; images must be larger than 25 px per side. Not in place.
    """
    h, w = img.shape[-2:]
    if min(h, w) <= USM_RADIUS // 2:
        raise ValueError(
            f"usm_sharpen: the image must be larger than {USM_RADIUS // 2} px per side, got {h}x{w}"
        )
    if img.device.type == "cpu" and img.shape[0] > 1 and torch.get_num_threads() == 1:
        # single-threaded CPU: one sample at a time keeps the working set in cache (~1.5x faster,
        # same numbers). With several threads the batched ops parallelise better (and per-sample
        # ops multiply thread synchronisations, which is very slow on an oversubscribed machine).
        out = torch.empty_like(img)
        for i in range(img.shape[0]):
            out[i : i + 1] = _usm(img[i : i + 1], weight, threshold)
        return out
    return _usm(img, weight, threshold)


def _usm(img: Tensor, weight: float, threshold: float) -> Tensor:
    residual = img - separable_filter(img)
    mask = (residual.abs().mul_(255) > threshold).to(img.dtype)
    soft = separable_filter(mask)
    # soft·sharp + (1 - soft)·img, written as img + soft·(sharp - img) with fewer full-size passes
    sharp = torch.add(img, residual, alpha=weight).clamp_(0, 1)
    return sharp.sub_(img).mul_(soft).add_(img)
