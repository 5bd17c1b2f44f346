"""Differentiable JPEG in torch (spec §1.7, upstream ``basicsr.utils.diffjpeg.DiffJPEG``).

Batched, continuous per-sample quality, float all the way (no 8-bit rounding of YCbCr samples or
decoded pixels), JFIF full-range YCbCr, 4:2:0 by 2x2 averaging, zero padding to multiples of 16,
orthonormal 8x8 DCT as matmuls over whole planes, Annex K tables scaled by the quality factor
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

from ..color import BT601_LUMA

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

_RGB2YCC = (BT601_LUMA, (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
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


def _code_plane(plane: Tensor, table: Tensor, d: Tensor, differentiable: bool) -> Tensor:
    """DCT, quantise, dequantise and IDCT every 8x8 block of a level-shifted (B, H, W) plane.

    The 2-D block DCT ``D @ block @ D.T`` is done as two matmuls over the whole plane (along the
    columns of each 8-pixel group, then along the rows), so no block-reordering copies are made;
    ``table`` is (B, 1, 8, 1, 8), broadcast over the block grid.
    """
    b, h, w = plane.shape
    c = torch.matmul(plane.reshape(b, h, w // 8, 8), d.T)
    c = torch.matmul(d, c.view(b, h // 8, 8, w)).view(b, h // 8, 8, w // 8, 8)
    c = _round(c / table, differentiable).mul_(table)
    r = torch.matmul(d.T, c.view(b, h // 8, 8, w))
    return torch.matmul(r.view(b, h, w // 8, 8), d).view(b, h, w)


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
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    hc, wc = hp // 2, wp // 2
    m = torch.tensor(_RGB2YCC, device=x.device, dtype=work) * 255.0
    # luma at full resolution; chroma from 2x2-averaged RGB: the colour transform is linear, so
    # this equals upstream's averaging of Cb/Cr. The 3-channel transforms are matmuls over the
    # flattened planes (a 1x1 conv2d is ~50x slower on CPU for these shapes).
    y = torch.matmul(m[:1], x.reshape(b, 3, hp * wp)).sub_(128.0).view(b, hp, wp)
    x2 = (x[..., 0::2, 0::2] + x[..., 1::2, 0::2]).add_(x[..., 0::2, 1::2]).add_(x[..., 1::2, 1::2])
    chroma = torch.matmul(m[1:] * 0.25, x2.reshape(b, 3, hc * wc)).view(b, 2, hc, wc)

    d = dct_matrix(device=x.device, dtype=work)
    lt = torch.tensor(LUMA_TABLE, device=x.device, dtype=work)
    ct = torch.tensor(CHROMA_TABLE, device=x.device, dtype=work)
    if table_layout == "upstream":
        lt, ct = lt.T, ct.T
    # quality 100 gives a zero step upstream (0/0 = NaN); a floor of 1e-3 keeps it finite and
    # near-lossless and changes nothing for quality <= 99.99
    f5 = factor.view(b, 1, 1, 1, 1)
    lt = (lt.view(1, 1, 8, 1, 8) * f5).clamp_min(1e-3)
    ct = (ct.view(1, 1, 8, 1, 8) * f5).clamp_min(1e-3)
    y = _code_plane(y, lt, d, differentiable)
    cb = _code_plane(chroma[:, 0], ct, d, differentiable)
    cr = _code_plane(chroma[:, 1], ct, d, differentiable)
    # YCbCr -> RGB: chroma terms at quarter resolution, replicated 2x2 by broadcasting
    inv = torch.tensor(_YCC2RGB, device=x.device, dtype=work)[:, 1:]
    cterm = torch.matmul(inv, torch.stack([cb, cr], dim=1).view(b, 2, hc * wc))
    rgb = (y + 128.0).view(b, 1, hc, 2, wc, 2) + cterm.view(b, 3, hc, 1, wc, 1)
    rgb = rgb.view(b, 3, hp, wp).clamp_(0, 255).mul_(1.0 / 255.0)
    return rgb[..., :h, :w].to(img.dtype)
