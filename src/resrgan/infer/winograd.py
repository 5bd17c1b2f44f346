"""Winograd F(4x4, 3x3) for RRDBNet's dense blocks on the CPU (fp32 inference only; used by
:mod:`resrgan.infer.fastrrdb`).

A 3x3 convolution computes each 4x4 output tile from a 6x6 input tile with 36 products per
(input, output) channel pair instead of 144 (Lavin & Gray, 2016): the input tile and the kernel
go to a 6x6 "Winograd domain" (``B^T d B``, ``G g G^T``), multiply element-wise (summed over the
input channels: 36 matrix products), and come back (``A^T m A``).

Alone, a Winograd convolution pays for two transforms per call, and in PyTorch ops those are
memory passes that cost about what the saved products do (tried on SRVGGNetCompact: no gain). In
a residual dense block the five convolutions read growing concatenations of the same maps
(x, x1..x4), so each map is transformed once and its transform is read by every later
convolution: a block transforms 64 + 4*32 input channels and 4*32 + 64 output channels, and its
products are 2.25 multiply-adds per output pixel and channel pair instead of 9. With the maps
kept in tile layout (:class:`TileMaps`) every step is one matrix product or a copy of whole rows,
and x4plus runs ~1.8-2x faster than with PyTorch's direct convolutions on a 2-core AVX-512
machine (bench/infer.py). The result differs from the direct convolution by float rounding only
(tests: against float64, both within ~1e-5 of the range). Large maps are worked in bands of tile
rows, each band taken through every step of a convolution while it is in the cache
(:class:`TileMaps`; docs/engine.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# F(4x4, 3x3) with interpolation points 0, 1, -1, 2, -2, inf (exact rationals, kept in float64)
_BT = ((4, 0, -5, 0, 1, 0),
       (0, -4, -4, 1, 1, 0),
       (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0),
       (0, 2, -1, -2, 1, 0),
       (0, 4, 0, -5, 0, 1))  # fmt: skip
_AT = ((1, 1, 1, 1, 1, 0),
       (0, 1, -1, 2, -2, 0),
       (0, 1, 1, 4, 4, 0),
       (0, 1, -1, 8, -8, 1))  # fmt: skip
_G = ((1 / 4, 0, 0),
      (-1 / 6, -1 / 6, -1 / 6),
      (-1 / 6, 1 / 6, -1 / 6),
      (1 / 24, 1 / 12, 1 / 6),
      (1 / 24, -1 / 12, 1 / 6),
      (0, 0, 1))  # fmt: skip
# A^T's second column is all ones: a constant added to M[1, 1] reaches all 16 outputs of a tile,
# so the bias is added there, on 1/36 of the products, instead of on the output
_BIAS_SLOT = 1 * 6 + 1


def _f64(rows: tuple) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _weight_matrix(device: torch.device) -> torch.Tensor:
    """``G g G^T`` as a (36, 9) matrix acting on a flattened 3x3 kernel."""
    g = _f64(_G)
    return torch.einsum("ai,bj->abij", g, g).reshape(36, 9).float().to(device)


def transform_weight(weight: torch.Tensor, matrix: torch.Tensor | None = None) -> torch.Tensor:
    """(Cout, Cin, 3, 3) kernel -> (36, Cout, Cin) ``G g G^T`` in float32: one matrix product
    (~0.04 ms for a 160->32 kernel), so it is done per call instead of keeping 4x the weights
    in memory (x4plus: 267 MB). The result is a view in whichever order the kernel's memory
    gives without a copy (channels-last kernels: (Cout, 36, Cin) underneath)."""
    co, ci = weight.shape[:2]
    k = _weight_matrix(weight.device) if matrix is None else matrix
    w = weight.detach()
    if w.is_contiguous():
        return torch.mm(k, w.view(co * ci, 9).t()).view(36, co, ci)
    return torch.matmul(k, w.permute(0, 2, 3, 1).reshape(co, 9, ci)).permute(1, 0, 2)


def workspace_bytes_per_pixel(*, p_channels: int, u_channels: int, conv_outs: tuple) -> int:
    """Bytes of a :class:`TileMaps` per pixel when its band is the whole image: per 4x4 pixels
    and channel, P and U hold 36 floats, each distinct convolution width a product buffer of 36,
    the widest an output buffer of 16 (RRDBNet x4plus: 3.7 KB). In bands the product and output
    buffers are one band's, so a large image needs less (x4plus: 2.8 KB + 0.9 KB per band
    pixel)."""
    widths = set(conv_outs)
    floats = 36 * (p_channels + u_channels + sum(widths)) + 16 * max(widths)
    return floats * 4 // 16


class TileMaps:
    """One image's feature maps in tile layout, and the Winograd convolutions on them, band by
    band.

    ``P`` (6, 6, C, th, tw) holds maps as the 6x6 input tiles the transform reads: position
    (a, b) of tile (i, j) is pixel (4i + a - 1, 4j + b - 1). The 4x4 core (a, b in 1..4) is
    written by the output transform of the convolution that makes the map; the ring is copied
    from the neighbouring tiles' cores and is zero at the image border (set once). ``U``
    (36, C, tiles) holds transforms, concatenated along C for the dense blocks. Every step is a
    matrix product or a copy of whole (channels x tiles) rows, with no gather.

    **Bands** (``band_rows`` tile rows each; default: the whole image): a convolution runs band
    after band, and each band's output goes on at once, while it is in the cache, through the
    activation, the rings and the input transform of the rows whose neighbours are final (one
    tile row behind: a ring needs the next row's cores). Only the product's read of the earlier
    maps' transforms comes from memory. Every tile gets the same arithmetic in any band layout.
    Memory: :func:`workspace_bytes_per_pixel` (RRDBNet x4plus: 3.7 KB per pixel)."""

    def __init__(
        self, h: int, w: int, *, p_channels: int, u_channels: int, out_channels: int,
        device: torch.device, band_rows: int | None = None,
    ) -> None:  # fmt: skip
        self.h, self.w = h, w
        self.th, self.tw = -(-h // 4), -(-w // 4)
        self.tiles = self.th * self.tw
        rows = self.th if band_rows is None else max(1, min(band_rows, self.th))
        self.bands = [(r0, min(r0 + rows, self.th)) for r0 in range(0, self.th, rows)]
        self.P = torch.zeros(6, 6, p_channels, self.th, self.tw, device=device)
        self.U = torch.empty(36, u_channels, self.tiles, device=device)
        self.weight_matrix = _weight_matrix(device)
        bt = _f64(_BT)
        self._b36 = torch.einsum("ai,bj->abij", bt, bt).reshape(36, 36).float().to(device)
        at = _f64(_AT)
        self._a16 = torch.einsum("pa,qb->pqab", at, at).reshape(16, 36).float().to(device)
        self._y = torch.empty(16 * out_channels * rows * self.tw, device=device)
        self._m: dict[int, torch.Tensor] = {}
        self._views: dict[tuple, Any] = {}

    # ---------------------------------------------------------------- layout conversions
    def load(self, x: torch.Tensor) -> None:
        """(C, h, w) maps -> the core, ring and transform of the first C channels."""
        c = x.shape[0]
        core = self.P[1:5, 1:5, :c].permute(2, 3, 0, 4, 1)  # (c, th, 4, tw, 4)
        full = torch.zeros(c, 4 * self.th, 4 * self.tw, device=x.device)
        full[:, : self.h, : self.w] = x
        core.copy_(full.unflatten(1, (self.th, 4)).unflatten(3, (self.tw, 4)))
        self.finish(0, c, 0, 0, self.th)

    def core(self, c0: int, c1: int, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """The cores of channels c0:c1, tile rows r0:r1: (4, 4, c, rows, tw), a view."""
        r1 = self.th if r1 is None else r1
        return self._view(("core", c0, c1, r0, r1), lambda: self.P[1:5, 1:5, c0:c1, r0:r1])

    def store(self, c: int) -> torch.Tensor:
        """The first C channels as (C, h, w) maps (a copy)."""
        full = self.core(0, c).permute(2, 3, 0, 4, 1).reshape(c, 4 * self.th, 4 * self.tw)
        return full[:, : self.h, : self.w]

    # ---------------------------------------------------------------- steps
    # A dense block is ~60 kernel calls per band; the views they work on are made once per
    # workspace (slicing them anew each time cost ~0.5 ms per block, ~7 % of a 100x100 forward).
    def _view(self, key: tuple, make: Callable[[], object]) -> Any:
        v = self._views.get(key)
        if v is None:
            v = self._views[key] = make()
        return v

    def steps(self) -> list[tuple[int, int, int, int]]:
        """Per band ``(r0, r1, a, b)``: compute tile rows r0:r1, then :meth:`finish` rows a:b
        (all of the band's but the last, whose ring needs the next band's first row)."""
        out, done = [], 0
        for r0, r1 in self.bands:
            b = self.th if r1 == self.th else r1 - 1
            out.append((r0, r1, done, b))
            done = b
        return out

    def conv(self, wt: torch.Tensor, bias: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        """A 3x3 convolution of the first Cin channels of ``U`` (the concatenation) at tile rows
        r0:r1, as output tiles (4, 4, Cout, rows, tw) in a reused buffer: 36 products
        (Cout, Cin) x (Cin, tiles) with the transformed kernel, then one product with the 16x36
        ``A^T (x) A^T``. The bias goes to the product slot that reaches all 16 outputs of a
        tile."""
        co, cin = wt.shape[1], wt.shape[2]
        u, m, slot, mflat, y, tiles = self._view(
            ("conv", co, cin, r0, r1), lambda: self._conv_views(co, cin, r0, r1)
        )
        torch.bmm(wt, u, out=m)
        slot.add_(bias.view(-1, 1))
        torch.mm(self._a16, mflat, out=y)
        return tiles

    def _conv_views(self, co: int, cin: int, r0: int, r1: int) -> tuple[torch.Tensor, ...]:
        n = (r1 - r0) * self.tw
        if co not in self._m:
            self._m[co] = torch.empty(36 * co * self.bands[0][1] * self.tw, device=self.P.device)
        m = self._m[co][: 36 * co * n].view(36, co, n)
        y = self._y[: 16 * co * n].view(16, -1)
        u = self.U[:, :cin, r0 * self.tw : r1 * self.tw]
        return u, m, m[_BIAS_SLOT], m.view(36, -1), y, y.view(4, 4, co, r1 - r0, self.tw)

    def clear_margin(self, c0: int, c1: int, r0: int, r1: int) -> None:
        """Zero the core pixels at rows >= h or columns >= w (the last tile row / column) in
        tile rows r0:r1."""
        for v in self._view(("margin", c0, c1, r0, r1), lambda: self._margins(c0, c1, r0, r1)):
            v.zero_()

    def _margins(self, c0: int, c1: int, r0: int, r1: int) -> list[torch.Tensor]:
        rows = self.h - 4 * (self.th - 1)  # pixels of the last tile row inside the image
        cols = self.w - 4 * (self.tw - 1)
        views = [self.P[1 + rows : 5, :, c0:c1, -1]] if rows < 4 and r1 == self.th else []
        return views + ([self.P[:, 1 + cols : 5, c0:c1, r0:r1, -1]] if cols < 4 else [])

    def finish(self, c0: int, c1: int, u0: int, a: int, b: int) -> None:
        """Tile rows a:b of channels c0:c1, whose cores and their neighbours' are final: their
        rings (rows first, then columns over all six rows: the corners), then their transform
        into U[:, u0:...]. Rows before ``a`` are finished already."""
        if b > a:
            for dst, src in self._view(("ring", c0, c1, a, b), lambda: self._rings(c0, c1, a, b)):
                dst.copy_(src)
            self.transform_in(c0, c1, u0, a, b)

    def _rings(self, c0: int, c1: int, a: int, b: int) -> list[tuple[torch.Tensor, ...]]:
        p, e = self.P, min(b, self.th - 1)  # the row boundaries a+1..e (a's is done)
        pairs = []
        if e > a:
            pairs.append((p[0, 1:5, c0:c1, a + 1 : e + 1], p[4, 1:5, c0:c1, a:e]))
            pairs.append((p[5, 1:5, c0:c1, a:e], p[1, 1:5, c0:c1, a + 1 : e + 1]))
        if self.tw > 1:
            pairs.append((p[:, 0, c0:c1, a:b, 1:], p[:, 4, c0:c1, a:b, :-1]))
            pairs.append((p[:, 5, c0:c1, a:b, :-1], p[:, 1, c0:c1, a:b, 1:]))
        return pairs

    def transform_in(self, c0: int, c1: int, u0: int, a: int, b: int) -> None:
        """U[:, u0:...] = B^T d B for the tiles of P's channels c0:c1 in tile rows a:b, as
        products with the 36x36 ``B^T (x) B^T`` (one per channel; 6x the multiply-adds of two
        6x6 passes, but one read of P and one write of U, in place: both are strided matrices
        that BLAS reads directly)."""
        b36, src, dst = self._view(("in", c0, c1, u0, a, b), lambda: self._in(c0, c1, u0, a, b))
        torch.bmm(b36, src, out=dst)

    def _in(self, c0: int, c1: int, u0: int, a: int, b: int) -> tuple[torch.Tensor, ...]:
        c, t0, t1 = c1 - c0, a * self.tw, b * self.tw
        src = self.P.view(36, -1, self.tiles)[:, c0:c1, t0:t1].transpose(0, 1)
        dst = self.U[:, u0 : u0 + c, t0:t1].transpose(0, 1)
        return self._b36.expand(c, 36, 36), src, dst


def dense_block(
    ws: TileMaps, weights: list, feat: int, grow: int, residual: torch.Tensor | None = None
) -> None:
    """One ResidualDenseBlock on channels 0:feat of ``ws.P``, in place: they become
    ``conv5(...) * 0.2 + x`` with x1..x4 = leaky_relu(conv_k(cat), 0.2), and their transform
    goes to U's first channels for the next block. Each growth map goes through P's channels
    feat:feat+grow into U after the channels before it, so conv_k reads the concatenation as U's
    first channels. With ``residual`` (the cores at the RRDB's start, (4, 4, C, th, tw)) the
    block is an RRDB's last: the result is then ``y * 0.2 + residual``, and ``residual`` becomes
    its copy for the next RRDB."""
    c = feat
    for wt, bias in weights[:4]:
        for r0, r1, a, b in ws.steps():
            dest = ws.core(feat, feat + grow, r0, r1)
            torch.ops.aten.leaky_relu.out(ws.conv(wt, bias, r0, r1), 0.2, out=dest)
            ws.clear_margin(feat, feat + grow, r0, r1)
            ws.finish(feat, feat + grow, c, a, b)
        c += grow
    for r0, r1, a, b in ws.steps():
        # x's transform in U is read by later bands' conv5 only at their own rows, so the
        # finished rows' new transform can replace it at once
        y5 = ws.conv(*weights[4], r0, r1).mul_(0.2)
        x = ws.core(0, feat, r0, r1)
        x.add_(y5)  # x + conv5 * 0.2, the rounding of conv5 * 0.2 + x
        if residual is not None:
            body = residual[:, :, :, r0:r1]
            x.mul_(0.2).add_(body)
            body.copy_(x)
        ws.clear_margin(0, feat, r0, r1)
        ws.finish(0, feat, 0, a, b)


def rdb_weights(
    rdb: nn.Module, matrix: torch.Tensor | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The five convolutions of a ResidualDenseBlock as (transformed kernel, bias) pairs."""
    convs = (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5)
    return [(transform_weight(c.weight, matrix), c.bias.detach()) for c in convs]
