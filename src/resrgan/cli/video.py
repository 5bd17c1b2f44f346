"""``resrgan video``: the original ``inference_realesrgan_video.py`` flags, with every frame, the
timing, the audio and the colour kept.

Decoding and encoding run in-process with PyAV (``pip install 'resrgan[video]'``; no ffmpeg binary).
An input folder processes every video in it; existing outputs are skipped unless ``--overwrite``;
an interrupted run resumes from its last complete segment. ``--shard i/N`` (or torchrun's
``RANK``/``WORLD_SIZE``, Slurm's ``SLURM_PROCID``/``SLURM_NTASKS``) takes a deterministic share:
of the files for a folder, of the segments for one video.

Exit codes: 0 every file done, skipped or (with a shard) its share done; 1 a file failed; 2 a usage
error; 130 interrupted (rerun to resume).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, UsageError
from . import write_json_line
from .upscale import _check_device, _check_output_folder, _printable, _tile, check_model_args

HELP = "upscale a video or a folder of videos (frames, timing, audio and colour kept)"

EXTS = ("auto", "mp4", "mkv", "mov", "webm", "m4v", "avi", "ts", "flv")
CODECS = ("libx264", "libx265", "libsvtav1", "ffv1", "libopenh264", "mpeg4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("-i", "--input", required=True, help="input video or folder of videos")
    a(
        "-o",
        "--output",
        default="results",
        help="output folder (default: results), or the output file for one input (e.g. out.mkv)",
    )
    a(
        "-n",
        "--model_name",
        "--model-name",
        dest="model_name",
        default="realesr-animevideov3",
        help="model name (default: realesr-animevideov3); see `resrgan models`",
    )
    a(
        "--model_path",
        "--model-path",
        dest="model_path",
        default=None,
        help="weights file (.pth or .safetensors); overrides the model zoo",
    )
    a("-s", "--outscale", type=float, default=4.0, help="final upsampling scale (default: 4)")
    a(
        "-dn",
        "--denoise_strength",
        "--denoise-strength",
        dest="denoise_strength",
        type=float,
        default=0.5,
        help="realesr-general-x4v3 only: 0 keeps noise, 1 strongest denoising (0.5)",
    )
    a(
        "-t",
        "--tile",
        type=_tile,
        default="auto",
        help="tile size in input pixels, 0 = none, 'auto' = only when memory requires (auto)",
    )
    a("--tile_pad", "--tile-pad", dest="tile_pad", type=int, default=10, help="tile padding (10)")
    a("--pre_pad", "--pre-pad", dest="pre_pad", type=int, default=0, help="pre padding (0)")
    prec = parser.add_mutually_exclusive_group()
    prec.add_argument(
        "--fp32",
        action="store_true",
        help="full precision (default: half precision where the hardware runs it natively, as "
        "the original: fp16 on CUDA, bf16 on CPUs with AVX512-BF16/AMX; fp32 elsewhere)",
    )
    prec.add_argument("--bf16", action="store_true", help="bfloat16 (CPU or GPU)")
    prec.add_argument("--fp16", action="store_true", help="float16")
    a(
        "--fps",
        type=float,
        default=None,
        help="re-time every frame to this constant rate (default: keep every frame's timestamp)",
    )
    a("--suffix", default="out", help="output name suffix: {stem}_{suffix}.{ext} ('' for none)")
    a(
        "--ext",
        default="auto",
        type=str.lower,
        choices=EXTS,
        help="output container; auto keeps the input's when it can hold every stream (auto)",
    )
    a(
        "--codec",
        default=None,
        choices=CODECS,
        help="video encoder (default: the first of these this PyAV build has: libx264); "
        "ffv1 is lossless",
    )
    a("--crf", type=int, default=None, help="constant rate factor (libx264 18, libx265 20, ...)")
    a("--preset", default=None, help="encoder preset (libx264/libx265: medium; libsvtav1: 8)")
    a(
        "--pix-fmt",
        "--pix_fmt",
        dest="pix_fmt",
        default=None,
        help="output pixel format (default: the source's chroma at 8 or 10 bits, e.g. yuv420p, "
        "yuv420p10le)",
    )
    a("--batch", type=int, default=1, help="frames per network call (default: 1)")
    a(
        "--segment",
        type=float,
        default=10.0,
        help="seconds per resumable segment, cut at source keyframes (default: 10)",
    )
    a(
        "--shard",
        default=None,
        metavar="I/N",
        help="do share I of N (0-based): the files of a folder, the segments of one video "
        "(default: from RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS)",
    )
    a("-g", "--gpu-id", "--gpu_id", dest="gpu_id", type=int, default=None, help="GPU index")
    a("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: best)")
    a("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    a("--json", action="store_true", help="JSON lines: progress, one per file, then a summary")
    a("-v", "--verbose", action="store_true", help="log what happens to each file")
    # the original's flags that have no job here: accepted, with a note
    for flag in ("--ffmpeg_bin", "--alpha_upsampler", "--num_process_per_gpu"):
        a(flag, default=None, help=argparse.SUPPRESS)
    a("--extract_frame_first", action="store_true", help=argparse.SUPPRESS)
    a("--face_enhance", action="store_true", help=argparse.SUPPRESS)


def _validate(args: argparse.Namespace) -> None:
    """Every check that needs no model and no video: UsageError (exit 2) before any work."""
    if args.face_enhance:
        raise UsageError(
            "--face_enhance: GFPGAN face enhancement is not part of resrgan; run without it"
        )
    if not (math.isfinite(args.outscale) and args.outscale > 0):
        raise UsageError(f"-s/--outscale: {args.outscale} is not a positive number; use e.g. 2")
    for name, value in (("--tile_pad", args.tile_pad), ("--pre_pad", args.pre_pad)):
        if value < 0:
            raise UsageError(f"{name}: {value} is negative; use 0 or more")
    if not (math.isfinite(args.denoise_strength) and 0.0 <= args.denoise_strength <= 1.0):
        raise UsageError(f"-dn/--denoise_strength: {args.denoise_strength} is outside [0, 1]")
    if args.crf is not None and not 0 <= args.crf <= 63:
        raise UsageError(f"--crf: {args.crf} is outside 0-63 (libx264: 0-51, 18 is near lossless)")
    if args.gpu_id is not None and args.gpu_id < 0:
        raise UsageError(f"-g/--gpu-id: {args.gpu_id} is negative; use 0, 1, ...")
    check_model_args(args)


def _notes_for_ignored(args: argparse.Namespace) -> list[str]:
    notes = []
    if args.ffmpeg_bin is not None:
        notes.append("--ffmpeg_bin is not needed: FFmpeg's libraries come with PyAV")
    if args.extract_frame_first:
        notes.append("--extract_frame_first is not needed: frames stream through memory")
    if args.num_process_per_gpu is not None:
        notes.append("--num_process_per_gpu: use --shard i/N (or torchrun/Slurm) instead")
    if args.alpha_upsampler is not None:
        notes.append("--alpha_upsampler has no effect on video (no alpha channel)")
    return notes


def _precision(args: argparse.Namespace) -> str:
    return "fp32" if args.fp32 else "bf16" if args.bf16 else "fp16" if args.fp16 else "half"


def _make_upscaler(args: argparse.Namespace, gpu_id: int | None) -> Any:
    from ..infer.upscaler import Upscaler

    try:
        return Upscaler(
            args.model_name.split(".", 1)[0],
            model_path=args.model_path,
            device=args.device,
            gpu_id=gpu_id,
            tile=args.tile,
            tile_pad=args.tile_pad,
            pre_pad=args.pre_pad,
            precision=_precision(args),
            denoise_strength=args.denoise_strength,
        )
    except ModelNotFoundError as e:
        raise UsageError(str(e)) from None


def gpu_for_worker(device: str | None, gpu_id: int | None) -> int | None:
    """The GPU of a worker launched by torchrun or Slurm (``LOCAL_RANK`` / ``SLURM_LOCALID``
    modulo the GPUs it sees), unless ``--device`` or ``--gpu-id`` chose one."""
    if gpu_id is not None or device is not None:
        return gpu_id
    import torch

    from ..infer.shard import gpu_index

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpu_index(os.environ, count)


class _Printer:
    """Per-file lines (text or JSON) and a tqdm bar of frames with fps and ETA."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.bar: Any = None
        self._last = 0.0
        self._input: Path | None = None
        self._t0 = 0.0
        self._first: int | None = None

    def start(self, path: Path) -> None:
        self.close()
        self._input = path
        self._t0 = time.perf_counter()
        self._first = None

    def progress(self, done: int, total: int) -> None:
        if self._first is None:
            self._first = done
        if self.as_json:
            now = time.perf_counter()
            if now - self._last < 1.0 and done < total:
                return
            self._last = now
            rate = (done - self._first) / max(now - self._t0, 1e-9)
            write_json_line(
                {"input": str(self._input), "frames": done, "total": total, "fps": round(rate, 3)}
            )
            return
        if not sys.stderr.isatty():
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                unit="frame",
                desc=_printable(self._input.name if self._input else "", sys.stderr),
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def line(self, text: str, *, err: bool = False) -> None:
        self.close()
        stream = sys.stderr if err else sys.stdout
        print(_printable(text, stream), file=stream, flush=True)

    def record(self, data: dict[str, Any]) -> None:
        self.close()
        write_json_line(data)


def run(args: argparse.Namespace) -> int:
    from .upscale import _cli_logging, _sigterm_as_interrupt

    with _cli_logging(args.verbose, "video"), _sigterm_as_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..infer.shard import resolve_shard, share
    from ..infer.video import VideoSettings, describe_error, plan_video_jobs, upscale_video
    from ..io.video import require_av, resolve_encoder

    _validate(args)
    require_av()
    # an encoder, pixel format or CRF this PyAV build cannot take is a usage error: say so before
    # any model is loaded or file touched (each file is resolved again for its own bit depth)
    resolve_encoder(
        codec=args.codec, pix_fmt=args.pix_fmt, crf=args.crf, preset=args.preset, bit_depth=8
    )
    os.environ.setdefault("SVT_LOG", "2")  # SVT-AV1 prints its banner at info level (3)
    settings = VideoSettings(
        outscale=args.outscale,
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        pix_fmt=args.pix_fmt,
        ext=args.ext,
        fps=args.fps,
        batch=args.batch,
        segment_seconds=args.segment,
    )
    shard = resolve_shard(args.shard, os.environ)
    jobs, others = plan_video_jobs(args.input, args.output, suffix=args.suffix, ext=args.ext)
    printer = _Printer(as_json=args.json)
    for note in _notes_for_ignored(args):
        printer.line(f"resrgan video: note: {note}", err=True)
    single = Path(args.input).is_file()
    if not single:
        jobs = share(jobs, shard)
    out_folder = jobs[0].output.parent if single and jobs else Path(args.output)
    _check_output_folder(out_folder)
    summary: dict[str, Any] = {"summary": True, "done": 0, "skipped": 0, "partial": 0}
    failed: list[tuple[Path, str]] = []
    if not jobs:
        if not args.json:
            printer.line(f"no video files for this worker in {args.input}", err=True)
    else:
        _check_device(args.device, args.gpu_id)
    upscaler: Any = None
    t0 = time.perf_counter()
    interrupted = False
    for index, job in enumerate(jobs):
        printer.start(job.input)
        t_file = time.perf_counter()
        try:
            if upscaler is None:
                gpu = args.gpu_id
                if shard is not None and args.shard is None:
                    gpu = gpu_for_worker(args.device, args.gpu_id)
                upscaler = _make_upscaler(args, gpu)
            result = upscale_video(
                job,
                upscaler,
                settings,
                overwrite=args.overwrite,
                shard=shard if single else None,
                on_progress=printer.progress,
            )
        except KeyboardInterrupt:
            interrupted = True
            printer.close()
            break
        except UsageError:
            printer.close()
            raise
        except Exception as e:  # one bad file never stops a folder run
            reason = describe_error(e)
            failed.append((job.input, reason))
            if args.json:
                printer.record(_event(job.input, None, "failed", t_file, reason, index, len(jobs)))
            else:
                printer.line(f"failed   {job.input}: {reason}", err=True)
            continue
        summary[result.status] += 1
        if args.json:
            record = _event(job.input, result.output, result.status, t_file, None, index, len(jobs))
            record.update(frames=result.frames, notes=result.notes)
            printer.record(record)
            continue
        for note in result.notes:
            printer.line(f"resrgan video: note: {job.input.name}: {note}", err=True)
        if result.status == "done":
            printer.line(
                f"done     {job.input} -> {result.output} ({result.frames} frames, "
                f"{time.perf_counter() - t_file:.1f} s)"
            )
        elif result.status == "skipped":
            printer.line(f"skipped  {job.input}: {result.output} exists (--overwrite replaces it)")
        else:
            printer.line(
                f"partial  {job.input}: shard {shard}: {result.segments_done} of "
                f"{result.segments} segments done; the worker finishing last joins them"
            )
    printer.close()
    summary.update(
        failed=[{"input": str(p), "error": r} for p, r in failed],
        non_videos=len(others),
        interrupted=interrupted,
        seconds=round(time.perf_counter() - t0, 3),
    )
    if args.json:
        write_json_line(summary)
    else:
        line = (
            f"done {summary['done']}, skipped {summary['skipped']}, failed {len(failed)}"
            + (f", partial {summary['partial']}" if summary["partial"] else "")
            + (f", non-video files {len(others)}" if others else "")
            + f" ({summary['seconds']:.1f} s)"
        )
        if interrupted:
            line += "; interrupted: run the same command again to resume"
        printer.line(line)
        for path, reason in failed:
            printer.line(f"  failed: {path}: {reason}", err=True)
    if interrupted:
        return 130
    return 1 if failed else 0


def _event(
    path: Path,
    output: Path | None,
    status: str,
    t0: float,
    error: str | None,
    index: int,
    total: int,
) -> dict[str, Any]:
    """The per-file JSON record, shaped like ``resrgan upscale --json``'s."""
    return {
        "input": str(path),
        "output": None if output is None else str(output),
        "status": status,
        "seconds": round(time.perf_counter() - t0, 4),
        "error": error,
        "index": index,
        "total": total,
    }
