"""Reading and writing images without losing bit depth, alpha, orientation or colour metadata.

``read_image`` returns an :class:`ImageData` whose ``pixels`` are in **RGB order** (not cv2's BGR),
shaped ``(H, W)`` gray, ``(H, W, 2)`` gray+alpha, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, with
dtype ``uint8`` or ``uint16``. The bit depth comes from the file (a 16-bit PNG stays ``uint16`` even
when every value is small; the original's ``max > 256`` guess is not used). EXIF orientation is
applied, so the pixels are upright, and the returned EXIF has its Orientation reset to 1.

Decoders: Pillow for everything it decodes without loss, OpenCV (``IMREAD_UNCHANGED``, BGR(A) turned
to RGB(A)) for 16-bit PNG, which Pillow opens as 8-bit RGB(A), and tifffile for TIFF with more than
8 bits per sample. Pillow always supplies the metadata (ICC profile, EXIF, size, frame count).
Animated GIF, WebP and APNG files give their **first frame** and a logged warning.

Every refusal raises :class:`~resrgan.errors.ImageReadError` or
:class:`~resrgan.errors.ImageWriteError` with a one-line message ``"<path>: <reason>"``.

``write_image`` picks the format from the suffix and writes atomically: a hidden temporary file in
the same folder, flushed and fsynced, then ``os.replace``; the temporary file is removed on any
error, including ``KeyboardInterrupt``. PNG is written by OpenCV (fast; one BGR copy of the array;
``iCCP``/``eXIf`` spliced in after ``IHDR``), gray+alpha PNG by a streaming encoder in this module
(row bands, vectorised PNG filters, ``zlib``); TIFF by tifffile (ICC in tag 34675, no copy); JPEG,
WebP and BMP by Pillow.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import ImageReadError, ImageWriteError, UsageError
from ..paths import atomic_path

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "TMP_MARK",
    "WRITABLE_SUFFIXES",
    "ImageData",
    "apply_orientation",
    "check_writable",
    "is_image_path",
    "max_pixels_from_env",
    "output_extension",
    "read_image",
    "write_image",
]

#: Built-in decompression-bomb limit in pixels; ``RESRGAN_MAX_PIXELS`` replaces it at call time.
DEFAULT_MAX_PIXELS: int = 256 * 1024 * 1024

#: Suffixes treated as images when scanning a folder (lower case, with the dot).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".png",
        ".apng",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".tif",
        ".tiff",
        ".bmp",
        ".dib",
        ".gif",
    }
)

#: Suffix -> format name, for the formats ``write_image`` can produce.
_WRITE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
WRITABLE_SUFFIXES: frozenset[str] = frozenset(_WRITE_FORMATS)

#: Pillow format name -> our format name (MPO is the multi-picture JPEG many cameras write).
_READ_FORMATS: dict[str, str] = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "WEBP": "WEBP",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "DIB": "BMP",
    "GIF": "GIF",
}

_TMP_MARK = ".resrgan-tmp-"
#: Part of every temporary name ``write_image`` uses (``.<stem>.resrgan-tmp-<hex><suffix>``); a file
#: with it in its name is a leftover of a killed process and may be deleted.
TMP_MARK: str = _TMP_MARK
_JPEG_MAX_SIDE = 65535
_WEBP_MAX_SIDE = 16383
_PNG_MAX_SIDE = 2**31 - 1
_TO_ARRAY_BAND_BYTES = 16 << 20  # Pillow image -> numpy in bands of this many bytes
_TIFF_RAW_BYTES = 2**30  # TIFFs at least this big are written uncompressed (fast, no copy)
# zlib settings of the built-in PNG encoder: run-length matching only (OpenCV's default). After
# filtering it beat level 6 on photos and flat art (~3x faster, files no bigger); smooth synthetic
# gradients compress worse.
_PNG_LEVEL = 6
_PNG_BAND_BYTES = 4 * 1024 * 1024  # raw bytes filtered and compressed per step
_PNG_IDAT_BYTES = 1024 * 1024
_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


# --------------------------------------------------------------------------------------------------
# Public data type and small helpers


@dataclass
class ImageData:
    """A decoded image: upright pixels in RGB order, plus the metadata worth carrying along."""

    pixels: np.ndarray
    format: str
    icc_profile: bytes | None = None
    exif: bytes | None = None
    path: Path | None = None

    @property
    def mode(self) -> str:
        """``"L"``, ``"LA"``, ``"RGB"`` or ``"RGBA"`` from the shape of ``pixels``."""
        return _MODE_BY_CHANNELS[_channels(self.pixels)]

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("LA", "RGBA")

    @property
    def bit_depth(self) -> int:
        """8 or 16: bits per channel, from the dtype (which came from the file)."""
        return 8 * int(self.pixels.dtype.itemsize)


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True when the suffix (any case) is one of :data:`IMAGE_SUFFIXES`.

    Temporary files left by an interrupted :func:`write_image` (``.name.resrgan-tmp-XXXX.png``) are
    not images, so a batch never picks them up as inputs.
    """
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and _TMP_MARK not in p.name


def max_pixels_from_env() -> int:
    """``RESRGAN_MAX_PIXELS`` when set (a positive integer), else :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get("RESRGAN_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(
            f"RESRGAN_MAX_PIXELS={raw!r} is not a positive integer; set it to a pixel count "
            f"such as {DEFAULT_MAX_PIXELS} or unset it"
        )
    return value


def _channels(pixels: np.ndarray) -> int:
    if pixels.ndim == 2:
        return 1
    if pixels.ndim == 3 and 1 <= pixels.shape[2] <= 4:
        return int(pixels.shape[2])
    raise ValueError(
        f"pixels of shape {tuple(pixels.shape)} are not an image; expected (H, W) or (H, W, 1..4)"
    )


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Return ``pixels`` turned upright for an EXIF Orientation value 1..8 (a view; other values: as
    is).

    The eight cases are those of the EXIF/TIFF specification (and of Pillow's
    ``ImageOps.exif_transpose``): 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom, 5
    transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise.
    """
    import numpy as np

    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return np.swapaxes(pixels, 0, 1)
    if orientation == 6:
        return np.swapaxes(pixels, 0, 1)[:, ::-1]
    if orientation == 7:
        return np.swapaxes(pixels, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.swapaxes(pixels, 0, 1)[::-1]
    return pixels


def _normalise_exif(raw: bytes | None) -> bytes | None:
    """EXIF in Pillow's JPEG form: ``b"Exif\\0\\0"`` + TIFF header (WebP stores no prefix)."""
    if not raw:
        return None
    if raw.startswith(_EXIF_PREFIX):
        return bytes(raw)
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        return _EXIF_PREFIX + bytes(raw)
    return bytes(raw)


def _exif_orientation_reset(exif: bytes) -> tuple[bytes, int]:
    """Return (exif with IFD0 Orientation set to 1, the orientation it had; 1 when absent or
    unreadable).

    The bytes are patched in place (2 bytes), so every other tag, sub-IFD and maker note stays
    byte-exact.
    """
    tiff = exif[len(_EXIF_PREFIX) :] if exif.startswith(_EXIF_PREFIX) else exif
    base = len(exif) - len(tiff)
    if tiff[:2] == b"II":
        end = "<"
    elif tiff[:2] == b"MM":
        end = ">"
    else:
        return exif, 1
    try:
        (ifd,) = struct.unpack_from(end + "I", tiff, 4)
        (count,) = struct.unpack_from(end + "H", tiff, ifd)
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack_from(end + "HHI", tiff, entry)
            if tag != _ORIENTATION_TAG:
                continue
            if typ != 3 or n < 1:  # not a SHORT: leave it
                return exif, 1
            (value,) = struct.unpack_from(end + "H", tiff, entry + 8)
            patched = bytearray(exif)
            struct.pack_into(end + "H", patched, base + entry + 8, 1)
            return bytes(patched), int(value)
    except struct.error:
        return exif, 1
    return exif, 1


# --------------------------------------------------------------------------------------------------
# Reading


def read_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageData:
    """Decode ``path`` into an :class:`ImageData` (the format comes from the content, not the name).

    ``max_pixels``: images whose header claims more pixels are refused before any decoding; ``None``
    turns the check off. When it is left at :data:`DEFAULT_MAX_PIXELS`, ``RESRGAN_MAX_PIXELS`` (read
    at each call) replaces it. Animated files give their first frame (a warning is logged).
    CMYK/YCCK JPEGs become RGB: through their embedded ICC profile when there is one (the returned
    profile is then sRGB's), otherwise with the plain ``(255 - C) * (255 - K) / 255`` formula and no
    profile. Raises :class:`ImageReadError` ``"<path>: <reason>"`` for anything it cannot decode or
    refuses.
    """
    p = Path(path)
    if max_pixels == DEFAULT_MAX_PIXELS:
        max_pixels = max_pixels_from_env()
    _check_readable_file(p)

    from PIL import Image, UnidentifiedImageError

    try:
        with _pillow_unbounded():
            im = Image.open(p)
    except UnidentifiedImageError:
        if _is_tiff(p):  # Pillow does not open every TIFF layout (e.g. 16-bit gray+alpha)
            return _read_tiff_only(p, max_pixels)
        raise ImageReadError(f"{p}: {_unidentified_reason(p)}") from None
    except Image.DecompressionBombError as e:  # pragma: no cover - the bound is lifted above
        raise ImageReadError(f"{p}: {e}") from None
    except OSError as e:
        raise ImageReadError(f"{p}: cannot open ({e.strerror or e})") from None
    except Exception as e:  # malformed headers raise all sorts of things inside Pillow plugins
        raise ImageReadError(f"{p}: corrupt or unsupported image header ({_short(e)})") from None

    with im:
        fmt = _READ_FORMATS.get(im.format or "")
        if fmt is None:
            raise ImageReadError(
                f"{p}: {im.format} images are not supported; convert it to PNG, JPEG, WebP, "
                "TIFF or BMP"
            )
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageReadError(f"{p}: the header gives an empty size {width}x{height}")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageReadError(_too_big(p, width, height, max_pixels))
        if getattr(im, "is_animated", False):
            logger.warning("%s: %s with several frames; only the first one is used", p, fmt)
        try:
            pixels, icc = _decode(p, im, fmt)
            # read after decoding: a PNG eXIf chunk behind the image data is only seen then
            exif = _normalise_exif(im.info.get("exif"))
            orientation = 1
            if fmt == "TIFF":  # Orientation is one of the TIFF's own tags; no separate EXIF block
                exif, orientation = None, _pillow_orientation(im)
            elif exif is not None:
                exif, orientation = _exif_orientation_reset(exif)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(
                f"{p}: not enough memory to decode {width}x{height}; free memory or use a "
                "smaller image"
            ) from None
        except Exception as e:
            raise ImageReadError(
                f"{p}: cannot decode the {fmt} data ({_short(e)}); "
                "the file is damaged or incomplete"
            ) from None

    if orientation != 1:
        import numpy as np

        pixels = np.ascontiguousarray(apply_orientation(pixels, orientation))
    return ImageData(pixels=pixels, format=fmt, icc_profile=icc, exif=exif, path=p)


def read_rgb(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """``(H, W, 3)`` RGB pixels (uint8 or uint16) of an image file: gray is replicated to three
    channels and alpha is dropped, like cv2 ``IMREAD_COLOR`` but keeping 16 bits. For metrics and
    training data, where the colour planes are all that matter."""
    import numpy as np

    px = read_image(path, max_pixels=max_pixels).pixels
    if px.ndim == 2:
        px = px[..., None]
    if px.shape[2] in (1, 2):  # L, LA
        px = np.repeat(px[..., :1], 3, axis=2)
    return np.ascontiguousarray(px[..., :3])


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_readable_file(p: Path) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageReadError(f"{p}: no such file") from None
    except OSError as e:
        raise ImageReadError(f"{p}: cannot access ({e.strerror or e})") from None
    if p.is_dir():
        raise ImageReadError(f"{p}: is a folder, not an image file")
    if st.st_size == 0:
        raise ImageReadError(f"{p}: empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise ImageReadError(f"{p}: permission denied; make the file readable")


def _unidentified_reason(p: Path) -> str:
    with open(p, "rb") as f:
        head = f.read(16)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "a PNG signature but a corrupt or truncated header"
    if head.startswith(b"\xff\xd8"):
        return "a JPEG start marker but a corrupt or truncated header"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP signature but a corrupt or truncated header"
    if head[:3] == b"GIF" or head[:2] == b"BM" or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "corrupt or truncated header"
    printable = all(32 <= c < 127 or c in (9, 10, 13) for c in head)
    if printable:
        return f"not an image: the file starts with text {head.decode('ascii', 'replace')!r}"
    return (
        f"unknown image format (first bytes {head[:8].hex(' ')}); "
        "supported: PNG, JPEG, WebP, TIFF, BMP, GIF"
    )


@contextmanager
def _pillow_unbounded() -> Iterator[None]:
    """Lift Pillow's own bomb check for ``Image.open``; ``read_image`` checks the size itself."""
    from PIL import Image

    with _PIL_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


_PIL_LOCK = threading.Lock()


def _pillow_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1
    except Exception:  # unreadable EXIF must not make a readable image fail
        return 1


def _decode(p: Path, im: Image.Image, fmt: str) -> tuple[np.ndarray, bytes | None]:
    """Pixels (RGB order, uint8/uint16) and ICC profile of the first frame of an open image."""
    icc = im.info.get("icc_profile") or None
    if fmt == "PNG" and _png_bit_depth(p) == 16:
        return _decode_cv2(p, im), icc
    if fmt == "TIFF" and _tiff_bits(im) > 8:
        return _decode_tiff(p), icc
    im.seek(0)
    try:
        im.load()
    except OSError:
        if fmt != "TIFF":
            raise
        return _decode_tiff(p), icc  # a compression Pillow's libtiff was built without (ZSTD...)
    return _pillow_pixels(p, im, icc)


def _pillow_pixels(p: Path, im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    import numpy as np

    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        if "transparency" in im.info and mode in ("L", "RGB"):
            im = im.convert("LA" if mode == "L" else "RGBA")
        return _to_array(im), icc
    if mode == "1":
        return _to_array(im.convert("L")), icc
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        if not has_alpha and im.palette is not None and im.palette.mode == "RGBA":
            has_alpha = True
        return _to_array(im.convert("RGBA" if has_alpha else "RGB")), icc
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16, copy=True), icc
    if mode == "CMYK":
        return _cmyk_to_rgb(p, im, icc)
    if mode in ("La", "RGBa", "RGBX", "YCbCr", "LAB", "HSV"):
        target = "RGBA" if mode in ("RGBa",) else "LA" if mode == "La" else "RGB"
        return _to_array(im.convert(target)), icc
    raise ImageReadError(
        f"{p}: Pillow mode {mode!r} ({'32-bit' if mode in ('I', 'F') else 'unusual'} samples) "
        "is not "
        "supported; convert the image to 8- or 16-bit RGB, RGBA or gray"
    )


def _to_array(im: Image.Image) -> np.ndarray:
    """A writable array of a loaded L/LA/RGB/RGBA image, copied in bands of ~16 MB.

    ``np.array(im)`` would first build a ``bytes`` copy of the whole image (Pillow's
    ``__array_interface__``), so the peak would be Pillow's image + bytes + array; banding drops the
    middle term (for an 8000x8000 RGB PNG: 3.3 -> 2.3 times the array).
    """
    import numpy as np

    w, h = im.size
    channels = len(im.getbands())
    rows = max(1, _TO_ARRAY_BAND_BYTES // max(1, w * channels))
    if rows >= h:
        return np.array(im)
    out: np.ndarray | None = None
    for y0 in range(0, h, rows):
        band = np.asarray(im.crop((0, y0, w, min(h, y0 + rows))))
        if out is None:
            out = np.empty((h, *band.shape[1:]), dtype=band.dtype)
        out[y0 : y0 + band.shape[0]] = band
    assert out is not None
    return out


def _cmyk_to_rgb(p: Path, im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    """CMYK (Adobe inversion undone by Pillow) -> RGB via the embedded profile or a formula."""
    import numpy as np

    if icc:
        try:
            import io

            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            assert converted is not None
            srgb = ImageCms.ImageCmsProfile(dst).tobytes()
            return _to_array(converted), srgb
        except Exception as e:
            logger.warning(
                "%s: CMYK profile unusable (%s); converting with the plain formula", p, e
            )
    cmyk = np.asarray(im).astype(np.uint16)
    k = 255 - cmyk[..., 3:4]
    rgb = ((255 - cmyk[..., :3]) * k + 127) // 255
    return rgb.astype(np.uint8), None


def _png_bit_depth(p: Path) -> int:
    with open(p, "rb") as f:
        head = f.read(33)
    if len(head) < 26 or head[12:16] != b"IHDR":
        return 8
    return int(head[24])


def _tiff_bits(im: Image.Image) -> int:
    try:
        bits = im.tag_v2.get(258, (8,))  # type: ignore[attr-defined]
    except Exception:
        return 8
    if isinstance(bits, int):
        return bits
    return max(int(b) for b in bits) if bits else 8


def _decode_cv2(p: Path, im: Image.Image) -> np.ndarray:
    """A 16-bit PNG via OpenCV (Pillow gives 8-bit RGB(A)): BGR(A) -> RGB(A), GA kept 2-channel."""
    import cv2
    import numpy as np

    data = np.fromfile(p, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    del data
    if arr is None:
        w, h = im.size
        limit = _cv2_pixel_limit()
        if w * h > limit:
            raise ImageReadError(
                f"{p}: OpenCV refuses {w}x{h} = {w * h} pixels (its limit is {limit}); set "
                f"OPENCV_IO_MAX_IMAGE_PIXELS={w * h} in the environment before starting"
            )
        raise ImageReadError(
            f"{p}: cannot decode the 16-bit PNG data; the file is damaged or incomplete"
        )
    color_type = _png_color_type(p)
    if arr.ndim == 3 and color_type in (0, 4):  # gray(+alpha) that OpenCV expanded to BGR(A)
        arr = arr[..., [0, 3]] if arr.shape[2] == 4 and color_type == 4 else arr[..., 0]
        return np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=arr)  # in place: no second copy
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA, dst=arr)
    return arr


def _png_color_type(p: Path) -> int:
    with open(p, "rb") as f:
        head = f.read(33)
    return int(head[25]) if len(head) >= 26 else 2


def _cv2_pixel_limit() -> int:
    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 30)))
    except ValueError:
        return 1 << 30


def _is_tiff(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff_only(p: Path, max_pixels: int | None) -> ImageData:
    """A TIFF that Pillow cannot open: size check, pixels, ICC and orientation from tifffile."""
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            page = tf.pages.first
            height, width = int(page.imagelength), int(page.imagewidth)
            tags = page.tags
            icc_tag = tags.get(34675)
            icc = bytes(icc_tag.value) if icc_tag is not None else None
            orient_tag = tags.get(274)
            orientation = int(orient_tag.value) if orient_tag is not None else 1
    except Exception as e:
        raise ImageReadError(f"{p}: corrupt or unsupported TIFF ({_short(e)})") from None
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(_too_big(p, width, height, max_pixels))
    pixels = _decode_tiff(p)
    if orientation != 1:
        pixels = np.ascontiguousarray(apply_orientation(pixels, orientation))
    return ImageData(pixels=pixels, format="TIFF", icc_profile=icc or None, exif=None, path=p)


def _too_big(p: Path, width: int, height: int, max_pixels: int) -> str:
    return (
        f"{p}: the header claims {width}x{height} = {width * height} pixels, over the limit of "
        f"{max_pixels}; if you trust this file, raise the limit (RESRGAN_MAX_PIXELS or max_pixels)"
    )


def _decode_tiff(p: Path) -> np.ndarray:
    """TIFF with more than 8 bits per sample through tifffile (first page, samples last); every
    compression tifffile knows (LZW, Deflate, ZSTD, JPEG, PackBits, LZMA, WebP) through
    imagecodecs."""
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            page = tf.pages.first
            compression = getattr(page.compression, "name", str(page.compression))
            arr = page.asarray()
            photometric = int(page.photometric)
            planar = int(page.planarconfig)
            extra = len(page.extrasamples) if page.extrasamples is not None else 0
            samples = int(page.samplesperpixel)
    except Exception as e:
        if "imagecodecs" in str(e):  # a codec tifffile itself lacks: not a damaged file
            raise ImageReadError(
                f"{p}: this TIFF is {compression}-compressed, which needs the imagecodecs "
                "package (pip install imagecodecs)"
            ) from None
        raise ImageReadError(
            f"{p}: cannot decode the TIFF data ({_short(e)}); the file is damaged or incomplete"
        ) from None
    if planar == 2 and arr.ndim == 3 and samples > 1 and arr.shape[0] == samples:
        arr = np.moveaxis(arr, 0, -1)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            f"{p}: TIFF samples of type {arr.dtype} are not supported; save it as 8- or 16-bit "
            "integer"
        )
    if photometric == 0:  # MinIsWhite
        arr = np.iinfo(arr.dtype).max - arr
    if photometric not in (0, 1, 2):
        raise ImageReadError(
            f"{p}: TIFF photometric interpretation {photometric} (CMYK/Lab/palette at >8 bits) "
            "is not "
            "supported; save it as 16-bit RGB or gray"
        )
    if arr.ndim == 3 and arr.shape[2] > 4:
        arr = arr[..., : 4 if photometric == 2 and extra else 3 if photometric == 2 else 2]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ImageReadError(f"{p}: TIFF data of shape {arr.shape} is not a single 2-D image")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------------------
# Writing


def _format_for(path: Path) -> str:
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = path.suffix or "(none)"
        raise ImageWriteError(
            f"{path}: unknown image suffix {shown}; use .png, .jpg, .webp, .tif or .bmp"
        )
    return fmt


def check_writable(
    path: str | os.PathLike[str], height: int, width: int, channels: int, dtype: Any
) -> None:
    """Raise :class:`ImageWriteError` now if such an image cannot be written to ``path``.

    Checks the suffix, the dtype (uint8/uint16), the format's limits (JPEG 65535 px per side, WebP
    16383, 8-bit only for JPEG/WebP/BMP, no alpha in JPEG/BMP), that the folder exists and is
    writable, and, for what is written uncompressed (BMP, TIFF of 1 GiB or more), that the disk
    has room.
    """
    import numpy as np

    p = Path(path)
    fmt = _format_for(p)
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ImageWriteError(
            f"{p}: pixels of dtype {dt} cannot be written; convert them to uint8 or uint16 first"
        )
    if channels not in (1, 2, 3, 4):
        raise ImageWriteError(f"{p}: {channels} channels is not an image; expected 1, 2, 3 or 4")
    if height <= 0 or width <= 0:
        raise ImageWriteError(f"{p}: empty image {width}x{height} cannot be written")
    bits = dt.itemsize * 8
    alpha = channels in (2, 4)
    if fmt in ("JPEG", "WEBP", "BMP") and bits == 16:
        raise ImageWriteError(
            f"{p}: {fmt} holds 8 bits per channel but this image is 16-bit; "
            "write .png or .tif to keep the depth"
        )
    if fmt in ("JPEG", "BMP") and alpha:
        raise ImageWriteError(
            f"{p}: {fmt} has no alpha channel and this image has one; write .png (or .webp/.tif) "
            "to keep it"
        )
    side_limit = {"JPEG": _JPEG_MAX_SIDE, "WEBP": _WEBP_MAX_SIDE, "PNG": _PNG_MAX_SIDE}.get(fmt)
    if side_limit is not None and max(height, width) > side_limit:
        raise ImageWriteError(
            f"{p}: {fmt} allows at most {side_limit} px per side but the image is "
            f"{width}x{height}; write .png or .tif, or use a smaller outscale"
        )
    if fmt == "BMP":
        row = (width * 3 * bits // 8 + 3) // 4 * 4 if channels >= 3 else (width + 3) // 4 * 4
        if row * height + 1078 >= 2**32:
            raise ImageWriteError(
                f"{p}: a {width}x{height} BMP would exceed the format's 4 GiB file size; "
                "write .png or .tif"
            )
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ImageWriteError(f"{p}: the folder {folder} does not exist; create it first")
    if p.is_dir():
        raise ImageWriteError(f"{p}: is a folder; choose a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ImageWriteError(f"{p}: the folder {folder} is not writable (permission denied)")
    needed = height * width * channels * dt.itemsize
    if fmt == "BMP" or (fmt == "TIFF" and needed >= _TIFF_RAW_BYTES):  # written uncompressed
        free = _free_bytes(folder)
        if free is not None and needed > free:
            raise ImageWriteError(
                f"{p}: needs about {needed / 1e9:.2f} GB but only {free / 1e9:.2f} GB are free on "
                "that disk"
            )


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    quality: int = 95,
) -> Path:
    """Write ``pixels`` (RGB order, uint8/uint16, any of the four layouts) to ``path`` atomically.

    The format comes from the suffix (see :func:`check_writable`, which is called first).
    ``quality`` (1..100) is for JPEG and WebP; WebP at 100 is written lossless. ICC is embedded in
    PNG, JPEG, WebP and TIFF; EXIF in PNG, JPEG and WebP (TIFF and BMP drop it, logged at debug).
    Gray(+alpha) becomes RGB(A) in WebP, which has no gray mode. Returns the path written.
    """
    import numpy as np

    p = Path(path)
    if not isinstance(pixels, np.ndarray):
        raise ImageWriteError(f"{p}: pixels must be a numpy array, got {type(pixels).__name__}")
    try:
        channels = _channels(pixels)
    except ValueError as e:
        raise ImageWriteError(f"{p}: {e}") from None
    if pixels.ndim == 3 and channels == 1:
        pixels = pixels[..., 0]
    check_writable(p, int(pixels.shape[0]), int(pixels.shape[1]), channels, pixels.dtype)
    if not 1 <= int(quality) <= 100:
        raise ImageWriteError(f"{p}: quality {quality} is outside 1..100")
    fmt = _format_for(p)
    exif = _normalise_exif(exif)
    if exif is not None and fmt in ("TIFF", "BMP"):
        logger.debug("%s: EXIF is not written to %s", p, fmt)
    if icc_profile is not None and fmt == "BMP":
        logger.debug("%s: ICC profile is not written to BMP", p)

    with _atomic(p) as fh:
        try:
            if fmt == "PNG" and channels != 2:
                try:
                    _write_png_cv2(fh, pixels, icc_profile=icc_profile, exif=exif)
                except _Cv2WriteFailed as e:
                    logger.warning("%s: %s; using the built-in PNG encoder", p, e)
                    fh.seek(0)
                    fh.truncate()
                    _write_png(fh, pixels, icc_profile=icc_profile, exif=exif)
            elif fmt == "PNG":  # gray+alpha: OpenCV cannot write it
                _write_png(fh, pixels, icc_profile=icc_profile, exif=exif)
            elif fmt == "TIFF":
                _write_tiff(fh, pixels, icc_profile=icc_profile)
            else:
                _write_pillow(
                    fh, pixels, fmt, icc_profile=icc_profile, exif=exif, quality=int(quality)
                )
        except (ImageWriteError, KeyboardInterrupt):
            raise
        except OSError as e:
            raise _os_write_error(p, e) from None
        except MemoryError:
            raise ImageWriteError(f"{p}: not enough memory to encode {fmt}") from None
        except Exception as e:
            raise ImageWriteError(f"{p}: the {fmt} encoder failed ({_short(e)})") from None
    return p


def _os_write_error(p: Path, e: OSError) -> ImageWriteError:
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"the folder {p.parent} is not writable ({e.strerror})"
    elif e.errno in (errno.ENOSPC, errno.EDQUOT):
        why = f"the disk is full ({e.strerror}); free space or write elsewhere"
    else:
        why = f"{e.strerror or e}"
    return ImageWriteError(f"{p}: cannot write: {why}")


@contextmanager
def _atomic(p: Path) -> Iterator[IO[bytes]]:
    """Yield a file at a hidden temporary name next to ``p`` (``.STEM`` + TMP_MARK + random +
    suffix) that replaces ``p`` on success (:func:`resrgan.paths.atomic_path`)."""
    try:
        with (
            # no folder sync: a batch counts the image done as soon as it appears (see atomic_path)
            atomic_path(
                p, prefix=f".{p.stem}{_TMP_MARK}", suffix=p.suffix, sync_folder=False
            ) as tmp,
            open(tmp, "wb") as fh,
        ):
            yield fh
    except OSError as e:
        raise _os_write_error(p, e) from None


# --- PNG through OpenCV (fast C filters and deflate) ----------------------------------------------


def _write_png_cv2(
    fh: IO[bytes], pixels: np.ndarray, *, icc_profile: bytes | None, exif: bytes | None
) -> None:
    """Gray, RGB or RGBA PNG (8/16-bit) by ``cv2.imwrite`` into ``fh``'s file.

    OpenCV wants BGR(A): that is one converted copy of the array (gray needs none). With an ICC
    profile or EXIF, OpenCV writes a side file which is then streamed into ``fh`` with ``iCCP`` and
    ``eXIf`` chunks inserted after ``IHDR`` (OpenCV 4 cannot write them).
    """
    import cv2
    import numpy as np

    c = _channels(pixels)
    if c == 1:
        bgr = np.ascontiguousarray(pixels.reshape(pixels.shape[:2]))
    elif pixels.flags.c_contiguous:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR if c == 3 else cv2.COLOR_RGBA2BGRA)
    else:
        bgr = np.ascontiguousarray(pixels[..., [2, 1, 0, 3][:c]])
    target = Path(fh.name)
    if not icc_profile and not exif:
        _cv2_imwrite(target, bgr)
        return
    side = target.with_name(target.name + ".cv2.png")
    try:
        _cv2_imwrite(side, bgr)
        del bgr
        with open(side, "rb") as src:
            head = src.read(33)  # signature + the IHDR chunk
            if len(head) != 33 or head[12:16] != b"IHDR":
                raise RuntimeError("OpenCV wrote a PNG without a leading IHDR chunk")
            fh.write(head)
            _png_metadata_chunks(fh, icc_profile=icc_profile, exif=exif)
            shutil.copyfileobj(src, fh, 1 << 20)
    finally:
        with suppress(OSError):
            os.unlink(side)


def _cv2_imwrite(path: Path, img: np.ndarray) -> None:
    """PNG by ``cv2.imencode``, written through a Python file object: OpenCV never sees the path
    (its Python binding crashes on names that are not valid UTF-8, and on Windows it takes no
    non-ASCII paths)."""
    import cv2

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise _Cv2WriteFailed("OpenCV's PNG writer failed")
    with open(path, "wb") as fh:
        fh.write(memoryview(buf))


class _Cv2WriteFailed(RuntimeError):
    """``cv2.imwrite`` said no without saying why; the built-in encoder takes over."""


# --- PNG: a streaming encoder (gray+alpha, and tests) ---------------------------------------------


def _png_chunk(fh: IO[bytes], kind: bytes, data: bytes | memoryview) -> None:
    crc = zlib.crc32(data, zlib.crc32(kind))
    fh.write(struct.pack(">I", len(data)) + kind)
    fh.write(data)
    fh.write(struct.pack(">I", crc & 0xFFFFFFFF))


def _png_metadata_chunks(fh: IO[bytes], *, icc_profile: bytes | None, exif: bytes | None) -> None:
    if icc_profile:
        _png_chunk(fh, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile))
    if exif:
        tiff = exif[len(_EXIF_PREFIX) :] if exif.startswith(_EXIF_PREFIX) else exif
        _png_chunk(fh, b"eXIf", tiff)


def _write_png(
    fh: IO[bytes],
    pixels: np.ndarray,
    *,
    icc_profile: bytes | None,
    exif: bytes | None,
    only_filter: int | None = None,
) -> None:
    """PNG of any layout at 8/16 bits; rows filtered (adaptive, five filters) in ~4 MB bands."""
    import numpy as np

    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    c = _channels(pixels)
    depth = 16 if pixels.dtype == np.uint16 else 8
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    fh.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    _png_metadata_chunks(fh, icc_profile=icc_profile, exif=exif)

    bpp = c * depth // 8
    row_bytes = w * bpp
    band = max(1, _PNG_BAND_BYTES // max(row_bytes, 1))
    comp = zlib.compressobj(_PNG_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    pending = bytearray()
    prev = np.zeros(row_bytes, dtype=np.uint8)
    flat = pixels.reshape(h, w * c) if pixels.flags.c_contiguous else None
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        rows = flat[r0:r1] if flat is not None else pixels[r0:r1].reshape(r1 - r0, w * c)
        raw = rows.astype(">u2").view(np.uint8) if depth == 16 else rows
        raw = raw.reshape(r1 - r0, row_bytes)
        pending += comp.compress(_png_filter_band(raw, prev, bpp, only_filter))
        prev = raw[-1].copy()
        if len(pending) >= _PNG_IDAT_BYTES:
            _png_chunk(fh, b"IDAT", bytes(pending))
            pending.clear()
    pending += comp.flush()
    for i in range(0, len(pending), _PNG_IDAT_BYTES):
        _png_chunk(fh, b"IDAT", bytes(pending[i : i + _PNG_IDAT_BYTES]))
    _png_chunk(fh, b"IEND", b"")


def _png_filter_band(raw: np.ndarray, prev: np.ndarray, bpp: int, only: int | None = None) -> bytes:
    """Filter each row with the PNG filter type (0-4) that minimises its sum of |signed bytes|.

    The filters are defined on unfiltered bytes (a: left, b: up, c: up-left), so the whole band is
    vectorised, in uint8 arithmetic that wraps mod 256 as PNG requires; the cost (libpng's
    heuristic) is estimated on every 4th byte. ``prev`` is the unfiltered row above the band (zeros
    for the first band). ``only`` forces one filter type on every row (for tests).
    """
    import numpy as np

    n, rb = raw.shape
    x = raw
    up = np.empty_like(x)
    up[0] = prev
    up[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]

    def paeth() -> np.ndarray:
        bc = up.astype(np.int16) - upleft  # p - a
        ac = left.astype(np.int16) - upleft  # p - b
        pc = np.abs(bc + ac)
        pa, pb = np.abs(bc, out=bc), np.abs(ac, out=ac)
        pred = np.where(pb <= pc, up, upleft)
        return x - np.where((pa <= pb) & (pa <= pc), left, pred)

    makers = (
        lambda: x,
        lambda: x - left,
        lambda: x - up,
        lambda: x - ((left >> 1) + (up >> 1) + (left & up & 1)),
        paeth,
    )
    out = np.empty((n, rb + 1), dtype=np.uint8)
    if only is not None:
        out[:, 0] = only
        out[:, 1:] = makers[only]()
        return out.tobytes()
    best_cost = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    for kind, make in enumerate(makers):
        filtered = make()
        sample = filtered[:, ::4].view(np.int8).astype(np.int16)
        cost = np.abs(sample, out=sample).sum(axis=1, dtype=np.int64)
        better = cost < best_cost
        if kind == 0 or better.all():
            out[:, 0] = kind
            out[:, 1:] = filtered
            best_cost = cost
        elif better.any():
            out[better, 0] = kind
            out[better, 1:] = filtered[better]
            best_cost[better] = cost[better]
    return out.tobytes()


# --- TIFF, JPEG, WebP, BMP ------------------------------------------------------------------------


def _write_tiff(fh: IO[bytes], pixels: np.ndarray, *, icc_profile: bytes | None) -> None:
    import tifffile

    c = _channels(pixels)
    kwargs: dict[str, Any] = {
        "photometric": "rgb" if c >= 3 else "minisblack",
        "metadata": None,
    }
    if pixels.nbytes < _TIFF_RAW_BYTES:  # deflate with horizontal differencing, fast level
        kwargs.update(compression="zlib", predictor=True, compressionargs={"level": 1})
    if c in (2, 4):
        kwargs["extrasamples"] = ("unassalpha",)
    if icc_profile:
        kwargs["iccprofile"] = icc_profile
    if pixels.nbytes >= 2**32 - 2**25:
        kwargs["bigtiff"] = True
    tifffile.imwrite(fh, pixels, **kwargs)


def _write_pillow(
    fh: IO[bytes],
    pixels: np.ndarray,
    fmt: str,
    *,
    icc_profile: bytes | None,
    exif: bytes | None,
    quality: int,
) -> None:
    import numpy as np
    from PIL import Image

    if fmt == "WEBP" and pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    elif fmt == "WEBP" and pixels.shape[2] == 2:
        pixels = pixels[..., [0, 0, 0, 1]]
    im = Image.fromarray(np.ascontiguousarray(pixels))
    kwargs: dict[str, Any] = {}
    if icc_profile and fmt in ("JPEG", "WEBP"):
        kwargs["icc_profile"] = icc_profile
    if exif and fmt == "JPEG":
        kwargs["exif"] = exif
    if exif and fmt == "WEBP":
        kwargs["exif"] = exif[len(_EXIF_PREFIX) :] if exif.startswith(_EXIF_PREFIX) else exif
    if fmt == "JPEG":
        kwargs["quality"] = quality
    elif fmt == "WEBP":
        if quality >= 100:
            kwargs.update(lossless=True, quality=100, method=2, exact=True)
        else:
            kwargs.update(quality=quality, method=2)  # 4 (default): 3x slower, +50% RAM
    im.save(fh, format=fmt, **kwargs)


# --------------------------------------------------------------------------------------------------
# Output naming


def output_extension(input: ImageData | str | os.PathLike[str], ext: str = "auto") -> str:
    """The output extension (no dot) by the original's ``--ext`` rule, made safe.

    ``"auto"`` keeps the input's extension (case kept). An image with alpha goes to ``png`` unless
    the chosen format keeps alpha (WebP, TIFF, PNG); 16-bit goes to ``png`` unless the format holds
    16 bits (TIFF); GIF and other unwritable inputs go to ``png``. A path (str) carries no pixels,
    so only the suffix rules apply to it. Raises :class:`UsageError` for an ``ext`` that cannot be
    written.
    """
    chosen = ext.strip().lstrip(".")
    if chosen.lower() != "auto" and "." + chosen.lower() not in _WRITE_FORMATS:
        raise UsageError(
            f"--ext {ext!r} is not a writable image format; use auto, png, jpg, webp, tif or bmp"
        )
    if isinstance(input, ImageData):
        source = input.path.suffix if input.path is not None else "." + input.format.lower()
        alpha = input.has_alpha
        sixteen = input.pixels.dtype.itemsize == 2
    else:
        source, alpha, sixteen = Path(input).suffix, False, False
    if chosen.lower() == "auto":
        chosen = source.lstrip(".")
        if "." + chosen.lower() not in _WRITE_FORMATS:
            return "png"
    fmt = _WRITE_FORMATS["." + chosen.lower()]
    if alpha and fmt in ("JPEG", "BMP"):
        return "png"
    if sixteen and fmt in ("JPEG", "WEBP", "BMP"):
        return "png"
    return chosen
