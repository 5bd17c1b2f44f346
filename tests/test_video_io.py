"""resrgan.io.video: YUV -> RGB against ITU-T H.273's closed forms, what probe finds (tags, depth,
rotation, SAR, timestamps, keyframes), bad input refused with the file and the reason, the
encoders of this PyAV build, container choice, and RGB -> YUV -> RGB through a lossless encode."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from _video_clips import decoded_rgb, make_clip, read_back, rgb_frames
from resrgan.errors import UsageError, VideoReadError
from resrgan.io import video as vio

av = pytest.importorskip("av")


def _ref_rgb(
    y: float, u: float, v: float, kr: float, kb: float, full: bool, bits: int
) -> np.ndarray:
    """H.273 written out per pixel, in float64."""
    m = 2.0 ** (bits - 8)
    if full:
        top = 2.0**bits - 1
        yy, pb, pr = y / top, (u - 2 ** (bits - 1)) / top, (v - 2 ** (bits - 1)) / top
    else:
        yy, pb, pr = (y - 16 * m) / (219 * m), (u - 128 * m) / (224 * m), (v - 128 * m) / (224 * m)
    r = yy + 2 * (1 - kr) * pr
    b = yy + 2 * (1 - kb) * pb
    g = (yy - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.array([r, g, b]), 0, 1)


YUV8 = [(16, 128, 128), (235, 128, 128), (100, 80, 200), (180, 30, 220), (60, 200, 90)]


@pytest.mark.parametrize(("matrix", "kr", "kb"), [(1, 0.2126, 0.0722), (6, 0.299, 0.114)])
@pytest.mark.parametrize("full", [False, True])
def test_yuv_to_rgb_8bit_equals_the_closed_form(
    matrix: int, kr: float, kb: float, full: bool
) -> None:
    y, u, v = (np.array([[p[i] for p in YUV8]], np.uint8) for i in range(3))
    got = vio.yuv_to_rgb(y, u, v, matrix=matrix, full_range=full, bits=8)
    want = [np.rint(_ref_rgb(*p, kr, kb, full, 8) * 255) for p in YUV8]
    np.testing.assert_array_equal(got[0], np.array(want, np.uint8))


def test_yuv_to_rgb_limited_range_black_and_white_are_0_and_255() -> None:
    y = np.array([[16, 235]], np.uint8)
    c = np.full((1, 2), 128, np.uint8)
    got = vio.yuv_to_rgb(y, c, c, matrix=1, full_range=False, bits=8)
    assert got[0, 0].tolist() == [0, 0, 0] and got[0, 1].tolist() == [255, 255, 255]


def test_yuv_to_rgb_10bit_gives_16bit_values() -> None:
    y = np.array([[64, 940, 502]], np.uint16)
    u = np.array([[512, 512, 320]], np.uint16)
    v = np.array([[512, 512, 800]], np.uint16)
    got = vio.yuv_to_rgb(y, u, v, matrix=1, full_range=False, bits=10, out_dtype=np.uint16)
    assert got.dtype == np.uint16
    assert got[0, 0].tolist() == [0, 0, 0] and got[0, 1].tolist() == [65535] * 3
    want = np.rint(_ref_rgb(502, 320, 800, 0.2126, 0.0722, False, 10) * 65535)
    np.testing.assert_array_equal(got[0, 2], want.astype(np.uint16))


def test_yuv_to_rgb_clips_out_of_range_values_instead_of_wrapping() -> None:
    """Y=U=V=255 (beyond limited range) makes R and B > 1: they must come out 255, not small."""
    y = u = v = np.full((1, 1), 255, np.uint8)
    got = vio.yuv_to_rgb(y, u, v, matrix=1, full_range=False, bits=8)
    assert got[0, 0, 0] == 255 and got[0, 0, 2] == 255
    low = vio.yuv_to_rgb(*(np.zeros((1, 1), np.uint8),) * 3, matrix=1, full_range=False, bits=8)
    assert low[0, 0, 0] == 0 and low[0, 0, 2] == 0


def test_untagged_video_is_read_as_players_do() -> None:
    untagged = vio.Colour()
    assert untagged.resolved(640, 360) == vio.Colour(6, 1, 2, 2)  # BT.601, limited
    assert untagged.resolved(1280, 720) == vio.Colour(1, 1, 2, 2)  # BT.709 from 720p
    assert untagged.resolved(640, 360, full_range_format=True).range == 2


# --- probe -----------------------------------------------------------------------------------


def test_probe_reads_timestamps_keyframes_and_tags(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", n=9, vfr=True, start=1800, gop=3, matrix=6)
    info = vio.probe(clip.path)
    assert info.frames == 9
    assert (info.pts * info.time_base).tolist() == [Fraction(p, 90000) for p in clip.pts]
    assert [int(k) for k in info.keyframes] == [p for i, p in enumerate(clip.pts) if i % 3 == 0]
    assert info.tags == vio.Colour(6, 1, 6, 6)
    assert (info.width, info.height, info.bit_depth, info.rgb_dtype) == (64, 48, 8, np.uint8)
    assert [s.type for s in info.streams] == ["audio"]


def test_probe_reads_10bit_depth_rotation_and_sample_aspect_ratio(tmp_path: Path) -> None:
    clip = make_clip(
        tmp_path / "b.mp4", n=3, pix_fmt="yuv420p10le", rotation=90, sar=Fraction(4, 3), audio=None
    )
    info = vio.probe(clip.path)
    assert (info.bit_depth, info.rgb_dtype, info.pix_fmt) == (10, np.uint16, "yuv420p10le")
    assert info.rotation == 90.0 and info.display_matrix is not None
    assert info.sar == Fraction(4, 3)


def test_probe_refuses_hdr(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "pq.mp4", n=2, pix_fmt="yuv420p10le", transfer=16)
    with pytest.raises(
        VideoReadError, match=r"pq.mp4: HDR video \(PQ \(SMPTE ST 2084\) transfer\)"
    ):
        vio.probe(clip.path)


def test_probe_refuses_hlg(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "hlg.mkv", n=2, pix_fmt="yuv420p10le", transfer=18)
    with pytest.raises(VideoReadError, match=r"HDR video \(HLG .*models are trained on SDR"):
        vio.probe(clip.path)


def test_probe_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match=r"nope.mp4: no such file"):
        vio.probe(tmp_path / "nope.mp4")


def test_probe_refuses_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(VideoReadError, match=r"junk.mp4: not a readable video \(Invalid data"):
        vio.probe(junk)


def test_probe_refuses_a_file_without_video(tmp_path: Path) -> None:
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), "fltp", "stereo")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(VideoReadError, match=r"sound.m4a: no video stream \(only 1 audio\)"):
        vio.probe(path)


def test_probe_finds_a_truncated_mp4(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "full.mp4", n=30, audio=None)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.path.read_bytes()[: clip.path.stat().st_size * 2 // 3])
    with pytest.raises(VideoReadError, match=r"cut.mp4: "):
        vio.probe(cut)


def test_probe_finds_a_truncated_mkv_by_its_stated_duration(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "full.mkv", n=30, audio=None)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(clip.path.read_bytes()[: clip.path.stat().st_size * 2 // 3])
    with pytest.raises(VideoReadError, match=r"cut.mkv: truncated: the video stops at .* s of"):
        vio.probe(cut)


def test_reader_reports_damaged_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "ok.mp4", n=30, audio=None)
    data = bytearray(clip.path.read_bytes())
    for k in range(len(data) // 3, len(data) // 3 + 400):
        data[k] ^= 0x5A
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoReadError, match=r"bad.mp4: damaged video data after \d+ frames"):
        info = vio.probe(bad)
        with vio.VideoReader(info) as reader:
            for _ in reader.frames():
                pass


# --- reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("matrix", [1, 6])
def test_reader_matrix_matches_swscale_on_444_video(tmp_path: Path, matrix: int) -> None:
    """Our NumPy matrix against swscale's own YUV -> RGB (an independent path), where no chroma
    upsampling is involved: within 2 codes everywhere."""
    clip = make_clip(tmp_path / "c.mp4", n=3, matrix=matrix, pix_fmt="yuv444p", audio=None)
    info = vio.probe(clip.path)
    with vio.VideoReader(info) as reader:
        ours = [rgb for _, rgb in reader.frames()]
    theirs = decoded_rgb(clip.path)
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_reader_420_is_closer_to_the_source_than_swscale_direct(tmp_path: Path) -> None:
    """4:2:0: chroma upsampled by swscale, then our matrix; against the RGB the clip was made
    from, at least as close as swscale's own one-step YUV -> RGB."""
    clip = make_clip(tmp_path / "c.mp4", n=3, matrix=6, audio=None)
    with vio.VideoReader(vio.probe(clip.path)) as reader:
        ours = [rgb for _, rgb in reader.frames()]
    for a, b, src in zip(ours, decoded_rgb(clip.path), clip.frames, strict=True):
        ours_err = np.abs(a.astype(int) - src).mean()
        assert ours_err < 8
        assert ours_err <= np.abs(b.astype(int) - src).mean()


def test_reader_gives_uint16_for_10bit(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "d.mp4", n=2, pix_fmt="yuv420p10le", audio=None)
    with vio.VideoReader(vio.probe(clip.path)) as reader:
        frames = [rgb for _, rgb in reader.frames()]
    assert frames[0].dtype == np.uint16 and frames[0].shape == (48, 64, 3)
    # the source gradients survive to within a few 8-bit codes
    diff = np.abs(frames[0].astype(int) - clip.frames[0].astype(int)).mean() / 257
    assert diff < 8  # as for 8-bit: x264 at its default CRF, 4:2:0


def test_reader_segment_by_seek_equals_the_full_decode(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "e.mp4", n=12, gop=4, vfr=True, audio=None)
    info = vio.probe(clip.path)
    with vio.VideoReader(info) as reader:
        full = list(reader.frames())
        part = list(reader.frames(info.keyframes[1], info.keyframes[2]))
    assert [p for p, _ in part] == clip.pts[4:8]
    for (p, a), (q, b) in zip(part, full[4:8], strict=True):
        assert p == q and np.array_equal(a, b)


# --- encoders and containers -------------------------------------------------------------------


def test_the_wheel_has_libx264_and_it_is_the_default() -> None:
    assert "libx264" in vio.available_encoders()
    enc = vio.resolve_encoder(codec=None, pix_fmt=None, crf=None, preset=None, bit_depth=8)
    assert (enc.codec, enc.pix_fmt, enc.crf, enc.preset) == ("libx264", "yuv420p", 18, "medium")


def test_deep_sources_default_to_10bit() -> None:
    enc = vio.resolve_encoder(codec=None, pix_fmt=None, crf=None, preset=None, bit_depth=10)
    assert enc.pix_fmt == "yuv420p10le"


def test_chroma_layout_of_the_source_is_kept() -> None:
    enc = vio.resolve_encoder(
        codec="libx264", pix_fmt=None, crf=None, preset=None, bit_depth=8, source_pix_fmt="yuv444p"
    )
    assert enc.pix_fmt == "yuv444p"


def test_unknown_encoder_is_refused_with_the_list() -> None:
    with pytest.raises(
        UsageError, match=r"--codec: this PyAV build has no 'libnope' encoder; avail"
    ):
        vio.resolve_encoder(codec="libnope", pix_fmt=None, crf=None, preset=None, bit_depth=8)


def test_pixel_format_the_encoder_cannot_take_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--pix-fmt: libx264 cannot encode rgb24; it takes"):
        vio.resolve_encoder(codec="libx264", pix_fmt="rgb24", crf=None, preset=None, bit_depth=8)


def test_crf_on_a_lossless_encoder_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--crf: ffv1 has no CRF setting"):
        vio.resolve_encoder(codec="ffv1", pix_fmt=None, crf=20, preset=None, bit_depth=8)


@pytest.mark.parametrize("codec", vio.ENCODERS)
@pytest.mark.parametrize("bits", [8, 10])
def test_every_encoder_of_this_build_keeps_frames_timestamps_and_tags(
    tmp_path: Path, codec: str, bits: int
) -> None:
    if codec not in vio.available_encoders():
        pytest.skip(f"this PyAV build has no {codec}")
    if codec == "mpeg4" and bits == 10:
        pytest.skip("MPEG-4 part 2 is 8-bit only")
    enc = vio.resolve_encoder(codec=codec, pix_fmt=None, crf=None, preset=None, bit_depth=bits)
    _fmt, suffix = vio.segment_format(codec)
    path = tmp_path / f"seg{suffix}"
    tb = Fraction(1, 1000)
    writer = vio.SegmentWriter(
        path, enc, width=64, height=48, time_base=tb, frame_rate=Fraction(25),
        colour=vio.Colour(6, 1, 6, 6), sar=None,
    )  # fmt: skip
    pts = [7, 47, 127]
    for p, f in zip(pts, rgb_frames(3, deep=bits > 8), strict=True):
        writer.write(p, f)
    assert writer.close() == 3
    got = read_back(path)
    assert got.video_pts == [Fraction(p, 1000) for p in pts]
    assert got.tags == (6, 1, 6, 6)
    assert got.pix_fmt == enc.pix_fmt


def test_lossless_encode_round_trips_rgb_within_rounding(tmp_path: Path) -> None:
    """RGB -> YUV 4:4:4 (swscale, BT.709 limited) -> ffv1 -> our YUV -> RGB: within 2 codes."""
    enc = vio.resolve_encoder(codec="ffv1", pix_fmt="yuv444p", crf=None, preset=None, bit_depth=8)
    frames = rgb_frames(2)
    path = tmp_path / "lossless.mkv"
    writer = vio.SegmentWriter(
        path, enc, width=64, height=48, time_base=Fraction(1, 1000), frame_rate=Fraction(25),
        colour=vio.Colour(1, 1, 1, 1), sar=None,
    )  # fmt: skip
    for i, f in enumerate(frames):
        writer.write(i * 40, f)
    writer.close()
    with vio.VideoReader(vio.probe(path)) as reader:
        back = [rgb for _, rgb in reader.frames()]
    for a, b in zip(frames, back, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_auto_container_keeps_the_source_one() -> None:
    audio = [vio.StreamInfo(1, "audio", "aac")]
    assert vio.choose_container(
        "auto", source_suffix=".mp4", video_codec="libx264", streams=audio
    ) == (
        "mp4",
        [],
    )


def test_container_that_cannot_hold_a_subtitle_becomes_mkv_with_a_note() -> None:
    subs = [vio.StreamInfo(2, "subtitle", "subrip")]
    ext, notes = vio.choose_container(
        "mp4", source_suffix=".mkv", video_codec="libx264", streams=subs
    )
    assert ext == "mkv"
    assert notes == ["written as .mkv: .mp4 cannot hold subtitle #2 (subrip)"]


def test_container_that_cannot_hold_the_video_codec_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--ext webm: the container cannot hold h264 video"):
        vio.choose_container("webm", source_suffix=".mp4", video_codec="libx264", streams=[])
