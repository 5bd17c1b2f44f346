"""``resrgan niqe-fit``: fit a NIQE pristine model (mean, covariance) from a folder of clean images.

Each image is scored on its BT.601 luma (rounded, like NIQE itself), cut into 96x96 blocks; the
blocks whose sharpness (mean local sigma) exceeds ``--sharpness-threshold`` times the image's
sharpest block are kept (the NIQE paper's selection; 0 keeps every block). The 36 features of the
kept blocks give the model: NaN-mean and covariance of the complete rows. The file has BasicSR's
layout (``mu_pris_param``, ``cov_pris_param``, ``gaussian_window``), so ``resrgan evaluate
--niqe-params`` and BasicSR's own code can use it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "fit a NIQE pristine model (.npz) from a folder of clean, sharp images"

MIN_BLOCKS_WARNING = 200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i", "--input", required=True, type=Path, help="folder (or file) of clean images"
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="the .npz to write")
    parser.add_argument(
        "--sharpness-threshold",
        "--sharpness_threshold",
        type=float,
        default=0.75,
        help="keep blocks sharper than this fraction of each image's sharpest block "
        "(default 0.75, as the NIQE paper; 0 = all blocks)",
    )
    parser.add_argument(
        "--crop-border", "--crop_border", type=int, default=0, help="pixels cut from every side"
    )
    parser.add_argument("--recursive", action="store_true", help="look into sub-folders too")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from ..errors import ResrganError, UsageError
    from ..metrics.niqe import fit_niqe_params, image_block_features, write_niqe_params
    from .evaluate import list_images, read_rgb

    if not args.input.exists():
        raise UsageError(f"--input {args.input}: no such file or folder")
    if args.output.exists() and not args.overwrite:
        raise UsageError(f"--output {args.output} exists; pass --overwrite to replace it")
    if args.output.suffix.lower() != ".npz":
        raise UsageError(f"--output {args.output}: use a .npz file name")
    if not 0 <= args.sharpness_threshold < 1:
        raise UsageError(
            f"--sharpness-threshold {args.sharpness_threshold}: must be in [0, 1) "
            "(0 keeps every block)"
        )
    if args.crop_border < 0:
        raise UsageError(f"--crop-border {args.crop_border}: must be >= 0")
    files = list_images(args.input, recursive=args.recursive)
    if not files:
        raise UsageError(f"--input {args.input}: no image files found")

    feats = []
    used = 0
    failed = 0
    for f in files:
        try:
            rows = image_block_features(
                read_rgb(f),
                crop_border=args.crop_border,
                sharpness_threshold=args.sharpness_threshold,
            )
        except ResrganError as e:
            print(f"skipped {f}: {e}", file=sys.stderr)
            failed += 1
            continue
        if rows.shape[0] == 0:
            print(f"skipped {f}: smaller than one 96x96 block", file=sys.stderr)
            continue
        feats.append(rows)
        used += 1
    if not feats:
        raise ResrganError(
            f"--input {args.input}: no image had a whole 96x96 block; nothing to fit"
        )
    params = fit_niqe_params(feats)
    nblocks = sum(r.shape[0] for r in feats)
    write_niqe_params(args.output, params)
    print(f"wrote {args.output}: {nblocks} blocks from {used} of {len(files)} image(s)")
    if nblocks < MIN_BLOCKS_WARNING:
        print(
            f"warning: only {nblocks} blocks for a 36x36 covariance; the model is poorly "
            "determined (use more or larger images, or --sharpness-threshold 0)",
            file=sys.stderr,
        )
    return 1 if failed else 0
