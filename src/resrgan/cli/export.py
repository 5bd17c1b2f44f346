"""``resrgan export MODEL -o OUT``: write a network as ONNX or as an ncnn .param/.bin pair.

    resrgan export RealESRGAN_x4plus -o x4.onnx                     # dynamic N/H/W, opset 17, fp32
    resrgan export runs/mine/model.safetensors -o mine.onnx --fp16 --static 256x256
    resrgan export realesr-animevideov3 --format ncnn -o models/    # realesr-animevideov3-x4.*

The format follows ``--format``, else OUT's suffix (``.onnx``: ONNX; ``.param`` or a folder: ncnn).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export a model to ONNX (onnxruntime, TensorRT, chaiNNer) or ncnn (upscayl, ncnn-vulkan)"


def _size(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    try:
        size = (int(h), int(w)) if sep else (int(h), int(h))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use HxW, e.g. 256x256 (height x width)"
        ) from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: both sides must be >= 1")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a(
        "model",
        help="a model name (see `resrgan models`), a .pth/.safetensors weights file, or a "
        "training run's model.safetensors",
    )
    a(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="ONNX: the .onnx file; ncnn: a folder (NAME.param/.bin inside) or NAME.param",
    )
    a(
        "--format",
        choices=("onnx", "ncnn"),
        default=None,
        help="default: from OUTPUT (.onnx: onnx; a folder or .param: ncnn)",
    )
    a("--opset", type=int, default=None, help="ONNX opset, 14-20 (default 17)")
    a(
        "--fp16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ONNX: a float16 graph with float16 input/output (default off); ncnn: fp16 weight "
        "storage as the official files (default on; --no-fp16 stores fp32)",
    )
    a(
        "--static",
        type=_size,
        default=None,
        metavar="HxW",
        help="ONNX: a fixed 1x3xHxW input instead of dynamic batch/height/width",
    )
    a(
        "--name",
        default=None,
        help="model name: the ncnn file stem (default: the official ncnn stem of a zoo model, else "
        "its name) and the ONNX metadata name",
    )
    a("-f", "--force", action="store_true", help="overwrite existing output files")


def _format(args: argparse.Namespace) -> str:
    from ..errors import UsageError

    if args.format is not None:
        return str(args.format)
    suffix = args.output.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".param" or args.output.is_dir() or not suffix:
        return "ncnn"
    raise UsageError(
        f"-o/--output {args.output}: cannot tell the format from '{suffix}'; name a .onnx file, "
        "a folder for ncnn, or pass --format"
    )


def _refuse_existing(paths: list[Path], force: bool) -> None:
    from ..errors import UsageError

    if force:
        return
    for p in paths:
        if p.exists():
            raise UsageError(f"-o/--output: {p} exists; pass --force to overwrite it")


def run(args: argparse.Namespace) -> int:
    from ..errors import ModelNotFoundError, UsageError
    from ..export.network import looks_like_a_file

    if looks_like_a_file(args.model) and not Path(args.model).is_file():
        raise UsageError(f"MODEL {args.model}: no such weights file")
    fmt = _format(args)
    if fmt == "ncnn":
        for flag, value in (("--opset", args.opset), ("--static", args.static)):
            if value is not None:
                raise UsageError(f"{flag} applies to ONNX export only (ncnn graphs take any size)")
    elif args.output.is_dir():
        raise UsageError(f"-o/--output {args.output}: is a folder; name the .onnx file to write")
    try:
        return _export_onnx(args) if fmt == "onnx" else _export_ncnn(args)
    except ModelNotFoundError as e:  # the zoo's hint names upscale's flag
        raise UsageError(str(e).replace("with --model_path", "as MODEL")) from None


def _export_onnx(args: argparse.Namespace) -> int:
    from ..export.network import resolve
    from ..export.onnx import DEFAULT_OPSET, export_onnx

    _refuse_existing([args.output], args.force)
    src = resolve(args.model, name=args.name)
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    path = export_onnx(src, args.output, opset=opset, fp16=bool(args.fp16), static=args.static)
    shape = "1x3x{}x{}".format(*args.static) if args.static else "Nx3xHxW (dynamic)"
    dtype = "float16" if args.fp16 else "float32"
    print(
        f"{path}: {src.name} ({src.arch} x{src.scale}), input 'input' {shape} {dtype} in [0, 1], "
        f"opset {opset}, {path.stat().st_size / 1e6:.1f} MB"
    )
    return 0


def _export_ncnn(args: argparse.Namespace) -> int:
    from ..export.ncnn import export_ncnn
    from ..export.network import resolve

    out: Path = args.output
    name = args.name
    if out.suffix.lower() == ".param":
        out, name = out.parent, name or out.stem
    src = resolve(args.model)
    stem = name or src.ncnn_name or src.name
    _refuse_existing([out / f"{stem}.param", out / f"{stem}.bin"], args.force)
    fp16 = True if args.fp16 is None else bool(args.fp16)
    param, binf = export_ncnn(src, out, name=stem, fp16=fp16)
    print(
        f"{param}, {binf.name}: {src.name} ({src.arch} x{src.scale}), blobs 'data' -> 'output', "
        f"{'fp16' if fp16 else 'fp32'} weights, {binf.stat().st_size / 1e6:.1f} MB"
    )
    if src.scale != 4 and src.arch == "RRDBNet":
        print(
            f"note: x{src.scale} RRDBNet starts with a Reorg (pixel-unshuffle) layer: inputs "
            f"must be multiples of {4 // src.scale} pixels"
        )
    return 0
