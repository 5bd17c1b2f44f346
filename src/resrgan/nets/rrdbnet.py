"""RRDBNet, the ESRGAN / Real-ESRGAN generator.

Class name, constructor arguments and state-dict keys follow BasicSR's ``RRDBNet`` so official
weights load
with ``strict=True``. Scale 2 and 1 put a pixel-unshuffle in front of the x4 trunk (spec §2.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import winograd


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections; output = conv5(...) * 0.2 + x."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        g = num_grow_ch
        self.conv1 = nn.Conv2d(num_feat, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * g, num_feat, 3, 1, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three RDBs, output * 0.2 + x."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32).

    Input (B, num_in_ch, H, W) -> output (B, num_out_ch, H*scale, W*scale); linear output, no clamp.
    For scale 2 (1) H and W must be divisible by 2 (4).
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self._unshuffle = unshuffle
        self._num_grow_ch = num_grow_ch
        # inference on the CPU in fp32 runs the dense blocks as Winograd F(4x4, 3x3)
        # (resrgan.nets.winograd: ~1.8-2x faster, float rounding apart); False: direct convolutions
        self.winograd = True
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(
            *[RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block)]
        )
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._unshuffle > 1:
            x = F.pixel_unshuffle(x, self._unshuffle)
        feat = self.conv_first(x)
        if not torch.is_grad_enabled():
            return self._forward_inference(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

    def _forward_inference(self, feat: torch.Tensor) -> torch.Tensor:
        """The same function as the training forward (tests: identical for x4/x2, within float
        rounding where band shapes change the conv algorithm), computed with less
        memory traffic: in fp32 on the CPU the trunk runs Winograd dense blocks
        (:meth:`_trunk_winograd`); otherwise the dense blocks concatenate into two reused
        buffers with activations and residuals in place. The x4 tail runs in row bands (its maps
        are 16x the input; for a 512x512 input each is 1 GiB in fp32)."""
        if winograd.has_hooks(self.body):  # someone watches the blocks: call them as modules
            body = self.body(feat)
        elif self.winograd and winograd.supported(feat, self.body):
            body = self._trunk_winograd(feat)
        else:
            ws = _DenseWorkspace(feat, extra=4 * self._num_grow_ch)
            body = feat
            for rrdb in self.body:
                y = body
                for rdb in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3):
                    y = _rdb_inference(rdb, y, ws)
                body = _scaled_residual(y, body)
            del ws
        feat = feat + self.conv_body(body)
        del body
        return self._tail_in_bands(feat)

    def winograd_bytes_per_pixel(self) -> int:
        """Memory of the Winograd trunk's workspace per trunk pixel (x4plus: 3.7 KB)."""
        feat, g = self.conv_first.out_channels, self._num_grow_ch
        return winograd.workspace_bytes_per_pixel(
            p_channels=feat + g, u_channels=feat + 4 * g, conv_outs=(feat, g)
        )

    def _trunk_winograd(self, feat: torch.Tensor) -> torch.Tensor:
        """The RRDB trunk with :mod:`resrgan.nets.winograd` dense blocks, image by image."""
        n, c, h, w = feat.shape
        g = self._num_grow_ch
        ws = winograd.TileMaps(
            h,
            w,
            p_channels=c + g,
            u_channels=c + 4 * g,
            out_channels=max(c, g),
            device=feat.device,
        )  # winograd_bytes_per_pixel() says how large
        out = torch.empty_like(feat)
        for i in range(n):
            ws.load(feat[i])
            body = ws.core(0, c).clone()  # the RRDB residual's input
            for rrdb in self.body:
                for rdb in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3):
                    winograd.dense_block(ws, winograd.rdb_weights(rdb, ws.weight_matrix), c, g)
                winograd.rrdb_end(ws, body)
            out[i].copy_(ws.store(c))
        return out

    def _tail(self, feat: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu_(
            self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2
        )
        feat = F.leaky_relu_(
            self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2
        )
        return self.conv_last(F.leaky_relu_(self.conv_hr(feat), 0.2))

    def _tail_in_bands(self, feat: torch.Tensor) -> torch.Tensor:
        """:meth:`_tail` over bands of ``feat`` rows, each with ``_TAIL_HALO`` rows of context
        per side (the tail's four 3x3 convs at 2x and 4x need 2 rows at 1x), cropped and placed.
        Bands hold about ``_TAIL_BAND_BYTES`` per 4x map and at least ``_TAIL_MIN_ROWS`` rows, so
        the halo adds at most 1/8 to the tail's ~8 % of the network's work."""
        n, c, h, w = feat.shape
        per_row = c * 16 * w * feat.element_size()  # one 1x row of a 4x map
        rows = max(_TAIL_MIN_ROWS, _TAIL_BAND_BYTES // max(per_row, 1))
        if h <= rows + 2 * _TAIL_HALO:
            return self._tail(feat)
        out: torch.Tensor | None = None
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a, b = max(0, r0 - _TAIL_HALO), min(h, r1 + _TAIL_HALO)
            y = self._tail(feat[:, :, a:b])[:, :, 4 * (r0 - a) : 4 * (r1 - a)]
            if out is None:
                fmt = torch.channels_last if _is_channels_last(feat) else torch.contiguous_format
                out = torch.empty(
                    (n, y.shape[1], 4 * h, 4 * w), dtype=y.dtype, device=y.device, memory_format=fmt
                )
            out[:, :, 4 * r0 : 4 * r1] = y
        assert out is not None
        return out


_TAIL_HALO = 2
_TAIL_MIN_ROWS = 32
_TAIL_BAND_BYTES = 32 << 20


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


def _rdb_inference(m: ResidualDenseBlock, x: torch.Tensor, ws: _DenseWorkspace) -> torch.Tensor:
    """``m(x)`` without autograd: concatenations written into ``ws``, activations in place.

    The convs see ``x`` in the weights' dtype and the residual sum is taken in ``x``'s dtype:
    the plain forward when they agree, and the fp32 residual trunk of
    :func:`resrgan.infer.precision.keep_residual_fp32` when ``x`` is fp32 and the weights are not.
    """
    cat = x.to(m.conv1.weight.dtype)
    for conv in (m.conv1, m.conv2, m.conv3, m.conv4):
        y = F.leaky_relu_(conv(cat), 0.2)
        dtype = torch.promote_types(cat.dtype, y.dtype)
        cat = torch.cat((cat, y), 1, out=ws.next(cat.shape[1] + y.shape[1], dtype))
    return _scaled_residual(m.conv5(cat).to(x.dtype), x)
