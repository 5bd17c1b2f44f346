"""``resrgan convert-ncnn PARAM [BIN] -o OUT``: official ncnn model -> .safetensors or .pth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "convert an official Real-ESRGAN ncnn model (.param + .bin) to .safetensors or .pth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("param", type=Path, help="the ncnn .param file (text format)")
    parser.add_argument(
        "bin", type=Path, nargs="?", default=None,
        help="the ncnn .bin file (default: PARAM with the .bin suffix)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--output", type=Path, required=True,
        help="output file: .safetensors (recommended) or .pth ({'params_ema': ...}, loads in the "
        "original Real-ESRGAN code)",
    )  # fmt: skip
    parser.add_argument("-f", "--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..weights.load import save_weights
    from ..weights.ncnn import ncnn_to_state_dict

    out: Path = args.output
    if out.suffix not in (".safetensors", ".pth", ".pt"):
        raise UsageError(
            f"--output {out}: unsupported suffix '{out.suffix}'; use .safetensors or .pth"
        )
    if out.exists() and not args.force:
        raise UsageError(f"--output {out}: file exists; pass --force to overwrite it")
    bin_path = args.bin if args.bin is not None else args.param.with_suffix(".bin")
    sd, info = ncnn_to_state_dict(args.param, bin_path)
    metadata = {
        "arch": info["arch"],
        "kwargs": json.dumps(info["kwargs"], sort_keys=True),
        "source": f"ncnn: {args.param.name} + {bin_path.name} ({'/'.join(info['storage'])})",
    }
    if "outscale" in info:
        metadata["outscale"] = str(info["outscale"])
    save_weights(out, sd, metadata=metadata)
    n = sum(int(v.numel()) for v in sd.values())
    print(
        f"{out}: {info['arch']} {json.dumps(info['kwargs'])}, {len(sd)} tensors, {n:,} parameters"
    )
    if "outscale" in info:
        print(
            f"note: the ncnn graph ends with a {info['resize_mode']} resize "
            f"x{info['resize_scale']:g}; the network itself is x{info['scale']}: use --outscale "
            f"{info['outscale']:g} to match it"
        )
    return 0
