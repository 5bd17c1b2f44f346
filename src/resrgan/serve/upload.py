"""Taking files from a browser without trusting them.

:func:`receive_upload` reads a ``multipart/form-data`` body as it streams in and writes each file to
a name it generates itself (the client's file name is kept only as display text). It refuses a body
whose ``Content-Length`` is over the limit before reading a byte, counts the bytes it actually
receives (a missing or lying ``Content-Length`` changes nothing), stops at the file-count and
form-field limits as soon as they are crossed, and gives up on a body that takes longer than the
time limit. Every refusal is an :class:`UploadRefused` with an HTTP status and a one-line message;
files already written for a refused request are deleted.

:func:`inspect_image` then decides each file's type from its first bytes (never from its name) and
reads its width and height from the header alone, so a decompression bomb is refused before any
pixel is decoded.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: (leading bytes, format) of the image types the reader decodes
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
SUPPORTED = "PNG, JPEG, WebP, TIFF, BMP or GIF"
# Pillow's own format names for each sniffed type (Image.open(formats=...) tries only these)
_PIL_FORMATS = {
    "PNG": ["PNG"],
    "JPEG": ["JPEG", "MPO"],
    "WEBP": ["WEBP"],
    "GIF": ["GIF"],
    "TIFF": ["TIFF"],
    "BMP": ["BMP", "DIB"],
}
_FILE_SUFFIX = ".upload"


class UploadRefused(Exception):
    """The whole request is refused: ``status`` (HTTP) and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class UploadedFile:
    """One file of an upload: ``path`` is ours (generated), ``name`` the client's, for display."""

    name: str
    path: Path
    size: int = 0
    error: str | None = None
    format: str | None = None
    width: int = 0
    height: int = 0


@dataclass
class Upload:
    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    received: int = 0

    def discard(self) -> None:
        """Delete every file this upload wrote."""
        for f in self.files:
            f.path.unlink(missing_ok=True)


def display_name(raw: str) -> str:
    """The client's file name as display text: no folders, no control characters, at most 120
    characters. It never becomes part of a path on disk."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:120] or "unnamed"


def download_stem(name: str) -> str:
    """A harmless file-name stem for ``Content-Disposition`` and zip entries: letters, digits,
    ``-``, ``_``, ``.`` and spaces from the display name, no leading dot."""
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = re.sub(r"[^\w\-. ]+", "_", stem).strip(" ._")
    return stem[:80] or "image"


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def sniff(head: bytes) -> str | None:
    """The image type from the first bytes (``"PNG"``, ``"JPEG"``, ...), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def not_an_image(head: bytes) -> str:
    """The reason a file with these first bytes is refused."""
    text = head[:24]
    if text and all(32 <= c < 127 or c in (9, 10, 13) for c in text):
        shown = " ".join(text.decode("ascii").split())
        return f"not an image: the file starts with text {shown!r} (send {SUPPORTED})"
    return f"not an image: unknown first bytes {head[:8].hex(' ')} (send {SUPPORTED})"


def inspect_image(f: UploadedFile, *, max_pixels: int) -> None:
    """Fill ``f.format``, ``f.width``, ``f.height`` from the header, or set ``f.error``.

    Only the header is read (Pillow's ``Image.open`` is lazy); ``width * height`` is compared with
    ``max_pixels`` here, so nothing over the limit is ever decoded.
    """
    if f.size == 0:
        f.error = "empty file (0 bytes)"
        return
    with open(f.path, "rb") as fh:
        head = fh.read(32)
    fmt = sniff(head)
    if fmt is None:
        f.error = not_an_image(head)
        return
    f.format = fmt
    try:
        width, height = _header_size(f.path, fmt, max_pixels)
    except _TooBig as e:
        f.error = (
            f"the header claims {e.pixels} pixels ({megapixels(e.pixels)}), over the "
            f"{megapixels(max_pixels)} limit; nothing was decoded"
        )
        return
    except Exception as e:
        f.error = f"a {fmt} signature but a corrupt or truncated header ({_short(e)})"
        return
    if width <= 0 or height <= 0:
        f.error = f"the header gives an empty size {width}x{height}"
        return
    f.width, f.height = width, height
    if width * height > max_pixels:
        f.error = (
            f"{width}x{height} is {megapixels(width * height)}, over the "
            f"{megapixels(max_pixels)} limit; nothing was decoded"
        )


class _TooBig(Exception):
    def __init__(self, pixels: int) -> None:
        self.pixels = pixels


def _header_size(path: Path, fmt: str, max_pixels: int) -> tuple[int, int]:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=_PIL_FORMATS[fmt]) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as e:  # Pillow's own limit (set by the server) fired
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise _TooBig(int(m.group(1)) if m else max_pixels + 1) from None
    except Exception:
        if fmt != "TIFF":
            raise
    import tifffile  # Pillow does not open every TIFF layout; the project's reader uses tifffile

    with tifffile.TiffFile(path) as tif:
        shape = tif.pages[0].shape
    return int(shape[1]), int(shape[0])


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


# ------------------------------------------------------------------------------ multipart


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_files: int
    timeout_s: float
    max_fields: int = 16
    max_field_bytes: int = 1024


class _Parts:
    """python-multipart callbacks: files go straight to disk under generated names."""

    def __init__(self, folder: Path, limits: Limits, upload: Upload) -> None:
        self.folder = folder
        self.limits = limits
        self.upload = upload
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.file: UploadedFile | None = None
        self.fh: IO[bytes] | None = None
        self.field_name: str | None = None
        self.field_data = bytearray()
        self.unnamed = False
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.disposition = b""
        self.file, self.field_name = None, None
        self.field_data.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _kind, options = parse_options_header(self.disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.upload.fields) >= self.limits.max_fields:
                raise UploadRefused(400, f"too many form fields: at most {self.limits.max_fields}")
            self.field_name = name
            return
        if len(self.upload.files) >= self.limits.max_files:
            raise UploadRefused(
                400,
                f"too many files: at most {self.limits.max_files} per upload "
                "(--max-files); send the rest in another upload",
            )
        client = options[b"filename"].decode("utf-8", "replace")
        self.unnamed = client == ""  # a form's empty file input sends filename="" and no data
        path = self.folder / f"{secrets.token_hex(16)}{_FILE_SUFFIX}"
        self.file = UploadedFile(name=display_name(client), path=path)
        self.upload.files.append(self.file)
        # O_EXCL: the generated name is new; nothing existing is ever opened or followed
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.fh = os.fdopen(fd, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.fh is not None and self.file is not None:
            self.fh.write(data[start:end])
            self.file.size += end - start
        elif self.field_name is not None:
            self.field_data += data[start:end]
            if len(self.field_data) > self.limits.max_field_bytes:
                raise UploadRefused(
                    400,
                    f"form field '{self.field_name[:40]}' is longer than "
                    f"{self.limits.max_field_bytes} bytes",
                )

    def on_part_end(self) -> None:
        if self.fh is not None and self.file is not None:
            self.fh.close()
            self.fh = None
            if self.unnamed and self.file.size == 0:
                self.upload.files.remove(self.file)
                self.file.path.unlink(missing_ok=True)
        elif self.field_name is not None:
            self.upload.fields[self.field_name] = self.field_data.decode("utf-8", "replace")
        self.file, self.field_name = None, None

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _mb(n: int) -> str:
    v = n / (1024 * 1024)
    return f"{v:.0f} MB" if abs(v - round(v)) < 0.05 else f"{v:.1f} MB"


def check_headers(headers: dict[str, str] | object, max_bytes: int) -> tuple[bytes, int | None]:
    """(multipart boundary, declared length) from the request headers, or :class:`UploadRefused`
    (415 not multipart, 411/400 a bad Content-Length, 413 one over ``max_bytes``)."""
    from python_multipart.multipart import parse_options_header

    get = headers.get  # type: ignore[attr-defined]
    kind, params = parse_options_header(get("content-type", ""))
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadRefused(
            415, "send the images as multipart/form-data (a form with a 'files' field)"
        )
    declared: int | None = None
    raw = get("content-length")
    if raw is not None:
        try:
            declared = int(raw)
        except ValueError:
            raise UploadRefused(400, f"Content-Length {raw[:40]!r} is not a number") from None
        if declared < 0:
            raise UploadRefused(400, f"Content-Length {declared} is negative")
        if declared > max_bytes:
            raise UploadRefused(
                413,
                f"the upload is {_mb(declared)}, over the {_mb(max_bytes)} limit "
                "(--max-upload-mb); send fewer or smaller files",
            )
    return params[b"boundary"], declared


async def receive_upload(
    headers: object, stream: AsyncIterator[bytes], folder: Path, limits: Limits
) -> Upload:
    """Stream a multipart body into ``folder``; see the module docstring for what is refused."""
    import anyio
    from python_multipart.multipart import MultipartParseError, MultipartParser

    boundary, declared = check_headers(headers, limits.max_bytes)
    upload = Upload()
    parts = _Parts(folder, limits, upload)
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        try:
            with anyio.fail_after(limits.timeout_s if math.isfinite(limits.timeout_s) else None):
                async for chunk in stream:
                    upload.received += len(chunk)
                    if upload.received > limits.max_bytes:
                        raise UploadRefused(
                            413,
                            f"the upload is over the {_mb(limits.max_bytes)} limit "
                            f"(--max-upload-mb); {upload.received} bytes received so far",
                        )
                    parser.write(chunk)
        except TimeoutError:
            raise UploadRefused(
                408,
                f"the upload took longer than {limits.timeout_s:g} s (--request-timeout); "
                f"{upload.received} bytes received in {time.monotonic() - started:.0f} s",
            ) from None
        except MultipartParseError as e:
            raise UploadRefused(400, f"malformed multipart body ({_short(e)})") from None
        if declared is not None and upload.received != declared:
            raise UploadRefused(
                400,
                f"the body has {upload.received} bytes but Content-Length said {declared}",
            )
        if not parts.ended:
            raise UploadRefused(400, "the upload ended early (incomplete multipart body)")
    except BaseException:
        parts.close()
        upload.discard()
        raise
    parts.close()
    return upload
