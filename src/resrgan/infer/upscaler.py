"""``Upscaler``: images in, images out (arrays, PIL images, paths; gray, alpha, 8/16-bit, outscale).

A thin front over :class:`~resrgan.infer.engine.Engine` (tiles, padding, precision, retries) and
:func:`~resrgan.infer.resolve.resolve_model` (name/path/module -> network). Per image (spec §4.2,
with the deliberate differences noted):

1. integer pixels -> float32 in [0, 1] (divide by 255 or 65535, chosen by **dtype**, not by ``max >
   256``); gray and alpha planes are replicated to three channels for the RGB network;
2. the engine runs the network on tiles (reflect pads, blended seams) and hands finished rows back;
3. the rows are clamped to [0, 1], gray outputs converted with the ``cv2.COLOR_BGR2GRAY`` weights,
   then rounded into the final uint8/uint16 array a few rows at a time (no full-size float image
   and no full-size device buffer ever exist);
4. alpha: a second network pass on the alpha plane (default) or a plain resize;
5. ``outscale`` other than the network scale: ``cv2.resize`` with INTER_LANCZOS4 of the quantised
   image to ``(int(w * outscale), int(h * outscale))``.

:meth:`Upscaler.upscale`, :meth:`Upscaler.upscale_batch` and :meth:`Upscaler.enhance` (the
original's BGR interface) all go through the one plane assembly, :meth:`Upscaler._assemble`.
``RealESRGANer`` (the original's class) is in :mod:`resrgan.infer.legacy`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..color import BT601_LUMA
from ..errors import UsageError
from .engine import DEFAULT_OVERLAP, Engine, Pass, Progress
from .onnxrt import onnx_path
from .options import MIN_TILE, check_options, check_outscale
from .precision import resolve_device, resolve_precision
from .resolve import resolve_model

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OVERLAP", "MIN_TILE", "Upscaler"]  # and RealESRGANer, from .legacy

_SINK_ROWS = 32  # output rows quantised per step


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
    CPU), half (fp16 on CUDA, bf16 on a CPU with native bf16, else fp32), fp32, fp16, bf16.
    ``alpha_upsampler``: "model" (second network pass) or "bicubic".
    ``channels_last``: NHWC memory format. ``compile``: wrap the network in ``torch.compile``
    (opt-in: a long first call and a recompile per new tile shape).

    ``engine`` is the :class:`~resrgan.infer.engine.Engine` that runs the network.
    """

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
        check_options(
            tile=tile,
            tile_pad=tile_pad,
            pre_pad=pre_pad,
            tile_overlap=tile_overlap,
            alpha_upsampler=alpha_upsampler,
            denoise_strength=denoise_strength,
            gpu_id=gpu_id,
        )
        self.precision = precision
        self.alpha_upsampler = alpha_upsampler
        onnx = onnx_path(model, model_path)
        if onnx is not None:  # onnxruntime runs it; the engine's tiles and planes stay the same
            from .onnxrt import OnnxNetwork

            ort_device = f"cuda:{gpu_id}" if gpu_id is not None else device
            net = OnnxNetwork(onnx, device=ort_device)
            self.model_name, scale = net.name, net.scale
            dev, dtype = torch.device("cpu"), torch.float32  # tensors in and out stay on the CPU
        else:
            dev = resolve_device(device, gpu_id)
            dtype = resolve_precision(precision, dev)
            net, self.model_name, scale = resolve_model(
                model, model_path, denoise_strength=float(denoise_strength)
            )
        self.engine = Engine(
            net,
            device=dev,
            dtype=dtype,
            scale=scale,
            tile=tile,
            tile_pad=tile_pad,
            tile_overlap=tile_overlap,
            pre_pad=pre_pad,
            channels_last=channels_last,
            compile=compile,
        )

    # the engine's settings, read-only here
    @property
    def scale(self) -> int:
        """The network's upscale factor."""
        return self.engine.scale

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def model(self) -> Any:
        """The network, placed on the device in the configured precision."""
        return self.engine.model

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the last image (float32 after a half-precision result that had
        to be redone; the configured one before any image)."""
        return self.engine.dtype

    @property
    def tile(self) -> int | str:
        return self.engine.tile

    @property
    def tile_pad(self) -> int:
        return self.engine.tile_pad

    @property
    def tile_overlap(self) -> int:
        return self.engine.tile_overlap

    @property
    def pre_pad(self) -> int:
        return self.engine.pre_pad

    @property
    def channels_last(self) -> bool:
        return self.engine.channels_last

    # ------------------------------------------------------------------ public API
    def output_shape(
        self, height: int, width: int, *, outscale: float | None = None
    ) -> tuple[int, int]:
        """(height, width) that :meth:`upscale` returns for an input of ``height x width``."""
        if height <= 0 or width <= 0:
            raise UsageError(f"image size {height}x{width} must be positive")
        if outscale is not None:
            check_outscale(outscale)
        if outscale is None or float(outscale) == float(self.scale):
            return height * self.scale, width * self.scale
        return int(height * outscale), int(width * outscale)

    def computed_fraction(self, h: int, w: int, tile: int) -> float:
        """Input pixels the network computes for an h x w image at ``tile``, over h * w."""
        return self.engine.computed_fraction(h, w, tile)

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

    def upscale_batch(
        self,
        frames: np.ndarray,
        *,
        outscale: float | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Upscale N images of the same size and layout (``NxHxW`` or ``NxHxWxC``, C as in
        :meth:`upscale`), N at a time through every network call; the result equals
        :meth:`upscale` of each frame (float rounding of batched kernels apart)."""
        frames = np.asarray(frames)
        if frames.ndim not in (3, 4) or frames.shape[0] < 1:
            raise UsageError(
                f"frames: shape {frames.shape} is not N x (an image shape of upscale())"
            )
        layout = _check_pixels(frames[0])
        out = self._assemble(
            frames.reshape(*frames.shape[:3], layout),
            color=(0,) if layout in (1, 2) else (0, 1, 2),
            alpha=layout - 1 if layout in (2, 4) else None,
            alpha_resize=None if self.alpha_upsampler == "model" else "cubic",
            max_range=65535 if frames.dtype == np.uint16 else 255,
            out_dtype=frames.dtype,
            outscale=outscale,
            progress=progress,
        )
        return out.reshape(out.shape[:3]) if frames.ndim == 3 else out

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
        img = np.asarray(img)
        if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
            mode, color = "L", (0,)
        elif img.ndim == 3 and img.shape[2] in (3, 4):
            mode, color = ("RGB" if img.shape[2] == 3 else "RGBA"), (2, 1, 0)  # BGR -> RGB
        else:
            raise UsageError(
                f"enhance: image shape {img.shape} is not HxW, HxWx3 (BGR) or HxWx4 (BGRA)"
            )
        max_range = _max_range(img)
        h, w = img.shape[:2]
        out = self._assemble(
            img.reshape(1, h, w, -1),
            color=color,
            alpha=3 if mode == "RGBA" else None,
            alpha_resize=None if alpha_upsampler == "realesrgan" else "linear",
            max_range=max_range,
            out_dtype=np.dtype(np.uint16 if max_range == 65535 else np.uint8),
            outscale=outscale,
            progress=None,
        )[0]
        return (out.reshape(out.shape[:2]) if img.ndim == 2 else out), mode

    # ------------------------------------------------------------------ arrays and PIL
    def _upscale_array(
        self, img: np.ndarray, outscale: float | None, progress: Progress | None
    ) -> np.ndarray:
        _check_pixels(img)
        return self.upscale_batch(img[None], outscale=outscale, progress=progress)[0]

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

    # ------------------------------------------------------------------ the plane assembly
    def _assemble(
        self,
        img: np.ndarray,
        *,
        color: tuple[int, ...],
        alpha: int | None,
        alpha_resize: str | None,
        max_range: int,
        out_dtype: np.dtype,
        outscale: float | None,
        progress: Progress | None,
    ) -> np.ndarray:
        """(N, H, W, C) pixels -> (N, H', W', C) of ``out_dtype``: the network on the ``color``
        channels (RGB order, or one gray channel), the ``alpha`` channel through a second network
        pass (``alpha_resize`` None) or a "linear"/"cubic" cv2 resize, then ``outscale``."""
        if outscale is not None:
            check_outscale(outscale)
        n, h, w, _c = img.shape
        s = self.scale
        out = np.empty((n, h * s, w * s, img.shape[3]), dtype=out_dtype)
        planes = [color] + ([(alpha,)] if alpha is not None and alpha_resize is None else [])
        passes = [
            Pass(_source(img, ch, max_range), _sink(out, ch, max_range), frames=n) for ch in planes
        ]
        self.engine.run(passes, h, w, progress=progress, out_bytes=out.nbytes)
        if alpha is not None and alpha_resize is not None:
            import cv2

            interp = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}[alpha_resize]
            for i in range(n):
                a = img[i, :, :, alpha].astype(np.float32) / max_range
                a = cv2.resize(a, (w * s, h * s), interpolation=interp)
                out[i, :, :, alpha] = np.rint(np.clip(a, 0.0, 1.0) * max_range).astype(out_dtype)
        if outscale is None or float(outscale) == float(s):
            return out
        resized = [self._resize(frame, h, w, outscale) for frame in out]
        return resized[0][None] if n == 1 else np.stack(resized)

    def _resize(self, out: np.ndarray, h: int, w: int, outscale: float) -> np.ndarray:
        import cv2

        oh, ow = self.output_shape(h, w, outscale=outscale)
        if oh < 1 or ow < 1:
            raise UsageError(
                f"outscale: {outscale} makes a {w}x{h} image {ow}x{oh}; use a larger outscale"
            )
        res = cv2.resize(out, (ow, oh), interpolation=cv2.INTER_LANCZOS4)
        return res.reshape(oh, ow, out.shape[2])


def _source(
    img: np.ndarray, channels: tuple[int, ...], max_range: int
) -> Callable[[np.ndarray, np.ndarray], torch.Tensor]:
    """The engine's source for one plane: ``img[:, rows, cols, channels]`` (N, H, W, C pixels) as
    float32 (N, 3, h, w) in [0, 1]; one channel is replicated to three."""
    step = channels[1] - channels[0] if len(channels) > 1 else 1
    pairs = zip(channels[:-1], channels[1:], strict=True)
    if abs(step) != 1 or any(b - a != step for a, b in pairs):
        raise ValueError(f"channels {channels} are not consecutive")
    stop = channels[-1] + step
    ch = slice(channels[0], stop if stop >= 0 else None, step)

    def source(rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
        patch = np.ascontiguousarray(img[:, rows[:, None], cols[None, :], ch])  # (N, h, w, k)
        x = torch.from_numpy(patch).to(torch.float32).div_(max_range).permute(0, 3, 1, 2)
        return x.expand(-1, 3, -1, -1) if len(channels) == 1 else x

    return source


def _sink(
    out: np.ndarray, channels: tuple[int, ...], max_range: int
) -> Callable[[int, np.ndarray], None]:
    """The engine's sink for one plane: finished float rows (N * 3, n, W), clamped, converted to
    gray for a one-channel plane, rounded into ``out[:, rows, :, channels]``."""
    n = out.shape[0]
    to_gray = len(channels) == 1
    scale_f = np.float32(max_range)

    def sink(row0: int, band: np.ndarray) -> None:
        band = band.reshape(n, 3, *band.shape[1:])
        # a few rows at a time: the float temporaries stay small next to the band itself
        for r0 in range(0, band.shape[2], _SINK_ROWS):
            r1 = min(r0 + _SINK_ROWS, band.shape[2])
            b = np.clip(band[:, :, r0:r1], 0.0, 1.0)
            if to_gray:
                r, g, bl = (np.float32(v) for v in BT601_LUMA)  # cv2.COLOR_RGB2GRAY
                b = (b[:, 0] * r + b[:, 1] * g + b[:, 2] * bl)[:, None]
            b *= scale_f
            q = np.rint(b, out=b).astype(out.dtype)
            for k, c in enumerate(channels):
                out[:, row0 + r0 : row0 + r1, :, c] = q[:, k]

    return sink


def _check_pixels(img: np.ndarray) -> int:
    """The layout (channels) of an image for :meth:`Upscaler.upscale`; UsageError otherwise."""
    if img.dtype not in (np.uint8, np.uint16):
        raise UsageError(
            f"image: dtype {img.dtype} is not supported; pass uint8 or uint16 pixels "
            "(e.g. np.clip(x * 255, 0, 255).round().astype(np.uint8) for floats in [0, 1])"
        )
    if img.ndim == 2:
        return 1
    if img.ndim == 3 and img.shape[2] in (1, 2, 3, 4):
        return int(img.shape[2])
    raise UsageError(
        f"image: shape {img.shape} is not HxW, HxWx1, HxWx2 (LA), HxWx3 (RGB) or HxWx4 (RGBA)"
    )


def _max_range(img: np.ndarray) -> int:
    """The original's rule for ``enhance``, by dtype where it says: uint16 -> 65535, uint8 -> 255,
    otherwise ``max > 256``."""
    if img.dtype == np.uint16:
        return 65535
    if img.dtype == np.uint8:
        return 255
    if img.size and float(np.max(img)) > 256:
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


def __getattr__(name: str) -> Any:
    """``RealESRGANer`` moved to :mod:`resrgan.infer.legacy`; this import path keeps working."""
    if name == "RealESRGANer":
        from .legacy import RealESRGANer

        return RealESRGANer
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
