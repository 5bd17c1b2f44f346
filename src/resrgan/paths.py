"""Where resrgan keeps downloaded and converted files, and how every file is written.

``RESRGAN_HOME`` overrides the location; otherwise the platform's user cache directory is used
(``~/.cache/resrgan`` on Linux). :func:`atomic_path` is the one write-then-rename helper: weights,
checkpoints, exports, images and run files all go through it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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


@contextmanager
def atomic_path(
    dest: str | os.PathLike[str],
    *,
    prefix: str | None = None,
    suffix: str = ".tmp",
    sync_folder: bool = True,
) -> Iterator[Path]:
    """Write-then-rename: yield a hidden temporary path next to ``dest`` for the block to write.

    When the block ends normally the file gets the permissions a plain ``open()`` would give it
    (0666 minus the umask, set after the write because some writers replace the file), is fsynced
    and renamed over ``dest`` with ``os.replace``, and (``sync_folder``) the folder is fsynced so
    the rename itself survives a power cut. When the block raises, the temporary file is removed
    and the exception goes on. ``dest`` therefore holds either its previous content or the complete
    new file, never a partial one; a process killed mid-write leaves only the hidden temporary file.

    The temporary name is ``prefix`` + random characters + ``suffix`` (default
    ``.NAME.<random>.tmp``); writers that choose a format by extension need ``suffix=dest.suffix``.
    The folder must exist; errors creating, syncing or renaming the file are OSError. Without
    ``sync_folder`` the function returns right after the rename: a batch that counts a file as done
    once it appears (an interrupt can land in a slow folder sync) wants that.

        >>> with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        ...     fh.write(data)
    """
    import tempfile

    target = Path(dest)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}." if prefix is None else prefix, suffix=suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    if sync_folder:
        _fsync(target.parent, directory=True)


def _fsync(path: Path, *, directory: bool = False) -> None:
    """Flush ``path`` to disk; for a folder (the rename), best effort (not possible everywhere)."""
    # POSIX syncs through a read-only descriptor (so a umask without owner write does not matter);
    # Windows needs a writable one and cannot open folders
    flags = os.O_RDWR | getattr(os, "O_BINARY", 0) if os.name == "nt" else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def default_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
