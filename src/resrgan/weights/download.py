"""Verified, atomic download of weight files.

The file is streamed to a temporary name next to the destination, its SHA-256 is computed on the
fly, and only a file whose hash matches (when one is known) is renamed into place
(:func:`resrgan.paths.atomic_path`). A failed or interrupted download never leaves a partial file
under the final name.

``RESRGAN_OFFLINE=1`` refuses every download. Progress is reported through an optional callback
``progress(done_bytes, total_bytes_or_None)``; the CLI turns it into a tqdm bar.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import WeightsError
from ..paths import atomic_path

# how to use a file fetched by hand, for every "cannot download" message
MANUAL_HINT = "pass its path instead of the name (--model_path when upscaling)"

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, "int | None"], None]
CHUNK = 1 << 20


def offline() -> bool:
    """True when ``RESRGAN_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("RESRGAN_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    manual: str = MANUAL_HINT,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it.

    ``size`` (bytes), ``sha256`` (full hex) and ``sha256_prefix`` (the first hex digits, as in
    BasicSR file names) are checked before the file is moved into place; on a mismatch the
    temporary file is deleted and WeightsError is raised. Refused with WeightsError when offline
    (``RESRGAN_OFFLINE=1``). ``manual`` ends the messages that suggest fetching the file by hand
    ("download the file yourself and ...").
    """
    dest = Path(dest)
    if offline():
        raise WeightsError(
            f"{dest.name}: download of {url} refused because RESRGAN_OFFLINE=1; unset it, or "
            f"download the file yourself and {manual}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    done = 0
    log.info("downloading %s -> %s", url, dest)
    with atomic_path(dest, suffix=".part") as tmp, open(tmp, "wb") as out:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http/https/file only)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise WeightsError(
                f"{dest.name}: cannot download {url} ({e}); check the network, or download the "
                f"file yourself and {manual}"
            ) from None
        with resp:
            length = resp.headers.get("Content-Length") if resp.headers else None
            total = int(length) if length and length.isdigit() else None
            while True:
                try:
                    block = resp.read(CHUNK)
                except (OSError, urllib.error.URLError) as e:
                    raise WeightsError(
                        f"{dest.name}: download of {url} interrupted after {done} bytes ({e}); "
                        "run the command again"
                    ) from None
                if not block:
                    break
                out.write(block)
                h.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
        if total is not None and done != total:
            raise WeightsError(
                f"{dest.name}: download of {url} incomplete ({done} of {total} bytes); run the "
                "command again"
            )
        if size is not None and done != size:
            raise WeightsError(
                f"{dest.name}: download of {url} has {done} bytes, expected {size}; the file was "
                "deleted. Retry, or report it if it persists"
            )
        digest = h.hexdigest()
        expected = (sha256 or "").lower()
        prefix = (sha256_prefix or "").lower()
        if (expected and digest != expected) or (prefix and not digest.startswith(prefix)):
            want = expected or f"{prefix}..."
            raise WeightsError(
                f"{dest.name}: SHA-256 mismatch for {url}: got {digest}, expected {want}; the file "
                "was deleted. The download may be corrupt or the file may have been replaced; "
                "retry, or report it"
            )
    log.info("downloaded %s (%d bytes, sha256 %s)", dest, done, digest)
    return dest
