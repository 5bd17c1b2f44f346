"""Tiny test clips made with PyAV: a few 64x48 frames, CFR or VFR, AAC/Opus/PCM audio, subtitles,
8 or 10 bits, BT.601/BT.709/HDR tags, a rotation, a sample aspect ratio; and readers that return
what a file holds (every video pts, the audio packets' bytes, the tags) independently of
resrgan.io.video."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

av = __import__("pytest").importorskip("av")

TB = Fraction(1, 90000)


def frame_pts(n: int, *, vfr: bool, start: int = 0, step: int = 3600) -> list[int]:
    """Timestamps in 1/90000: CFR (``step``: 3600 is 25 fps, 3003 is 29.97), or VFR with every
    third step doubled."""
    out, t = [], start
    for i in range(n):
        out.append(t)
        t += 2 * step if (vfr and i % 3 == 0) else step
    return out


def rgb_frames(n: int, h: int = 48, w: int = 64, *, deep: bool = False) -> list[np.ndarray]:
    """Smooth moving gradients (so x264 keeps them recognisable) with a little noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        r = 0.5 + 0.4 * np.sin(xx / 9 + i / 3)
        g = 0.5 + 0.4 * np.cos(yy / 7 - i / 4)
        b = 0.5 + 0.4 * np.sin((xx + yy) / 11 + i / 5)
        noise = np.random.default_rng(i).normal(0, 0.02, (h, w, 3))
        img = np.clip(np.stack([r, g, b], -1) + noise, 0, 1)
        top = 65535 if deep else 255
        frames.append(np.rint(img * top).astype(np.uint16 if deep else np.uint8))
    return frames


@dataclass(frozen=True)
class Clip:
    path: Path
    pts: list[int]
    frames: list[np.ndarray]


def make_clip(
    path: Path,
    *,
    n: int = 12,
    vfr: bool = False,
    start: int = 0,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    matrix: int = 1,
    primaries: int | None = None,
    transfer: int | None = None,
    colour_range: int = 1,
    audio: str | None = "aac",
    subtitles: bool = False,
    rotation: float | None = None,
    sar: Fraction | None = None,
    gop: int = 4,
    h: int = 48,
    w: int = 64,
    tagged: bool = True,
    step: int = 3600,
) -> Clip:
    """Write a clip; keyframes every ``gop`` frames so segments can be cut. ``tagged=False``
    writes no colour tags (the pixels still use ``matrix``)."""
    deep = "10" in pix_fmt
    frames = rgb_frames(n, h, w, deep=deep)
    pts = frame_pts(n, vfr=vfr, start=start, step=step)
    out = av.open(str(path), "w")
    vs = out.add_stream(codec, rate=25)
    vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
    vs.time_base = TB
    cc = vs.codec_context
    cc.time_base = TB
    if tagged:
        cc.colorspace, cc.color_range = matrix, colour_range
        cc.color_primaries = primaries if primaries is not None else matrix
        cc.color_trc = transfer if transfer is not None else matrix
    if sar is not None:
        cc.sample_aspect_ratio = sar
    vs.options = {"g": str(gop), "keyint_min": str(gop)} if codec == "libx264" else {"g": str(gop)}
    if rotation is not None:
        if not hasattr(vs, "set_display_rotation"):
            out.close()
            __import__("pytest").skip(f"PyAV {av.__version__} cannot write a rotation (av >= 17)")
        vs.set_display_rotation(rotation)
    au = None
    if audio is not None:
        au = out.add_stream(audio, rate=48000)
        au.layout = "stereo"
    sub = None
    if subtitles:
        codec_name = "subrip" if path.suffix == ".mkv" else "mov_text"
        sub = out.add_mux_stream(codec_name, time_base=Fraction(1, 1000))  # PyAV >= 17
    sws = {1: "ITU709", 5: "ITU624", 6: "SMPTE170M", 9: "BT2020"}[matrix]
    rng = "JPEG" if colour_range == 2 else "MPEG"
    for img, p in zip(frames, pts, strict=True):
        f = av.VideoFrame.from_ndarray(img, format="rgb48le" if deep else "rgb24")
        f = f.reformat(format=pix_fmt, dst_colorspace=sws, dst_color_range=rng)
        f.pts, f.time_base = p, TB
        for packet in vs.encode(f):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)
    if au is not None:
        _write_audio(out, au, seconds=float((pts[-1] + 3600) * TB))
    if sub is not None:
        _write_subtitles(out, sub, path)
    out.close()
    return Clip(path, pts, frames)


def _write_audio(out: Any, stream: Any, *, seconds: float) -> None:
    cc = stream.codec_context
    size = cc.frame_size or 1024
    fmt = cc.format.name if cc.format is not None else "fltp"
    t = 0
    rng = np.random.default_rng(7)
    while t < seconds * 48000:
        data = (rng.standard_normal((2, size)) * 0.1).astype(np.float32)
        if fmt == "s16":
            data = (data * 20000).astype(np.int16).T.reshape(1, -1)
        elif fmt == "flt":
            data = data.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
        frame.sample_rate, frame.pts = 48000, t
        for packet in stream.encode(frame):
            out.mux(packet)
        t += size
    for packet in stream.encode(None):
        out.mux(packet)


def _write_subtitles(out: Any, stream: Any, path: Path) -> None:
    """Two subtitle packets muxed directly (PyAV does not encode subtitles)."""
    for i, text in enumerate((b"hello", b"world")):
        payload = text if path.suffix == ".mkv" else len(text).to_bytes(2, "big") + text
        packet = av.Packet(payload)
        packet.stream = stream
        packet.pts = packet.dts = 100 + i * 200
        packet.duration = 150
        packet.time_base = Fraction(1, 1000)
        out.mux(packet)


@dataclass(frozen=True)
class Holds:
    """What a file holds, read with plain PyAV."""

    video_pts: list[Fraction]  # seconds, in display order
    frames: int
    width: int
    height: int
    pix_fmt: str
    tags: tuple[int, int, int, int]  # matrix, range, primaries, transfer
    rotation: float
    sar: Fraction | None
    audio: list[tuple[int | None, bytes]]  # (pts, payload) of the first audio stream
    subtitles: list[bytes]
    codec: str


def read_back(path: Path) -> Holds:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        tb = vs.time_base
        decoded = list(c.decode(vs))
        cc = vs.codec_context
        tags = (int(cc.colorspace), int(cc.color_range), int(cc.color_primaries), int(cc.color_trc))
        sar = vs.sample_aspect_ratio
        codec = cc.codec.name
    audio: list[tuple[int | None, bytes]] = []
    with av.open(str(path)) as c:
        if c.streams.audio:
            audio = [(p.pts, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
    subs: list[bytes] = []
    with av.open(str(path)) as c:
        if c.streams.subtitles:
            subs = [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size]
    first = decoded[0]
    return Holds(
        video_pts=[Fraction(f.pts) * tb for f in decoded],
        frames=len(decoded),
        width=first.width,
        height=first.height,
        pix_fmt=first.format.name,
        tags=tags,
        rotation=float(getattr(first, "rotation", 0) or 0),
        sar=Fraction(sar) if sar and sar.numerator else None,
        audio=audio,
        subtitles=subs,
        codec=codec,
    )


def decoded_rgb(path: Path, *, deep: bool = False) -> list[np.ndarray]:
    """Every frame as RGB through swscale (an independent path from resrgan's NumPy matrix)."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return [
            f.reformat(
                format="rgb48le" if deep else "rgb24",
                src_colorspace={1: "ITU709", 5: "ITU624", 6: "SMPTE170M"}.get(
                    int(vs.codec_context.colorspace), "ITU709"
                ),
                src_color_range="JPEG" if int(vs.codec_context.color_range) == 2 else "MPEG",
                dst_color_range="JPEG",
            ).to_ndarray()
            for f in c.decode(vs)
        ]
