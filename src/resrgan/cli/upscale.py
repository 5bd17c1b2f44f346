"""``resrgan upscale``: the original ``inference_realesrgan.py`` flags, on a batch that never loses
work.

Flags keep the original names, meanings and defaults (spec §4.1); kebab-case spellings are accepted
too. Differences, on purpose: the tile default is ``auto`` (tile only when the image does not fit in
memory; ``-t 0`` disables tiling as the original default did), precision defaults to fp32 on CPU and
fp16 on CUDA (the original forces fp16 and fails on CPU), ``--alpha_upsampler`` is honoured, and
existing outputs are skipped unless ``--overwrite``.

Exit codes: 0 every file done or skipped, 1 a file failed, 2 a usage error (nothing processed), 130
interrupted (Ctrl-C; rerun to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError, UsageError
from . import write_json_line

HELP = "upscale an image or a folder of images (the original inference_realesrgan.py flags)"

EXTS = ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp")
ALPHA_UPSAMPLERS = {"realesrgan": "model", "model": "model", "bicubic": "bicubic"}
# Upscaler option -> the flag that sets it, for resrgan.infer.options' messages
OPTION_FLAGS = {
    "outscale": "-s/--outscale",
    "tile": "-t/--tile",
    "tile_pad": "--tile_pad",
    "tile_overlap": "--tile_overlap",
    "pre_pad": "--pre_pad",
    "denoise_strength": "-dn/--denoise_strength",
    "alpha_upsampler": "--alpha_upsampler",
    "gpu_id": "-g/--gpu-id",
}


def _tile(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid tile {text!r}: use 'auto' or a whole number of pixels (0 = no tiling)"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid tile {value}: must be >= 0 (0 = no tiling)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("-i", "--input", required=True, help="input image or folder")
    a("-o", "--output", default="results", help="output folder (created; default: results)")
    a(
        "-n",
        "--model_name",
        "--model-name",
        dest="model_name",
        default="RealESRGAN_x4plus",
        help="model name (default: RealESRGAN_x4plus; anything after the first '.' is dropped); "
        "see `resrgan models`",
    )
    a(
        "--model_path",
        "--model-path",
        dest="model_path",
        default=None,
        help="weights file (.pth or .safetensors); overrides the model zoo, architecture detected",
    )
    a(
        "-s",
        "--outscale",
        type=float,
        default=4.0,
        help="final upsampling scale (default: 4); other than the net's scale: net, then a "
        "Lanczos resize",
    )
    a(
        "-t",
        "--tile",
        type=_tile,
        default="auto",
        help="tile size in input pixels, 0 = no tiling, 'auto' = tile only when memory requires "
        "(default: auto)",
    )
    a(
        "--tile_pad",
        "--tile-pad",
        dest="tile_pad",
        type=int,
        default=10,
        help="tile padding (default: 10)",
    )
    a(
        "--pre_pad",
        "--pre-pad",
        dest="pre_pad",
        type=int,
        default=0,
        help="pre padding (default: 0)",
    )
    a(
        "--tile_overlap",
        "--tile-overlap",
        dest="tile_overlap",
        type=int,
        default=None,
        help="blend width around tile seams (not in the original, which hard-crops tiles; "
        "default: the upscaler's)",
    )
    prec = parser.add_mutually_exclusive_group()
    prec.add_argument("--fp32", action="store_true", help="full precision (default on CPU)")
    prec.add_argument("--bf16", action="store_true", help="bfloat16 (CPU or GPU)")
    prec.add_argument("--fp16", action="store_true", help="float16 (default on CUDA)")
    a("--suffix", default="out", help="output name suffix: {stem}_{suffix}.{ext}; '' for none")
    a(
        "--ext",
        default="auto",
        type=str.lower,
        choices=EXTS,
        help="output extension; auto keeps the input's; images with alpha are always png",
    )
    a(
        "-dn",
        "--denoise_strength",
        "--denoise-strength",
        dest="denoise_strength",
        type=float,
        default=0.5,
        help="realesr-general-x4v3 only: 0 keeps noise, 1 strongest denoising (0.5)",
    )
    a("-g", "--gpu-id", "--gpu_id", dest="gpu_id", type=int, default=None, help="GPU index")
    a("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1, mps (default: best)")
    a(
        "--alpha_upsampler",
        "--alpha-upsampler",
        dest="alpha_upsampler",
        default="realesrgan",
        choices=sorted(ALPHA_UPSAMPLERS),
        help="alpha channel: realesrgan (a second model pass, default) or bicubic",
    )
    a(
        "--shard",
        default=None,
        metavar="I/N",
        help="process share I of N (0-based) of the sorted inputs (default: from RANK/WORLD_SIZE "
        "or SLURM_PROCID/SLURM_NTASKS when set)",
    )
    a("--recursive", action="store_true", help="also process sub-folders, mirrored under -o")
    a("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    a("--json", action="store_true", help="one JSON line per file, then a summary line")
    a(
        "--max-pixels",
        "--max_pixels",
        dest="max_pixels",
        type=int,
        default=None,
        help="refuse inputs with more pixels than this (decompression-bomb guard)",
    )
    a("--quality", type=int, default=95, help="JPEG/WebP quality 1-100 (default: 95)")
    a("-v", "--verbose", action="store_true", help="log what happens to each file")
    a(
        "--face_enhance",
        "--face-enhance",
        dest="face_enhance",
        action="store_true",
        help=argparse.SUPPRESS,
    )


def _validate(args: argparse.Namespace) -> None:
    """Every check that needs no model: raises UsageError (exit 2) before anything heavy happens."""
    if args.face_enhance:
        raise UsageError(
            "--face_enhance: GFPGAN face enhancement is not part of resrgan; run without it"
        )
    from ..infer.options import check_options  # the Upscaler's own checks, with our flag names

    check_options(
        outscale=args.outscale,
        tile=args.tile,
        tile_pad=args.tile_pad,
        tile_overlap=args.tile_overlap,
        pre_pad=args.pre_pad,
        denoise_strength=args.denoise_strength,
        alpha_upsampler=ALPHA_UPSAMPLERS[args.alpha_upsampler],
        gpu_id=args.gpu_id,
        labels=OPTION_FLAGS,
    )
    if args.max_pixels is not None and args.max_pixels <= 0:
        raise UsageError(f"--max-pixels: {args.max_pixels} must be a positive number of pixels")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality: {args.quality} is outside 1-100")
    check_model_args(args)


def check_model_args(args: argparse.Namespace) -> None:
    """--model_path must be a file; -n/--model_name a zoo upscaling network."""
    if args.model_path is not None:
        if not Path(args.model_path).is_file():
            raise UsageError(f"--model_path: {args.model_path}: no such file")
        return
    from ..weights.zoo import get_model_info

    try:
        info = get_model_info(args.model_name)
    except ModelNotFoundError as e:
        raise UsageError(f"-n/--model_name: {e}") from None
    if not info.is_generator:
        raise UsageError(
            f"-n/--model_name: {info.name} is a {info.arch} (a training discriminator), "
            "not an upscaling network; see `resrgan models`"
        )


def _check_output_folder(folder: Path) -> None:
    """Create the output folder and prove it is writable, before the model is loaded."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(
            f"-o/--output: cannot create {folder} ({e.strerror or e}); choose another folder"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".resrgan-write-test.", dir=folder)
    except OSError as e:
        raise UsageError(
            f"-o/--output: {folder} is not writable ({e.strerror or e}); choose another folder "
            "or fix its permissions"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _check_device(device: str | None, gpu_id: int | None) -> None:
    """Refuse a bad or missing --device/--gpu-id before any model is loaded."""
    if device is None and gpu_id is None:
        return
    from ..infer.precision import resolve_device

    resolve_device(device, gpu_id, cli=True)


def _precision(args: argparse.Namespace) -> str:
    if args.fp32:
        return "fp32"
    if args.bf16:
        return "bf16"
    if args.fp16:
        return "fp16"
    return "auto"


def _make_upscaler(args: argparse.Namespace) -> Any:
    from ..infer.upscaler import Upscaler

    model = args.model_name.split(".", 1)[0]
    extra: dict[str, Any] = {}
    if args.tile_overlap is not None:
        extra["tile_overlap"] = args.tile_overlap
    try:
        return Upscaler(
            model,
            model_path=args.model_path,
            device=args.device,
            gpu_id=args.gpu_id,
            tile=args.tile,
            tile_pad=args.tile_pad,
            pre_pad=args.pre_pad,
            precision=_precision(args),
            alpha_upsampler=ALPHA_UPSAMPLERS[args.alpha_upsampler],
            denoise_strength=args.denoise_strength,
            **extra,
        )
    except ModelNotFoundError as e:
        raise UsageError(str(e)) from None


def _printable(text: str, stream: Any) -> str:
    """``text`` made encodable for ``stream``: undecodable file-name bytes (surrogates) or
    characters the terminal cannot show become backslash escapes instead of crashing the batch."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return text.encode(encoding, "backslashreplace").decode(encoding, "replace")
    return text


class _Reporter:
    """Prints per-file lines (text or JSON) and drives the tqdm bar; the only place that prints."""

    def __init__(self, total: int, *, as_json: bool, bar: bool) -> None:
        self.as_json = as_json
        self.bar: Any = None
        if bar and not as_json and total > 1 and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)

    def _print(self, line: str, *, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        line = _printable(line, stream)
        if self.bar is not None:
            self.bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def __call__(self, event: Any) -> None:
        if self.as_json:
            write_json_line(event.as_dict())
        elif event.status == "done":
            self._print(f"done     {event.input} -> {event.output} ({event.seconds:.1f} s)")
        elif event.status == "skipped":
            self._print(f"skipped  {event.input}: {event.output} exists (--overwrite replaces it)")
        elif event.status == "failed":
            self._print(f"failed   {event.input}: {event.error}", err=True)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def summary(self, summary: Any) -> None:
        self.close()
        if self.as_json:
            write_json_line(summary.as_dict())
            return
        parts = [
            f"done {summary.done}",
            f"skipped {summary.skipped}",
            f"failed {len(summary.failed)}",
            f"non-image files {summary.non_images}",
        ]
        line = ", ".join(parts) + f" ({summary.seconds:.1f} s)"
        if summary.interrupted:
            line += "; interrupted: run the same command again to resume"
        print(_printable(line, sys.stdout), flush=True)
        for path, reason in summary.failed:
            print(
                _printable(f"  failed: {path}: {reason}", sys.stderr), file=sys.stderr, flush=True
            )


class _NotLoaded:
    """Stands in for the model when every output already exists (nothing will be upscaled)."""

    def output_shape(self, h: int, w: int, *, outscale: float | None = None) -> tuple[int, int]:
        raise RuntimeError("the model was not loaded because every output existed")

    def upscale(self, image: Any, *, outscale: float | None = None) -> Any:
        raise RuntimeError("the model was not loaded because every output existed")


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.levelname = record.levelname.lower()
        return super().format(record)


@contextlib.contextmanager
def _cli_logging(verbose: bool, command: str = "upscale") -> Iterator[None]:
    """Library warnings (e.g. 'animated GIF: first frame used') as 'resrgan upscale: warning: ...'
    lines on stderr (``command`` names the subcommand); --verbose adds the info messages. Removed
    again when the command ends."""
    log = logging.getLogger("resrgan")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter(f"resrgan {command}: %(levelname)s: %(message)s"))
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the batch like Ctrl-C: the current file is abandoned cleanly (exit 130)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run(args: argparse.Namespace) -> int:
    with _cli_logging(args.verbose), _sigterm_as_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..infer.batch import Summary, plan_jobs, run_jobs

    _validate(args)
    output_dir = Path(args.output)
    from ..infer.shard import resolve_shard

    shard = resolve_shard(args.shard, os.environ)
    jobs = plan_jobs(
        Path(args.input),
        output_dir,
        suffix=args.suffix,
        ext=args.ext,
        recursive=args.recursive,
        shard=shard,
    )
    if (
        not output_dir.exists()
        and output_dir.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")
        and not args.json
    ):
        print(
            f"resrgan upscale: warning: -o/--output names a folder (as in the original); "
            f"outputs go inside {output_dir}/",
            file=sys.stderr,
        )
    _check_output_folder(output_dir)
    reporter = _Reporter(len(jobs), as_json=args.json, bar=True)
    if not jobs:
        if not args.json:
            print(f"no image files in {args.input}", file=sys.stderr)
        reporter.summary(Summary(non_images=len(jobs.non_images)))
        return 0
    from ..infer.onnxrt import is_onnx_path

    if not is_onnx_path(args.model_path):  # onnxruntime devices (dml, coreml) are not torch's
        _check_device(args.device, args.gpu_id)
    if shard is not None and args.shard is None:  # launched by torchrun/Slurm: one GPU per worker
        from .video import gpu_for_worker

        args.gpu_id = gpu_for_worker(args.device, args.gpu_id)
    pending = args.overwrite or any(j.conflict is None and not j.output.exists() for j in jobs)
    upscaler: Any = _make_upscaler(args) if pending else _NotLoaded()
    try:
        summary = run_jobs(
            jobs,
            upscaler,
            outscale=args.outscale,
            overwrite=args.overwrite,
            on_event=reporter,
            max_pixels=args.max_pixels,
            quality=args.quality,
        )
    finally:
        reporter.close()
    reporter.summary(summary)
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0
