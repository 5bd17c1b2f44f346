"""Video upscaling: decode -> network -> encode, overlapped, in segments that survive interrupts.

``upscale_video(job, upscaler, settings)`` runs one file; ``plan_video_jobs`` lists the files of a
folder. The upscaler is anything with ``upscale(rgb, *, outscale)`` and ``output_shape(h, w, *,
outscale)`` (normally :class:`resrgan.Upscaler`), so each frame's pixels are exactly what
``Upscaler.upscale`` gives for the decoded frame.

How a file is processed:

1. :func:`resrgan.io.video.probe` reads every video packet's timestamp (truncated or corrupt files,
   missing video, HDR are refused here, before any work).
2. :func:`plan_segments` cuts the video at source keyframes into segments of about
   ``segment_seconds``; each is encoded to its own file in a work folder next to the output
   (``.NAME.resrgan-work``), written under a temporary name and renamed when complete, with a small
   JSON marker (frame count, first and last pts). A rerun with the same settings skips the complete
   segments: an interrupted run resumes. Changed settings (model, scale, encoder, input file) start
   the work folder over.
3. Three stages overlap: a decoder thread (PyAV; YUV -> RGB with the source's matrix), the network
   in the calling thread (``batch`` frames at a time), an encoder thread. Bounded queues keep memory
   flat however long the video is.
4. When every segment is there, the segments and the source's other streams are muxed into a
   temporary file (:func:`resrgan.io.video.join_segments`), checked (frame count, first and last
   timestamps) and renamed to the output; the work folder is removed. Ctrl-C or a kill leaves no
   file at the output path.

With a :class:`~resrgan.infer.shard.Shard` the segments of one video are shared among workers; the
worker that completes the last one joins (a lock file decides between two finishing at once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ResrganError, UsageError, VideoReadError, VideoWriteError
from ..io import video as vio
from ..paths import atomic_path
from .shard import Shard, share

log = logging.getLogger(__name__)

__all__ = [
    "Segment",
    "VideoJob",
    "VideoResult",
    "VideoSettings",
    "plan_segments",
    "plan_video_jobs",
    "upscale_video",
    "work_dir_for",
]

Progress = Callable[[int, int], None]
_WORK_SUFFIX = ".resrgan-work"
_TMP_MARK = ".resrgan-tmp"
_PLAN_VERSION = 1


@dataclass(frozen=True)
class VideoSettings:
    """What to make of each video. ``None`` means the default: the network's scale, the first
    encoder this PyAV has (libx264 in its wheels), its default CRF and preset, the source's chroma
    layout at 8 or 10 bits. ``fps`` re-times every frame to that constant rate (the original's
    ``--fps``); by default every frame keeps its own timestamp."""

    outscale: float | None = None
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    ext: str = "auto"
    fps: float | None = None
    batch: int = 1
    segment_seconds: float = 10.0
    queue_frames: int = 4

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise UsageError(f"--batch: {self.batch} must be 1 or more frames per network call")
        if not self.segment_seconds > 0:
            raise UsageError(f"--segment: {self.segment_seconds} must be a positive number of s")
        if self.fps is not None and not (0 < self.fps <= 1000):
            raise UsageError(f"--fps: {self.fps} is not a frame rate; use e.g. 23.976 or 30")


@dataclass(frozen=True)
class VideoJob:
    """One input and its planned output. ``named`` is True when the user gave the output file's
    name (its extension is then the container)."""

    input: Path
    output: Path
    named: bool = False


@dataclass(frozen=True)
class Segment:
    """Frames with ``start <= pts < end`` (``None``: unbounded); ``frames`` counted by the probe."""

    index: int
    start: int | None
    end: int | None
    frames: int


@dataclass
class VideoResult:
    """What :func:`upscale_video` did. ``status``: done, skipped, or partial (a shard's segments
    are done and others remain)."""

    input: Path
    output: Path
    status: str
    frames: int = 0
    encoded: int = 0
    segments: int = 0
    segments_done: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input"], d["output"] = str(self.input), str(self.output)
        d["seconds"] = round(self.seconds, 3)
        return d


# --- planning ------------------------------------------------------------------------------


def plan_segments(
    pts: np.ndarray, keyframes: Sequence[int], time_base: Fraction, seconds: float
) -> list[Segment]:
    """Cut at keyframes: a segment ends at the first keyframe at least ``seconds`` after its start.

    Segment 0 takes everything before the second cut (frames before the first keyframe too);
    the last runs to the end. ``frames`` counts the timestamps in ``pts`` (sorted) in each.
    """
    if len(pts) == 0:
        return []
    step = Fraction(seconds) / Fraction(time_base)
    cuts: list[int] = []
    current = int(pts[0])
    for k in sorted(keyframes):
        if k > current and k - current >= step:
            cuts.append(int(k))
            current = int(k)
    bounds: list[int | None] = [None, *cuts, None]
    segments = []
    for i in range(len(bounds) - 1):
        lo = 0 if bounds[i] is None else int(np.searchsorted(pts, bounds[i], side="left"))
        hi = len(pts) if bounds[i + 1] is None else int(np.searchsorted(pts, bounds[i + 1]))
        segments.append(Segment(i, bounds[i], bounds[i + 1], hi - lo))
    return segments


def output_name(path: Path, suffix: str, ext: str) -> str:
    """``{stem}_{suffix}.{ext}`` or ``{stem}.{ext}`` for an empty suffix (as the original)."""
    return f"{path.stem}_{suffix}.{ext}" if suffix else f"{path.stem}.{ext}"


def _planned_ext(path: Path, ext: str) -> str:
    if ext != "auto":
        return ext
    src = path.suffix.lower().lstrip(".")
    return src if src in vio.CONTAINERS else "mp4"


def plan_video_jobs(
    input: str | os.PathLike[str], output: str | os.PathLike[str], *, suffix: str, ext: str
) -> tuple[list[VideoJob], list[Path]]:
    """Jobs for a file or a folder (its videos in sorted order; dot-files ignored), and the
    folder's other files. ``output`` is a folder, or the output file itself when the input is a
    file and ``output`` has a video suffix and is not an existing folder."""
    src, out = Path(input), Path(output)
    if any(c in suffix for c in ("/", "\\", os.sep, "\0")):
        raise UsageError(f"--suffix: {suffix!r} contains a path separator; use a plain word")
    if not src.exists():
        raise UsageError(f"-i/--input: {src}: no such file or folder")
    if src.is_file():
        if vio.is_video_path(out) and not out.is_dir():
            return [VideoJob(src, out, named=True)], []
        return [VideoJob(src, out / output_name(src, suffix, _planned_ext(src, ext)))], []
    if not src.is_dir():
        raise UsageError(f"-i/--input: {src}: not a regular file or folder")
    jobs, others = [], []
    for p in sorted(src.iterdir(), key=lambda q: q.name):
        if p.name.startswith(".") or not p.is_file():
            continue
        if vio.is_video_path(p):
            jobs.append(VideoJob(p, out / output_name(p, suffix, _planned_ext(p, ext))))
        else:
            others.append(p)
    return jobs, others


def work_dir_for(output: Path) -> Path:
    """The folder holding ``output``'s segments while it is made: ``.NAME.resrgan-work``."""
    return output.parent / f".{output.name}{_WORK_SUFFIX}"


# --- the work folder -----------------------------------------------------------------------


class _Work:
    """Segment files and their markers in the work folder; every write is temp + rename."""

    def __init__(self, path: Path, seg_suffix: str) -> None:
        self.path = path
        self.seg_suffix = seg_suffix

    def segment(self, index: int) -> Path:
        return self.path / f"seg-{index:05d}{self.seg_suffix}"

    def temp_prefix(self, index: int) -> str:
        """Temporary segment names carry the writer's pid (``seg-00003.resrgan-tmp-PID-XXXX.mp4``):
        a rerun removes those of workers no longer running."""
        return f"seg-{index:05d}{_TMP_MARK}-{os.getpid()}-"

    def marker(self, index: int) -> Path:
        return self.path / f"seg-{index:05d}.json"

    def prepare(self, plan: dict[str, Any]) -> bool:
        """Create the folder or check its plan; a different plan empties it. True if resumed."""
        self.path.mkdir(parents=True, exist_ok=True)
        plan_file = self.path / "plan.json"
        resumed = False
        try:
            old = json.loads(plan_file.read_text())
            resumed = old == plan
        except (OSError, ValueError):
            old = None
        if old is not None and not resumed:
            log.info("%s: settings or input changed; starting the segments over", self.path)
            self.clear()
        if not resumed:
            _write_json(plan_file, plan)
        return resumed

    def clear(self) -> None:
        for p in self.path.iterdir():
            if p.name.startswith("seg-") or p.name in ("plan.json", "join.lock"):
                with contextlib.suppress(OSError):
                    p.unlink()

    def done(self, index: int) -> dict[str, Any] | None:
        try:
            marker = json.loads(self.marker(index).read_text())
        except (OSError, ValueError):
            return None
        if marker.get("frames", 0) > 0 and not self.segment(index).is_file():
            return None
        return marker

    def write_marker(self, index: int, marker: dict[str, Any]) -> None:
        """Written after the segment's file is in place: a marker means the segment is done."""
        _write_json(self.marker(index), marker)

    def remove_stale_temps(self) -> None:
        for p in self.path.glob(f"seg-*{_TMP_MARK}-*"):
            pid = p.name.split(f"{_TMP_MARK}-", 1)[1].split("-", 1)[0].split(".", 1)[0]
            if pid == str(os.getpid()) or not _pid_alive(pid):
                with contextlib.suppress(OSError):
                    p.unlink()

    def remove(self) -> None:
        self.clear()
        for p in self.path.glob(f"*{_TMP_MARK}*"):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path, prefix=f"{path.name}{_TMP_MARK}-{os.getpid()}-", suffix="") as tmp:
        tmp.write_text(json.dumps(data, sort_keys=True))


# --- the network on frames -----------------------------------------------------------------


_digests: dict[int, str] = {}


def _model_identity(upscaler: Any) -> dict[str, Any]:
    """Name, scale, precision and a digest of the weights: segments made by another model are
    never mixed into an output."""
    model = getattr(upscaler, "model", None)
    digest = ""
    if model is not None and hasattr(model, "state_dict"):
        key = id(model)
        if key not in _digests:
            h = hashlib.sha256()
            for name, tensor in sorted(model.state_dict().items()):
                h.update(name.encode())
                t = tensor.detach().to("cpu").contiguous()
                h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes())
            _digests[key] = h.hexdigest()[:16]
        digest = _digests[key]
    return {
        "name": str(getattr(upscaler, "model_name", type(upscaler).__name__)),
        "scale": int(getattr(upscaler, "scale", 0)),
        "precision": str(getattr(upscaler, "precision", "")),
        "tile": str(getattr(upscaler, "tile", "")),
        "weights": digest,
    }


class _Network:
    """Frames -> upscaled frames. ``batch > 1`` hands same-size frames to
    ``upscaler.upscale_batch`` (one network call per tile for all of them; equal to ``upscale``
    of each frame up to the float rounding of batched kernels); otherwise, or for an upscaler
    without it, ``upscaler.upscale(frame, outscale=...)`` per frame."""

    def __init__(self, upscaler: Any, outscale: float | None, batch: int) -> None:
        self.up = upscaler
        self.outscale = outscale
        self.batch = batch
        self._batch_fn = getattr(upscaler, "upscale_batch", None) if batch > 1 else None
        if batch > 1 and self._batch_fn is None:
            log.info("--batch %d: this upscaler has no upscale_batch; one frame per call", batch)

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if self._batch_fn is not None and len(frames) > 1:
            return list(self._batch_fn(np.stack(frames), outscale=self.outscale))
        return [self.up.upscale(f, outscale=self.outscale) for f in frames]


def _fit(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Edge-extend by a row/column to the even size a subsampled pixel format needs."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    return np.pad(frame, ((0, height - h), (0, width - w), (0, 0)), mode="edge")


# --- the pipeline --------------------------------------------------------------------------

_DONE = "done"


class _Stopped(Exception):
    pass


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped()
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue[Any], stop: threading.Event, alive: Callable[[], bool]) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set() or not alive():
                raise _Stopped() from None


def _runs(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Consecutive segments grouped, so each group is decoded in one pass (one seek)."""
    runs: list[list[Segment]] = []
    for s in segments:
        if runs and runs[-1][-1].index + 1 == s.index:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


@dataclass
class _Target:
    """Where and how segments are encoded."""

    work: _Work
    encoder: vio.EncoderSettings
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    colour: vio.Colour
    sar: Fraction | None
    retime: Callable[[int], int] | None


def _decode(
    info: vio.VideoInfo, segments: Sequence[Segment], q: queue.Queue[Any], stop: threading.Event
) -> None:
    try:
        with vio.VideoReader(info) as reader:
            for run in _runs(segments):
                k = 0
                for pts, rgb in reader.frames(run[0].start, run[-1].end):
                    while k + 1 < len(run) and pts >= run[k + 1].start:  # type: ignore[operator]
                        _put(q, ("end", run[k]), stop)
                        k += 1
                    _put(q, ("frame", run[k], pts, rgb), stop)
                for seg in run[k:]:
                    _put(q, ("end", seg), stop)
        _put(q, (_DONE,), stop)
    except _Stopped:
        return
    except BaseException as e:  # noqa: BLE001 - handed to the main thread
        with contextlib.suppress(_Stopped):
            _put(q, ("error", e), stop)


class _Encoder(threading.Thread):
    def __init__(
        self,
        target: _Target,
        q: queue.Queue[Any],
        stop: threading.Event,
        on_segment: Callable[[Segment, dict[str, Any]], None],
    ) -> None:
        super().__init__(name="resrgan-video-encode", daemon=True)
        self.target, self.q, self.stop, self.on_segment = target, q, stop, on_segment
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            item = self._next()
            while item[0] != _DONE:
                item = self._segment(item)
        except _Stopped:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e
            self.stop.set()

    def _next(self) -> Any:
        return _get(self.q, self.stop, lambda: True)

    def _segment(self, item: Any) -> Any:
        """Encode one segment's frames, from ``item`` to the segment's end, into a temporary file
        renamed into place when complete (:func:`resrgan.paths.atomic_path`; removed on an error
        or a stop), then write its marker. Returns the item after the end."""
        seg: Segment = item[1]
        work = self.target.work
        first = last = None
        frames = 0
        if item[0] == "frame":
            first = item[2]
            prefix = work.temp_prefix(seg.index)
            with atomic_path(work.segment(seg.index), prefix=prefix, suffix=work.seg_suffix) as tmp:
                writer = self._open(tmp)
                try:
                    while item[0] == "frame":
                        writer.write(item[2], item[3])
                        last = item[2]
                        item = self._next()
                    frames = writer.close()
                except BaseException:
                    writer.abort()
                    raise
        if item[0] != "end" or item[1] is not seg:
            raise VideoWriteError(f"segment {seg.index}: frames arrived out of order ({item[0]})")
        marker = {
            "frames": frames,
            "first": first,
            "last": last,
            "time_base": str(self.target.time_base),
        }
        work.write_marker(seg.index, marker)
        self.on_segment(seg, marker)
        return self._next()

    def _open(self, path: Path) -> vio.SegmentWriter:
        t = self.target
        return vio.SegmentWriter(
            path,
            t.encoder,
            width=t.width,
            height=t.height,
            time_base=t.time_base,
            frame_rate=t.frame_rate,
            colour=t.colour,
            sar=t.sar,
        )


def _run_pipeline(
    info: vio.VideoInfo,
    segments: Sequence[Segment],
    target: _Target,
    network: _Network,
    *,
    queue_frames: int,
    on_frame: Callable[[], None],
    on_segment: Callable[[Segment, dict[str, Any]], None],
) -> int:
    """Decode, upscale and encode ``segments``; returns the frames upscaled."""
    stop = threading.Event()
    depth = max(queue_frames, network.batch + 1)
    dq: queue.Queue[Any] = queue.Queue(maxsize=depth)
    eq: queue.Queue[Any] = queue.Queue(maxsize=depth)
    decoder = threading.Thread(
        target=_decode, args=(info, segments, dq, stop), name="resrgan-video-decode", daemon=True
    )
    encoder = _Encoder(target, eq, stop, on_segment)
    decoder.start()
    encoder.start()
    count = 0
    pending: list[tuple[Segment, int, np.ndarray]] = []

    def flush() -> None:
        nonlocal count
        if not pending:
            return
        outs = network([p[2] for p in pending])
        for (seg, pts, _), out in zip(pending, outs, strict=True):
            out = _fit(out, target.height, target.width)
            pts_out = target.retime(pts) if target.retime is not None else pts
            _put(eq, ("frame", seg, pts_out, out), stop)
            count += 1
            on_frame()
        pending.clear()

    try:
        while True:
            try:
                item = _get(dq, stop, decoder.is_alive)
            except _Stopped:
                if encoder.error is not None:
                    raise encoder.error from None
                raise VideoReadError(f"{info.path}: the decoder stopped unexpectedly") from None
            kind = item[0]
            if kind == "frame":
                pending.append((item[1], item[2], item[3]))
                if len(pending) >= network.batch:
                    flush()
                continue
            flush()
            if kind == "error":
                raise item[1]
            if kind == _DONE:
                _put(eq, (_DONE,), stop)
                break
            _put(eq, item, stop)  # a segment's end
        while encoder.is_alive():
            encoder.join(timeout=0.1)
        if encoder.error is not None:
            raise encoder.error
        return count
    except _Stopped:
        if encoder.error is not None:
            raise encoder.error from None
        raise
    finally:
        stop.set()
        decoder.join(timeout=5)
        encoder.join(timeout=30)


# --- one file ------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _final_output(job: VideoJob, ext: str) -> Path:
    if job.named:
        return job.output
    return job.output.with_name(f"{job.output.stem}.{ext}")


def _even(n: int, subsampled: bool) -> int:
    return n + (n % 2) if subsampled else n


def _retiming(
    info: vio.VideoInfo, fps: float | None, max_den: int | None = None
) -> tuple[Fraction, Fraction | None, Callable[[int], int] | None]:
    """(time base, frame rate, pts map) of the output: the source's, or constant ``fps``.

    ``max_den``: the encoder's largest time base denominator (MPEG-4 part 2: 65535); a finer
    source time base is coarsened by the greatest common divisor of the timestamps, which keeps
    every one exact, or refused when that is not enough."""
    if fps is not None:
        rate = Fraction(fps).limit_denominator(1001)
        tb = 1 / rate
        base = round(Fraction(int(info.pts[0])) * info.time_base / tb)
        pts = info.pts

        def retime(p: int) -> int:
            return base + int(np.searchsorted(pts, p))

        return tb, rate, retime
    if max_den is None or info.time_base.denominator <= max_den:
        return info.time_base, info.frame_rate, None
    g = int(np.gcd.reduce(np.abs(info.pts))) or 1
    tb = info.time_base * g
    if tb.denominator > max_den:
        raise UsageError(
            f"{info.path}: its timestamps need a 1/{info.time_base.denominator} s clock, which "
            "MPEG-4 part 2 cannot hold; choose another --codec or give --fps"
        )
    return tb, info.frame_rate, lambda p: p // g


def upscale_video(
    job: VideoJob,
    upscaler: Any,
    settings: VideoSettings,
    *,
    overwrite: bool = False,
    shard: Shard | None = None,
    on_progress: Progress | None = None,
    on_segment: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Upscale one video (see the module doc). ``on_progress(done, total)`` is called after every
    frame's network pass (``done`` counts the frames of complete segments from an earlier run too);
    ``on_segment(done, total)`` after every segment written. With ``shard``, only that worker's
    segments are made here; the result is ``partial`` until every worker's are there.

    Raises VideoReadError for bad input (the work folder is removed: nothing is left), UsageError
    for settings the input cannot take, VideoWriteError when encoding or joining fails.
    KeyboardInterrupt leaves the complete segments for a rerun and no temporary file.
    """
    t0 = time.perf_counter()
    info = vio.probe(job.input)
    enc = vio.resolve_encoder(
        codec=settings.codec,
        pix_fmt=settings.pix_fmt,
        crf=settings.crf,
        preset=settings.preset,
        bit_depth=info.bit_depth,
        source_pix_fmt=info.pix_fmt,
    )
    ext = job.output.suffix.lower().lstrip(".") if job.named else settings.ext
    ext, notes = vio.choose_container(
        ext, source_suffix=job.input.suffix, video_codec=enc.codec, streams=info.streams
    )
    output = _final_output(job, ext)
    if _same_file(output, job.input) or output.resolve() == job.input.resolve():
        raise UsageError(
            f"{output}: the output is the input file itself; use a --suffix or another -o"
        )
    if output.exists() and not overwrite:
        return VideoResult(job.input, output, "skipped", notes=notes)
    oh, ow = upscaler.output_shape(info.height, info.width, outscale=settings.outscale)
    sub_w, sub_h = vio.chroma_subsampling(enc.pix_fmt)
    height, width = _even(oh, sub_h > 1), _even(ow, sub_w > 1)
    if (height, width) != (oh, ow):
        notes.append(
            f"{enc.pix_fmt} needs even sizes: {ow}x{oh} extended to {width}x{height} "
            "by repeating the last row/column"
        )
    max_den = 65535 if enc.codec == "mpeg4" else None
    time_base, frame_rate, retime = _retiming(info, settings.fps, max_den)
    segments = plan_segments(info.pts, info.keyframes, info.time_base, settings.segment_seconds)
    seg_format, seg_suffix = vio.segment_format(enc.codec)
    work = _Work(work_dir_for(output), seg_suffix)
    stat = job.input.stat()
    plan = {
        "version": _PLAN_VERSION,
        "input": {
            "path": str(job.input.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        },
        "model": _model_identity(upscaler),
        "outscale": settings.outscale,
        "size": [width, height],
        "encoder": enc.as_dict(),
        "segment_format": seg_format,
        "time_base": str(time_base),
        "fps": settings.fps,
        "colour": asdict(info.colour),
        "segments": [[s.start, s.end] for s in segments],
    }
    if overwrite and output.exists() and not work.path.exists():
        log.info("%s exists; replacing it (--overwrite)", output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        work.prepare(plan)
    except OSError as e:
        raise VideoWriteError(
            f"{work.path}: cannot create the work folder ({e.strerror or e})"
        ) from None
    work.remove_stale_temps()
    mine = share(segments, shard)
    done = {s.index for s in segments if work.done(s.index) is not None}
    todo = [s for s in mine if s.index not in done]
    total = sum(s.frames for s in segments)
    progress = sum(s.frames for s in segments if s.index in done)
    if on_progress is not None:
        on_progress(progress, total)
    segs_done = len(done)

    def frame_done() -> None:
        nonlocal progress
        progress += 1
        if on_progress is not None:
            on_progress(min(progress, total), total)

    def segment_done(seg: Segment, marker: dict[str, Any]) -> None:
        nonlocal segs_done
        segs_done += 1
        if marker["frames"] != seg.frames:
            log.warning(
                "%s: segment %d decoded to %d frames where the file has %d packets",
                job.input,
                seg.index,
                marker["frames"],
                seg.frames,
            )
        if on_segment is not None:
            on_segment(segs_done, len(segments))

    target = _Target(work, enc, width, height, time_base, frame_rate, info.colour, info.sar, retime)
    network = _Network(upscaler, settings.outscale, settings.batch)
    encoded = 0
    if todo:
        log.info(
            "%s: %d of %d segments to encode%s",
            job.input,
            len(todo),
            len(segments),
            f" (shard {shard})" if shard else "",
        )
        try:
            encoded = _run_pipeline(
                info,
                todo,
                target,
                network,
                queue_frames=settings.queue_frames,
                on_frame=frame_done,
                on_segment=segment_done,
            )
        except VideoReadError:
            work.remove()  # bad input: nothing of it is kept
            raise
    result = VideoResult(
        job.input,
        output,
        "partial",
        frames=0,
        encoded=encoded,
        segments=len(segments),
        notes=notes,
    )
    markers = [work.done(s.index) for s in segments]
    result.segments_done = sum(m is not None for m in markers)
    if any(m is None for m in markers):
        result.seconds = time.perf_counter() - t0
        return result
    lock = work.path / "join.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if shard is not None:  # another worker is joining
            result.seconds = time.perf_counter() - t0
            return result
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    try:
        frames, join_notes = _join(
            work,
            segments,
            [m for m in markers if m is not None],
            info,
            output,
            ext,
            frame_rate if settings.fps is not None else None,
        )
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    work.remove()
    result.status = "done"
    result.frames = frames
    result.notes.extend(join_notes)
    result.seconds = time.perf_counter() - t0
    return result


def _join(
    work: _Work,
    segments: Sequence[Segment],
    markers: Sequence[dict[str, Any]],
    info: vio.VideoInfo,
    output: Path,
    ext: str,
    retimed: Fraction | None,
) -> tuple[int, list[str]]:
    """Mux the segments into a temporary file, check it, rename it to ``output``; returns the
    frame count and the notes of the join (streams re-encoded or left out)."""
    files = [work.segment(s.index) for s, m in zip(segments, markers, strict=True) if m["frames"]]
    expected = sum(int(m["frames"]) for m in markers)
    prefix = f".{output.stem}{_TMP_MARK}-{os.getpid()}-"
    with atomic_path(output, prefix=prefix, suffix=output.suffix) as tmp:
        report = vio.join_segments(
            files, info, tmp, format_name=vio.CONTAINERS[ext], retimed=retimed
        )
        if report.frames != expected:
            raise VideoWriteError(
                f"{output}: joined {report.frames} frames where the segments hold {expected}"
            )
        with_frames = [m for m in markers if m["frames"]]
        tb = Fraction(with_frames[0]["time_base"])
        shift = _check_output(
            tmp,
            expected,
            Fraction(with_frames[0]["first"]) * tb,
            Fraction(with_frames[-1]["last"]) * tb,
        )
        if shift:
            report.notes.append(
                f"every stream starts {1000 * float(shift):.1f} ms later: .{ext} cannot start "
                "before 0 and a source stream does (e.g. AAC priming from MP4); sync is unchanged"
            )
    return expected, report.notes


def _check_output(path: Path, frames: int, first: Fraction, last: Fraction) -> Fraction:
    """Reopen the joined file: its video stream must hold ``frames`` packets (not counting any
    an edit list discards) from ``first`` to ``last`` (seconds; within one tick of the
    container's time base). Returns the uniform shift a
    muxer applied (Matroska moves every stream later when one starts before 0, as AAC from MP4
    does with its priming samples); any other difference raises."""
    av = vio.require_av()
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        tb = Fraction(vs.time_base)
        pts = [
            int(p.pts)
            for p in c.demux(vs)
            if p.pts is not None and p.size and not getattr(p, "is_discard", False)
        ]
    if len(pts) != frames:
        raise VideoWriteError(f"{path}: holds {len(pts)} video frames, expected {frames}")
    lo, hi = Fraction(min(pts)) * tb, Fraction(max(pts)) * tb
    shift = lo - first
    if abs(shift) <= tb:
        shift = Fraction(0)
    if abs((hi - last) - shift) > tb or not 0 <= shift <= 1:
        raise VideoWriteError(
            f"{path}: video runs {float(lo):.3f}-{float(hi):.3f} s, expected "
            f"{float(first):.3f}-{float(last):.3f} s"
        )
    return shift


def describe_error(err: BaseException) -> str:
    """One line for a failed file (the error's message, or its type)."""
    if isinstance(err, ResrganError):
        text = str(err)
    elif isinstance(err, OSError) and err.strerror:
        text = f"{err.filename or ''}: {err.strerror}".lstrip(": ")
    else:
        text = f"{type(err).__name__}: {err}"
    return " ".join(text.split())
