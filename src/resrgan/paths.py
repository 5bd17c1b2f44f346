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
