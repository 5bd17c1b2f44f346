"""resrgan.paths.atomic_path: the one write-then-rename helper."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from resrgan.paths import atomic_path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_block_writes_a_hidden_sibling_that_replaces_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with atomic_path(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.") and tmp.suffix == ".tmp"
        tmp.write_bytes(b"new")
        assert dest.read_bytes() == b"old"  # untouched until the block ends
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_failing_block_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="encoder died"), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_the_file_gets_the_mode_a_plain_open_would_give(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "w.pth") as tmp:
        tmp.write_bytes(b"x")
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    mode = stat.S_IMODE((tmp_path / "w.pth").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~_umask()


def test_a_writer_that_replaces_the_temporary_file_still_gets_the_plain_mode(
    tmp_path: Path,
) -> None:
    """Some writers (safetensors, numpy) write elsewhere and rename over the path they are given."""
    with atomic_path(tmp_path / "w.bin") as tmp:
        other = tmp_path / "elsewhere"
        other.write_bytes(b"x")
        os.chmod(other, 0o600)
        os.replace(other, tmp)
    assert stat.S_IMODE((tmp_path / "w.bin").stat().st_mode) == 0o666 & ~_umask()


def test_prefix_and_suffix_shape_the_temporary_name(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.png", prefix=".a.mark-", suffix=".png") as tmp:
        assert tmp.name.startswith(".a.mark-") and tmp.name.endswith(".png")
        tmp.write_bytes(b"png")
    assert (tmp_path / "a.png").read_bytes() == b"png"


def test_a_missing_folder_is_an_os_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "no" / "x.bin"):
        pass  # pragma: no cover - the temporary file cannot be created
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sync_folder", [True, False])
def test_the_file_is_synced_before_the_rename_and_the_folder_after_only_if_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_folder: bool
) -> None:
    from resrgan import paths

    synced: list[tuple[str, bool]] = []
    real = paths._fsync

    def spy(path: Path, *, directory: bool = False) -> None:
        synced.append((path.name, (tmp_path / "x.bin").exists()))
        real(path, directory=directory)

    monkeypatch.setattr(paths, "_fsync", spy)
    with atomic_path(tmp_path / "x.bin", sync_folder=sync_folder) as tmp:
        tmp.write_bytes(b"x")
    assert synced[0] == (tmp.name, False)  # the temporary file, before x.bin exists
    assert synced[1:] == ([(tmp_path.name, True)] if sync_folder else [])
