"""The inference engine: float tensors in, float tensors out, with precision, tiles and retries.

What differs between runtimes is the **runner**: a callable from an (N, C, h, w) float tensor to
an (N, C, h * scale, w * scale) float tensor, with an integer ``scale`` (and, optionally, the
``tile_multiple`` its input sizes are rounded up to). The engine makes one per network:

* an :class:`~resrgan.nets.RRDBNet` runs through :class:`~resrgan.infer.fastrrdb.FastRRDB`, with
  the Winograd trunk where it applies (fp32 on the CPU, unless ``winograd=False``) and the
  residual trunk in ``residual_dtype`` when the weights are bf16/fp16;
* any other ``nn.Module`` (SRVGGNetCompact, an onnxruntime-backed module with a ``scale``, a
  ``torch.compile``'d network) is called as it is;
* a callable that is not an ``nn.Module`` but has a ``scale`` is used as the runner unchanged.

Everything else is the same for every runner. An image is run as one or more :class:`Pass` es
(colour, alpha) over a plan of tiles (:mod:`resrgan.infer.tiling`: context plus blended seams):

1. ``pre_pad`` then the mod pad (2 for scale 2, 4 for scale 1), both *reflect* on the right and
   bottom only, as index arrays into the source (no padded copy is made);
2. each tile's pixels come from the pass's ``source``, go to the device (channels-last where
   supported) and through the runner, under ``torch.autocast`` for bf16/fp16 (the weights are
   already in that dtype; fp32 tensors the network keeps stay fp32);
3. outputs are blended one tile row at a time and finished rows, cropped of the padding, go to the
   pass's ``sink`` (no full-size float image exists unless the sink makes one).

Retries: out of memory in a tile halves the tile and redoes the image (down to ``MIN_TILE``); later
images start at the tile that worked. A reduced-precision tile with NaN/Inf, or all black from a
non-black input (upstream issue #330), redoes *that image* in fp32 with a warning; the next image
tries the configured precision again (:attr:`Engine.dtype` says what the last image used).

N frames of the same size go through one network call per tile (``Pass.frames``,
:meth:`Engine.upscale_tensor`), tiled or not; the result equals the frames one by one.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import ResrganError, UsageError, WeightsError
from ..nets import RRDBNet
from . import fastrrdb
from .options import MIN_TILE
from .precision import half_output_is_bad
from .resolve import module_scale
from .tiling import BandAssembler, TilePlan, plan_tiles, reflect_indices

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OVERLAP", "MIN_TILE", "Engine", "Pass", "Runner", "auto_tile"]

# blend half-width (input px) around every seam; with tile_pad 10 this gives >= 45 dB against the
# untiled result for RealESRGAN_x4plus at tile 64 (bench/infer.py prints the table)
DEFAULT_OVERLAP = 24
_CHANNELS = 3  # the networks are RGB in, RGB out
_MOD_PAD = {2: 2, 1: 4}  # the original pads x2 / x1 inputs to these multiples (pixel-unshuffle)

#: ``source(rows, cols)``: the input at those rows and columns of the image, float32
#: (N, 3, len(rows), len(cols)) in [0, 1] (any device; the engine moves it)
Source = Callable[[np.ndarray, np.ndarray], torch.Tensor]
#: ``sink(row0, band)``: finished output rows ``row0 ..`` as float32 (N * 3, n, width * scale),
#: unclamped, padding cropped off; a view valid during the call
Sink = Callable[[int, np.ndarray], None]
Progress = Callable[[int, int], None]


class Runner(Protocol):
    """A network on one runtime: NCHW float tensor in, NCHW float tensor ``scale`` x larger out."""

    scale: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Pass:
    """One network pass over an image (or ``frames`` frames of the same size)."""

    source: Source
    sink: Sink
    frames: int = 1


class _HalfPrecisionFailed(Exception):
    """Internal: a reduced-precision tile came out NaN/Inf or black."""


@dataclass(frozen=True)
class _Net:
    """A runner and what the engine needs to know about it."""

    run: Callable[[torch.Tensor], torch.Tensor]
    tile_multiple: int
    workspace_bytes_per_pixel: int  # per input pixel, beyond the activations


class Engine:
    """Run a network over images and frames (see the module docstring).

    ``model``: an ``nn.Module`` (placed on ``device`` in ``dtype``, eval mode, no gradients) or a
    runner. ``scale``: the network's upscale (default: its ``scale``/``upscale`` attribute, else
    probed on a 16x16 input). ``tile``: core tile in input pixels, 0 for none, ``"auto"`` from free
    memory; ``tile_pad``: context thrown away on each side; ``tile_overlap``: blend half-width
    around seams; ``pre_pad``: reflect padding on the right and bottom, cropped off after.
    ``winograd``: RRDBNet's Winograd trunk (``None``: where it applies, fp32 on the CPU).
    ``residual_dtype``: RRDBNet's residual trunk under bf16/fp16 (``None``: the convolutions').
    ``compile``: run ``torch.compile(model)`` instead (a long first call, a recompile per tile
    shape).
    """

    def __init__(
        self,
        model: nn.Module | Runner,
        *,
        device: torch.device,
        dtype: torch.dtype,
        scale: int | None = None,
        tile: int | str = "auto",
        tile_pad: int = 10,
        tile_overlap: int = DEFAULT_OVERLAP,
        pre_pad: int = 0,
        channels_last: bool = True,
        compile: bool = False,
        winograd: bool | None = None,
        residual_dtype: torch.dtype | None = torch.float32,
    ) -> None:
        if winograd and not fastrrdb.winograd_applies(device, dtype):
            raise UsageError(
                f"winograd: the Winograd trunk runs in fp32 on the CPU, not {dtype} on {device}; "
                "leave winograd=None"
            )
        self.device = device
        self.precision_dtype = dtype  # what every image tries first
        self.dtype = dtype  # what the last image ran in
        self.tile = tile
        self.tile_pad = tile_pad
        self.tile_overlap = tile_overlap
        self.pre_pad = pre_pad
        self.channels_last = channels_last and device.type in ("cpu", "cuda")
        self._winograd = winograd
        self._residual_dtype = residual_dtype
        if isinstance(model, nn.Module):
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self._place(model, dtype)
        self.model = model
        # opt-in: torch.compile takes ~45 s on 2 CPU cores and recompiles per tile shape, so it
        # only pays for long runs of same-sized inputs (video frames)
        self._compiled: Any = torch.compile(model) if compile else None
        given = scale if scale is not None else module_scale(model)
        self.scale: int = given if given is not None else self._probe_scale()
        self._nets: dict[torch.dtype, _Net] = {dtype: self._net(model, dtype, self._compiled)}
        self._tile_cap: int | None = None  # set by an out-of-memory retry

    # ------------------------------------------------------------------ the runner
    def _place(self, model: nn.Module, dtype: torch.dtype) -> None:
        model.to(self.device, dtype)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def _net(self, model: Any, dtype: torch.dtype, compiled: Any = None) -> _Net:
        """The runner for ``model`` in ``dtype``; decides the tile multiple in the same place."""
        plain = _MOD_PAD.get(self.scale, 1)
        if compiled is not None:
            return _Net(compiled, plain, 0)
        if isinstance(model, RRDBNet):
            wino = self._winograd
            if wino is None:
                wino = fastrrdb.winograd_applies(self.device, dtype)
            residual = self._residual_dtype if dtype != torch.float32 else None
            fast = fastrrdb.FastRRDB(model, winograd=wino, residual_dtype=residual)
            return _Net(fast, fast.tile_multiple, fast.workspace_bytes_per_pixel())
        return _Net(model, int(getattr(model, "tile_multiple", plain)), 0)

    def _fp32_net(self) -> _Net:
        """The fallback for a failed half-precision image: a float32 copy of the network (made
        once; the configured network is left as it is)."""
        if torch.float32 not in self._nets:
            model = self.model
            if isinstance(model, nn.Module):
                model = copy.deepcopy(model)
                self._place(model, torch.float32)
            self._nets[torch.float32] = self._net(model, torch.float32)
        return self._nets[torch.float32]

    @property
    def tile_multiple(self) -> int:
        """What tile sizes are rounded up to in the configured precision."""
        return self._nets[self.precision_dtype].tile_multiple

    def _call(self, net: _Net, dtype: torch.dtype, x: torch.Tensor) -> torch.Tensor:
        """The runner on one (N, 3, h, w) float32 input; raises _HalfPrecisionFailed."""
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = x.contiguous()
        if dtype == torch.float32:
            return net.run(x)
        with torch.autocast(self.device.type, dtype=dtype):
            y = net.run(x)
        if half_output_is_bad(x, y):
            raise _HalfPrecisionFailed()
        return y

    def _probe_scale(self) -> int:
        dtype = self.precision_dtype
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype, enabled=dtype != torch.float32),
        ):
            y = self.model(torch.zeros(1, _CHANNELS, 16, 16, device=self.device))
        scale = y.shape[-1] / 16
        if scale != int(scale) or y.shape[-2] != y.shape[-1]:
            raise WeightsError(
                f"model: output {tuple(y.shape)} for a 16x16 input is not an integer upscale"
            )
        return int(scale)

    # ------------------------------------------------------------------ sizes
    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The network's input size for an image: ``pre_pad``, then the mod pad."""
        hp, wp = height + self.pre_pad, width + self.pre_pad
        m = _MOD_PAD.get(self.scale, 1)
        return hp + (-hp) % m, wp + (-wp) % m

    def _plan(self, hp: int, wp: int, tile: int, multiple: int) -> TilePlan:
        return plan_tiles(
            hp, wp, tile=tile, tile_pad=self.tile_pad, overlap=self.tile_overlap,
            multiple=multiple,
        )  # fmt: skip

    def computed_fraction(self, height: int, width: int, tile: int) -> float:
        """Input pixels the network computes for a ``height x width`` image at ``tile``, over
        ``height * width``."""
        plan = self._plan(*self.padded_size(height, width), tile, self.tile_multiple)
        return plan.computed_pixels / (height * width)

    def bytes_per_input_pixel(self) -> int:
        """Rough peak working memory per input pixel of one tile (activations at output
        resolution)."""
        feat = _num_feat(self.model)
        elem = torch.tensor([], dtype=self.precision_dtype).element_size()
        # feature maps at the output resolution (interpolate, conv, activation, allocator slack)
        # plus the low-resolution trunk; calibrated on peak RSS: x4plus fp32 needs ~22 KB per input
        # pixel untiled (23 KB with the Winograd trunk: its workspace, less the concatenation
        # buffers it replaces), animevideov3 ~8 KB; this gives 18.4 KB + the workspace (3.7 KB)
        # for x4plus and 18.4 KB for animevideov3 (then halved budget)
        trunk = self._nets[self.precision_dtype].workspace_bytes_per_pixel
        return int(elem * feat * (4 * self.scale * self.scale + 8)) + 64 + trunk

    def _free_memory(self) -> int:
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return int(free * 0.8)
        import psutil

        return int(psutil.virtual_memory().available * 0.5)

    def _initial_tile(self, hp: int, wp: int, out_bytes: int, frames: int) -> int:
        if self.tile == "auto":
            tile = auto_tile(
                hp,
                wp,
                bytes_per_pixel=self.bytes_per_input_pixel() * frames,
                free_bytes=self._free_memory() - (out_bytes if self.device.type == "cpu" else 0),
                margin=self.tile_pad + self.tile_overlap,
            )
        else:
            tile = int(self.tile)
        cap = self._tile_cap
        if cap is None or cap <= 0:
            return tile
        return cap if tile <= 0 or tile > cap else tile

    # ------------------------------------------------------------------ running
    def run(
        self,
        passes: Sequence[Pass],
        height: int,
        width: int,
        *,
        progress: Progress | None = None,
        out_bytes: int = 0,
    ) -> None:
        """Run every pass over a ``height x width`` image; ``progress(done, total)`` after every
        tile of every pass. ``out_bytes``: memory the caller's output takes (counted against the
        free memory of a CPU ``tile="auto"``)."""
        hp, wp = self.padded_size(height, width)
        # pre_pad reflect, then mod-pad reflect of the pre-padded image (right/bottom only)
        rows = reflect_indices(0, height + self.pre_pad, height)[
            reflect_indices(0, hp, height + self.pre_pad)
        ]
        cols = reflect_indices(0, width + self.pre_pad, width)[
            reflect_indices(0, wp, width + self.pre_pad)
        ]
        frames = max((p.frames for p in passes), default=1)
        tile = self._initial_tile(hp, wp, out_bytes, frames)
        dtype = self.precision_dtype
        retried = False
        while True:
            net = self._nets[dtype]
            plan = self._plan(hp, wp, tile, net.tile_multiple)
            try:
                done, total = 0, len(passes) * plan.num_tiles
                for p in passes:
                    done = self._run_pass(
                        p, net, dtype, plan, (rows, cols), (height, width), progress, done, total
                    )
            except _HalfPrecisionFailed:
                log.warning(
                    "%s result had NaN/Inf or was black; redoing the image in fp32 "
                    "(pass precision='fp32' to skip the half-precision attempt)",
                    str(dtype).replace("torch.", ""),
                )
                dtype = torch.float32
                self._fp32_net()
                continue
            except Exception as e:  # noqa: BLE001 - filtered by is_out_of_memory
                if not is_out_of_memory(e):
                    raise
                tile = self._smaller_tile(tile, hp, wp, height, width)
                retried = True
                continue
            if retried:
                self._tile_cap = tile  # later images start at the tile that worked
            self.dtype = dtype
            return

    def _smaller_tile(self, tile: int, hp: int, wp: int, height: int, width: int) -> int:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        current = tile if tile > 0 else max(hp, wp)
        new = current // 2
        if new < MIN_TILE:
            raise ResrganError(
                f"out of memory on {self.device} even at tile {current} "
                f"for a {width}x{height} image; "
                "free memory, use a smaller model, or run on another device"
            ) from None
        log.warning("out of memory at tile %s; retrying the image with tile %d", current, new)
        return new

    def _run_pass(
        self,
        p: Pass,
        net: _Net,
        dtype: torch.dtype,
        plan: TilePlan,
        index: tuple[np.ndarray, np.ndarray],
        size: tuple[int, int],
        progress: Progress | None,
        done: int,
        total: int,
    ) -> int:
        rows, cols = index
        out_h, out_w = size[0] * self.scale, size[1] * self.scale

        def cropped(row0: int, band: np.ndarray) -> None:
            stop = min(band.shape[1], out_h - row0)
            if stop > 0:
                p.sink(row0, band[:, :stop, :out_w])

        asm = BandAssembler(plan, self.scale, _CHANNELS * p.frames, cropped)
        with torch.inference_mode():
            for iy, ys in enumerate(plan.ys):
                asm.begin_row(iy)
                for ix, xs in enumerate(plan.xs):
                    x = p.source(rows[ys.start : ys.stop], cols[xs.start : xs.stop])
                    y = self._call(net, dtype, x)
                    y = y.to("cpu", torch.float32).contiguous().numpy()
                    asm.add(ix, y.reshape(-1, *y.shape[2:]))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                asm.end_row()
        return done

    def upscale_tensor(self, x: torch.Tensor, *, progress: Progress | None = None) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] -> (N, 3, H * scale, W * scale) float32 on the CPU,
        unclamped: the N frames go through each network call together (tiled as configured)."""
        if x.ndim != 4 or x.shape[1] != _CHANNELS:
            raise UsageError(f"x: shape {tuple(x.shape)} is not (N, 3, H, W)")
        n, _c, h, w = x.shape
        s = self.scale
        out = torch.empty(n, _CHANNELS, h * s, w * s)

        def source(rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
            r, c = torch.from_numpy(rows).to(x.device), torch.from_numpy(cols).to(x.device)
            return x.index_select(2, r).index_select(3, c).float()

        def sink(row0: int, band: np.ndarray) -> None:
            out[:, :, row0 : row0 + band.shape[1]] = torch.from_numpy(band).unflatten(0, (n, -1))

        self.run([Pass(source, sink, frames=n)], h, w, progress=progress, out_bytes=out.nbytes)
        return out


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA OOM, or a CPU allocation failure (``DefaultCPUAllocator: can't allocate memory``)."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    if isinstance(err, MemoryError):
        return True
    if isinstance(err, RuntimeError):
        msg = str(err)
        return "out of memory" in msg.lower() or "DefaultCPUAllocator" in msg
    return False


def auto_tile(hp: int, wp: int, *, bytes_per_pixel: int, free_bytes: int, margin: int) -> int:
    """Largest core tile whose padded tile fits ``free_bytes``; 0 (no tiling) when the image
    fits."""
    if hp * wp * bytes_per_pixel <= free_bytes:
        return 0
    side = int(math.isqrt(max(free_bytes, 0) // max(bytes_per_pixel, 1))) - 2 * margin
    side = max(MIN_TILE, side // 8 * 8)
    return 0 if side >= max(hp, wp) else side


def _num_feat(model: object) -> int:
    """The widest feature map: from the convolutions, else the runner's ``num_feat`` hint (an
    onnxruntime network has no modules to look at)."""
    hint = getattr(model, "num_feat", None)
    feat = hint if isinstance(hint, int) else 3
    if isinstance(model, nn.Module):
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                feat = max(feat, m.out_channels, m.in_channels)
    return feat
