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


def _input_kernel(device: torch.device) -> torch.Tensor:
    """``B^T d B`` as a stride-4 6x6 convolution with 36 outputs, one per Winograd position."""
    bt = _f64(_BT)
    return torch.einsum("ai,bj->abij", bt, bt).reshape(36, 1, 6, 6).float().to(device)


def _output_matrix(device: torch.device) -> torch.Tensor:
    """``A^T m A`` as a (16, 36) matrix: output (p, q) of a tile from its 36 products."""
    at = _f64(_AT)
    return torch.einsum("pa,qb->pqab", at, at).reshape(16, 36).float().to(device)


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
    """Workspace and weights for running an RRDBNet trunk's dense blocks on (C, H, W) maps."""

    def __init__(self, h: int, w: int, num_feat: int, num_grow_ch: int, device: torch.device):
        self.h, self.w = h, w
        self.th, self.tw = -(-h // 4), -(-w // 4)
        self.feat, self.grow = num_feat, num_grow_ch
        channels = num_feat + 4 * num_grow_ch
        tiles = self.th * self.tw
        self.U = torch.empty(channels, 36, tiles, device=device)
        # zero border; interiors are written, the margins beyond h, w are kept at zero
        self.pad = torch.zeros(channels, 4 * self.th + 2, 4 * self.tw + 2, device=device)
        self._bt = _input_kernel(device)
        self._at = _output_matrix(device)
        self.weight_matrix = _weight_matrix(device)
        self._y = {c: torch.empty(16, c * tiles, device=device) for c in {num_feat, num_grow_ch}}

    def interior(self, c0: int, c1: int) -> torch.Tensor:
        """Channels c0:c1 of ``pad`` without the border: (c, h, w)."""
        return self.pad[c0:c1, 1 : self.h + 1, 1 : self.w + 1]

    def _transform_in(self, c0: int, c1: int) -> None:
        d = self.pad[c0:c1].unsqueeze(1)
        self.U[c0:c1] = F.conv2d(d, self._bt, stride=4).view(c1 - c0, 36, -1)

    def _products(self, wt: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(36, Cout, tiles) products of the transformed kernel with the first Cin channels of
        ``U``; the bias goes to the slot that reaches every output."""
        cin = wt.shape[2]
        m = torch.bmm(wt, self.U[:cin].transpose(0, 1))
        m[_BIAS_SLOT].add_(bias.view(-1, 1))
        return m

    def _tiles_out(self, m: torch.Tensor) -> torch.Tensor:
        """(36, C, tiles) -> (C, th, 4, tw, 4): the output tiles, a strided view."""
        c = m.shape[1]
        y = torch.mm(self._at, m.view(36, -1), out=self._y[c])
        return y.view(4, 4, c, self.th, self.tw).permute(2, 3, 0, 4, 1)

    def _dest(self, c0: int, c1: int) -> torch.Tensor:
        """Channels c0:c1 of ``pad`` over the whole tiles, as (c, th, 4, tw, 4)."""
        full = self.pad[c0:c1, 1 : 4 * self.th + 1, 1 : 4 * self.tw + 1]
        return full.unflatten(1, (self.th, 4)).unflatten(3, (self.tw, 4))

    def _clear_margin(self, c0: int, c1: int) -> None:
        if self.h < 4 * self.th:
            self.pad[c0:c1, self.h + 1 :].zero_()
        if self.w < 4 * self.tw:
            self.pad[c0:c1, :, self.w + 1 :].zero_()

    def rdb(self, weights: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """One dense block on ``interior(0, num_feat)``, in place: it becomes
        ``conv5(...) * 0.2 + x`` with x1..x4 = leaky_relu(conv_k(cat), 0.2) as in
        :class:`resrgan.nets.rrdbnet.ResidualDenseBlock`."""
        f, g = self.feat, self.grow
        self._transform_in(0, f)
        c = f
        for wt, bias in weights[:4]:
            dest = self._dest(c, c + g)
            torch.ops.aten.leaky_relu.out(self._tiles_out(self._products(wt, bias)), 0.2, out=dest)
            self._clear_margin(c, c + g)
            self._transform_in(c, c + g)
            c += g
        wt, bias = weights[4]
        y5 = self._tiles_out(self._products(wt, bias)).mul(0.2)
        self._dest(0, f).add_(y5)  # x + conv5 * 0.2, the rounding of conv5 * 0.2 + x
        self._clear_margin(0, f)


def rdb_weights(
    rdb: nn.Module, matrix: torch.Tensor | None = None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The five convolutions of a ResidualDenseBlock as (transformed kernel, bias) pairs."""
    convs = (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4, rdb.conv5)
    return [(transform_weight(c.weight, matrix), c.bias.detach().float()) for c in convs]
