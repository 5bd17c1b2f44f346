"""Differentiable JPEG in torch (spec §1.7, upstream ``basicsr.utils.diffjpeg.DiffJPEG``).

Batched, continuous per-sample quality, float all the way (no 8-bit rounding of YCbCr samples or
decoded pixels), JFIF full-range YCbCr, 4:2:0 by 2x2 averaging, zero padding to multiples of 16,
orthonormal 8x8 DCT as one (N, 64) x (64, 64) matmul, Annex K tables scaled by the quality factor
(no libjpeg integer rounding, no clamping of the entries), ``torch.round`` (or the cubic
``round(x) + (x - round(x))³`` when differentiable), chroma upsampling by pixel replication.

Upstream stores the Annex K tables transposed relative to its DCT index layout, so its coefficient
at (vertical u, horizontal v) is divided by ``T[v][u]``; ``table_layout='upstream'`` (the default)
reproduces that, ``'libjpeg'`` uses ``T[u][v]`` as libjpeg does.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_C = ((17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56, 99), (47, 66, 99, 99))
CHROMA_TABLE = tuple(tuple(_C[r][c] if r < 4 and c < 4 else 99 for c in range(8)) for r in range(8))

_RGB2YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_YCC2RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def quality_to_factor(quality: Tensor) -> Tensor:
    """Upstream ``quality_to_factor``: 50/q for q < 50, else (200-2q)/100 (q=30: 5/3, q=95: 0.1)."""
    return torch.where(quality < 50, 50.0 / quality, (200.0 - 2.0 * quality) / 100.0)


def dct_matrix(*, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """Orthonormal 8-point DCT-II matrix D[u, x] = c(u) cos((2x+1)uπ/16), c(0)=√(1/8), else 1/2.

    ``D @ B @ D.T`` equals upstream's α(u)α(v)/4 · Σ cos·cos scaling of a block B.
    """
    x = torch.arange(8, dtype=torch.float64)
    u = x.view(8, 1)
    d = torch.cos((2 * x + 1) * u * math.pi / 16) * 0.5
    d[0] = d[0] / math.sqrt(2)
    return d.to(device=device, dtype=dtype)


def _round(x: Tensor, differentiable: bool) -> Tensor:
    r = torch.round(x)
    return r + (x - r) ** 3 if differentiable else r


def _to_blocks(x: Tensor) -> Tensor:
    b, h, w = x.shape
    return x.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 64)


def _from_blocks(x: Tensor, h: int, w: int) -> Tensor:
    b = x.shape[0]
    return x.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


def _code_plane(plane: Tensor, table: Tensor, kron: Tensor, differentiable: bool) -> Tensor:
    """DCT, quantise, dequantise, IDCT a (B, h, w) plane; ``table`` (B, 1, 64) is scaled."""
    h, w = plane.shape[-2:]
    coef = (_to_blocks(plane) - 128.0) @ kron.T
    coef = _round(coef / table, differentiable) * table
    return _from_blocks(coef @ kron, h, w) + 128.0


def jpeg_compress(
    img: Tensor,
    quality: Tensor | float,
    *,
    differentiable: bool = False,
    table_layout: Literal["upstream", "libjpeg"] = "upstream",
) -> Tensor:
    """JPEG-compress and decode (B, 3, H, W) RGB in [0, 1] at per-sample float ``quality`` (B,).

    Output (B, 3, H, W) in the input dtype (computed in float32 for half inputs), clamped to [0, 1],
    **not** rounded to 8 bits. Reproduces upstream ``DiffJPEG(differentiable)(img, quality)``; the
    input should already be clamped to [0, 1] (upstream clamps before calling it).
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"jpeg_compress: img must be (B, 3, H, W), got {tuple(img.shape)}")
    if table_layout not in ("upstream", "libjpeg"):
        raise ValueError(
            f"jpeg_compress: table_layout {table_layout!r} is not 'upstream'/'libjpeg'"
        )
    b, _, h, w = img.shape
    work = torch.float64 if img.dtype == torch.float64 else torch.float32
    x = img.to(work)
    q = torch.as_tensor(quality, device=img.device, dtype=work)
    q = q.expand(b) if q.ndim == 0 else q
    if q.shape != (b,):
        raise ValueError(f"jpeg_compress: quality must be a float or ({b},), got {tuple(q.shape)}")
    if bool((q <= 0).any()) or bool((q > 100).any()):
        raise ValueError(f"jpeg_compress: quality must be in (0, 100], got {q.tolist()}")
    factor = quality_to_factor(q).view(b, 1, 1)
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(x, (0, pw, 0, ph)) * 255.0
    m = torch.tensor(_RGB2YCC, device=x.device, dtype=work)
    ycc = torch.einsum("ij,bjhw->bihw", m, x)
    y, cb, cr = ycc[:, 0], ycc[:, 1] + 128.0, ycc[:, 2] + 128.0
    cb = F.avg_pool2d(cb[:, None], 2)[:, 0]
    cr = F.avg_pool2d(cr[:, None], 2)[:, 0]

    d = dct_matrix(device=x.device, dtype=work)
    kron = torch.kron(d, d)
    lt = torch.tensor(LUMA_TABLE, device=x.device, dtype=work)
    ct = torch.tensor(CHROMA_TABLE, device=x.device, dtype=work)
    if table_layout == "upstream":
        lt, ct = lt.T, ct.T
    lt = lt.reshape(1, 1, 64) * factor
    ct = ct.reshape(1, 1, 64) * factor
    y = _code_plane(y, lt, kron, differentiable)
    cb = _code_plane(cb, ct, kron, differentiable)
    cr = _code_plane(cr, ct, kron, differentiable)
    cb = cb.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    cr = cr.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    ycc = torch.stack([y, cb - 128.0, cr - 128.0], dim=1)
    inv = torch.tensor(_YCC2RGB, device=x.device, dtype=work)
    rgb = torch.einsum("ij,bjhw->bihw", inv, ycc)
    rgb = rgb.clamp(0, 255) / 255.0
    return rgb[..., :h, :w].to(img.dtype)
