"""Winograd F(4x4, 3x3) for RRDBNet's dense blocks on the CPU (inference only).

A 3x3 convolution computes each 4x4 output tile from a 6x6 input tile with 36 products per
(input, output) channel pair instead of 144 (Lavin & Gray, 2016): the input tile and the kernel
go to a 6x6 "Winograd domain" (``B^T d B``, ``G g G^T``), multiply element-wise (summed over the
input channels: 36 matrix products), and come back (``A^T m A``).

Alone, a Winograd convolution pays for two transforms per call. In a residual dense block the
five convolutions read growing concatenations of the same maps (x, x1..x4), so each map is
transformed once and its transform is read by every later convolution: the block's input
transforms cover 64 + 4*32 channels, its products are 2.25 multiply-adds per output pixel instead
of 9, and the block runs about 1.5x faster than PyTorch's direct convolutions on a 2-core AVX-512
machine (bench/infer.py). The result differs from the direct convolution by float rounding only
(tests: against float64, both are within a few 1e-7 relative).

Layout: one image at a time, channels planar. ``pad`` holds the block's maps with a zero border
(1 pixel, and up to 3 more rows/columns to a whole number of tiles); ``U`` holds their transforms
as (channel, 36, tile).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
    """(Cout, Cin, 3, 3) kernel -> (36, Cout, Cin) ``G g G^T`` in float32: one matrix product,
    ~0.25 ms for a dense block's five kernels, so it is done per call instead of keeping 4x the
    weights in memory (x4plus: 267 MB)."""
    co, ci = weight.shape[:2]
    k = _weight_matrix(weight.device) if matrix is None else matrix
    flat = weight.detach().float().reshape(co * ci, 9)
    return torch.mm(k, flat.t()).view(36, co, ci)


def supported(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """The dense blocks take the Winograd path: fp32 on the CPU, no autocast, no autograd."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    )


class DenseBlockWinograd:
    """An RRDBNet trunk's dense blocks on one image's maps, kept in tile layout.

    ``P`` (6, 6, C, th, tw) holds the block's input x and the growth maps being made, as the 6x6
    input tiles the transform reads: position (a, b) of tile (i, j) is pixel
    (4i + a - 1, 4j + b - 1). The 4x4 core (a, b in 1..4) is written by the output transform of
    the convolution that makes the map; the ring is copied from the neighbouring tiles' cores
    and is zero at the image border (set once). ``U`` (36, C, tiles) holds the transforms of the
    concatenation x, x1..x4 (a growth map is only needed in P until it is transformed). Every
    step is then a matrix product or a copy of whole (channels x tiles) rows, with no gather.
    Memory: 36 floats per tile and channel in U (192 channels) and P (96): ~2.6 KB per pixel."""

    def __init__(self, h: int, w: int, num_feat: int, num_grow_ch: int, device: torch.device):
        self.h, self.w = h, w
        self.th, self.tw = -(-h // 4), -(-w // 4)
        self.feat, self.grow = num_feat, num_grow_ch
        channels = num_feat + 4 * num_grow_ch
        self.tiles = self.th * self.tw
        self.P = torch.zeros(6, 6, num_feat + num_grow_ch, self.th, self.tw, device=device)
        self.U = torch.empty(36, channels, self.tiles, device=device)
        self.weight_matrix = _weight_matrix(device)
        bt = _f64(_BT)
        self._b36 = torch.einsum("ai,bj->abij", bt, bt).reshape(36, 36).float().to(device)
        at = _f64(_AT)
        self._a16 = torch.einsum("pa,qb->pqab", at, at).reshape(16, 36).float().to(device)
        self._y = torch.empty(16 * max(num_feat, num_grow_ch) * self.tiles, device=device)

    # ---------------------------------------------------------------- layout conversions
    def load(self, x: torch.Tensor) -> None:
        """(C, h, w) maps -> the core and ring of the first C channels."""
        c = x.shape[0]
        core = self.P[1:5, 1:5, :c].permute(2, 3, 0, 4, 1)  # (c, th, 4, tw, 4)
        full = torch.zeros(c, 4 * self.th, 4 * self.tw, device=x.device)
        full[:, : self.h, : self.w] = x
        core.copy_(full.unflatten(1, (self.th, 4)).unflatten(3, (self.tw, 4)))
        self._ring(0, c)

    def core(self, c0: int, c1: int) -> torch.Tensor:
        """The cores of channels c0:c1: (4, 4, c, th, tw), a view."""
        return self.P[1:5, 1:5, c0:c1]

    def store(self, c: int) -> torch.Tensor:
        """The first C channels as (C, h, w) maps."""
        core = self.core(0, c).permute(2, 3, 0, 4, 1).reshape(c, 4 * self.th, 4 * self.tw)
        return core[:, : self.h, : self.w]

    def rrdb_end(self, body: torch.Tensor) -> None:
        """End of an RRDB: the first C channels become ``y * 0.2 + body`` (``body``: the cores
        at the RRDB's start, (4, 4, C, th, tw)), and ``body`` their copy for the next RRDB."""
        c = body.shape[2]
        self.core(0, c).mul_(0.2).add_(body)
        self._ring(0, c)
        body.copy_(self.core(0, c))

    # ---------------------------------------------------------------- steps
    def _ring(self, c0: int, c1: int) -> None:
        """Copy the neighbours' edge pixels into the rings of channels c0:c1 (after the cores
        are final): rows first, then columns over all six rows (the corners)."""
        p = self.P
        if self.th > 1:
            p[0, 1:5, c0:c1, 1:].copy_(p[4, 1:5, c0:c1, :-1])
            p[5, 1:5, c0:c1, :-1].copy_(p[1, 1:5, c0:c1, 1:])
        if self.tw > 1:
            p[:, 0, c0:c1, :, 1:].copy_(p[:, 4, c0:c1, :, :-1])
            p[:, 5, c0:c1, :, :-1].copy_(p[:, 1, c0:c1, :, 1:])

    def _clear_margin(self, c0: int, c1: int) -> None:
        """Zero the core pixels at rows >= h or columns >= w (the last tile row / column)."""
        rows = self.h - 4 * (self.th - 1)  # pixels of the last tile row inside the image
        if rows < 4:
            self.P[1 + rows : 5, :, c0:c1, -1].zero_()
        cols = self.w - 4 * (self.tw - 1)
        if cols < 4:
            self.P[:, 1 + cols : 5, c0:c1, :, -1].zero_()

    def _transform_in(self, c0: int, c1: int, u0: int) -> None:
        """U[:, u0:...] = B^T d B for every tile of P's channels c0:c1, as one product with the
        36x36 ``B^T (x) B^T``: 6x the multiply-adds of two 6x6 passes, but one read of P and one
        write of U, in place (both are strided matrices that BLAS reads directly)."""
        n = (c1 - c0) * self.tiles
        src = self.P[:, :, c0:c1].view(36, n)
        torch.mm(self._b36, src, out=self.U[:, u0 : u0 + c1 - c0].view(36, n))

    def _conv(self, wt: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """A 3x3 convolution of the first Cin channels of ``U`` (the concatenation), as output
        tiles (4, 4, Cout, th, tw) in a reused buffer: 36 products (Cout, Cin) x (Cin, tiles)
        with the transformed kernel, then one product with the 16x36 ``A^T (x) A^T``. The bias
        goes to the product slot that reaches all 16 outputs of a tile."""
        m = torch.bmm(wt, self.U[:, : wt.shape[2]])
        m[_BIAS_SLOT].add_(bias.view(-1, 1))
        co = wt.shape[1]
        y = self._y[: 16 * co * self.tiles].view(16, -1)
        torch.mm(self._a16, m.view(36, -1), out=y)
        return y.view(4, 4, co, self.th, self.tw)

    def rdb(self, weights: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One dense block on the first num_feat channels, in place: they become
        ``conv5(...) * 0.2 + x`` with x1..x4 = leaky_relu(conv_k(cat), 0.2) as in
        :class:`resrgan.nets.rrdbnet.ResidualDenseBlock`."""
        f, g = self.feat, self.grow
        self._transform_in(0, f, 0)
        c = f
        for wt, bias in weights[:4]:
            torch.ops.aten.leaky_relu.out(self._conv(wt, bias), 0.2, out=self.core(f, f + g))
            self._clear_margin(f, f + g)
            self._ring(f, f + g)
            self._transform_in(f, f + g, c)
            c += g
        y5 = self._conv(*weights[4]).mul_(0.2)
        self.core(0, f).add_(y5)  # x + conv5 * 0.2, the rounding of conv5 * 0.2 + x
        self._clear_margin(0, f)
        self._ring(0, f)


def rdb_weights(
    rdb: nn.Module, matrix: torch.Tensor | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The five convolutions of a ResidualDenseBlock as (transformed kernel, bias) pairs."""
    convs = (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5)
    return [(transform_weight(c.weight, matrix), c.bias.detach().float()) for c in convs]
