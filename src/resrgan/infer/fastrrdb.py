"""Fast RRDBNet inference: the function of :meth:`resrgan.nets.RRDBNet.forward`, computed with
less memory traffic. The inference engine (:mod:`resrgan.infer.engine`) calls it explicitly, with
explicit arguments; the network class itself is only the upstream computation.

* ``winograd=True`` (fp32 on the CPU only): the trunk's dense blocks run as Winograd F(4x4, 3x3)
  in tile layout (:mod:`resrgan.infer.winograd`, ~1.8-2x faster, float rounding apart), image by
  image. Whole 4x4 blocks of the (unshuffled) input are computed either way, so tiles are rounded
  up to them (:attr:`FastRRDB.tile_multiple`).
* ``band_tiles`` (Winograd trunk only; default ``None``, the whole-image order): the execution
  order. With a number, each convolution of a dense block runs in bands of about that many
  tiles (whole tile rows; at :data:`BAND_TILES`, 1024, the per-band overhead stayed within a few
  per cent on one thread), and each band's output goes through the activation, the rings and
  the input transform while it is still in the cache, instead of every step streaming the whole
  image's maps through memory (x4plus: ~2.8 KB per pixel of workspace). No context is
  recomputed: a band's rings wait one tile row for the next band; the product and output
  buffers are one band's (x4plus at 1024x1024: ~1.1 GB less). The result equals the whole-image
  order to float rounding (the products' blocking differs; tests bound it). Measured with two
  threads on the development machine (AMD EPYC, 1 MB L2 per core, 32 MB L3; docs/benchmarks.md)
  the whole-image order was faster, 229 against 222 GFLOP/s at 512x512 and 221 against 168 at
  1024x1024, so the engine uses it.
* ``winograd=False``: direct convolutions; each dense block concatenates into two reused buffers,
  activations and residuals in place (:func:`_rdb_direct`).
* ``residual_dtype``: the dtype of the residual trunk (``conv_first``'s output, every dense
  block's and RRDB's sum, ``conv_body``'s sum). ``torch.float32`` with bf16/fp16 weights under
  autocast keeps the 69 residual additions of x4plus in fp32 (46.5 dB from fp32 instead of 44.8 for
  ~15 % more time, bench/infer.py) while every convolution runs in the weights' dtype; ``None``
  leaves it to the convolutions. In fp32 both are the same computation.
* The x4 tail runs in row bands (its maps are 16x the input; for a 512x512 input each is 1 GiB in
  fp32), each with two rows of context per side.

Tests compare the result with ``RRDBNet.forward``: identical where the convolution shapes are the
same, within float rounding otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nets.rrdbnet import ResidualDenseBlock, RRDBNet, unshuffle_factor
from . import winograd

__all__ = ["BAND_TILES", "FastRRDB", "band_rows", "forward", "winograd_applies"]

_TAIL_HALO = 2  # the tail's convs at 2x and 4x need 2 rows of context at 1x
_TAIL_MIN_ROWS = 32
_TAIL_BAND_BYTES = 32 << 20
#: Winograd tiles (4x4 trunk pixels) per band when the banded order is asked for (module doc)
BAND_TILES = 1024


def band_rows(width: int, band_tiles: int | None) -> int | None:
    """Tile rows per band of the Winograd trunk for a map ``width`` pixels wide: about
    ``band_tiles`` tiles, at least one row (``None``: the whole image, one band)."""
    if band_tiles is None:
        return None
    return max(1, band_tiles // -(-width // 4))


def winograd_applies(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the Winograd dense blocks can run: fp32 on the CPU."""
    return device.type == "cpu" and dtype == torch.float32


@dataclass(frozen=True)
class FastRRDB:
    """A runner for the inference engine: ``FastRRDB(net, winograd=..., residual_dtype=...)(x)``
    is :func:`forward` with those arguments, and says how tiles must be sized for it."""

    net: RRDBNet
    winograd: bool
    residual_dtype: torch.dtype | None = None
    band_tiles: int | None = None

    @property
    def scale(self) -> int:
        return self.net.scale

    @property
    def tile_multiple(self) -> int:
        """What tile sizes are rounded up to: the pixel-unshuffle (x2: 2, x1: 4), times 4 with the
        Winograd trunk (it computes whole 4x4 blocks, so context up to the next block is free)."""
        return unshuffle_factor(self.net.scale) * (4 if self.winograd else 1)

    def workspace_bytes_per_pixel(self) -> int:
        """Memory of the Winograd trunk's workspace per *input* pixel (0 without it; x4plus:
        3.7 KB), as one band; an image in several bands needs less (an upper bound)."""
        if not self.winograd:
            return 0
        feat, grow = _widths(self.net)
        per_trunk_px = winograd.workspace_bytes_per_pixel(
            p_channels=feat + grow, u_channels=feat + 4 * grow, conv_outs=(feat, grow)
        )
        return per_trunk_px // unshuffle_factor(self.net.scale) ** 2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return forward(
            self.net,
            x,
            winograd=self.winograd,
            residual_dtype=self.residual_dtype,
            band_tiles=self.band_tiles,
        )


@torch.inference_mode()
def forward(
    net: RRDBNet,
    x: torch.Tensor,
    *,
    winograd: bool,
    residual_dtype: torch.dtype | None,
    band_tiles: int | None = None,
) -> torch.Tensor:
    """``net(x)`` without autograd (see the module docstring for the arguments). Run under
    ``torch.autocast`` for reduced precision, with the weights already in that dtype."""
    if winograd and not (
        winograd_applies(x.device, x.dtype) and net.conv_first.weight.dtype == torch.float32
    ):
        raise ValueError(
            f"winograd=True needs fp32 weights and input on the CPU, got a {x.dtype} input on "
            f"{x.device} and {net.conv_first.weight.dtype} weights"
        )
    u = unshuffle_factor(net.scale)
    if u > 1:
        x = F.pixel_unshuffle(x, u)
    feat = net.conv_first(x)
    if residual_dtype is not None:
        feat = feat.to(residual_dtype)
    body = _trunk_winograd(net, feat, band_tiles) if winograd else _trunk_direct(net, feat)
    feat = feat + net.conv_body(body)
    del body
    return _tail_in_bands(net, feat)


def _widths(net: RRDBNet) -> tuple[int, int]:
    """(trunk channels, growth channels)."""
    feat = net.conv_first.out_channels
    grow = net.body[0].rdb1.conv1.out_channels if len(net.body) else feat
    return feat, grow


def _trunk_winograd(net: RRDBNet, feat: torch.Tensor, band_tiles: int | None) -> torch.Tensor:
    """The RRDB trunk with :mod:`resrgan.infer.winograd` dense blocks, image by image."""
    n, c, h, w = feat.shape
    g = _widths(net)[1]
    ws = winograd.TileMaps(
        h, w, p_channels=c + g, u_channels=c + 4 * g, out_channels=max(c, g), device=feat.device,
        band_rows=band_rows(w, band_tiles),
    )  # fmt: skip  # FastRRDB.workspace_bytes_per_pixel() says how large
    out = torch.empty_like(feat)
    for i in range(n):
        ws.load(feat[i])
        body = ws.core(0, c).clone()  # the RRDB residual's input
        for rrdb in net.body:
            for rdb in (rrdb.rdb1, rrdb.rdb2):
                winograd.dense_block(ws, winograd.rdb_weights(rdb, ws.weight_matrix), c, g)
            weights = winograd.rdb_weights(rrdb.rdb3, ws.weight_matrix)
            winograd.dense_block(ws, weights, c, g, residual=body)
        out[i].copy_(ws.store(c))
    return out


def _trunk_direct(net: RRDBNet, feat: torch.Tensor) -> torch.Tensor:
    """The RRDB trunk with direct convolutions, concatenations in two reused buffers."""
    ws = _DenseWorkspace(feat, extra=4 * _widths(net)[1])
    body = feat
    for rrdb in net.body:
        y = body
        for rdb in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3):
            y = _rdb_direct(rdb, y, ws)
        body = _scaled_residual(y, body)
    return body


def _tail(net: RRDBNet, feat: torch.Tensor) -> torch.Tensor:
    feat = F.leaky_relu_(net.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
    feat = F.leaky_relu_(net.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
    return net.conv_last(F.leaky_relu_(net.conv_hr(feat), 0.2))


def _tail_in_bands(net: RRDBNet, feat: torch.Tensor) -> torch.Tensor:
    """:func:`_tail` over bands of ``feat`` rows, each with ``_TAIL_HALO`` rows of context per
    side, cropped and placed. Bands hold about ``_TAIL_BAND_BYTES`` per 4x map and at least
    ``_TAIL_MIN_ROWS`` rows, so the halo adds at most 1/8 to the tail's ~8 % of the network's
    work."""
    n, c, h, w = feat.shape
    per_row = c * 16 * w * feat.element_size()  # one 1x row of a 4x map
    rows = max(_TAIL_MIN_ROWS, _TAIL_BAND_BYTES // max(per_row, 1))
    if h <= rows + 2 * _TAIL_HALO:
        return _tail(net, feat)
    out: torch.Tensor | None = None
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - _TAIL_HALO), min(h, r1 + _TAIL_HALO)
        y = _tail(net, feat[:, :, a:b])[:, :, 4 * (r0 - a) : 4 * (r1 - a)]
        if out is None:
            fmt = torch.channels_last if _is_channels_last(feat) else torch.contiguous_format
            out = torch.empty(
                (n, y.shape[1], 4 * h, 4 * w), dtype=y.dtype, device=y.device, memory_format=fmt
            )
        out[:, :, 4 * r0 : 4 * r1] = y
    assert out is not None
    return out


class _DenseWorkspace:
    """Two buffers per dtype, each large enough for a dense block's widest concatenation, handed
    out in turn as (N, C, H, W) tensors in the input's memory format (the concatenation that
    feeds one conv is never the buffer that the next concatenation writes)."""

    def __init__(self, like: torch.Tensor, extra: int) -> None:
        n, c, h, w = like.shape
        self._shape = (n, h, w)
        self._size = n * (c + extra) * h * w
        self._device = like.device
        self._cl = _is_channels_last(like)
        self._bufs: dict[torch.dtype, list[torch.Tensor]] = {}
        self._turn = 0

    def next(self, channels: int, dtype: torch.dtype) -> torch.Tensor:
        n, h, w = self._shape
        if dtype not in self._bufs:
            self._bufs[dtype] = [
                torch.empty(self._size, dtype=dtype, device=self._device) for _ in range(2)
            ]
        flat = self._bufs[dtype][self._turn][: n * channels * h * w]
        self._turn ^= 1
        if self._cl:
            return flat.view(n, h, w, channels).permute(0, 3, 1, 2)
        return flat.view(n, channels, h, w)


def _is_channels_last(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _scaled_residual(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y * 0.2 + x`` (in place on ``y`` when the dtypes allow)."""
    if y.dtype == torch.promote_types(y.dtype, x.dtype):
        return y.mul_(0.2).add_(x)
    return y * 0.2 + x


def _rdb_direct(m: ResidualDenseBlock, x: torch.Tensor, ws: _DenseWorkspace) -> torch.Tensor:
    """``m(x)`` with the concatenations written into ``ws`` and activations in place.

    The convs see ``x`` in the weights' dtype and the residual sum is taken in ``x``'s dtype (the
    residual trunk's): the upstream block when they agree, the fp32 residual trunk when ``x`` is
    fp32 and the weights are not.
    """
    cat = x.to(m.conv1.weight.dtype)
    for conv in (m.conv1, m.conv2, m.conv3, m.conv4):
        y = F.leaky_relu_(conv(cat), 0.2)
        dtype = torch.promote_types(cat.dtype, y.dtype)
        cat = torch.cat((cat, y), 1, out=ws.next(cat.shape[1] + y.shape[1], dtype))
    return _scaled_residual(m.conv5(cat).to(x.dtype), x)
