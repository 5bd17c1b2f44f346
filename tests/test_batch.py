"""resrgan.infer.batch: planning, resume, refusals, bad files and interruption, with a fake
upscaler.

The fake upscaler is a pixel-repeat (nearest x2), so every output's pixels are known exactly; the
CLI tests (test_cli_upscale.py) run real networks.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resrgan.errors import UsageError
from resrgan.infer.batch import Event, Job, Summary, plan_jobs, run_jobs

pytest.importorskip("resrgan.io.images")


class Repeat:
    """Nearest-neighbour x``scale`` (``outscale`` overrides), recording every call.

    ``fail_on`` / ``interrupt_on``: values of pixel [0, 0, 0] on which upscale raises RuntimeError /
    KeyboardInterrupt (each test image carries its index there).
    """

    def __init__(
        self, scale: int = 2, fail_on: tuple[int, ...] = (), interrupt_on: int = -1
    ) -> None:
        self.scale = scale
        self.fail_on = fail_on
        self.interrupt_on = interrupt_on
        self.calls: list[int] = []

    def output_shape(self, h: int, w: int, *, outscale: float | None = None) -> tuple[int, int]:
        s = self.scale if outscale is None else outscale
        return int(h * s), int(w * s)

    def upscale(self, pixels: np.ndarray, *, outscale: float | None = None) -> np.ndarray:
        marker = int(pixels.reshape(-1)[0])
        self.calls.append(marker)
        if marker in self.fail_on:
            raise RuntimeError("model exploded\n  on a second line")
        if marker == self.interrupt_on:
            raise KeyboardInterrupt
        s = int(self.scale if outscale is None else outscale)
        return np.repeat(np.repeat(pixels, s, axis=0), s, axis=1)


def _image(index: int, h: int = 6, w: int = 5, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + index)
    a = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    a[0, 0, 0] = index
    return a


def _write_png(path: Path, pixels: np.ndarray, **info: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    Image.fromarray(pixels, mode).save(path, **info)  # type: ignore[arg-type]
    return path


def _folder(tmp_path: Path, n: int = 3) -> tuple[Path, list[np.ndarray]]:
    src = tmp_path / "in"
    imgs = [_image(i + 1) for i in range(n)]
    for i, a in enumerate(imgs):
        _write_png(src / f"img{i}.png", a)
    return src, imgs


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bad_files(folder: Path) -> dict[str, Path]:
    """Bad inputs made here (independent of tests/_corpus.py): name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "_tmp_good.png"
    _write_png(good, _image(9, 32, 32))
    data = good.read_bytes()
    good.unlink()
    jpg = folder / "_tmp.jpg"
    Image.fromarray(_image(9, 32, 32)).save(jpg, quality=90)
    jdata = jpg.read_bytes()
    jpg.unlink()
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IEND", b"")
    )
    files = {
        "zero.png": b"",
        "text.png": b"this is not an image\n",
        "truncated.png": data[: len(data) // 2],
        "truncated.jpg": jdata[: len(jdata) // 3],
        "bomb.png": bomb,
    }
    out = {}
    for name, content in files.items():
        (folder / name).write_bytes(content)
        out[name] = folder / name
    return out


def _names(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` unwritable: chmod for a normal user; ``chattr +i`` for root (root ignores
    permission bits). Skips the test when neither works on this machine."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name != "posix":
        pytest.skip("POSIX permissions needed")
    immutable = os.geteuid() == 0
    if immutable:
        r = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if r.returncode != 0:
            pytest.skip(f"root, and chattr +i is not available: {r.stderr!r}")
    else:
        folder.chmod(0o555)
    try:
        try:
            (folder / ".probe").write_bytes(b"")
        except OSError:
            pass
        else:
            (folder / ".probe").unlink()
            pytest.skip(f"could not make {folder} read-only")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        else:
            folder.chmod(0o755)


# ------------------------------------------------------------------------------------------ plan_jo


def test_plan_folder_sorted_names_and_non_images(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 3)
    (src / "notes.txt").write_text("x")
    (src / "data.csv").write_text("x")
    (src / ".hidden.png").write_bytes(b"")
    (src / "sub").mkdir()
    _write_png(src / "sub" / "deep.png", _image(7))
    jobs = plan_jobs(src, tmp_path / "out")
    assert [j.input.name for j in jobs] == ["img0.png", "img1.png", "img2.png"]
    assert [j.output for j in jobs] == [tmp_path / "out" / f"img{i}_out.png" for i in range(3)]
    assert sorted(p.name for p in jobs.non_images) == ["data.csv", "notes.txt"]


def test_plan_suffix_empty_and_ext_override(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 2)
    jobs = plan_jobs(src, tmp_path / "o", suffix="", ext="jpg")
    assert [j.output.name for j in jobs] == ["img0.jpg", "img1.jpg"]
    jobs = plan_jobs(src, tmp_path / "o", suffix="x4", ext="TIF")
    assert [j.output.name for j in jobs] == ["img0_x4.tif", "img1_x4.tif"]


def test_plan_single_file_any_suffix(tmp_path: Path) -> None:
    f = _write_png(tmp_path / "photo.final.png", _image(1))
    jobs = plan_jobs(f, tmp_path / "res")
    assert len(jobs) == 1 and jobs[0].output == tmp_path / "res" / "photo.final_out.png"
    assert jobs.non_images == []


def test_plan_recursive_mirrors_and_skips_output_inside_input(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write_png(src / "a.png", _image(1))
    _write_png(src / "x" / "b.png", _image(2))
    _write_png(src / "x" / "y" / "c.png", _image(3))
    _write_png(src / "results" / "old_out.png", _image(4))  # the output folder, inside the input
    jobs = plan_jobs(src, src / "results", recursive=True)
    got = [(str(j.input.relative_to(src)), str(j.output.relative_to(src))) for j in jobs]
    assert got == [
        ("a.png", "results/a_out.png"),
        ("x/b.png", "results/x/b_out.png"),
        ("x/y/c.png", "results/x/y/c_out.png"),
    ]
    flat = plan_jobs(src, src / "results")
    assert [j.input.name for j in flat] == ["a.png"]


def test_plan_missing_input_message(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"-i/--input: .*nope: no such file or folder"):
        plan_jobs(tmp_path / "nope", tmp_path / "out")


def test_plan_rejects_bad_ext_and_suffix(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 1)
    with pytest.raises(UsageError, match=r"--ext: unsupported output extension 'gif'"):
        plan_jobs(src, tmp_path / "o", ext="gif")
    with pytest.raises(UsageError, match=r"--suffix: 'a/b' contains a path separator"):
        plan_jobs(src, tmp_path / "o", suffix="a/b")


def test_plan_marks_two_inputs_with_one_output(tmp_path: Path) -> None:
    # a.jpg and a.png both map to a_out.png with --ext png: a.png (same extension) owns it
    src = tmp_path / "in"
    _write_png(src / "a.png", _image(1))
    Image.fromarray(_image(2)).save(src / "a.jpg", quality=95)
    _write_png(src / "b.png", _image(3))
    Image.fromarray(_image(4)).save(src / "b.jpeg", quality=95)
    jobs = plan_jobs(src, tmp_path / "o", ext="jpeg")
    assert [(j.input.name, j.conflict and j.conflict.name) for j in jobs] == [
        ("a.jpg", None),  # no input ends in .jpeg: the first in sorted order owns a_out.jpeg
        ("a.png", "a.jpg"),
        ("b.jpeg", None),
        ("b.png", "b.jpeg"),
    ]
    jobs = plan_jobs(src, tmp_path / "o", ext="png")
    assert [(j.input.name, j.conflict and j.conflict.name) for j in jobs] == [
        ("a.jpg", "a.png"),
        ("a.png", None),
        ("b.jpeg", "b.png"),
        ("b.png", None),
    ]
    events: list[Event] = []
    s = run_jobs(jobs, Repeat(), on_event=events.append)
    assert s.done == 2 and [p.name for p, _ in s.failed] == ["a.jpg", "b.jpeg"]
    assert s.failed[0][1] == (
        f"output {tmp_path / 'o' / 'a_out.png'} is also the output of {src / 'a.png'} (two inputs "
        "map to one output name); rename one of them, or run it alone with another --suffix"
    )
    assert np.asarray(Image.open(tmp_path / "o" / "a_out.png"))[0, 0, 0] == 1


# ------------------------------------------------------------------------------------------- run_jo


def test_run_writes_exact_pixels(tmp_path: Path) -> None:
    src, imgs = _folder(tmp_path, 3)
    out = tmp_path / "out"
    events: list[Event] = []
    s = run_jobs(plan_jobs(src, out), Repeat(), on_event=events.append)
    assert (s.done, s.skipped, s.failed, s.non_images, s.interrupted) == (3, 0, [], 0, False)
    for i, a in enumerate(imgs):
        got = np.asarray(Image.open(out / f"img{i}_out.png"))
        np.testing.assert_array_equal(got, np.repeat(np.repeat(a, 2, 0), 2, 1))
    assert [e.status for e in events] == ["done"] * 3
    assert [(e.index, e.total) for e in events] == [(0, 3), (1, 3), (2, 3)]
    assert _names(out) == {f"img{i}_out.png" for i in range(3)}


def test_run_passes_outscale(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 1)
    s = run_jobs(plan_jobs(src, tmp_path / "o"), Repeat(), outscale=3)
    assert s.done == 1
    assert Image.open(tmp_path / "o" / "img0_out.png").size == (15, 18)


def test_run_skips_existing_then_overwrites(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img1_out.png").write_bytes(b"user's file")
    up = Repeat()
    s = run_jobs(plan_jobs(src, out), up)
    assert (s.done, s.skipped) == (2, 1)
    assert up.calls == [1, 3]  # the model never ran for the existing output
    assert (out / "img1_out.png").read_bytes() == b"user's file"
    s2 = run_jobs(plan_jobs(src, out), Repeat())
    assert (s2.done, s2.skipped) == (0, 3)
    s3 = run_jobs(plan_jobs(src, out), Repeat(), overwrite=True)
    assert (s3.done, s3.skipped) == (3, 0)
    assert (out / "img1_out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_output_equal_to_input_is_refused(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 2)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    for overwrite in (False, True):
        s = run_jobs(plan_jobs(src, src, suffix=""), Repeat(), overwrite=overwrite)
        assert s.done == 0 and len(s.failed) == 2
        assert all("is the input file itself; refusing to overwrite it" in r for _, r in s.failed)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_same_folder_rerun_does_not_take_outputs_as_inputs(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 2)
    inputs = {p.name: p.read_bytes() for p in src.iterdir()}
    s = run_jobs(plan_jobs(src, src), Repeat())
    assert (s.done, s.skipped) == (2, 0)
    expected = {"img0.png", "img1.png", "img0_out.png", "img1_out.png"}
    assert _names(src) == expected
    jobs = plan_jobs(src, src)
    assert [j.input.name for j in jobs] == ["img0.png", "img1.png"]
    s2 = run_jobs(jobs, Repeat())
    assert (s2.done, s2.skipped) == (0, 2)
    s3 = run_jobs(plan_jobs(src, src), Repeat(), overwrite=True)
    assert (s3.done, s3.skipped) == (2, 0)
    assert _names(src) == expected  # no img0_out_out.png generation
    assert {n: (src / n).read_bytes() for n in inputs} == inputs


def test_overwrite_never_replaces_another_input(tmp_path: Path) -> None:
    # deep.png is 16-bit: with --ext jpg its output becomes deep_out.png (known only after reading),
    # and deep_out.png is another input of this batch: refused even with overwrite
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "deep.png"), _image(1).astype(np.uint16) * 257)
    _write_png(src / "deep_out.png", _image(2))
    before = (src / "deep_out.png").read_bytes()
    s = run_jobs(plan_jobs(src, src, ext="jpg"), Repeat(), overwrite=True)
    assert (src / "deep_out.png").read_bytes() == before
    assert [p.name for p, _ in s.failed] == ["deep.png"]
    assert "is also an input of this batch; refusing to overwrite it" in s.failed[0][1]
    assert s.done == 1 and (src / "deep_out_out.jpg").exists()


def test_bad_files_fail_one_line_each_and_batch_goes_on(tmp_path: Path) -> None:
    src, imgs = _folder(tmp_path, 2)
    bad = _bad_files(src)
    out = tmp_path / "out"
    events: list[Event] = []
    s = run_jobs(plan_jobs(src, out), Repeat(), on_event=events.append)
    assert s.done == 2
    assert sorted(p.name for p, _ in s.failed) == sorted(bad)
    for _, reason in s.failed:
        assert reason and "\n" not in reason
    bomb_reason = dict((p.name, r) for p, r in s.failed)["bomb.png"]
    assert "100000" in bomb_reason
    assert _names(out) == {"img0_out.png", "img1_out.png"}
    failed_events = [e for e in events if e.status == "failed"]
    assert len(failed_events) == len(bad) and all(e.error for e in failed_events)


def test_corpus_folder(tmp_path: Path) -> None:
    """Every bad file of tests/_corpus.py is one failure line; every good one is written once."""
    corpus = pytest.importorskip("_corpus")
    src = tmp_path / "corpus"
    made = corpus.write_corpus(src)
    (src / "readme.txt").write_text("x")
    events: list[Event] = []
    jobs = plan_jobs(src, tmp_path / "out")
    # the corpus holds animated.gif and animated.png: both would be animated_out.png
    shared = {j.input for j in jobs if j.conflict is not None}
    assert shared == {made["animated_gif"]}
    s = run_jobs(jobs, Repeat(), on_event=events.append)
    by_input = {e.input: e for e in events}
    assert len(events) == len(by_input) == len(made)
    good = {made[n] for n in corpus.GOOD} - shared
    for path in good:
        assert by_input[path].status == "done", (path, by_input[path].error)
    for path in {made[n] for n in corpus.BAD} | shared:
        e = by_input[path]
        assert e.status == "failed" and e.error and "\n" not in e.error, path
    assert "is also the output of" in str(by_input[made["animated_gif"]].error)
    assert (s.done, len(s.failed), s.non_images) == (len(good), len(corpus.BAD) + 1, 1)
    written = _names(tmp_path / "out")
    assert written == {by_input[p].output.name for p in good}  # type: ignore[union-attr]


def _undecodable_copy(folder: Path, source: Path, name: bytes) -> Path:
    """Copy ``source`` to ``folder/name`` (a file name that is not valid UTF-8); skip the test
    where the platform or file system refuses such names."""
    if sys.platform in ("win32", "darwin"):
        pytest.skip("needs byte file names (POSIX, not macOS)")
    raw = os.path.join(os.fsencode(folder), name)
    try:
        with open(raw, "wb") as fh:
            fh.write(source.read_bytes())
    except (OSError, UnicodeError) as e:
        pytest.skip(f"the file system refuses the name {name!r} ({e})")
    return folder / os.fsdecode(name)


def test_undecodable_file_name_upscales_with_the_others(tmp_path: Path) -> None:
    """A name with bytes that are not UTF-8 (b"caf\\xe9.png") is read and written like any other:
    the output has the same bytes in its name and the pixels of the upscaled input."""
    src, imgs = _folder(tmp_path, 2)
    cafe = _undecodable_copy(src, src / "img1.png", b"caf\xe9.png")
    s = run_jobs(plan_jobs(src, tmp_path / "o"), Repeat())
    assert (s.done, s.failed) == (3, [])
    assert sorted(os.listdir(os.fsencode(tmp_path / "o"))) == [
        b"caf\xe9_out.png", b"img0_out.png", b"img1_out.png"
    ]  # fmt: skip
    with Image.open(os.path.join(os.fsencode(tmp_path / "o"), b"caf\xe9_out.png")) as im:
        got = np.asarray(im)
    assert np.array_equal(got, np.repeat(np.repeat(imgs[1], 2, axis=0), 2, axis=1))
    assert cafe.exists()  # the input is left as it was


def test_runtime_error_in_model_is_one_line(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 3)
    s = run_jobs(plan_jobs(src, tmp_path / "o"), Repeat(fail_on=(2,)))
    assert s.done == 2
    assert s.failed == [(src / "img1.png", "RuntimeError: model exploded on a second line")]


def test_format_checked_before_the_model_runs(tmp_path: Path) -> None:
    # outscale 3000 makes a 18000x15000 result: too large for WebP (16383 px per side), refused by
    # check_writable before the model is asked for it
    src, _ = _folder(tmp_path, 1)
    up = Repeat()
    s = run_jobs(plan_jobs(src, tmp_path / "o", ext="webp"), up, outscale=3000)
    assert s.done == 0 and up.calls == []
    assert [p.name for p, _ in s.failed] == ["img0.png"]
    assert "16383" in s.failed[0][1] and "15000x18000" in s.failed[0][1]


def test_16_bit_to_jpg_is_written_as_png(tmp_path: Path) -> None:
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    a16 = _image(5).astype(np.uint16) * 257
    cv2.imwrite(str(src / "deep.png"), a16[..., ::-1])
    _write_png(src / "plain.png", _image(6))
    s = run_jobs(plan_jobs(src, tmp_path / "o", ext="jpg"), Repeat())
    assert s.done == 2
    assert _names(tmp_path / "o") == {"deep_out.png", "plain_out.jpg"}
    got = cv2.imread(str(tmp_path / "o" / "deep_out.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16
    s2 = run_jobs(plan_jobs(src, tmp_path / "o", ext="jpg"), Repeat())
    assert (s2.done, s2.skipped) == (0, 2)


def test_uncreatable_output_folder_fails_each_file(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 2)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    s = run_jobs(plan_jobs(src, blocker / "out"), Repeat())
    assert s.done == 0 and len(s.failed) == 2
    assert all("cannot create the folder" in r for _, r in s.failed)


def test_read_only_output_folder(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 2)
    out = tmp_path / "ro"
    up = Repeat()
    with _read_only(out):
        s = run_jobs(plan_jobs(src, out), up)
    assert s.done == 0 and len(s.failed) == 2
    assert all(f"the folder {out} is not writable" in r for _, r in s.failed), s.failed
    assert up.calls == []  # refused before the model ran
    assert list(out.iterdir()) == []


def test_keyboard_interrupt_stops_and_rerun_resumes(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 5)
    out = tmp_path / "out"
    events: list[Event] = []
    s = run_jobs(plan_jobs(src, out), Repeat(interrupt_on=3), on_event=events.append)
    assert s.interrupted and s.done == 2 and not s.ok
    assert [e.status for e in events] == ["done", "done", "interrupted"]
    assert events[-1].input == src / "img2.png"
    assert _names(out) == {"img0_out.png", "img1_out.png"}
    up = Repeat()
    s2 = run_jobs(plan_jobs(src, out), up)
    assert (s2.done, s2.skipped, s2.interrupted) == (3, 2, False)
    assert up.calls == [3, 4, 5]
    assert _names(out) == {f"img{i}_out.png" for i in range(5)}


def test_interrupt_inside_callback_is_accounted(tmp_path: Path) -> None:
    src, _ = _folder(tmp_path, 3)

    def cb(e: Event) -> None:
        if e.index == 1:
            raise KeyboardInterrupt

    s = run_jobs(plan_jobs(src, tmp_path / "o"), Repeat(), on_event=cb)
    assert s.interrupted and s.done == 2


def test_alpha_goes_to_png_when_the_format_has_none(tmp_path: Path) -> None:
    src = tmp_path / "in"
    rgba = _image(1, channels=4)
    _write_png(src / "a.png", rgba)
    jobs = plan_jobs(src, tmp_path / "o", ext="jpg")
    assert jobs[0].output.name == "a_out.jpg"
    s = run_jobs(jobs, Repeat())
    assert s.done == 1
    assert _names(tmp_path / "o") == {"a_out.png"}
    got = np.asarray(Image.open(tmp_path / "o" / "a_out.png"))
    np.testing.assert_array_equal(got, np.repeat(np.repeat(rgba, 2, 0), 2, 1))
    # resuming finds the png, not the planned jpg, and the model does not run again
    up = Repeat()
    s2 = run_jobs(plan_jobs(src, tmp_path / "o", ext="jpg"), up)
    assert (s2.done, s2.skipped, up.calls) == (0, 1, [])


def test_stale_temp_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    from resrgan.io import images

    mark = getattr(images, "TMP_MARK", None) or getattr(images, "_TMP_MARK", None)
    if not mark:
        pytest.skip("resrgan.io.images does not expose its temp-name mark")
    src, _ = _folder(tmp_path, 1)
    out = tmp_path / "o"
    out.mkdir()
    stale = out / f".img0_out{mark}deadbeef.png"
    stale.write_bytes(b"half a png")
    s = run_jobs(plan_jobs(src, out), Repeat())
    assert s.done == 1
    assert _names(out) == {"img0_out.png"}


def test_icc_and_16_bit_are_kept(tmp_path: Path) -> None:
    src = tmp_path / "in"
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _write_png(src / "icc.png", _image(1), icc_profile=profile)
    a16 = np.arange(6 * 5 * 3, dtype=np.uint16).reshape(6, 5, 3) * 700
    import cv2

    cv2.imwrite(str(src / "deep.png"), a16[..., ::-1])
    s = run_jobs(plan_jobs(src, tmp_path / "o"), Repeat())
    assert s.done == 2
    with Image.open(tmp_path / "o" / "icc_out.png") as im:
        assert im.info.get("icc_profile") == profile
    got = cv2.imread(str(tmp_path / "o" / "deep_out.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got[..., ::-1], np.repeat(np.repeat(a16, 2, 0), 2, 1))


def test_exif_is_carried_with_orientation_reset(tmp_path: Path) -> None:
    corpus = pytest.importorskip("_corpus")
    src = tmp_path / "in"
    src.mkdir()
    path = corpus.make_exif_jpeg(src, 6)
    with Image.open(path) as im:
        stored = im.size
        make = im.getexif().get(0x010F)
    assert make
    s = run_jobs(plan_jobs(src, tmp_path / "o"), Repeat())
    assert s.done == 1
    with Image.open(tmp_path / "o" / f"{path.stem}_out.jpg") as out:
        exif = out.getexif()
        assert exif.get(0x0112) == 1 and exif.get(0x010F) == make
        # orientation 6 was applied to the pixels: width and height swap, then x2
        assert out.size == (2 * stored[1], 2 * stored[0])


def test_event_and_summary_are_json(tmp_path: Path) -> None:
    e = Event(Path("a b/ü.png"), None, "failed", 0.123456, "bad", 0, 1)
    d = json.loads(json.dumps(e.as_dict()))
    assert d == {
        "input": "a b/ü.png",
        "output": None,
        "status": "failed",
        "seconds": 0.1235,
        "error": "bad",
    }
    s = Summary(done=1, skipped=2, failed=[(Path("x.png"), "why")], non_images=3)
    d2 = json.loads(json.dumps(s.as_dict()))
    assert d2["failed"] == [{"input": "x.png", "error": "why"}]
    assert (d2["done"], d2["skipped"], d2["non_images"], d2["summary"]) == (1, 2, 3, True)


def test_job_is_frozen() -> None:
    j = Job(Path("a.png"), Path("b.png"))
    with pytest.raises(AttributeError):
        j.output = Path("c.png")  # type: ignore[misc]
