"""A corpus of awkward image files, generated on the fly (no binary files in git).

Each ``make_*`` function writes one case into ``folder`` and returns its path.
``write_corpus(folder)`` writes them all and returns ``{case name: path}``; ``GOOD`` and ``BAD``
name the cases ``read_image`` must decode and must refuse. Other test modules (batch upscaling, CLI)
reuse it::

    from _corpus import BAD, GOOD, write_corpus  # tests/ is on sys.path under pytest

The upright content of the orientation cases is :func:`quadrants` (four distinct flat colours,
taller than wide), so any wrong rotation or mirror is visible even after JPEG compression.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

#: colours of the quadrants of :func:`quadrants`: top-left, top-right, bottom-left, bottom-right
QUADRANT_COLOURS = ((230, 30, 30), (30, 200, 40), (40, 50, 220), (250, 250, 250))

#: Pillow transpose that turns stored pixels upright, per EXIF orientation (the EXIF specification)
PIL_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: the orientation whose transform undoes orientation o (6 and 8 are each other's inverse)
INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}

BOMB_SIDE = 100_000


def quadrants(height: int = 48, width: int = 32) -> np.ndarray:
    """Upright (H, W, 3) uint8 test picture: four flat quadrants in :data:`QUADRANT_COLOURS`."""
    img = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2], img[:h2, w2:] = QUADRANT_COLOURS[0], QUADRANT_COLOURS[1]
    img[h2:, :w2], img[h2:, w2:] = QUADRANT_COLOURS[2], QUADRANT_COLOURS[3]
    return img


@functools.cache
def srgb_icc() -> bytes:
    """A real ICC profile (Little CMS's sRGB) as bytes; cached: the header holds a creation time."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int) -> bytes:
    """EXIF (``b"Exif\\0\\0"`` + TIFF): Orientation, Make and a sub-IFD date, like a camera's."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "resrgan-test-camera"
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"
    return exif.tobytes()


def _stored(upright: np.ndarray, orientation: int) -> Image.Image:
    """Pixels as a camera stores them, so that applying ``orientation`` gives ``upright``."""
    im = Image.fromarray(upright)
    inv = INVERSE[orientation]
    return im if inv == 1 else im.transpose(PIL_UPRIGHT[inv])


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- good files -----------------------------------------------------------------------------------


def make_1x1(folder: Path) -> Path:
    p = folder / "one_pixel.png"
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(p)
    return p


def make_gray16_png(folder: Path) -> Path:
    """16-bit gray PNG written by OpenCV (an encoder independent of ours); row 0 is all <= 256."""
    p = folder / "gray16.png"
    cv2.imwrite(str(p), gray16_pixels())
    return p


def gray16_pixels() -> np.ndarray:
    a = _rng(1).integers(0, 65536, (21, 34), dtype=np.uint16)
    a[0] = np.arange(34, dtype=np.uint16) * 7  # small values must still read as 16-bit
    return a


def make_rgba16_png(folder: Path) -> Path:
    """16-bit RGBA PNG written by OpenCV from BGRA; the expected RGBA is :func:`rgba16_pixels`."""
    p = folder / "rgba16.png"
    cv2.imwrite(str(p), cv2.cvtColor(rgba16_pixels(), cv2.COLOR_RGBA2BGRA))
    return p


def rgba16_pixels() -> np.ndarray:
    return _rng(2).integers(0, 65536, (19, 23, 4), dtype=np.uint16)


def make_palette_png_transparent(folder: Path) -> Path:
    """Palette PNG; index 0 is fully transparent (tRNS), the others opaque."""
    p = folder / "palette_trns.png"
    idx = (np.arange(12 * 16).reshape(12, 16) % 4).astype(np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    im.save(p, transparency=0)
    return p


def make_palette_png_opaque(folder: Path) -> Path:
    p = folder / "palette.png"
    idx = (np.arange(12 * 16).reshape(12, 16) % 4).astype(np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    im.save(p)
    return p


def cmyk_patches() -> tuple[np.ndarray, np.ndarray]:
    """(CMYK (32, 48, 4), the RGB it means by ``(255-C)(255-K)/255``); 16x16 flat patches."""
    cmyk_colours = [
        (0, 0, 0, 0),  # white
        (255, 0, 0, 0),  # cyan
        (0, 255, 0, 0),  # magenta
        (0, 0, 255, 0),  # yellow
        (0, 0, 0, 255),  # black
        (0, 0, 0, 128),  # mid gray
    ]
    cmyk = np.zeros((32, 48, 4), np.uint8)
    for i, colour in enumerate(cmyk_colours):
        y, x = divmod(i, 3)
        cmyk[16 * y : 16 * y + 16, 16 * x : 16 * x + 16] = colour
    f = cmyk.astype(np.float64)
    rgb = np.round((255 - f[..., :3]) * (255 - f[..., 3:4]) / 255).astype(np.uint8)
    return cmyk, rgb


def make_cmyk_jpeg(folder: Path) -> Path:
    """Adobe CMYK JPEG (Pillow stores it inverted, with an APP14 'Adobe' marker, like Photoshop)."""
    p = folder / "cmyk.jpg"
    cmyk, _ = cmyk_patches()
    Image.fromarray(cmyk, mode="CMYK").save(p, quality=100)
    return p


def make_ycck_jpeg(folder: Path) -> Path:
    """Adobe YCCK JPEG (APP14 transform 2) encoding :func:`cmyk_patches`, built from a CMYK one.

    Adobe JPEGs hold inverted CMYK (C' = 255 - C). libjpeg's YCCK encoder takes C', M', Y' as
    R = 255 - C' = C, G = M, B = Y, stores YCbCr of that, and stores K' unchanged. We hand Pillow a
    "CMYK" image whose components (inverted again on save) are exactly Y, Cb, Cr, K', then set the
    APP14 transform byte from 0 (none) to 2 (YCCK), so the decoder must run the YCC step itself.
    """
    p = folder / "ycck.jpg"
    cmyk, _ = cmyk_patches()
    c = cmyk.astype(np.float64)
    r, g, b, k = c[..., 0], c[..., 1], c[..., 2], 255.0 - c[..., 3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    comps = np.clip(np.round(np.stack([y, cb, cr, k], -1)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(255 - comps, mode="CMYK").save(buf, format="JPEG", quality=100)
    data = bytearray(buf.getvalue())
    at = data.find(b"Adobe")
    assert at > 0 and data[at + 11] == 0, "expected an Adobe APP14 marker with transform 0"
    data[at + 11] = 2
    p.write_bytes(bytes(data))
    return p


def make_exif_jpeg(folder: Path, orientation: int) -> Path:
    """JPEG of :func:`quadrants` stored rotated/mirrored, with EXIF Orientation ``orientation``."""
    p = folder / f"exif_orient{orientation}.jpg"
    _stored(quadrants(), orientation).save(p, quality=95, exif=exif_bytes(orientation))
    return p


def make_exif_png(folder: Path, orientation: int) -> Path:
    """Lossless variant: PNG with an eXIf chunk, random pixels (every pixel checked)."""
    p = folder / f"exif_orient{orientation}.png"
    upright = _rng(3).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    _stored(upright, orientation).save(p, exif=exif_bytes(orientation))
    return p


def make_jpeg_icc(folder: Path) -> Path:
    p = folder / "with_icc.jpg"
    Image.fromarray(quadrants()).save(p, quality=95, icc_profile=srgb_icc())
    return p


def make_progressive_jpeg(folder: Path) -> Path:
    p = folder / "progressive.jpg"
    Image.fromarray(quadrants()).save(p, quality=95, progressive=True)
    return p


def _frames() -> list[Image.Image]:
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    return [Image.new("RGB", (20, 12), c) for c in colours]


def make_animated_gif(folder: Path) -> Path:
    p = folder / "animated.gif"
    f = _frames()
    f[0].save(p, save_all=True, append_images=f[1:], duration=100, loop=0)
    return p


def make_animated_webp(folder: Path) -> Path:
    p = folder / "animated.webp"
    f = _frames()
    f[0].save(p, save_all=True, append_images=f[1:], duration=100, loop=0, lossless=True)
    return p


def make_animated_png(folder: Path) -> Path:
    p = folder / "animated.png"
    f = _frames()
    f[0].save(p, save_all=True, append_images=f[1:], duration=100, loop=0)
    return p


def make_unicode_name(folder: Path) -> Path:
    """A name with spaces and non-ASCII letters (and a 16-bit PNG, so OpenCV reads it too)."""
    p = folder / "my photo – Ünïcødé 写真.png"
    cv2.imencode(".png", gray16_pixels())[1].tofile(str(p))
    return p


def make_lossless_webp_alpha(folder: Path) -> Path:
    p = folder / "alpha.webp"
    Image.fromarray(_rng(4).integers(0, 256, (10, 13, 4), dtype=np.uint8)).save(p, lossless=True)
    return p


def make_tiff16_rgb(folder: Path) -> Path:
    import tifffile

    p = folder / "rgb16.tif"
    tifffile.imwrite(p, _rng(5).integers(0, 65536, (11, 9, 3), dtype=np.uint16), photometric="rgb")
    return p


def make_bmp(folder: Path) -> Path:
    p = folder / "plain.bmp"
    Image.fromarray(quadrants()).save(p)
    return p


def make_jpeg_named_png(folder: Path) -> Path:
    """A JPEG whose name says .png: decoded by content."""
    p = folder / "really_a_jpeg.png"
    Image.fromarray(quadrants()).save(p, format="JPEG", quality=95)
    return p


# --- bad files ------------------------------------------------------------------------------------


def make_truncated_png(folder: Path) -> Path:
    p = folder / "truncated.png"
    buf = io.BytesIO()
    Image.fromarray(_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def make_truncated_png16(folder: Path) -> Path:
    """Truncated 16-bit PNG (decoded by OpenCV, not Pillow)."""
    p = folder / "truncated16.png"
    data = cv2.imencode(".png", rgba16_pixels())[1].tobytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def make_truncated_jpeg(folder: Path) -> Path:
    p = folder / "truncated.jpg"
    buf = io.BytesIO()
    Image.fromarray(_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=90
    )
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def make_zero_byte(folder: Path) -> Path:
    p = folder / "empty.png"
    p.write_bytes(b"")
    return p


def make_text_as_png(folder: Path) -> Path:
    p = folder / "notes.png"
    p.write_text("Hello, this is not an image.\n")
    return p


def make_unknown_binary(folder: Path) -> Path:
    p = folder / "random.jpg"
    p.write_bytes(bytes(range(200, 256)) * 4)
    return p


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png_bomb(folder: Path, side: int = BOMB_SIDE) -> Path:
    """A valid PNG header claiming side x side 8-bit RGB, followed by a tiny IDAT and IEND."""
    p = folder / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )
    p.write_bytes(data)
    return p


def make_ppm(folder: Path) -> Path:
    """A format Pillow reads but resrgan does not accept (named .png)."""
    p = folder / "portable.png"
    p.write_bytes(b"P6\n2 2\n255\n" + bytes(12))
    return p


# --- the whole corpus -----------------------------------------------------------------------------

GOOD_MAKERS: dict[str, Callable[[Path], Path]] = {
    "one_pixel": make_1x1,
    "gray16": make_gray16_png,
    "rgba16": make_rgba16_png,
    "palette_trns": make_palette_png_transparent,
    "palette": make_palette_png_opaque,
    "cmyk_jpeg": make_cmyk_jpeg,
    "ycck_jpeg": make_ycck_jpeg,
    "exif6_jpeg": lambda f: make_exif_jpeg(f, 6),
    "exif8_jpeg": lambda f: make_exif_jpeg(f, 8),
    "jpeg_icc": make_jpeg_icc,
    "progressive_jpeg": make_progressive_jpeg,
    "animated_gif": make_animated_gif,
    "animated_webp": make_animated_webp,
    "animated_png": make_animated_png,
    "unicode_name": make_unicode_name,
    "webp_alpha": make_lossless_webp_alpha,
    "tiff16_rgb": make_tiff16_rgb,
    "bmp": make_bmp,
    "jpeg_named_png": make_jpeg_named_png,
}

BAD_MAKERS: dict[str, Callable[[Path], Path]] = {
    "truncated_png": make_truncated_png,
    "truncated_png16": make_truncated_png16,
    "truncated_jpeg": make_truncated_jpeg,
    "zero_byte": make_zero_byte,
    "text_as_png": make_text_as_png,
    "unknown_binary": make_unknown_binary,
    "png_bomb": make_png_bomb,
    "ppm": make_ppm,
}

GOOD: frozenset[str] = frozenset(GOOD_MAKERS)
BAD: frozenset[str] = frozenset(BAD_MAKERS)


def write_corpus(folder: Path, names: frozenset[str] | set[str] | None = None) -> dict[str, Path]:
    """Write every case (or only ``names``) into ``folder`` (created); returns ``{name: path}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    makers = {**GOOD_MAKERS, **BAD_MAKERS}
    return {name: make(folder) for name, make in makers.items() if names is None or name in names}
