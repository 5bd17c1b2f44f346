"""Where resrgan keeps downloaded and converted files.

``RESRGAN_HOME`` overrides the location; otherwise the platform's user cache directory is used
(``~/.cache/resrgan`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root (not created)."""
    env = os.environ.get("RESRGAN_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("resrgan", appauthor=False))


def weights_dir() -> Path:
    """Folder for model weights (created on demand)."""
    d = cache_dir() / "weights"
    d.mkdir(parents=True, exist_ok=True)
    return d


def temp_sibling(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """``(fd, name)`` of a new hidden temporary file next to ``path``, for write-then-rename.

    Unlike a bare ``tempfile.mkstemp`` (always 0600), the file gets the permissions a plain
    ``open()`` would give it (0666 minus the umask), so renamed weights and checkpoints are as
    readable as any other file the user writes.
    """
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, default_file_mode())
    return fd, name


def default_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
