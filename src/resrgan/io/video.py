"""Video decode and encode in-process with PyAV (FFmpeg's libraries; no ffmpeg binary).

What this module guarantees, and how:

* **Frames with their timestamps.** :class:`VideoReader` yields ``(pts, rgb)`` for every decoded
  frame, ``pts`` in the video stream's time base; :class:`SegmentWriter` encodes each frame at the
  pts it is given, with the encoder's time base equal to the source stream's, so variable frame
  rate and start offsets survive.
* **Colour.** YUV is converted to RGB here in NumPy with the source's matrix coefficients and
  range (:func:`yuv_to_rgb`, clipped to [0, 1] before rounding), after FFmpeg's swscale has only
  upsampled the chroma. RGB goes back to YUV with swscale using the output's matrix and range (an
  RGB value in range cannot leave the YUV range, so nothing wraps). Untagged sources are read as
  players read them (BT.601 below 720p, BT.709 from 720p, limited range) and the output is tagged
  explicitly, so an SD source upscaled to HD does not change colour in a player. Matrix, range,
  primaries and transfer are written to the encoder and so to the container.
* **Bit depth.** Sources deeper than 8 bits decode to RGB ``uint16`` (the upscaler's 16-bit
  path) and encode to a 10-bit pixel format.
* **HDR** (PQ or HLG transfer) is refused: the models are trained on SDR.
* **Streams.** :func:`join_segments` muxes the encoded video segments with every other stream of
  the source copied packet for packet (audio, subtitles, attachments, data, cover art); a stream the
  output container cannot hold is re-encoded (audio) or makes the output Matroska, and the caller is
  told (:class:`JoinReport`).
* **Rotation and sample aspect ratio** are carried: the source's display matrix is written to the
  output stream (PyAV >= 17), the encoder gets the source's sample aspect ratio.

Bad input raises :class:`~resrgan.errors.VideoReadError` with one line naming the file and the
reason (:func:`probe` reads every packet of the video stream, so a truncated file is found before
any work). PyAV is imported lazily (``pip install 'resrgan[video]'``).
"""

from __future__ import annotations

import contextlib
import heapq
import io
import logging
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError, VideoReadError, VideoWriteError

log = logging.getLogger(__name__)

__all__ = [
    "Colour",
    "EncoderSettings",
    "JoinReport",
    "SegmentWriter",
    "StreamInfo",
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "VideoReader",
    "available_encoders",
    "canonical_codec",
    "choose_container",
    "is_video_path",
    "join_segments",
    "probe",
    "resolve_encoder",
    "segment_format",
    "yuv_to_rgb",
]

#: file suffixes treated as videos when a folder is given
VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".m2ts", ".mts", ".mpg",
    ".mpeg", ".wmv", ".3gp", ".ogv", ".nut",
)  # fmt: skip

#: output container -> libavformat muxer name
CONTAINERS: dict[str, str] = {
    "mp4": "mp4",
    "m4v": "mp4",
    "mov": "mov",
    "mkv": "matroska",
    "webm": "webm",
    "avi": "avi",
    "ts": "mpegts",
    "m2ts": "mpegts",
    "mts": "mpegts",
    "flv": "flv",
    "nut": "nut",
}

#: containers for the encoded segments, first that holds the codec: MP4 and QuickTime keep any time
#: base exactly, and B-frame delays and start offsets through their edit lists
SEGMENT_FORMATS: dict[str, str] = {"mp4": ".mp4", "mov": ".mov", "matroska": ".mkv"}
# what avformat_query_codec claims but the muxer refuses
_REFUSED: set[tuple[str, str]] = {("mov", "av1")}

#: encoders offered by --codec, in the order the default is picked from
ENCODERS: tuple[str, ...] = ("libx264", "libx265", "libsvtav1", "ffv1", "libopenh264", "mpeg4")

#: per encoder: default CRF (None: no CRF, e.g. lossless ffv1) and preset
ENCODER_DEFAULTS: dict[str, tuple[int | None, str | None]] = {
    "libx264": (18, "medium"),
    "libx265": (20, "medium"),
    "libsvtav1": (30, "8"),
    "ffv1": (None, None),
    "libopenh264": (None, None),
    "mpeg4": (None, None),
}

# --- colour --------------------------------------------------------------------------------

# AVColorSpace -> (Kr, Kb) of the YCbCr matrix (ITU-T H.273)
_KR_KB: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG (= BT.601 625)
    6: (0.299, 0.114),  # SMPTE 170M (= BT.601 525)
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
}
# AVColorSpace -> swscale colourspace name (PyAV's Colorspace) for RGB -> YUV
_SWS_MATRIX: dict[int, str] = {
    1: "ITU709",
    4: "FCC",
    5: "ITU624",
    6: "SMPTE170M",
    7: "SMPTE240M",
    9: "BT2020",
}
MATRIX_NAMES: dict[int, str] = {
    0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
    13: "chroma-derived-c", 14: "ictcp",
}  # fmt: skip
PRIMARIES_NAMES: dict[int, str] = {
    1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}  # fmt: skip
TRANSFER_NAMES: dict[int, str] = {
    1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
    8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
    14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}  # fmt: skip
RANGE_NAMES: dict[int, str] = {0: "unknown", 1: "tv", 2: "pc"}
#: transfer characteristics of HDR video (refused)
HDR_TRANSFERS: dict[int, str] = {16: "PQ (SMPTE ST 2084)", 18: "HLG (ARIB STD-B67)"}


@dataclass(frozen=True)
class Colour:
    """Colour tags as FFmpeg numbers them (AVColorSpace, AVColorRange, AVColorPrimaries,
    AVColorTransferCharacteristic); 2 (or range 0) means unspecified."""

    matrix: int = 2
    range: int = 0
    primaries: int = 2
    transfer: int = 2

    def describe(self) -> str:
        """``bt709/tv/bt709/bt709`` (matrix/range/primaries/transfer)."""
        return "/".join(
            (
                MATRIX_NAMES.get(self.matrix, str(self.matrix)),
                RANGE_NAMES.get(self.range, str(self.range)),
                PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
                TRANSFER_NAMES.get(self.transfer, str(self.transfer)),
            )
        )

    def resolved(self, width: int, height: int, *, full_range_format: bool = False) -> Colour:
        """The tags a player assumes for an untagged stream of this size, made explicit: BT.601
        (SMPTE 170M) below 720p and BT.709 from 720p (width >= 1280 or height > 576), limited
        range unless the pixel format is a full-range (``yuvj``) one."""
        matrix = self.matrix
        if matrix not in _KR_KB:
            matrix = 1 if (width >= 1280 or height > 576) else 6
        rng = self.range if self.range in (1, 2) else (2 if full_range_format else 1)
        return Colour(matrix, rng, self.primaries, self.transfer)


def yuv_to_rgb(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    *,
    matrix: int,
    full_range: bool,
    bits: int,
    out_dtype: type[np.uint8] | type[np.uint16] = np.uint8,
) -> np.ndarray:
    """Full-resolution Y, Cb, Cr planes (``bits``-bit integers) -> RGB ``H x W x 3`` of
    ``out_dtype`` (uint8: 0-255, uint16: 0-65535), clipped, never wrapped.

    ITU-T H.273: limited range is ``Y' = (Y - 16 * 2^(b-8)) / (219 * 2^(b-8))`` and
    ``Pb = (Cb - 128 * 2^(b-8)) / (224 * 2^(b-8))``; full range divides by ``2^b - 1`` around
    ``2^(b-1)``. ``R = Y' + 2 (1 - Kr) Pr``, ``B = Y' + 2 (1 - Kb) Pb``, ``G = (Y' - Kr R - Kb B) /
    Kg`` with ``(Kr, Kb)`` of ``matrix`` (an AVColorSpace number).
    """
    if matrix not in _KR_KB:
        raise UsageError(f"colour matrix {MATRIX_NAMES.get(matrix, matrix)} is not supported")
    kr, kb = _KR_KB[matrix]
    kg = 1.0 - kr - kb
    if full_range:
        y_off, y_div = 0.0, float((1 << bits) - 1)
        c_off, c_div = float(1 << (bits - 1)), float((1 << bits) - 1)
    else:
        m = float(1 << (bits - 8))
        y_off, y_div, c_off, c_div = 16.0 * m, 219.0 * m, 128.0 * m, 224.0 * m
    yf = (y.astype(np.float32) - np.float32(y_off)) * np.float32(1.0 / y_div)
    pb = (u.astype(np.float32) - np.float32(c_off)) * np.float32(1.0 / c_div)
    pr = (v.astype(np.float32) - np.float32(c_off)) * np.float32(1.0 / c_div)
    out = np.empty((*yf.shape, 3), dtype=np.float32)
    r, g, b = out[..., 0], out[..., 1], out[..., 2]
    np.multiply(pr, np.float32(2.0 * (1.0 - kr)), out=r)
    r += yf
    np.multiply(pb, np.float32(2.0 * (1.0 - kb)), out=b)
    b += yf
    # G = (Y' - Kr R - Kb B) / Kg, written out so no further full-size temporaries are needed
    np.multiply(pr, np.float32(-2.0 * kr * (1.0 - kr) / kg), out=g)
    g += pb * np.float32(-2.0 * kb * (1.0 - kb) / kg)
    g += yf
    top = np.float32(255.0 if out_dtype == np.uint8 else 65535.0)
    np.clip(out, 0.0, 1.0, out=out)
    out *= top
    np.rint(out, out=out)
    return out.astype(out_dtype)


# --- what a file holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class StreamInfo:
    """A stream of the source other than the one upscaled."""

    index: int
    type: str  # audio, subtitle, video, data, attachment
    codec: str


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found: the video stream to upscale and everything else in the file.

    ``pts`` holds the timestamp of every video packet (sorted, in ``time_base``), ``durations``
    their durations (0 where the container has none); ``keyframes`` the pts of the keyframe
    packets: segments start there. ``colour`` is the source's tags resolved
    (see :meth:`Colour.resolved`); ``tags`` the tags as found.
    """

    path: Path
    format_name: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    frame_rate: Fraction | None
    colour: Colour
    tags: Colour
    sar: Fraction | None
    display_matrix: tuple[int, ...] | None
    rotation: float
    video_index: int
    pts: np.ndarray
    durations: np.ndarray
    keyframes: tuple[int, ...]
    duration: float | None
    streams: tuple[StreamInfo, ...] = field(default=())

    @property
    def frames(self) -> int:
        """Video packets with a timestamp: the number of frames for every common codec."""
        return int(self.pts.size)

    @property
    def rgb_dtype(self) -> type[np.uint8] | type[np.uint16]:
        """uint8 for 8-bit sources, uint16 (the upscaler's 16-bit path) for deeper ones."""
        return np.uint16 if self.bit_depth > 8 else np.uint8


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the suffix is one of :data:`VIDEO_SUFFIXES`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def require_av() -> Any:
    """``import av`` or a UsageError saying how to install it."""
    try:
        import av
    except ImportError:
        raise UsageError(
            "video needs PyAV (FFmpeg's libraries for Python): pip install 'resrgan[video]'"
        ) from None
    return av


def _av_major() -> int:
    av = require_av()
    try:
        return int(str(av.__version__).split(".")[0])
    except ValueError:
        return 0


def _open_input(path: Path) -> Any:
    av = require_av()
    if not path.exists():
        raise VideoReadError(f"{path}: no such file")
    if path.is_dir():
        raise VideoReadError(f"{path}: is a folder, not a video file")
    try:
        return av.open(str(path), "r")
    except av.error.FFmpegError as e:
        raise VideoReadError(f"{path}: not a readable video ({_ff_reason(e)})") from None


def _ffmpeg_version() -> str:
    """The version of the FFmpeg libraries PyAV was built with, e.g. ``8.1.2``."""
    return str(getattr(require_av(), "ffmpeg_version_info", "?"))


def _ff_reason(e: BaseException) -> str:
    """FFmpeg's error text without the file name PyAV appends."""
    text = getattr(e, "strerror", None) or str(e)
    return " ".join(str(text).split()) or type(e).__name__


def _pick_video_stream(container: Any, path: Path) -> Any:
    streams = [s for s in container.streams.video if not _is_attached_pic(s)]
    if not streams:
        raise VideoReadError(f"{path}: no video stream (only {_stream_summary(container)})")
    return streams[0]


def _is_attached_pic(stream: Any) -> bool:
    """Cover art in mp4/mkv is a one-frame video stream with the ATTACHED_PIC disposition."""
    disposition = getattr(stream, "disposition", 0)
    try:
        return bool(int(getattr(disposition, "value", disposition)) & 0x0400)
    except (TypeError, ValueError):
        return False


def _stream_summary(container: Any) -> str:
    kinds = [s.type for s in container.streams]
    return ", ".join(f"{kinds.count(k)} {k}" for k in sorted(set(kinds))) or "no streams"


def _bit_depth(fmt: Any) -> int:
    comps = [c for c in fmt.components if not c.is_alpha]
    return max((int(c.bits) for c in comps), default=8)


def _is_yuv(fmt: Any) -> bool:
    comps = [c for c in fmt.components if not c.is_alpha]
    return len(comps) >= 3 and not fmt.is_rgb and not getattr(fmt, "has_palette", False)


def _tags(obj: Any) -> Colour:
    """The colour tags of a frame or codec context (unspecified where it has none)."""

    def get(attr: str, unspecified: int) -> int:
        value = getattr(obj, attr, None)
        return unspecified if value is None else int(value)

    return Colour(
        get("colorspace", 2), get("color_range", 0), get("color_primaries", 2), get("color_trc", 2)
    )


def _merge_tags(first: Colour, fallback: Colour) -> Colour:
    """``first``'s tags, each unspecified one taken from ``fallback``."""
    return Colour(
        first.matrix if first.matrix != 2 else fallback.matrix,
        first.range if first.range != 0 else fallback.range,
        first.primaries if first.primaries != 2 else fallback.primaries,
        first.transfer if first.transfer != 2 else fallback.transfer,
    )


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    try:
        sd = frame.side_data.get("DISPLAYMATRIX")
    except (AttributeError, KeyError, ValueError):
        return None
    if sd is None:
        return None
    raw = bytes(sd)
    if len(raw) != 36:
        return None
    matrix = tuple(int(x) for x in np.frombuffer(raw, dtype="<i4"))
    identity = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    return None if matrix == identity else matrix


def _rotation(matrix: tuple[int, ...] | None) -> float:
    """Counter-clockwise degrees of a display matrix (0 for none), as ``VideoFrame.rotation``."""
    if matrix is None:
        return 0.0
    a, b, c, d = (matrix[i] / 65536.0 for i in (0, 1, 3, 4))
    import math

    scale0, scale1 = math.hypot(a, c), math.hypot(b, d)
    if scale0 == 0 or scale1 == 0:
        return 0.0
    return -math.degrees(math.atan2(b / scale1, a / scale0)) % 360.0


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's streams, tags and every video packet's timestamp; decode its first frame.

    Raises VideoReadError (one line naming the file) for: a missing or unreadable file, no video
    stream, a codec this FFmpeg build cannot decode, HDR (PQ/HLG) video, a truncated file (fewer
    packets than the index promises, or the video ending well before its stated duration), a first
    frame that does not decode.
    """
    av = require_av()
    path = Path(path)
    with _open_input(path) as container:
        vs = _pick_video_stream(container, path)
        cc = vs.codec_context
        if cc is None:  # FFmpeg does not know the codec (an unknown fourcc or codec id)
            raise VideoReadError(
                f"{path}: unsupported video codec: FFmpeg {_ffmpeg_version()} (in PyAV) does not "
                "know it, so it cannot be decoded"
            )
        codec = getattr(getattr(cc, "codec", None), "name", None) or getattr(cc, "name", "?")
        if not getattr(cc, "is_decoder", True):
            raise VideoReadError(
                f"{path}: unsupported video codec {codec}: FFmpeg {_ffmpeg_version()} (in PyAV) "
                "has no decoder for it"
            )
        tb = vs.time_base
        if tb is None:
            raise VideoReadError(f"{path}: the video stream has no time base")
        # 8 bytes a frame (a 2-hour film at 30 fps: 1.7 MB each), not a Python int per frame
        pts = array("q")
        durations = array("q")
        keyframes: list[int] = []
        missing = 0
        try:
            for packet in container.demux(vs):
                if packet.size == 0 and packet.pts is None:
                    continue  # the flush packet PyAV yields at the end
                if getattr(packet, "is_discard", False):
                    continue  # dropped by an edit list: the decoder outputs no frame for it
                if packet.pts is None:
                    missing += 1
                    continue
                pts.append(int(packet.pts))
                durations.append(int(packet.duration or 0))
                if packet.is_keyframe:
                    keyframes.append(int(packet.pts))
        except av.error.FFmpegError as e:
            raise VideoReadError(
                f"{path}: damaged after {len(pts)} video packets ({_ff_reason(e)})"
            ) from None
        if missing:
            raise VideoReadError(
                f"{path}: {missing} video packets have no timestamp (a raw stream?); remux it "
                "into mp4 or mkv first"
            )
        if not pts:
            raise VideoReadError(f"{path}: the video stream has no frames")
        indexed = int(vs.frames or 0)
        if indexed and len(pts) < indexed:
            raise VideoReadError(
                f"{path}: truncated: {len(pts)} of {indexed} video frames are in the file"
            )
        pts_arr = np.frombuffer(pts, dtype=np.int64)
        order = np.argsort(pts_arr, kind="stable")
        pts_arr = pts_arr[order]
        dur_arr = np.frombuffer(durations, dtype=np.int64)[order]
        rate = vs.average_rate or getattr(vs, "guessed_rate", None)
        rate = Fraction(rate) if rate else None
        duration = _stated_duration(vs)
        _check_not_truncated(path, pts_arr, tb, rate, duration, vs.start_time)
        streams = tuple(
            StreamInfo(
                s.index, s.type, getattr(getattr(s.codec_context, "codec", None), "name", "?")
            )
            for s in container.streams
            if s.index != vs.index
        )
        format_name = container.format.name
        index = int(vs.index)
        stream_tags = _tags(cc)
        sar = vs.sample_aspect_ratio
        sar = Fraction(sar) if sar and sar.numerator and sar.denominator else None
    first = _first_frame(path, index)
    fmt = first.format
    tags = _merge_tags(_tags(first), stream_tags)
    if tags.transfer in HDR_TRANSFERS:
        raise VideoReadError(
            f"{path}: HDR video ({HDR_TRANSFERS[tags.transfer]} transfer) is refused: the models "
            "are trained on SDR; tone-map it to SDR (BT.709) first"
        )
    matrix = _display_matrix(first)
    return VideoInfo(
        path=path,
        format_name=format_name,
        codec=codec,
        width=int(first.width),
        height=int(first.height),
        pix_fmt=fmt.name,
        bit_depth=_bit_depth(fmt),
        time_base=Fraction(tb),
        frame_rate=rate,
        colour=tags.resolved(
            int(first.width), int(first.height), full_range_format=fmt.name.startswith("yuvj")
        ),
        tags=tags,
        sar=sar if sar != 1 else None,
        display_matrix=matrix,
        rotation=_rotation(matrix),
        video_index=index,
        pts=pts_arr,
        durations=dur_arr,
        keyframes=tuple(sorted(set(keyframes))) or (int(pts_arr[0]),),
        duration=duration,
        streams=streams,
    )


def _stated_duration(vs: Any) -> float | None:
    """The video stream's duration as the container states it (seconds), if it does."""
    if vs.duration and vs.time_base:
        return float(vs.duration * vs.time_base)
    text = (vs.metadata or {}).get("DURATION") or (vs.metadata or {}).get("duration")
    if text:  # Matroska: "00:01:02.500000000"
        try:
            h, m, s = str(text).split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            return None
    return None


def _check_not_truncated(
    path: Path,
    pts: np.ndarray,
    tb: Fraction,
    rate: Fraction | None,
    duration: float | None,
    start: int | None,
) -> None:
    if duration is None or duration <= 0:
        return
    frame = float(1 / rate) if rate else 0.04
    first = float((start if start is not None else pts[0]) * tb)
    end = float(pts[-1] * tb) + frame - first
    if end < duration - max(0.5, 3 * frame):
        raise VideoReadError(
            f"{path}: truncated: the video stops at {end:.2f} s of the {duration:.2f} s the file "
            "states"
        )


def _first_frame(path: Path, index: int) -> Any:
    av = require_av()
    with _open_input(path) as container:
        vs = container.streams[index]
        try:
            for frame in container.decode(vs):
                return frame
        except av.error.FFmpegError as e:
            raise VideoReadError(
                f"{path}: the first video frame does not decode ({_ff_reason(e)})"
            ) from None
        except (NotImplementedError, ValueError) as e:
            raise VideoReadError(f"{path}: video codec not supported ({e})") from None
    raise VideoReadError(f"{path}: no video frame could be decoded")


# --- reading -------------------------------------------------------------------------------


class VideoReader:
    """Decode frames of ``info``'s video stream to RGB arrays (``uint8``, or ``uint16`` for
    sources deeper than 8 bits), with the source's colour matrix and range.

    >>> with VideoReader(info) as reader:
    ...     for pts, rgb in reader.frames(start=info.keyframes[1]):
    ...         ...

    ``frames(start, end)`` yields the frames with ``start <= pts < end`` (``None``: unbounded),
    seeking to ``start`` when it is a keyframe; if the seek lands elsewhere it decodes from the
    beginning instead, so no frame is ever lost or repeated. Decoding errors raise VideoReadError.
    """

    def __init__(self, info: VideoInfo, *, threads: int = 0) -> None:
        self.info = info
        self.threads = threads
        self._container: Any = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _open(self) -> Any:
        self.close()
        self._container = _open_input(self.info.path)
        vs = self._container.streams[self.info.video_index]
        vs.thread_type = "AUTO"
        if self.threads:
            vs.codec_context.thread_count = self.threads
        return vs

    def frames(self, start: int | None = None, end: int | None = None) -> Iterator[tuple[int, Any]]:
        """``(pts, rgb array)`` for every frame with ``start <= pts < end``, in display order."""
        first_pts = int(self.info.pts[0])
        seek = start is not None and start > first_pts
        try:
            yield from self._frames(start, end, seek=seek)
        except _SeekMissed:
            log.info("%s: seek to %s missed; decoding from the start", self.info.path, start)
            yield from self._frames(start, end, seek=False)

    def _frames(
        self, start: int | None, end: int | None, *, seek: bool
    ) -> Iterator[tuple[int, Any]]:
        av = require_av()
        vs = self._open()
        if seek:
            self._container.seek(int(start), stream=vs, backward=True, any_frame=False)  # type: ignore[arg-type]
        checked = not seek
        path = self.info.path
        count = 0
        try:
            for packet in self._container.demux(vs):
                for frame in packet.decode():
                    pts = frame.pts
                    if pts is None:
                        raise VideoReadError(f"{path}: decoded a frame without a timestamp")
                    if start is not None and pts < start:
                        continue
                    if not checked:
                        if pts != start:  # the seek landed after the segment's first frame
                            raise _SeekMissed()
                        checked = True
                    if end is not None and pts >= end:
                        return
                    if getattr(frame, "is_corrupt", False):
                        raise VideoReadError(
                            f"{path}: corrupt video frame at {float(pts * vs.time_base):.3f} s"
                        )
                    count += 1
                    yield int(pts), self.to_rgb(frame)
        except av.error.FFmpegError as e:
            where = f"after {count} frames" if start is None else f"in the part from pts {start}"
            raise VideoReadError(f"{path}: damaged video data {where} ({_ff_reason(e)})") from None

    def to_rgb(self, frame: Any) -> np.ndarray:
        """One decoded frame -> RGB ``H x W x 3`` with the source's matrix and range."""
        dtype = self.info.rgb_dtype
        fmt = frame.format
        if not _is_yuv(fmt):  # RGB, gray, palette: swscale's own conversion is exact enough
            target = "rgb48le" if dtype == np.uint16 else "rgb24"
            return frame.reformat(format=target).to_ndarray()
        bits = _bit_depth(fmt)
        full = fmt.name.startswith("yuvj")
        target = _yuv444(bits, full)
        if fmt.name != target:
            # chroma upsampling only (same depth and range): no matrix is involved here
            frame = frame.reformat(format=target)
        y, u, v = _planes(frame, bits)
        colour = self.info.colour
        return yuv_to_rgb(
            y, u, v, matrix=colour.matrix, full_range=colour.range == 2, bits=bits, out_dtype=dtype
        )


class _SeekMissed(Exception):
    pass


def _yuv444(bits: int, full: bool) -> str:
    if bits <= 8:
        return "yuvj444p" if full else "yuv444p"
    return {9: "yuv444p9le", 10: "yuv444p10le", 12: "yuv444p12le", 14: "yuv444p14le"}.get(
        bits, "yuv444p16le"
    )


def _planes(frame: Any, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
    h, w = frame.height, frame.width
    out = []
    for plane in frame.planes[:3]:
        row = plane.line_size // dtype.itemsize
        out.append(np.frombuffer(plane, dtype=dtype).reshape(-1, row)[:h, :w])
    return out[0], out[1], out[2]


# --- encoding ------------------------------------------------------------------------------


def available_encoders() -> list[str]:
    """The :data:`ENCODERS` this PyAV build has, in order of preference."""
    av = require_av()
    found = []
    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises different types across versions
            continue
        found.append(name)
    return found


@dataclass(frozen=True)
class EncoderSettings:
    """The video encoder: codec, pixel format, CRF, preset and any extra FFmpeg options."""

    codec: str
    pix_fmt: str
    crf: int | None = None
    preset: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "crf": self.crf,
            "preset": self.preset,
            "options": [list(kv) for kv in self.options],
        }

    @property
    def bit_depth(self) -> int:
        av = require_av()
        return _bit_depth(av.VideoFormat(self.pix_fmt))

    def codec_options(self) -> dict[str, str]:
        opts = dict(self.options)
        if self.crf is not None:
            opts.setdefault("crf", str(self.crf))
        if self.preset is not None:
            opts.setdefault("preset", str(self.preset))
        return opts


def resolve_encoder(
    *,
    codec: str | None,
    pix_fmt: str | None,
    crf: int | None,
    preset: str | None,
    bit_depth: int,
    source_pix_fmt: str = "yuv420p",
) -> EncoderSettings:
    """Check and complete the encoder choice.

    ``codec=None`` takes the first of :data:`ENCODERS` this build has (libx264 in PyAV's wheels).
    ``pix_fmt=None`` keeps the source's chroma subsampling and gives 8 bits for 8-bit sources and
    10 bits for deeper ones (``yuv420p`` / ``yuv420p10le`` for the usual 4:2:0 video).
    Raises UsageError for an encoder this build lacks, a pixel format it cannot take, or a CRF on
    an encoder without one.
    """
    av = require_av()
    have = available_encoders()
    if codec is None:
        if not have:
            raise UsageError(f"this PyAV build has none of the encoders {', '.join(ENCODERS)}")
        codec = have[0]
    try:
        c = av.codec.Codec(codec, "w")
    except Exception:  # noqa: BLE001
        raise UsageError(
            f"--codec: this PyAV build has no '{codec}' encoder; available: {', '.join(have)}"
        ) from None
    if c.type != "video":
        raise UsageError(f"--codec: '{codec}' is a {c.type} encoder, not a video encoder")
    formats = [f.name for f in (c.video_formats or [])]
    if pix_fmt is None:
        pix_fmt = _default_pix_fmt(source_pix_fmt, bit_depth, formats)
    elif formats and pix_fmt not in formats:
        raise UsageError(
            f"--pix-fmt: {codec} cannot encode {pix_fmt}; it takes {', '.join(formats[:12])}"
        )
    try:
        out_fmt = av.VideoFormat(pix_fmt)
    except Exception:  # noqa: BLE001
        raise UsageError(f"--pix-fmt: unknown pixel format '{pix_fmt}'") from None
    if not _is_yuv(out_fmt):
        raise UsageError(
            f"--pix-fmt: {pix_fmt} is not a YUV format; use e.g. yuv420p or yuv420p10le"
        )
    default_crf, default_preset = ENCODER_DEFAULTS.get(codec, (None, None))
    if crf is not None and default_crf is None:
        raise UsageError(f"--crf: {codec} has no CRF setting; leave --crf out")
    if preset is not None and default_preset is None:
        raise UsageError(f"--preset: {codec} has no presets; leave --preset out")
    options: tuple[tuple[str, str], ...] = ()
    if codec == "libx265":
        options = (("x265-params", "log-level=error"),)
    elif codec == "ffv1":
        options = (("level", "3"), ("slicecrc", "1"))
    return EncoderSettings(
        codec=codec,
        pix_fmt=pix_fmt,
        crf=crf if crf is not None else default_crf,
        preset=preset if preset is not None else default_preset,
        options=options,
    )


def chroma_subsampling(pix_fmt: str) -> tuple[int, int]:
    """(horizontal, vertical) chroma subsampling factors of a YUV pixel format, from its name
    (PyAV's VideoFormat.chroma_width changed from a number to a method across versions)."""
    import re

    m = re.match(r"yuva?j?(4\d\d)p", pix_fmt)
    if m:
        return {"420": (2, 2), "422": (2, 1), "440": (1, 2), "444": (1, 1), "411": (4, 1)}.get(
            m.group(1), (2, 2)
        )
    if pix_fmt.startswith(("nv16", "nv20", "p210", "p216", "y210")):
        return 2, 1
    if pix_fmt.startswith(("nv24", "nv42", "p410", "p416")):
        return 1, 1
    return 2, 2


def _default_pix_fmt(source: str, bit_depth: int, formats: Sequence[str]) -> str:
    chroma = {(2, 2): "420", (2, 1): "422", (1, 1): "444"}.get(chroma_subsampling(source), "420")
    deep = bit_depth > 8
    for candidate in (
        f"yuv{chroma}p" + ("10le" if deep else ""),
        "yuv420p10le" if deep else "yuv420p",
    ):
        if not formats or candidate in formats:
            return candidate
    return formats[0]


def canonical_codec(encoder: str) -> str:
    """The codec an encoder makes, as containers name it: libx264 -> h264, libsvtav1 -> av1."""
    av = require_av()
    try:
        return str(av.codec.Codec(encoder, "w").canonical_name)
    except Exception:  # noqa: BLE001
        return encoder


def segment_format(encoder: str) -> tuple[str, str]:
    """(muxer name, file suffix) of the segments for ``encoder``'s codec."""
    codec = canonical_codec(encoder)
    for name, suffix in SEGMENT_FORMATS.items():
        if _codec_holds(name, codec):
            return name, suffix
    return "matroska", ".mkv"


def _muxer_options(format_name: str, time_base: Fraction) -> dict[str, str]:
    """MP4/QuickTime: the movie timescale (edit lists, hence start offsets, are counted in it;
    1/1000 s by default) set to the video's own clock, so a start offset between milliseconds is
    not rounded."""
    if format_name in ("mp4", "mov"):
        return {"movie_timescale": str(Fraction(time_base).denominator)}
    return {}


def _codec_holds(format_name: str, codec: str) -> bool:
    """Whether libavformat's ``format_name`` muxer can hold ``codec`` (avformat_query_codec)."""
    av = require_av()
    if (format_name, codec) in _REFUSED:
        return False
    with av.open(io.BytesIO(), "w", format=format_name) as probe_out:
        supported = getattr(probe_out, "supported_codecs", None)
        return supported is None or codec in supported


def choose_container(
    ext: str, *, source_suffix: str, video_codec: str, streams: Iterable[StreamInfo]
) -> tuple[str, list[str]]:
    """The output extension and the notes to tell the user.

    ``ext="auto"``: the source's container when it can hold the encoded video and every other
    stream, else mp4 when it can, else mkv (which holds nearly everything). An explicit ``ext``
    that cannot hold the video codec is a UsageError; one that cannot hold an audio stream
    re-encodes that stream (see :func:`join_segments`); one that cannot hold a subtitle, data or
    attachment stream becomes mkv, and a note says so.
    """
    others = [s for s in streams if s.type != "audio"]
    audio = [s for s in streams if s.type == "audio"]
    video_codec = canonical_codec(video_codec)

    def holds(e: str, items: Iterable[StreamInfo]) -> bool:
        fmt = CONTAINERS[e]
        if not _codec_holds(fmt, video_codec):
            return False
        for s in items:
            if s.type == "attachment":
                if fmt != "matroska":
                    return False
            elif not _codec_holds(fmt, s.codec):
                return False
        return True

    notes: list[str] = []
    if ext == "auto":
        src = source_suffix.lower().lstrip(".")
        for candidate in (src, "mp4", "mkv"):
            if candidate in CONTAINERS and holds(candidate, [*others, *audio]):
                if candidate != src:
                    notes.append(f"written as .{candidate}: .{src} cannot hold every stream")
                return candidate, notes
        return "mkv", notes
    if ext not in CONTAINERS:
        raise UsageError(f"--ext: {ext} is not one of {', '.join(['auto', *CONTAINERS])}")
    if not _codec_holds(CONTAINERS[ext], video_codec):
        raise UsageError(
            f"--ext {ext}: the container cannot hold {video_codec} video; choose another --codec "
            "or --ext mkv"
        )
    if not holds(ext, others):
        bad = [f"{s.type} #{s.index} ({s.codec})" for s in others if not holds(ext, [s])]
        notes.append(f"written as .mkv: .{ext} cannot hold {', '.join(bad)}")
        return "mkv", notes
    return ext, notes


class SegmentWriter:
    """Encode RGB frames at given timestamps into one file (a segment of the output video).

    The encoder's time base is the source stream's, so ``write(pts, rgb)`` keeps every timestamp
    exactly; colour tags and the sample aspect ratio go to the encoder. Written to ``path``
    (:func:`segment_format`); :meth:`close` flushes and returns the frame count.
    """

    def __init__(
        self,
        path: Path,
        settings: EncoderSettings,
        *,
        width: int,
        height: int,
        time_base: Fraction,
        frame_rate: Fraction | None,
        colour: Colour,
        sar: Fraction | None,
    ) -> None:
        av = require_av()
        self.path = path
        self.settings = settings
        self.colour = colour
        self.frames = 0
        self.packets = 0
        self.width, self.height = width, height
        self._sws_matrix = _SWS_MATRIX[colour.matrix]
        names = getattr(getattr(av.video, "reformatter", None), "Colorspace", None)
        if names is not None and self._sws_matrix not in getattr(names, "__members__", {}):
            raise UsageError(
                f"{path}: PyAV {getattr(av, '__version__', '?')} cannot convert RGB to "
                f"{MATRIX_NAMES.get(colour.matrix)} YUV; upgrade it (pip install -U av)"
            )
        self._sws_range = "JPEG" if colour.range == 2 else "MPEG"
        try:
            fmt = segment_format(settings.codec)[0]
            self._out = av.open(str(path), "w", format=fmt, options=_muxer_options(fmt, time_base))
        except (av.error.FFmpegError, OSError) as e:
            raise VideoWriteError(f"{path}: cannot create ({_ff_reason(e)})") from None
        try:
            stream = self._out.add_stream(settings.codec, rate=frame_rate or Fraction(25))
            stream.width, stream.height = width, height
            stream.pix_fmt = settings.pix_fmt
            stream.time_base = time_base
            cc = stream.codec_context
            cc.time_base = time_base
            if frame_rate:
                cc.framerate = frame_rate
            for attr, value in (
                ("colorspace", colour.matrix),
                ("color_range", colour.range),
                ("color_primaries", colour.primaries),
                ("color_trc", colour.transfer),
            ):
                try:
                    setattr(cc, attr, value)
                except (AttributeError, TypeError, ValueError):
                    log.debug("this PyAV cannot set %s on the encoder", attr)
            if sar is not None:
                cc.sample_aspect_ratio = sar
            if settings.codec == "mpeg4":  # fixed quantiser 2: the default 200 kb/s is mush
                try:
                    cc.qscale = True
                    cc.global_quality = 2 * 118  # FF_QP2LAMBDA
                except AttributeError:  # PyAV < 16: a generous bit rate instead
                    cc.bit_rate = int(width * height * float(frame_rate or 25) * 0.3)
            stream.options = settings.codec_options()
            self._stream = stream
        except Exception as e:
            self._out.close()
            self._remove()
            if isinstance(e, av.error.FFmpegError):
                raise VideoWriteError(f"{path}: encoder setup failed ({_ff_reason(e)})") from None
            raise

    def write(self, pts: int, rgb: np.ndarray) -> None:
        """Encode one RGB frame (uint8 or uint16 ``H x W x 3``) at ``pts``."""
        av = require_av()
        h, w = rgb.shape[:2]
        if (h, w) != (self.height, self.width):
            raise VideoWriteError(
                f"{self.path}: frame is {w}x{h}, the stream is {self.width}x{self.height}"
            )
        src = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=src)
        frame = frame.reformat(
            format=self.settings.pix_fmt,
            dst_colorspace=self._sws_matrix,
            dst_color_range=self._sws_range,
        )
        for attr, value in (
            ("colorspace", self.colour.matrix),
            ("color_range", self.colour.range),
            ("color_primaries", self.colour.primaries),
            ("color_trc", self.colour.transfer),
        ):
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                setattr(frame, attr, value)
        frame.pts = int(pts)
        frame.time_base = self._stream.codec_context.time_base
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _mux(self, packets: Sequence[Any]) -> None:
        av = require_av()
        try:
            for packet in packets:
                self._out.mux(packet)
                self.packets += 1
        except av.error.FFmpegError as e:
            raise VideoWriteError(f"{self.path}: encoding failed ({_ff_reason(e)})") from None

    def close(self) -> int:
        """Flush the encoder, close the file; returns the number of frames written."""
        if self._out is None:
            return self.frames
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._out.close()
            self._out = None
        if self.packets != self.frames:
            raise VideoWriteError(
                f"{self.path}: the encoder gave {self.packets} packets for {self.frames} frames"
            )
        return self.frames

    def abort(self) -> None:
        """Close without flushing and delete the file."""
        if self._out is not None:
            with contextlib.suppress(Exception):  # best effort on the way out
                self._out.close()
            self._out = None
        self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# --- joining -------------------------------------------------------------------------------


@dataclass
class JoinReport:
    """What :func:`join_segments` did besides copying: streams re-encoded or left out."""

    frames: int = 0
    notes: list[str] = field(default_factory=list)


_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def _name_layout(src: Any, dst: Any) -> None:
    """Give an audio stream whose layout is only a channel count ("2 channels", as PCM in Matroska
    has) the default layout of that count ("stereo"): MP4 and MOV refuse unnamed layouts."""
    with contextlib.suppress(AttributeError, ValueError, TypeError):
        name = str(src.codec_context.layout.name)
        if name.endswith("channels") or not name:
            dst.layout = _DEFAULT_LAYOUTS.get(int(src.codec_context.channels), "stereo")


def _audio_encoder(format_name: str) -> str:
    return {"webm": "libopus", "ogg": "libopus"}.get(format_name, "aac")


def join_segments(
    segments: Sequence[Path],
    info: VideoInfo,
    output: Path,
    *,
    format_name: str,
    retimed: Fraction | None = None,
) -> JoinReport:
    """Mux the encoded video ``segments`` (in order) with every other stream of the source into
    ``output`` (a temporary path the caller renames).

    Audio, subtitle, data and attachment streams are copied packet for packet; an audio stream
    the container cannot hold is re-encoded (AAC, or Opus for WebM) and a note says so. The
    source's display matrix (rotation) is set on the video stream, container and stream metadata
    (titles, languages) and dispositions are copied. Packets of all streams are interleaved by
    time while copying, so memory stays flat however long the video is. Each video packet gets
    the duration of the source frame at its timestamp (so the last frame lasts as long and the
    duration matches); re-timed video (``retimed``: its frame rate) keeps the encoder's durations.
    """
    av = require_av()
    report = JoinReport()
    if not segments:
        raise VideoWriteError(f"{output}: nothing to join")
    # one segment open at a time (each open input costs ~0.5 MB and a file descriptor; a film
    # has hundreds of segments): the first one here (the template), the others in _segment_inputs
    # as the packets reach them
    first = _open_input(segments[0])
    try:
        src = _open_input(info.path)
    except BaseException:
        first.close()
        raise
    try:
        options = _muxer_options(format_name, Fraction(first.streams.video[0].time_base))
        out = av.open(str(output), "w", format=format_name, options=options)
    except (av.error.FFmpegError, OSError) as e:
        first.close()
        src.close()
        raise VideoWriteError(f"{output}: cannot create ({_ff_reason(e)})") from None
    try:
        first_vs = first.streams.video[0]
        # opaque: reuse the template's codec (a decoder such as libdav1d has no encoder twin)
        video_out = out.add_stream_from_template(first_vs, opaque=True)
        _copy_stream_meta(src.streams[info.video_index], video_out)
        _set_display_matrix(video_out, info, report)
        copy_streams: dict[int, Any] = {}
        transcode: dict[int, tuple[Any, Any]] = {}
        for s in src.streams:
            if s.index == info.video_index:
                continue
            codec = getattr(getattr(s.codec_context, "codec", None), "name", "?")
            if s.type == "audio" and not _codec_holds(format_name, codec):
                enc = _audio_encoder(format_name)
                o = out.add_stream(enc, rate=s.codec_context.sample_rate)
                _name_layout(s, o)
                _copy_stream_meta(s, o)
                transcode[s.index] = (s, o)
                report.notes.append(
                    f"audio #{s.index} ({codec}) re-encoded to {enc}: {format_name} cannot hold "
                    f"{codec}"
                )
                continue
            if s.type == "attachment" and format_name != "matroska":
                report.notes.append(f"attachment #{s.index} left out: {format_name} has none")
                continue
            try:
                o = out.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError, NotImplementedError) as e:
                report.notes.append(f"{s.type} #{s.index} ({codec}) left out: {_ff_reason(e)}")
                continue
            if s.type == "audio":
                _name_layout(s, o)
            _copy_stream_meta(s, o)
            copy_streams[s.index] = o
        for key, value in (src.metadata or {}).items():
            if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                out.metadata[key] = value
        _copy_chapters(src, out)
        wanted = [src.streams[i] for i in (*copy_streams, *transcode)]
        inputs = _segment_inputs(first, segments[1:], _extradata(first_vs))
        streams = [_video_packets(inputs, video_out, info if retimed is None else None)]
        if wanted:
            streams.append(_source_packets(src, wanted, copy_streams, transcode))
        frames = 0
        for _key, packet, is_video in heapq.merge(*streams, key=lambda item: item[0]):
            if isinstance(packet, list):  # re-encoded audio: packets of the output stream
                for p in packet:
                    out.mux(p)
                continue
            out.mux(packet)
            frames += int(is_video)
        for _s, o in transcode.values():
            for p in o.encode(None):
                out.mux(p)
        report.frames = frames
    except av.error.FFmpegError as e:
        raise VideoWriteError(f"{output}: joining failed ({_ff_reason(e)})") from None
    finally:
        try:
            out.close()
        except av.error.FFmpegError as e:
            raise VideoWriteError(
                f"{output}: finishing the file failed ({_ff_reason(e)})"
            ) from None
        finally:
            first.close()
            src.close()
    return report


def _segment_inputs(first: Any, rest: Sequence[Path], extradata: bytes) -> Iterator[Any]:
    """``first``, then each of ``rest`` opened in turn (and closed when the next is wanted), each
    checked to have the first segment's codec headers."""
    yield first
    for path in rest:
        c = _open_input(path)
        try:
            if _extradata(c.streams.video[0]) != extradata:
                raise VideoWriteError(
                    f"{path}: its codec headers differ from the first segment's; delete the work "
                    "folder and run again"
                )
            yield c
        finally:
            c.close()


def _extradata(stream: Any) -> bytes:
    data = getattr(stream.codec_context, "extradata", None)
    return bytes(data) if data else b""


def _copy_stream_meta(src: Any, dst: Any) -> None:
    for key, value in (src.metadata or {}).items():
        if key.lower() in ("handler_name", "vendor_id", "encoder", "duration", "_statistics_tags"):
            continue
        if key.lower().startswith("_statistics") or key.upper().startswith("NUMBER_OF_"):
            continue
        if key.upper() in (
            "BPS",
            "DURATION",
            "_STATISTICS_WRITING_APP",
            "_STATISTICS_WRITING_DATE_UTC",
        ):
            continue
        with contextlib.suppress(TypeError, ValueError):
            dst.metadata[key] = value
    disposition = getattr(src, "disposition", None)
    if disposition is not None:
        for value in (disposition, getattr(disposition, "value", None)):
            if value is None:
                continue
            try:
                dst.disposition = value
                break
            except (TypeError, ValueError, AttributeError):
                continue


def _copy_chapters(src: Any, out: Any) -> None:
    chapters = getattr(src, "chapters", None)
    setter = getattr(out, "set_chapters", None)
    if not callable(chapters) or setter is None:
        return
    try:
        found = chapters()
        if found:
            setter(found)
    except (TypeError, ValueError, AttributeError):
        log.debug("chapters not copied", exc_info=True)


def _set_display_matrix(stream: Any, info: VideoInfo, report: JoinReport) -> None:
    if info.display_matrix is None:
        return
    setter = getattr(stream, "set_display_matrix", None)
    if setter is None:
        report.notes.append(
            f"rotation ({info.rotation:g} degrees) not written: PyAV {_av_major()} cannot set a "
            "display matrix; upgrade to av>=17 (pip install -U av)"
        )
        return
    setter(list(info.display_matrix))


def _time_key(packet: Any) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    return Fraction(ts if ts is not None else 0) * Fraction(packet.time_base)


def _frame_durations(info: VideoInfo) -> np.ndarray:
    """Each source frame's duration (time base ticks, by pts order): the container's where it
    has one, else the gap to the next frame; the last frame without one gets the previous gap."""
    gaps = np.diff(info.pts)
    last = gaps[-1] if gaps.size else 1
    return np.where(info.durations > 0, info.durations, np.append(gaps, last))


def _video_packets(
    inputs: Iterable[Any], out_stream: Any, info: VideoInfo | None
) -> Iterator[tuple[Fraction, Any, bool]]:
    """The video packets of every segment, in order, re-targeted at ``out_stream``. DTS are kept
    strictly increasing across segment boundaries (bumped by one tick where an encoder's
    reordering delay would make them collide); PTS are never touched. With ``info``, each packet
    gets the duration of the source frame with its timestamp; a packet left without a duration
    gets its predecessor's (an MP4 edit list would otherwise end before the last frame)."""
    last_dts: int | None = None
    durations = _frame_durations(info) if info is not None else None
    previous = 0
    for c in inputs:
        vs = c.streams.video[0]
        scale = Fraction(vs.time_base) / info.time_base if info is not None else None
        for packet in c.demux(vs):
            if packet.size == 0 and packet.pts is None:
                continue
            if packet.dts is not None:
                if last_dts is not None and packet.dts <= last_dts:
                    packet.dts = last_dts + 1
                last_dts = packet.dts
            if info is not None and durations is not None and scale and packet.pts is not None:
                src = Fraction(packet.pts) * scale
                i = int(np.searchsorted(info.pts, int(src)))
                if src.denominator == 1 and i < info.pts.size and info.pts[i] == src:
                    d = Fraction(int(durations[i])) / scale
                    if d > 0 and d.denominator == 1:
                        packet.duration = int(d)
            if not packet.duration and previous:
                packet.duration = previous
            previous = int(packet.duration or 0)
            packet.stream = out_stream
            yield _time_key(packet), packet, True


def _source_packets(
    src: Any, streams: Sequence[Any], copy: dict[int, Any], transcode: dict[int, tuple[Any, Any]]
) -> Iterator[tuple[Fraction, Any, bool]]:
    """Packets of the copied streams (re-targeted) and the re-encoded audio, in file order."""
    gaps = {
        i
        for i, o in copy.items()
        if o.type == "subtitle" and getattr(o.codec_context, "name", "") == "mov_text"
    }
    for packet in src.demux(*streams):
        index = packet.stream.index
        if packet.size == 0 and packet.pts is None and packet.dts is None:
            if index in transcode:  # the demuxer's end-of-stream packet flushes the decoder
                continue
            continue
        key = _time_key(packet)
        if index in copy:
            if index in gaps and bytes(packet) == b"\0\0":
                continue  # an empty mov_text sample: the MP4 muxer writes its own gaps
            packet.stream = copy[index]
            yield key, packet, False
        elif index in transcode:
            _s, out_stream = transcode[index]
            encoded = []
            for frame in packet.decode():
                encoded.extend(out_stream.encode(frame))
            if encoded:
                yield key, encoded, False
