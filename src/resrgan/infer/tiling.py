"""Tile plans with context and blended seams (pure NumPy; no torch, no devices).

The original ``RealESRGANer.tile_process`` cuts the image into ``tile`` x ``tile`` cores, runs the
network on each core plus ``tile_pad`` context pixels (clipped at the image border) and hard-crops
the core back out. Each output pixel comes from one tile, and the network's receptive field is far
larger than 10 px, so the seams show (about 32 dB PSNR against the untiled result for
RealESRGAN_x4plus at tile 64).

Here neighbouring tiles *overlap* by ``2 * overlap`` input pixels around every seam, and their
outputs are cross-faded over that band with weights that sum to exactly one (a raised-cosine ramp,
in output pixel coordinates); beyond the blended band each tile still sees ``tile_pad`` context
pixels that are computed and thrown away. Away from seams the result is the single tile's output,
as in the original.

Everything is separable: a plan is a list of :class:`Span` along y times a list along x.
:class:`BandAssembler` accumulates weighted tile outputs one tile row ("band") at a time, so a
full-size float image never exists; finished rows are handed to a ``sink`` callback (which
quantises them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BandAssembler",
    "Span",
    "TilePlan",
    "axis_spans",
    "axis_weights",
    "computed_fraction",
    "plan_tiles",
    "reflect_indices",
]


@dataclass(frozen=True)
class Span:
    """One tile's extent along one axis, in input pixels (half-open ranges).

    ``core``: the cells this tile owns (the cores partition the axis).
    ``support``: where its output has non-zero weight (core plus the blend band on inner sides).
    ``start``/``stop``: the range the network actually sees (support plus context, clipped to the
    axis).
    """

    core_start: int
    core_stop: int
    support_start: int
    support_stop: int
    start: int
    stop: int
    blend_before: int  # blend half-width at the start side (0 at the image border)
    blend_after: int  # blend half-width at the stop side (0 at the image border)

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class TilePlan:
    """Separable tile plan for an (height, width) input: tiles are ``ys x xs`` in row-major
    order."""

    height: int
    width: int
    ys: tuple[Span, ...]
    xs: tuple[Span, ...]

    @property
    def num_tiles(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def computed_pixels(self) -> int:
        """Input pixels the network processes over all tiles (>= height * width)."""
        return sum(s.size for s in self.ys) * sum(s.size for s in self.xs)


def axis_spans(
    length: int, tile: int, *, tile_pad: int, overlap: int, multiple: int = 1
) -> tuple[Span, ...]:
    """Split ``[0, length)`` into near-equal cores of at most ``tile`` cells.

    ``tile <= 0`` or ``tile >= length`` gives one span covering the axis (no tiling). Each inner
    seam gets a blend band of half-width ``min(overlap, smallest core // 2)``, and each span
    ``tile_pad`` cells of context beyond its support, clipped to ``[0, length)``, then more
    context (after, then before) until its size is a multiple of ``multiple`` where the axis
    allows: a pixel-unshuffle needs it, and a network that works on blocks computes those cells
    anyway. With ``length`` a multiple of ``multiple``, every span's size is one.
    """
    if length <= 0:
        raise ValueError(f"axis length must be positive, got {length}")
    if tile_pad < 0 or overlap < 0:
        raise ValueError(f"tile_pad and overlap must be >= 0, got {tile_pad} and {overlap}")
    n = 1 if tile <= 0 or tile >= length else math.ceil(length / tile)
    bounds = [round(i * length / n) for i in range(n + 1)]
    min_core = min(b - a for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    half = min(overlap, min_core // 2) if n > 1 else 0
    spans = []
    for i in range(n):
        c0, c1 = bounds[i], bounds[i + 1]
        before = half if i > 0 else 0
        after = half if i < n - 1 else 0
        s0, s1 = c0 - before, c1 + after
        spans.append(
            Span(
                core_start=c0,
                core_stop=c1,
                support_start=s0,
                support_stop=s1,
                **_rounded(max(0, s0 - tile_pad), min(length, s1 + tile_pad), length, multiple),
                blend_before=before,
                blend_after=after,
            )
        )
    return tuple(spans)


def _rounded(start: int, stop: int, length: int, multiple: int) -> dict[str, int]:
    extra = (-(stop - start)) % multiple
    after = min(extra, length - stop)
    before = min(extra - after, start)
    return {"start": start - before, "stop": stop + after}


def plan_tiles(
    height: int, width: int, *, tile: int, tile_pad: int = 10, overlap: int = 24,
    multiple: int = 1,
) -> TilePlan:  # fmt: skip
    """Tile plan for an ``height x width`` input with cores of at most ``tile x tile`` (0: one
    tile) and tile sizes rounded up to ``multiple`` (see :func:`axis_spans`)."""
    kw = {"tile_pad": tile_pad, "overlap": overlap, "multiple": multiple}
    return TilePlan(
        height=height,
        width=width,
        ys=axis_spans(height, tile, **kw),
        xs=axis_spans(width, tile, **kw),
    )


def computed_fraction(
    height: int, width: int, *, tile: int, tile_pad: int, overlap: int, multiple: int = 1
) -> float:
    """Computed input pixels over image pixels for a plan (1.0 when untiled)."""
    plan = plan_tiles(
        height, width, tile=tile, tile_pad=tile_pad, overlap=overlap, multiple=multiple
    )
    return plan.computed_pixels / (height * width)


def _ramp(n: int) -> np.ndarray:
    """Rising raised-cosine weights at the centres of ``n`` cells, strictly inside (0, 1).

    ``_ramp(n)[::-1] == 1 - _ramp(n)``, so the falling side of one tile and the rising side of the
    next sum to one.
    """
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def axis_weights(span: Span, scale: int) -> np.ndarray:
    """Blend weights over the span's support in *output* cells (length ``support size * scale``).

    1 on the core away from seams; a raised-cosine ramp across each blend band of ``2 * half *
    scale`` output cells. For consecutive spans the weights sum to exactly 1 wherever they overlap.
    """
    n = (span.support_stop - span.support_start) * scale
    w = np.ones(n, dtype=np.float32)
    b = 2 * span.blend_before * scale
    if b:
        w[:b] = _ramp(b)
    a = 2 * span.blend_after * scale
    if a:
        w[n - a :] = 1.0 - _ramp(a)
    return w


def reflect_indices(start: int, stop: int, length: int) -> np.ndarray:
    """Source indices for positions ``start..stop-1`` of an axis reflect-padded past ``length``.

    Matches ``torch.nn.functional.pad(mode='reflect')`` (no edge repeat: ``length -> length - 2``)
    where that is defined, and keeps bouncing for pads longer than the axis (length 1 repeats its
    only cell).
    """
    idx = np.arange(start, stop)
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    idx = np.mod(idx, period)
    return np.where(idx < length, idx, period - idx)


class BandAssembler:
    """Accumulate weighted tile outputs band by band and hand finished rows to ``sink``.

    ``sink(row0, rows)`` receives float32 ``(C, n, out_width)`` arrays of final (blended) values
    for output rows ``row0 .. row0 + n - 1``; rows arrive in order and each exactly once (the array
    is a view, valid during the call). Float memory: one reused buffer of one tile row,
    ``C * (tile + 2 * overlap) * scale * out_width`` floats.
    """

    def __init__(
        self,
        plan: TilePlan,
        scale: int,
        channels: int,
        sink: Callable[[int, np.ndarray], None],
    ) -> None:
        self.plan = plan
        self.scale = scale
        self.channels = channels
        self.sink = sink
        self.out_width = plan.width * scale
        self._xw = [axis_weights(s, scale) for s in plan.xs]
        self._row = -1
        self._acc: np.ndarray | None = None
        self._buf: np.ndarray | None = None  # one band-sized float buffer, reused for every band
        self._acc_start = 0
        self._yw: np.ndarray | None = None

    def begin_row(self, iy: int) -> None:
        """Start tile row ``iy`` (rows must be started in order 0, 1, ...)."""
        if iy != self._row + 1:
            raise ValueError(
                f"tile rows must be processed in order: expected {self._row + 1}, got {iy}"
            )
        span = self.plan.ys[iy]
        s = self.scale
        start, stop = span.support_start * s, span.support_stop * s
        if self._buf is None:
            rows = max((y.support_stop - y.support_start) * s for y in self.plan.ys)
            self._buf = np.zeros((self.channels, rows, self.out_width), dtype=np.float32)
        carry = 0
        if self._acc is not None:
            # the previous band's rows that this band also covers (its blend band) move to the top
            carry = max(self._acc_start + self._acc.shape[1] - start, 0)
            if carry:
                kept = self._acc[:, start - self._acc_start :].copy()
                self._buf[:, :carry] = kept
        acc = self._buf[:, : stop - start]
        acc[:, carry:] = 0.0
        self._acc, self._acc_start, self._row = acc, start, iy
        self._yw = axis_weights(span, s)

    def add(self, ix: int, tile_out: np.ndarray) -> None:
        """Add the network output ``(C, ys.size * scale, xs.size * scale)`` of tile (row, ix)."""
        assert self._acc is not None and self._yw is not None, "begin_row() first"
        ys, xs, s = self.plan.ys[self._row], self.plan.xs[ix], self.scale
        expect = (self.channels, ys.size * s, xs.size * s)
        if tuple(tile_out.shape) != expect:
            raise ValueError(
                f"tile ({self._row}, {ix}) output shape {tile_out.shape}, expected {expect}"
            )
        oy = (ys.support_start - ys.start) * s
        ox = (xs.support_start - xs.start) * s
        h = (ys.support_stop - ys.support_start) * s
        w = (xs.support_stop - xs.support_start) * s
        part = tile_out[:, oy : oy + h, ox : ox + w]
        weight = self._yw[:, None] * self._xw[ix][None, :]
        x0 = xs.support_start * s
        self._acc[:, :, x0 : x0 + w] += part * weight

    def end_row(self) -> None:
        """Finish the current tile row: emit every row no later band touches."""
        assert self._acc is not None
        s = self.scale
        if self._row + 1 < len(self.plan.ys):
            done = self.plan.ys[self._row + 1].support_start * s - self._acc_start
        else:
            done = self._acc.shape[1]
        if done > 0:
            self.sink(self._acc_start, self._acc[:, :done])
