"""Video upscaling end to end: every frame and timestamp kept (CFR, VFR, start offsets), audio and
subtitles copied byte for byte, colour tags, bit depth, rotation, SAR and duration kept, pixels
equal to Upscaler's on the decoded frame, Ctrl-C and kill -9 resume, bad input reported; the CLI.

Clips are made by tests/_video_clips.py (64x48, a few frames); the network is a random tiny
SRVGGNetCompact, except one offline run of realesr-animevideov3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
av = pytest.importorskip("av")

from _video_clips import make_clip, read_back  # noqa: E402
from resrgan import Upscaler  # noqa: E402
from resrgan.cli import main  # noqa: E402
from resrgan.errors import VideoReadError  # noqa: E402
from resrgan.infer.precision import resolve_precision  # noqa: E402
from resrgan.infer.video import (  # noqa: E402
    VideoJob,
    VideoSettings,
    plan_segments,
    upscale_video,
    work_dir_for,
)
from resrgan.io import video as vio  # noqa: E402
from resrgan.nets import SRVGGNetCompact  # noqa: E402
from resrgan.weights.load import save_weights  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _net(feat: int = 4, conv: int = 1, seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=feat, num_conv=conv, upscale=4, act_type="prelu").eval()


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(_net(), tile=0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(path, _net().state_dict())
    return path


def _run(src: Path, out: Path, up: Any, *, overwrite: bool = True, **settings: Any) -> Any:
    settings.setdefault("outscale", 2)
    settings.setdefault("segment_seconds", 0.15)
    job = VideoJob(src, out, named=True)
    return upscale_video(job, up, VideoSettings(**settings), overwrite=overwrite)


def _stream_duration(path: Path) -> Fraction:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return Fraction(vs.duration) * vs.time_base


# --- what is kept --------------------------------------------------------------------------


def test_segments_cut_at_keyframes_at_least_the_given_seconds_apart() -> None:
    pts = np.arange(12) * 3600
    segs = plan_segments(pts, [0, 14400, 28800], Fraction(1, 90000), 0.15)
    assert [(s.start, s.end, s.frames) for s in segs] == [
        (None, 14400, 4),
        (14400, 28800, 4),
        (28800, None, 4),
    ]
    assert len(plan_segments(pts, [0, 14400, 28800], Fraction(1, 90000), 10)) == 1


def test_every_frame_and_timestamp_of_a_cfr_clip_is_kept(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "cfr.mp4", n=12)
    result = _run(clip.path, tmp_path / "o.mp4", up)
    got, want = read_back(result.output), read_back(clip.path)
    assert (result.status, result.frames, result.segments) == ("done", 12, 3)
    assert got.frames == 12 and got.video_pts == want.video_pts
    assert (got.width, got.height) == (128, 96)


def test_variable_frame_rate_and_start_offset_are_kept(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "vfr.mp4", n=12, vfr=True, start=1800)
    result = _run(clip.path, tmp_path / "o.mp4", up)
    got = read_back(result.output)
    assert got.video_pts == [Fraction(p, 90000) for p in clip.pts]
    assert got.video_pts[0] == Fraction(1, 50)


def test_ntsc_timestamps_between_milliseconds_are_exact(tmp_path: Path, up: Upscaler) -> None:
    """29.97 fps: segment starts fall between milliseconds (MP4 edit lists count in the movie
    timescale, 1/1000 s unless set): every pts still comes back exactly."""
    clip = make_clip(tmp_path / "ntsc.mp4", n=12, step=3003)
    want = read_back(clip.path).video_pts
    assert any((t * 1000).denominator != 1 for t in want)  # the case this test is about
    got = read_back(_run(clip.path, tmp_path / "o.mp4", up).output)
    assert got.video_pts == want


def test_duration_matches_the_source(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "d.mp4", n=10, vfr=True)
    result = _run(clip.path, tmp_path / "o.mp4", up)
    assert _stream_duration(result.output) == _stream_duration(clip.path)


def test_aac_audio_packets_are_byte_identical(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "a.mp4", n=8, audio="aac")
    got, want = read_back(_run(clip.path, tmp_path / "o.mp4", up).output), read_back(clip.path)
    assert len(want.audio) > 10 and got.audio == want.audio


def test_opus_audio_and_subtitles_are_copied_in_matroska(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "b.mkv", n=8, audio="libopus", subtitles=True, vfr=True)
    got, want = read_back(_run(clip.path, tmp_path / "o.mkv", up).output), read_back(clip.path)
    assert got.audio == want.audio and got.subtitles == want.subtitles == [b"hello", b"world"]
    assert got.video_pts == want.video_pts


def test_mov_text_subtitles_are_copied_in_mp4(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "s.mp4", n=8, subtitles=True)
    got, want = read_back(_run(clip.path, tmp_path / "o.mp4", up).output), read_back(clip.path)
    assert got.subtitles == want.subtitles


def test_audio_the_container_cannot_hold_is_re_encoded_with_a_note(
    tmp_path: Path, up: Upscaler
) -> None:
    clip = make_clip(tmp_path / "w.mp4", n=6, audio="aac")
    result = _run(clip.path, tmp_path / "o.webm", up, codec="libsvtav1")
    assert result.notes == ["audio #1 (aac) re-encoded to libopus: webm cannot hold aac"]
    got = read_back(result.output)
    assert got.frames == 6 and got.codec in ("libdav1d", "av1")
    with av.open(str(result.output)) as c:
        assert c.streams.audio[0].codec_context.name in ("libopus", "opus")


@pytest.mark.parametrize(
    ("matrix", "pix_fmt"), [(6, "yuv420p"), (1, "yuv420p"), (1, "yuv420p10le"), (5, "yuv420p10le")]
)
def test_colour_tags_and_bit_depth_are_kept(
    tmp_path: Path, up: Upscaler, matrix: int, pix_fmt: str
) -> None:
    clip = make_clip(tmp_path / "c.mp4", n=4, matrix=matrix, pix_fmt=pix_fmt, audio=None)
    got = read_back(_run(clip.path, tmp_path / "o.mp4", up).output)
    assert got.tags == read_back(clip.path).tags == (matrix, 1, matrix, matrix)
    assert got.pix_fmt == pix_fmt


def test_full_range_is_kept(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "f.mp4", n=3, colour_range=2, audio=None)
    assert read_back(_run(clip.path, tmp_path / "o.mp4", up).output).tags[1] == 2


def test_untagged_sd_video_is_tagged_with_the_matrix_it_was_read_with(
    tmp_path: Path, up: Upscaler
) -> None:
    """Untagged 64x48 reads as BT.601 limited; the upscaled output says so explicitly, so a
    player does not take the now larger picture for BT.709."""
    src = make_clip(tmp_path / "u.mp4", n=3, matrix=6, audio=None, tagged=False).path
    assert read_back(src).tags == (2, 0, 2, 2)
    assert read_back(_run(src, tmp_path / "o.mp4", up).output).tags[:2] == (6, 1)


def test_rotation_and_sample_aspect_ratio_are_kept(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "r.mp4", n=4, rotation=90, sar=Fraction(4, 3))
    got = read_back(_run(clip.path, tmp_path / "o.mp4", up).output)
    assert got.rotation == 90.0 and got.sar == Fraction(4, 3)


def test_fps_re_times_every_frame_to_a_constant_rate(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "v.mp4", n=9, vfr=True, audio=None)
    got = read_back(_run(clip.path, tmp_path / "o.mp4", up, fps=30).output)
    assert got.frames == 9
    assert got.video_pts == [Fraction(i, 30) for i in range(9)]


def test_odd_output_size_is_extended_to_even_for_420(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "odd.mp4", n=2, audio=None)
    result = _run(clip.path, tmp_path / "o.mp4", up, outscale=1.3)  # 83x62
    assert any("83x62 extended to 84x62" in n for n in result.notes)
    assert read_back(result.output).width == 84


# --- pixels --------------------------------------------------------------------------------


def _captured_frames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, np.ndarray]]:
    """Record what reaches the encoder (the upscaled RGB frames)."""
    seen: list[tuple[int, np.ndarray]] = []
    original = vio.SegmentWriter.write

    def write(self: vio.SegmentWriter, pts: int, rgb: np.ndarray) -> None:
        seen.append((pts, rgb.copy()))
        original(self, pts, rgb)

    monkeypatch.setattr(vio.SegmentWriter, "write", write)
    return seen


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_frame_pixels_equal_upscaler_on_the_decoded_frame(
    tmp_path: Path, up: Upscaler, monkeypatch: pytest.MonkeyPatch, pix_fmt: str
) -> None:
    clip = make_clip(tmp_path / "p.mp4", n=6, pix_fmt=pix_fmt, audio=None)
    seen = _captured_frames(monkeypatch)
    _run(clip.path, tmp_path / "o.mp4", up, outscale=3)
    with vio.VideoReader(vio.probe(clip.path)) as reader:
        decoded = list(reader.frames())
    assert [p for p, _ in seen] == [p for p, _ in decoded]
    for (_, got), (_, frame) in zip(seen, decoded, strict=True):
        want = up.upscale(frame, outscale=3)
        assert got.dtype == want.dtype == (np.uint16 if "10" in pix_fmt else np.uint8)
        np.testing.assert_array_equal(got, want)


def test_batched_frames_equal_one_by_one(
    tmp_path: Path, up: Upscaler, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_clip(tmp_path / "b.mp4", n=7, audio=None)
    seen = _captured_frames(monkeypatch)
    _run(clip.path, tmp_path / "one.mp4", up, batch=1)
    one = [f for _, f in seen]
    seen.clear()
    _run(clip.path, tmp_path / "three.mp4", up, batch=3)
    assert len(seen) == 7
    for a, (_, b) in zip(one, seen, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_lossless_output_decodes_to_the_upscaled_frames(tmp_path: Path, up: Upscaler) -> None:
    """RGB -> YUV with the output's matrix, encoded losslessly, decoded by plain swscale: the
    upscaled frames come back within 2 codes (colour is right end to end)."""
    clip = make_clip(tmp_path / "l.mp4", n=3, matrix=6, audio=None)
    result = _run(clip.path, tmp_path / "o.mkv", up, codec="ffv1", pix_fmt="yuv444p")
    with vio.VideoReader(vio.probe(clip.path)) as reader:
        want = [up.upscale(f, outscale=2) for _, f in reader.frames()]
    from _video_clips import decoded_rgb

    for a, b in zip(decoded_rgb(result.output), want, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


# --- memory stays flat ---------------------------------------------------------------------


class _Alive:
    """Counts the frames (NumPy arrays) alive at once: each tracked array is counted until it is
    freed (weakref.finalize), from whichever thread."""

    def __init__(self) -> None:
        self.now = self.most = self.total = 0
        self._lock = threading.Lock()

    def track(self, array: np.ndarray) -> np.ndarray:
        self.added()
        weakref.finalize(array, self.freed)
        return array

    def added(self) -> None:
        with self._lock:
            self.now += 1
            self.total += 1
            self.most = max(self.most, self.now)

    def freed(self) -> None:
        with self._lock:
            self.now -= 1


class _CountingUpscaler:
    """``up`` with every upscaled frame counted while it is alive."""

    def __init__(self, up: Upscaler, alive: _Alive) -> None:
        self.up, self.alive = up, alive

    def __getattr__(self, name: str) -> Any:
        return getattr(self.up, name)

    def upscale(self, frame: np.ndarray, *, outscale: float | None = None) -> np.ndarray:
        return self.alive.track(self.up.upscale(frame, outscale=outscale))

    def upscale_batch(self, frames: np.ndarray, *, outscale: float | None = None) -> list[Any]:
        outs = self.up.upscale_batch(frames, outscale=outscale)
        return [self.alive.track(np.array(f)) for f in outs]  # a frame each, counted apart


@pytest.mark.parametrize("batch", [1, 3])
def test_frames_alive_at_once_are_bounded_by_the_queues_not_the_length(
    tmp_path: Path, up: Upscaler, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    decoded, upscaled = _Alive(), _Alive()
    to_rgb = vio.VideoReader.to_rgb
    monkeypatch.setattr(
        vio.VideoReader, "to_rgb", lambda self, frame: decoded.track(to_rgb(self, frame))
    )
    clip = make_clip(tmp_path / "long.mp4", n=40, audio=None)
    settings = {"queue_frames": 2, "batch": batch, "segment_seconds": 100}
    result = _run(clip.path, tmp_path / "o.mp4", _CountingUpscaler(up, upscaled), **settings)
    assert result.frames == decoded.total == upscaled.total == 40
    depth = max(2, batch + 1)  # each queue's bound (VideoSettings.queue_frames, batch + 1)
    # a queue's worth, the batch being upscaled, one in each thread's hands
    assert decoded.most <= depth + batch + 2
    assert upscaled.most <= depth + batch + 2
    assert decoded.now == upscaled.now == 0  # nothing kept once the file is done


class _CountedInput:
    """A PyAV input container whose opening and closing are counted."""

    def __init__(self, container: Any, alive: _Alive) -> None:
        self._c, self._alive, self._open = container, alive, True
        alive.added()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)

    def __enter__(self) -> _CountedInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._alive.freed()
        self._c.close()


def test_inputs_open_at_once_do_not_grow_with_the_segments(
    tmp_path: Path, up: Upscaler, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _Alive()
    open_input = vio._open_input
    monkeypatch.setattr(vio, "_open_input", lambda p: _CountedInput(open_input(p), opened))
    clip = make_clip(tmp_path / "segs.mp4", n=24, audio="aac")
    result = _run(clip.path, tmp_path / "o.mp4", up)
    assert result.segments == 6 and result.status == "done"
    assert opened.total >= 6 + 1  # every segment and the source were read
    assert (
        opened.most <= 3
    )  # the join: the first segment (the template), the current one, the source
    assert opened.now == 0


# --- interrupts and resume -------------------------------------------------------------------


class _Interrupt:
    def __init__(self, after: int) -> None:
        self.after = after

    def __call__(self, done: int, total: int) -> None:
        if done >= self.after:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_no_output_and_a_rerun_encodes_only_the_rest(
    tmp_path: Path, up: Upscaler
) -> None:
    clip = make_clip(tmp_path / "k.mp4", n=12, audio="aac")
    out = tmp_path / "o.mp4"
    job = VideoJob(clip.path, out, named=True)
    settings = VideoSettings(outscale=2, segment_seconds=0.15)  # 3 segments of 4 frames
    with pytest.raises(KeyboardInterrupt):
        upscale_video(job, up, settings, on_progress=_Interrupt(after=9))
    assert not out.exists()
    work = work_dir_for(out)
    markers = sorted(p.name for p in work.glob("seg-*.json"))
    assert markers and len(markers) < 3
    assert not [p for p in out.parent.rglob("*resrgan-tmp*")]
    result = upscale_video(job, up, settings)
    assert result.status == "done" and result.encoded == 12 - 4 * len(markers)
    got, want = read_back(out), read_back(clip.path)
    assert got.video_pts == want.video_pts and got.audio == want.audio
    assert not work.exists()


def test_changed_settings_start_the_segments_over(tmp_path: Path, up: Upscaler) -> None:
    clip = make_clip(tmp_path / "c.mp4", n=12, audio=None)
    job = VideoJob(clip.path, tmp_path / "o.mp4", named=True)
    with pytest.raises(KeyboardInterrupt):
        upscale_video(
            job, up, VideoSettings(outscale=2, segment_seconds=0.15), on_progress=_Interrupt(9)
        )
    result = upscale_video(job, up, VideoSettings(outscale=2, segment_seconds=0.15, crf=30))
    assert result.encoded == 12


def test_killed_process_resumes_to_a_complete_file(tmp_path: Path) -> None:
    """kill -9 in the middle of a run (a bigger net so it lasts), then the same command again."""
    weights = tmp_path / "slow.safetensors"
    save_weights(weights, _net(feat=16, conv=4, seed=1).state_dict())
    clip = make_clip(tmp_path / "long.mp4", n=16, audio="aac")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "resrgan", "video", "-i", str(clip.path), "-o", str(out)]
    cmd += ["--model_path", str(weights), "-s", "4", "--segment", "0.15", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = work_dir_for(out / "long_out.mp4")
    deadline = time.monotonic() + 120
    while not list(work.glob("seg-*.json")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (out / "long_out.mp4").exists():
        pytest.skip("the run finished before it could be killed (machine too fast)")
    assert list(work.glob("seg-*.json"))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = [json.loads(line) for line in done.stdout.splitlines() if '"status"' in line][0]
    assert record["status"] == "done" and record["frames"] == 16
    got, want = read_back(out / "long_out.mp4"), read_back(clip.path)
    assert got.video_pts == want.video_pts and got.audio == want.audio
    assert not work.exists()
    assert sorted(p.name for p in out.iterdir()) == ["long_out.mp4"]


# --- bad input -----------------------------------------------------------------------------


def _damaged(tmp_path: Path) -> Path:
    clip = make_clip(tmp_path / "ok.mp4", n=30, audio=None)
    data = bytearray(clip.path.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 400):
        data[k] ^= 0x5A
    bad = tmp_path / "in" / "bad.mp4"
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(bytes(data))
    clip.path.unlink()
    return bad


def _unknown_codec(folder: Path) -> Path:
    """A valid MP4 whose video sample entry says 'zzzz' instead of 'avc1': FFmpeg has no codec
    for that fourcc, so the stream is there but cannot be decoded."""
    clip = make_clip(folder / "ok.mp4", n=3, audio=None)
    data = clip.path.read_bytes()
    assert data.count(b"avc1") == 2  # the brand in ftyp and the sample entry in stsd
    bad = folder / "odd.mp4"
    bad.write_bytes(data.replace(b"avc1", b"zzzz"))
    clip.path.unlink()
    return bad


def test_unsupported_codec_raises_and_leaves_nothing(tmp_path: Path, up: Upscaler) -> None:
    bad = _unknown_codec(tmp_path)
    out = tmp_path / "o.mp4"
    with pytest.raises(VideoReadError, match=r"odd.mp4: unsupported video codec: FFmpeg .* does"):
        _run(bad, out, up)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]


def test_cli_reports_an_unsupported_codec_in_one_line_and_goes_on(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bad = _unknown_codec(src)
    make_clip(src / "pass.mp4", n=3, audio=None)
    out = tmp_path / "out"
    code = main(["video", "-i", str(src), "-o", str(out), "--model_path", str(weights)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["pass_out.mp4"]
    err = [ln for ln in captured.err.splitlines() if ln.startswith("failed")]
    assert err == [
        f"failed   {bad}: {bad}: unsupported video codec: FFmpeg {av.ffmpeg_version_info} "
        "(in PyAV) does not know it, so it cannot be decoded"
    ]
    assert "done 1, skipped 0, failed 1" in captured.out


def test_cli_encoder_missing_from_this_pyav_is_one_usage_line(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "libopenh264" in vio.available_encoders():
        pytest.skip("this PyAV build has libopenh264")
    clip = make_clip(tmp_path / "c.mp4", n=2, audio=None)
    args = ["video", "-i", str(clip.path), "-o", str(tmp_path / "o"), "--model_path", str(weights)]
    assert main([*args, "--codec", "libopenh264"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "resrgan video: error: --codec: this PyAV build has no 'libopenh264' encoder; available: "
        + ", ".join(vio.available_encoders())
    ]
    assert not (tmp_path / "o").exists()


def test_damaged_video_raises_and_leaves_nothing(tmp_path: Path, up: Upscaler) -> None:
    bad = _damaged(tmp_path)
    out = tmp_path / "o.mp4"
    with pytest.raises(VideoReadError, match=r"bad.mp4: damaged video data"):
        _run(bad, out, up, segment_seconds=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_cli_reports_a_bad_file_in_one_line_and_goes_on(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _damaged(tmp_path)
    (bad.parent / "junk.mkv").write_bytes(b"not a video at all" * 100)
    make_clip(bad.parent / "good.mp4", n=3, audio=None)
    out = tmp_path / "out"
    code = main(["video", "-i", str(bad.parent), "-o", str(out), "--model_path", str(weights)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good_out.mp4"]
    err = [ln for ln in captured.err.splitlines() if ln.startswith("failed")]
    assert len(err) == 2 and "Traceback" not in captured.err
    assert err[0].startswith(f"failed   {bad}: {bad}: damaged video data after")
    assert (
        err[1].startswith(f"failed   {bad.parent / 'junk.mkv'}: ")
        and "not a readable video" in err[1]
    )
    assert "done 1, skipped 0, failed 2" in captured.out


def test_cli_refuses_hdr_with_a_message(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip(tmp_path / "hdr.mp4", n=2, pix_fmt="yuv420p10le", transfer=18)
    code = main(
        ["video", "-i", str(clip.path), "-o", str(tmp_path / "o"), "--model_path", str(weights)]
    )
    assert code == 1
    assert "hdr.mp4: HDR video (HLG (ARIB STD-B67) transfer) is refused" in capsys.readouterr().err
    assert list((tmp_path / "o").iterdir()) == []


# --- the CLI -------------------------------------------------------------------------------


def test_cli_json_gives_progress_a_record_per_file_and_a_summary(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip(tmp_path / "j.mp4", n=4, audio=None)
    args = ["video", "-i", str(clip.path), "-o", str(tmp_path / "o"), "--json", "-s", "2"]
    assert main([*args, "--model_path", str(weights)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[-1]["summary"] is True and records[-1]["done"] == 1
    file_record = records[-2]
    assert file_record["status"] == "done" and file_record["frames"] == 4
    assert file_record["output"] == str(tmp_path / "o" / "j_out.mp4")
    assert any(r.get("total") == 4 and "fps" in r for r in records[:-2])


def test_cli_named_output_file_picks_the_container(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MP4 in, Matroska out: AAC from MP4 starts before 0 (priming), which Matroska cannot
    hold, so every stream moves by the same amount; the note says so and sync is unchanged."""
    clip = make_clip(tmp_path / "n.mp4", n=3)
    target = tmp_path / "result.mkv"
    code = main(["video", "-i", str(clip.path), "-o", str(target), "--model_path", str(weights)])
    captured = capsys.readouterr()
    assert code == 0 and target.is_file()
    with av.open(str(target)) as c:
        assert "matroska" in c.format.name
    got, want = read_back(target), read_back(clip.path)
    assert [a for _, a in got.audio] == [a for _, a in want.audio]
    shift = got.video_pts[0] - want.video_pts[0]
    assert shift > 0 and [t - shift for t in got.video_pts] == want.video_pts
    assert "every stream starts 21.0 ms later" in captured.err
    assert f"-> {target}" in captured.out


def test_cli_skips_existing_outputs_unless_overwrite(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip(tmp_path / "e.mp4", n=2, audio=None)
    args = ["video", "-i", str(clip.path), "-o", str(tmp_path / "o"), "--model_path", str(weights)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "skipped  " in capsys.readouterr().out
    assert main([*args, "--overwrite"]) == 0
    assert "done     " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--crf", "20", "--codec", "ffv1"], "--crf: ffv1 has no CRF setting"),
        (["--batch", "0"], "--batch: 0 must be 1 or more frames per network call"),
        (["--pix-fmt", "rgb24"], "--pix-fmt: libx264 cannot encode rgb24"),
        (["--face_enhance"], "--face_enhance: GFPGAN face enhancement is not part of resrgan"),
        (["--shard", "2/2"], "--shard: shard 2/2 is out of range"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(
    tmp_path: Path,
    weights: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    clip = make_clip(tmp_path / "u.mp4", n=2, audio=None)
    args = ["video", "-i", str(clip.path), "-o", str(tmp_path / "o"), "--model_path", str(weights)]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_animevideov3_offline_keeps_frames_duration_tags_and_sound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's acceptance run, shrunk: resrgan video -n realesr-animevideov3 -s 2, with a
    lossless encode so the frames can be compared with Upscaler on the decoded source."""
    clip = make_clip(tmp_path / "clip.mkv", n=5, h=24, w=32, vfr=True, matrix=6)
    out = tmp_path / "out"
    args = ["video", "-i", str(clip.path), "-o", str(out), "-n", "realesr-animevideov3", "-s", "2"]
    assert main([*args, "--codec", "ffv1", "--pix-fmt", "yuv444p"]) == 0
    result = out / "clip_out.mkv"
    got, want = read_back(result), read_back(clip.path)
    assert (got.frames, got.video_pts, got.audio) == (want.frames, want.video_pts, want.audio)
    assert got.tags == want.tags == (6, 1, 6, 6)
    assert (got.width, got.height) == (64, 48)
    model = Upscaler("realesr-animevideov3", tile=0, precision="half")  # the CLI's default
    with vio.VideoReader(vio.probe(clip.path)) as reader:
        frames = [model.upscale(f, outscale=2) for _, f in reader.frames()]
    from _video_clips import decoded_rgb

    for a, b in zip(decoded_rgb(result), frames, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


@pytest.mark.skipif(
    resolve_precision("half", torch.device("cpu")) != torch.bfloat16,
    reason="this CPU has no native bf16: the video default is fp32 here",
)
def test_video_default_half_precision_stays_close_to_fp32_on_a_real_photo(
    real_lr_dir: Path,
) -> None:
    """The CPU default of `resrgan video` (bf16 where native) against fp32 on a real photo with
    realesr-animevideov3: 54-57 dB on the real_lr crops when measured (x264 at CRF 18 keeps
    ~40-45 dB), so a bound of 50 dB."""
    img = cv2.cvtColor(cv2.imread(str(real_lr_dir / "OST_009.png")), cv2.COLOR_BGR2RGB)[:96, :128]
    a = Upscaler("realesr-animevideov3", tile=0, precision="fp32").upscale(img)
    b = Upscaler("realesr-animevideov3", tile=0, precision="half").upscale(img)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert mse > 0 and 10 * np.log10(255**2 / mse) > 50.0


def test_cli_model_arguments_are_checked_as_upscale_checks_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip(tmp_path / "c.mp4", n=2, audio=None)
    base = ["video", "-i", str(clip.path), "-o", str(tmp_path / "o")]
    assert main([*base, "-n", "RealESRGAN_x4plus_netD"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "resrgan video: error: -n/--model_name: RealESRGAN_x4plus_netD is a UNetDiscriminatorSN "
        "(a training discriminator), not an upscaling network; see `resrgan models`"
    ]
    assert main([*base, "--model_path", str(tmp_path / "w.pth")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"resrgan video: error: --model_path: {tmp_path / 'w.pth'}: no such file"
    ]
    assert not (tmp_path / "o").exists()
