"""Single-image inference: the ``Upscaler`` API and a drop-in ``RealESRGANer``.

Order of operations per image (spec §4.2, with the deliberate differences noted):

1. integer pixels -> float32 in [0, 1] (divide by 255 or 65535, chosen by **dtype**, not by ``max >
   256``); gray and alpha planes are replicated to three channels for the RGB network;
2. ``pre_pad`` then the mod pad (2 for scale 2, 4 for scale 1), both *reflect* on the right and
   bottom only;
3. the network runs on tiles (see :mod:`resrgan.infer.tiling`: context plus blended seams, not the
   original hard crop), each tile is moved to the CPU and accumulated one tile row at a time;
4. the padding is cropped off (``(pre_pad + mod_pad) * scale``), the result clamped to [0, 1], gray
   outputs converted with the ``cv2.COLOR_BGR2GRAY`` weights, then rounded into the final
   uint8/uint16 array band by band (no full-size float image and no full-size device buffer ever
   exist);
5. alpha: a second network pass on the alpha plane (default) or a plain resize;
6. ``outscale`` other than the network scale: ``cv2.resize`` with INTER_LANCZOS4 of the quantised
   image to ``(int(w * outscale), int(h * outscale))``.

Robustness: out-of-memory in a tile halves the tile and retries the whole image (down to
``MIN_TILE``); a half-precision NaN/Inf or all-black result is redone in fp32 with a warning.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelNotFoundError, ResrganError, UsageError, WeightsError
from ..nets import RRDBNet
from .precision import (
    half_output_is_bad,
    is_out_of_memory,
    keep_residual_fp32,
    resolve_device,
    resolve_precision,
)
from .tiling import BandAssembler, TilePlan, plan_tiles, reflect_indices

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

__all__ = ["MIN_TILE", "RealESRGANer", "Upscaler"]

MIN_TILE = 32  # the OOM retry halves the tile down to this, then gives up
# blend half-width (input px) around every seam; with tile_pad 10 this gives >= 45 dB against the
# untiled result for RealESRGAN_x4plus at tile 64 (bench/infer.py prints the table)
DEFAULT_OVERLAP = 24
_SINK_ROWS = 32  # output rows quantised per step
# cv2.COLOR_BGR2GRAY / RGB2GRAY weights (ITU-R BT.601), for R, G, B
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)

Progress = Callable[[int, int], None]


class _HalfPrecisionFailed(Exception):
    """Internal: a reduced-precision tile came out NaN/Inf or black."""


class Upscaler:
    """Upscale images with a Real-ESRGAN network.

    >>> up = Upscaler("RealESRGAN_x4plus", tile=256)
    >>> big = up.upscale(np.zeros((32, 48, 3), np.uint8))  # (128, 192, 3) uint8
    >>> up.output_shape(32, 48, outscale=2)
    (64, 96)

    ``model``: a zoo name, a weights file path, or a ready ``nn.Module`` (which is moved to
    ``device``).
    ``model_path``: weights for ``model`` (a zoo name whose file is elsewhere, or any supported
    file; the architecture is detected from the weights). ``tile``: core tile size in input pixels,
    0 for none, ``"auto"`` from free memory. ``tile_pad``: context pixels thrown away on each side
    of a tile.
    ``tile_overlap``: blend half-width around every seam. ``pre_pad``: reflect padding on the right
    and bottom before the network, cropped off after. ``precision``: auto (fp16 on CUDA, fp32 on
    CPU), fp32, fp16, bf16. ``alpha_upsampler``: "model" (second network pass) or "bicubic".
    ``channels_last``: NHWC memory format. ``compile``: wrap the network in ``torch.compile``
    (opt-in: a long first call and a recompile per new tile shape).
    """

    scale: int

    def __init__(
        self,
        model: str | nn.Module = "RealESRGAN_x4plus",
        *,
        model_path: str | Path | None = None,
        device: str | torch.device | None = None,
        gpu_id: int | None = None,
        tile: int | str = "auto",
        tile_pad: int = 10,
        pre_pad: int = 0,
        precision: str = "auto",
        alpha_upsampler: str = "model",
        denoise_strength: float = 0.5,
        channels_last: bool = True,
        tile_overlap: int = DEFAULT_OVERLAP,
        compile: bool = False,
    ) -> None:
        if not (tile == "auto" or (isinstance(tile, int) and tile >= 0)):
            raise UsageError(
                f"tile: {tile!r} is not a size; use 0 (no tiling), a positive int or 'auto'"
            )
        if isinstance(tile, int) and 0 < tile < 8:
            raise UsageError(
                f"tile: {tile} is too small; use at least 8, better {MIN_TILE} or more "
                "(or 0 for no tiling)"
            )
        for name, v in (
            ("tile_pad", tile_pad),
            ("pre_pad", pre_pad),
            ("tile_overlap", tile_overlap),
        ):
            if not isinstance(v, int) or v < 0:
                raise UsageError(f"{name}: {v!r} must be an integer >= 0")
        if alpha_upsampler not in ("model", "bicubic"):
            raise UsageError(
                f"alpha_upsampler: '{alpha_upsampler}' is not 'model' "
                "(second network pass) or 'bicubic'"
            )
        if not 0.0 <= float(denoise_strength) <= 1.0:
            raise UsageError(f"denoise_strength: {denoise_strength} must be in [0, 1]")
        self.device = resolve_device(device, gpu_id)
        self.dtype = resolve_precision(precision, self.device)
        self.precision = precision
        self.tile: int | str = tile
        self.tile_pad = tile_pad
        self.tile_overlap = tile_overlap
        self.pre_pad = pre_pad
        self.alpha_upsampler = alpha_upsampler
        self.channels_last = channels_last and self.device.type in ("cpu", "cuda")
        net, self.model_name, scale = _load_network(model, model_path, float(denoise_strength))
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.model = net
        self._place_model()
        self.scale = scale if scale is not None else self._probe_scale()
        self._fell_back = False
        self._tile_cap: int | None = None  # set by an out-of-memory retry
        # opt-in: torch.compile takes ~45 s on 2 CPU cores and recompiles per tile shape, so it only
        # pays for long runs of same-sized inputs (video frames)
        self._net: Any = torch.compile(self.model) if compile else self.model

    # ------------------------------------------------------------------ public API
    def output_shape(
        self, height: int, width: int, *, outscale: float | None = None
    ) -> tuple[int, int]:
        """(height, width) that :meth:`upscale` returns for an input of ``height x width``."""
        if height <= 0 or width <= 0:
            raise UsageError(f"image size {height}x{width} must be positive")
        if outscale is None or float(outscale) == float(self.scale):
            return height * self.scale, width * self.scale
        _check_outscale(outscale)
        return int(height * outscale), int(width * outscale)

    def upscale(
        self,
        image: np.ndarray | PILImage.Image | str | os.PathLike[str],
        *,
        outscale: float | None = None,
        progress: Progress | None = None,
    ) -> Any:
        """Upscale one image.

        * ``np.ndarray`` (RGB order; ``HxW``, ``HxWx1``, ``HxWx2`` (LA), ``HxWx3``, ``HxWx4``
          (RGBA); uint8 or uint16) -> array of the same layout and dtype;
        * ``PIL.Image`` -> ``PIL.Image`` in the same mode (palette/bilevel/CMYK come back as
          RGB(A)/L/RGB);
        * a path -> array, read with :func:`resrgan.io.images.read_image`.

        ``progress(done, total)`` is called after every tile.
        """
        if isinstance(image, (str, os.PathLike)):
            return self._upscale_array(_read_path(Path(image)), outscale, progress)
        if isinstance(image, np.ndarray):
            return self._upscale_array(image, outscale, progress)
        if _is_pil(image):
            return self._upscale_pil(image, outscale, progress)
        raise UsageError(
            f"image: unsupported type {type(image).__name__}; pass a NumPy array, "
            "a PIL image or a path"
        )

    def enhance(
        self, img: np.ndarray, outscale: float | None = None, alpha_upsampler: str = "realesrgan"
    ) -> tuple[np.ndarray, str]:
        """Drop-in for ``RealESRGANer.enhance``: cv2-style BGR/BGRA/gray array in, ``(output,
        mode)`` out.

        ``mode`` is ``"L"``, ``"RGB"`` or ``"RGBA"``; the output is BGR(A)/gray like the input.
        Differences from the original: the bit depth follows the dtype (uint16 in -> uint16 out;
        other dtypes use the original ``max > 256`` rule); tiles are blended; ``alpha_upsampler``
        other than ``"realesrgan"`` resizes the alpha with INTER_LINEAR as the original does.
        """
        import cv2

        img = np.asarray(img)
        max_range = _max_range(img, legacy=True)
        if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
            mode = "L"
            planes = [(img.reshape(img.shape[:2]), (0,), True)]
            out_c = 1
        elif img.ndim == 3 and img.shape[2] in (3, 4):
            mode = "RGB" if img.shape[2] == 3 else "RGBA"
            planes = [(img[:, :, 2::-1], (2, 1, 0), False)]  # BGR view -> RGB for the network
            out_c = img.shape[2]
        else:
            raise UsageError(
                f"enhance: image shape {img.shape} is not HxW, HxWx3 (BGR) or HxWx4 (BGRA)"
            )
        out_dtype = np.uint16 if max_range == 65535 else np.uint8
        h, w = img.shape[:2]
        out = np.empty((h * self.scale, w * self.scale, out_c), dtype=out_dtype)
        alpha_linear = None
        if mode == "RGBA":
            if alpha_upsampler == "realesrgan":
                planes.append((img[:, :, 3], (3,), True))
            else:
                a = img[:, :, 3].astype(np.float32) / max_range
                alpha_linear = cv2.resize(
                    a, (w * self.scale, h * self.scale), interpolation=cv2.INTER_LINEAR
                )
        self._run_planes(planes, out, max_range, None)
        if alpha_linear is not None:
            out[:, :, 3] = np.rint(alpha_linear * max_range).astype(out_dtype)
        out = self._resize_out(out, h, w, outscale)
        if img.ndim == 2:
            out = out.reshape(out.shape[:2])
        return out, mode

    # ------------------------------------------------------------------ arrays and PIL
    def _upscale_array(
        self, img: np.ndarray, outscale: float | None, progress: Progress | None
    ) -> np.ndarray:
        import cv2

        if img.dtype not in (np.uint8, np.uint16):
            raise UsageError(
                f"image: dtype {img.dtype} is not supported; pass uint8 or uint16 pixels "
                "(e.g. np.clip(x * 255, 0, 255).round().astype(np.uint8) for floats in [0, 1])"
            )
        if img.ndim == 2:
            layout = 1
        elif img.ndim == 3 and img.shape[2] in (1, 2, 3, 4):
            layout = img.shape[2]
        else:
            raise UsageError(
                f"image: shape {img.shape} is not HxW, HxWx1, HxWx2 (LA), HxWx3 (RGB) "
                "or HxWx4 (RGBA)"
            )
        if outscale is not None:
            _check_outscale(outscale)
        max_range = 65535 if img.dtype == np.uint16 else 255
        h, w = img.shape[:2]
        s = self.scale
        out = np.empty((h * s, w * s, layout), dtype=img.dtype)
        planes: list[tuple[np.ndarray, tuple[int, ...], bool]] = []
        if layout in (1, 2):
            planes.append((img.reshape(h, w, -1)[:, :, 0], (0,), True))
        else:
            planes.append((img[:, :, :3], (0, 1, 2), False))
        alpha = img[:, :, layout - 1] if layout in (2, 4) else None
        if alpha is not None and self.alpha_upsampler == "model":
            planes.append((alpha, (layout - 1,), True))
        self._run_planes(planes, out, max_range, progress)
        if alpha is not None and self.alpha_upsampler == "bicubic":
            a = cv2.resize(
                alpha.astype(np.float32) / max_range, (w * s, h * s), interpolation=cv2.INTER_CUBIC
            )
            out[:, :, layout - 1] = np.rint(np.clip(a, 0.0, 1.0) * max_range).astype(img.dtype)
        out = self._resize_out(out, h, w, outscale)
        if img.ndim == 2:
            out = out.reshape(out.shape[:2])
        return out

    def _upscale_pil(
        self, image: PILImage.Image, outscale: float | None, progress: Progress | None
    ) -> PILImage.Image:
        from PIL import Image

        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("1",):
            image = image.convert("L")
        elif mode in ("CMYK", "YCbCr", "HSV", "LAB"):
            image = image.convert("RGB")
        elif mode == "PA":
            image = image.convert("RGBA")
        elif mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            arr = np.asarray(image).astype(np.uint16)
            out = self._upscale_array(arr, outscale, progress)
            return Image.fromarray(out)  # uint16 2-D -> 'I;16'
        elif mode in ("I", "F"):
            raise UsageError(
                f"image: PIL mode '{mode}' (32-bit) is not supported; convert to "
                "'I;16', 'L' or 'RGB'"
            )
        arr = np.asarray(image)
        out = self._upscale_array(arr, outscale, progress)
        return Image.fromarray(out)  # the mode follows the shape: L, LA, RGB, RGBA

    def _resize_out(self, out: np.ndarray, h: int, w: int, outscale: float | None) -> np.ndarray:
        if outscale is None or float(outscale) == float(self.scale):
            return out
        import cv2

        oh, ow = self.output_shape(h, w, outscale=outscale)
        if oh < 1 or ow < 1:
            raise UsageError(
                f"outscale: {outscale} makes a {w}x{h} image {ow}x{oh}; use a larger outscale"
            )
        res = cv2.resize(out, (ow, oh), interpolation=cv2.INTER_LANCZOS4)
        return res.reshape(oh, ow, out.shape[2])

    # ------------------------------------------------------------------ the network passes
    def _run_planes(
        self,
        planes: list[tuple[np.ndarray, tuple[int, ...], bool]],
        out: np.ndarray,
        max_range: int,
        progress: Progress | None,
    ) -> None:
        """Run every (source, output channels, to_gray) pass; OOM and half-precision retries."""
        h, w = out.shape[0] // self.scale, out.shape[1] // self.scale
        hp, wp = self._padded_size(h, w)
        tile = self._initial_tile(hp, wp, out.nbytes)
        total = len(planes) * self._plan(hp, wp, tile).num_tiles
        retried = False
        while True:
            try:
                done = 0
                for src, channels, to_gray in planes:
                    done = self._run_plane(
                        src, out, channels, to_gray, max_range, tile, progress, done, total
                    )
                if retried:
                    self._tile_cap = tile  # later images start at the tile that worked
                return
            except _HalfPrecisionFailed:
                log.warning(
                    "%s result had NaN/Inf or was black; redoing the image in fp32 "
                    "(pass precision='fp32' to skip the half-precision attempt)",
                    str(self.dtype).replace("torch.", ""),
                )
                self.dtype = torch.float32
                self._fell_back = True
                self._place_model()
            except Exception as e:  # noqa: BLE001 - filtered by is_out_of_memory
                if not is_out_of_memory(e):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                current = tile if tile > 0 else max(hp, wp)
                new = current // 2
                if new < MIN_TILE:
                    raise ResrganError(
                        f"out of memory on {self.device} even at tile {current} "
                        f"for a {w}x{h} image; "
                        "free memory, use a smaller model, or run on another device"
                    ) from None
                log.warning(
                    "out of memory at tile %s; retrying the image with tile %d", current, new
                )
                tile, retried = new, True
                total = len(planes) * self._plan(hp, wp, tile).num_tiles

    def _padded_size(self, h: int, w: int) -> tuple[int, int]:
        hp, wp = h + self.pre_pad, w + self.pre_pad
        m = _unshuffle(self.scale)
        return hp + (-hp) % m, wp + (-wp) % m

    def _plan(self, hp: int, wp: int, tile: int) -> TilePlan:
        return plan_tiles(
            hp, wp, tile=tile, tile_pad=self.tile_pad, overlap=self.tile_overlap,
            multiple=self._tile_multiple(),
        )  # fmt: skip

    def _tile_multiple(self) -> int:
        """What tile sizes are rounded up to: x2 and x1 models pixel-unshuffle by 2 and 4, and
        RRDBNet's Winograd trunk (fp32 on the CPU) computes whole 4x4 blocks of the unshuffled
        input, so context up to the next block comes for free."""
        return _unshuffle(self.scale) * (4 if self._winograd_net() is not None else 1)

    def _winograd_net(self) -> RRDBNet | None:
        """The RRDBNet in the model that will run its trunk as Winograd (fp32 on the CPU)."""
        if self.device.type != "cpu" or self.dtype != torch.float32:
            return None
        nets = (n for n in self.model.modules() if isinstance(n, RRDBNet) and n.winograd)
        return next(nets, None)

    def computed_fraction(self, h: int, w: int, tile: int) -> float:
        """Input pixels the network computes for an h x w image at ``tile``, over h * w."""
        return self._plan(*self._padded_size(h, w), tile).computed_pixels / (h * w)

    def _run_plane(
        self,
        src: np.ndarray,
        out: np.ndarray,
        channels: tuple[int, ...],
        to_gray: bool,
        max_range: int,
        tile: int,
        progress: Progress | None,
        done: int,
        total: int,
    ) -> int:
        """One network pass of ``src`` (HxW or HxWx3, RGB) written into ``out[..., channels]``."""
        h, w = src.shape[:2]
        s = self.scale
        hp, wp = self._padded_size(h, w)
        # pre_pad reflect, then mod-pad reflect of the pre-padded image (right/bottom only), as
        # indices
        rows = reflect_indices(0, h + self.pre_pad, h)[reflect_indices(0, hp, h + self.pre_pad)]
        cols = reflect_indices(0, w + self.pre_pad, w)[reflect_indices(0, wp, w + self.pre_pad)]
        plan = self._plan(hp, wp, tile)
        out_h, out_w = h * s, w * s
        gray_to_bgr = to_gray and len(channels) == 1
        dtype = out.dtype
        scale_f = np.float32(max_range)

        def sink(row0: int, band: np.ndarray) -> None:
            # a few rows at a time: the float temporaries stay small next to the band itself
            stop = min(band.shape[1], out_h - row0)
            for r0 in range(0, max(stop, 0), _SINK_ROWS):
                r1 = min(r0 + _SINK_ROWS, stop)
                b = np.clip(band[:, r0:r1, :out_w], 0.0, 1.0)
                if gray_to_bgr:
                    r, g, bl = _GRAY_WEIGHTS
                    b = (b[0] * np.float32(r) + b[1] * np.float32(g) + b[2] * np.float32(bl))[None]
                b *= scale_f
                q = np.rint(b, out=b).astype(dtype)
                for k, c in enumerate(channels):
                    out[row0 + r0 : row0 + r1, :, c] = q[k]

        asm = BandAssembler(plan, s, 3, sink)
        with torch.inference_mode():
            for iy, ys in enumerate(plan.ys):
                asm.begin_row(iy)
                for ix, xs in enumerate(plan.xs):
                    patch = src[np.ix_(rows[ys.start : ys.stop], cols[xs.start : xs.stop])]
                    asm.add(ix, self._forward(patch, max_range))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                asm.end_row()
        return done

    def _forward(self, patch: np.ndarray, max_range: int) -> np.ndarray:
        """Network on one tile: uint HxW(x3) RGB -> float32 (3, h*s, w*s) on the CPU (unclamped)."""
        x = torch.from_numpy(np.ascontiguousarray(patch)).to(torch.float32)
        x = x.div_(max_range)
        x = x.unsqueeze(0).expand(3, -1, -1) if x.ndim == 2 else x.permute(2, 0, 1)
        x = x.unsqueeze(0).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = x.contiguous()
        if self.dtype == torch.float32:
            y = self._net(x)
        else:
            # reduced precision: weights already in self.dtype; autocast runs the convs in it while
            # fp32 tensors (input, RRDBNet trunk, SRVGG's skip) stay fp32
            with torch.autocast(self.device.type, dtype=self.dtype):
                y = self._net(x)
        if self.dtype != torch.float32 and half_output_is_bad(x, y):
            raise _HalfPrecisionFailed()
        return y[0].to("cpu", torch.float32).contiguous().numpy()

    # ------------------------------------------------------------------ setup helpers
    def _place_model(self) -> None:
        self.model.to(self.device, self.dtype)
        if self.dtype != torch.float32:
            keep_residual_fp32(self.model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def _probe_scale(self) -> int:
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, self.dtype, enabled=self.dtype != torch.float32),
        ):
            y = self.model(torch.zeros(1, 3, 16, 16, device=self.device))
        scale = y.shape[-1] / 16
        if scale != int(scale) or y.shape[-2] != y.shape[-1]:
            raise WeightsError(
                f"model: output {tuple(y.shape)} for a 16x16 input is not an integer upscale"
            )
        return int(scale)

    def _initial_tile(self, hp: int, wp: int, out_bytes: int) -> int:
        tile = self._configured_tile(hp, wp, out_bytes)
        cap = self._tile_cap
        if cap is None or cap <= 0:
            return tile
        return cap if tile <= 0 or tile > cap else tile

    def _configured_tile(self, hp: int, wp: int, out_bytes: int) -> int:
        if self.tile != "auto":
            return int(self.tile)
        return auto_tile(
            hp,
            wp,
            bytes_per_pixel=self._bytes_per_input_pixel(),
            free_bytes=self._free_memory() - (out_bytes if self.device.type == "cpu" else 0),
            margin=self.tile_pad + self.tile_overlap,
        )

    def _bytes_per_input_pixel(self) -> int:
        """Rough peak working memory per input pixel of one tile (activations at output
        resolution)."""
        feat = _num_feat(self.model)
        elem = torch.tensor([], dtype=self.dtype).element_size()
        # feature maps at the output resolution (interpolate, conv, activation, allocator slack)
        # plus the low-resolution trunk; calibrated on peak RSS: x4plus fp32 needs ~22 KB per input
        # pixel untiled (23 KB with the Winograd trunk: its workspace, less the concatenation
        # buffers it replaces), animevideov3 ~8 KB; this gives 18.4 KB + the workspace (3.7 KB)
        # for x4plus and 18.4 KB for animevideov3 (then halved budget)
        trunk = 0
        net = self._winograd_net()
        if net is not None:  # its workspace, per trunk pixel (1/unshuffle^2 of an input pixel)
            trunk = net.winograd_bytes_per_pixel() // _unshuffle(self.scale) ** 2
        return int(elem * feat * (4 * self.scale * self.scale + 8)) + 64 + trunk

    def _free_memory(self) -> int:
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return int(free * 0.8)
        import psutil

        return int(psutil.virtual_memory().available * 0.5)


def _unshuffle(scale: int) -> int:
    """RRDBNet's pixel-unshuffle factor at ``scale`` (input sizes must be its multiples)."""
    return {1: 4, 2: 2}.get(scale, 1)


def auto_tile(hp: int, wp: int, *, bytes_per_pixel: int, free_bytes: int, margin: int) -> int:
    """Largest core tile whose padded tile fits ``free_bytes``; 0 (no tiling) when the image
    fits."""
    if hp * wp * bytes_per_pixel <= free_bytes:
        return 0
    side = int(math.isqrt(max(free_bytes, 0) // max(bytes_per_pixel, 1))) - 2 * margin
    side = max(MIN_TILE, side // 8 * 8)
    return 0 if side >= max(hp, wp) else side


def _num_feat(model: nn.Module) -> int:
    feat = 3
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            feat = max(feat, m.out_channels, m.in_channels)
    return feat


def _check_outscale(outscale: float) -> None:
    if not isinstance(outscale, (int, float)) or not math.isfinite(outscale) or outscale <= 0:
        raise UsageError(f"outscale: {outscale!r} must be a positive number (e.g. 2 or 3.5)")


def _max_range(img: np.ndarray, *, legacy: bool) -> int:
    if img.dtype == np.uint16:
        return 65535
    if img.dtype == np.uint8:
        return 255
    if legacy and img.size and float(np.max(img)) > 256:
        return 65535
    return 255


def _is_pil(obj: object) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "mode") and hasattr(obj, "size")


def _read_path(path: Path) -> np.ndarray:
    try:
        from ..io.images import read_image
    except ImportError:  # the io module is optional for this API: fall back to cv2
        read_image = None
    if read_image is not None:
        return np.asarray(read_image(path).pixels)
    import cv2

    from ..errors import ImageReadError

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{path}: cannot read image (missing or not a supported format)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _load_network(
    model: str | nn.Module, model_path: str | Path | None, denoise_strength: float
) -> tuple[nn.Module, str, int | None]:
    """(network, display name, scale or None when it must be probed)."""
    from ..weights.load import load_model

    if isinstance(model, nn.Module):
        if model_path is not None:
            from ..weights.load import load_state_dict

            sd = load_state_dict(model_path)
            try:
                model.load_state_dict(sd, strict=True)
            except RuntimeError as e:
                raise WeightsError(
                    f"{model_path}: weights do not fit the given model: {str(e).splitlines()[0]}"
                ) from None
        return model, type(model).__name__, _module_scale(model)
    if not isinstance(model, str):
        raise UsageError(f"model: {model!r} is not a model name, a weights path or an nn.Module")
    path = Path(model_path) if model_path is not None else None
    if path is None and (
        Path(model).is_file()
        or (Path(model).suffix in (".pth", ".safetensors") and not _is_zoo_name(model))
    ):
        path = Path(model)
    if path is not None:
        net, _arch, kwargs = load_model(path)
        scale = kwargs.get("scale", kwargs.get("upscale"))
        return net, path.stem, int(scale) if scale is not None else None
    try:
        from ..weights.zoo import load_zoo_model
    except ImportError as e:
        raise ModelNotFoundError(
            f"model: '{model}' needs the model zoo (resrgan.weights.zoo), "
            f"which is unavailable ({e}); "
            "pass model_path= or a weights file instead"
        ) from None
    name = model.split(".")[0]
    kw: dict[str, Any] = {}
    if name == "realesr-general-x4v3":
        kw["denoise_strength"] = denoise_strength
    net, info = load_zoo_model(name, **kw)
    return net, name, int(info.scale)


def _is_zoo_name(model: str) -> bool:
    """``"RealESRGAN_x4plus.pth"`` is the zoo model (as the original CLI) unless a file exists."""
    try:
        from ..weights.zoo import MODELS
    except ImportError:
        return False
    return "/" not in model and "\\" not in model and model.split(".")[0] in MODELS


def _module_scale(model: nn.Module) -> int | None:
    for attr in ("scale", "upscale"):
        v = getattr(model, attr, None)
        if isinstance(v, int) and v >= 1:
            return v
    return None


class RealESRGANer:
    """Drop-in for the original ``realesrgan.RealESRGANer`` (same constructor and ``enhance``).

    Differences: weights load safely (no arbitrary unpickling); ``gpu_id=0`` selects ``cuda:0``;
    tiles are blended; the bit depth follows the dtype; OOM retries with smaller tiles; half
    precision that fails (NaN/black) is redone in fp32; URLs are not downloaded (use the model zoo
    / ``resrgan models``).
    """

    def __init__(
        self,
        scale: int,
        model_path: str | Path | list[str | Path] | None,
        dni_weight: list[float] | None = None,
        model: nn.Module | None = None,
        tile: int = 0,
        tile_pad: int = 10,
        pre_pad: int = 10,
        half: bool = False,
        device: str | torch.device | None = None,
        gpu_id: int | None = None,
    ) -> None:
        if model is None:
            raise UsageError("RealESRGANer: model= must be an nn.Module (as in the original)")
        if model_path is not None:
            model.load_state_dict(_legacy_state_dict(model_path, dni_weight), strict=True)
        self.scale = scale
        self.tile_size = tile
        self.tile_pad = tile_pad
        self.pre_pad = pre_pad
        self.half = half
        self._up = Upscaler(
            model,
            device=device,
            gpu_id=gpu_id,
            tile=tile,
            tile_pad=tile_pad,
            pre_pad=pre_pad,
            precision="fp16" if half else "fp32",
        )
        if int(scale) != self._up.scale:
            raise UsageError(
                f"scale: {scale} but the model upscales x{self._up.scale}; "
                f"pass scale={self._up.scale}"
            )
        self.model = self._up.model
        self.device = self._up.device

    def enhance(
        self, img: np.ndarray, outscale: float | None = None, alpha_upsampler: str = "realesrgan"
    ) -> tuple[np.ndarray, str]:
        """See :meth:`Upscaler.enhance`."""
        return self._up.enhance(img, outscale=outscale, alpha_upsampler=alpha_upsampler)


def _params_first(path: Path) -> dict[str, torch.Tensor]:
    """The original's ``dni`` reads the ``params`` key; files without it fall back to the usual."""
    from ..weights.load import _read_raw, select_state_dict

    raw = _read_raw(path)
    key = "params" if isinstance(raw, dict) and "params" in raw else None
    return select_state_dict(raw, key=key, source=str(path))


def _legacy_state_dict(
    model_path: str | Path | list[str | Path], dni_weight: list[float] | None
) -> dict[str, torch.Tensor]:
    from ..weights.load import load_state_dict

    def local(p: str | Path) -> Path:
        if str(p).startswith(("http://", "https://")):
            raise ModelNotFoundError(
                f"model_path: {p} is a URL and resrgan does not download here; fetch the file with "
                "`resrgan models` (or by hand) and pass its local path"
            )
        return Path(p)

    if isinstance(model_path, (list, tuple)):
        if dni_weight is None or len(dni_weight) != len(model_path):
            raise UsageError(
                f"dni_weight: {dni_weight} must give one weight per model_path ({len(model_path)})"
            )
        # the original's dni() reads only the 'params' key of every file
        sds = [_params_first(local(p)) for p in model_path]
        return {k: sum(wt * sd[k] for wt, sd in zip(dni_weight, sds, strict=True)) for k in sds[0]}
    return load_state_dict(local(model_path))
