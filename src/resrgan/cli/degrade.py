"""``resrgan degrade``: synthesise (gt, lq) training pairs exactly as the trainer sees them."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "synthesise training pairs (gt 256x256, lq 64x64 for x4) with the second-order degradation"

EPILOG = (
    "Writes OUT/gt/NNNN.png (the GT crop, unsharpened), OUT/lq/NNNN.png (its degraded LQ, made "
    "from the USM-sharpened GT when gt_usm is true) and OUT/params.jsonl (one line per pair with "
    "every sampled parameter). Pairs are written before the training-pair pool, which only "
    "reorders pairs between batches. The same input, seed and options give the same bytes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("-i", "--input", required=True, help="an HR image or a folder of them")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--num", type=int, default=12, help="number of pairs (default 12)")
    parser.add_argument(
        "--config",
        help="YAML with degradation options (a training config's 'degradation' section is used)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a degradation option, e.g. --set noise_range=[1,10] (repeatable)",
    )
    parser.add_argument("--scale", type=int, choices=[1, 2, 4], help="scale (default: config, 4)")
    parser.add_argument("--batch-size", type=int, default=12, help="pairs per batch (default 12)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--grid", action="store_true", help="also write OUT/grid.png (gt | lq)")
    parser.add_argument(
        "--write-usm", action="store_true", help="also write OUT/gt_usm/ (the sharpened GT crops)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing pairs in OUT")


def _config(args: argparse.Namespace) -> Any:
    from ..config import apply_overrides, from_dict, read_yaml
    from ..degradation.config import DegradationConfig

    data: dict[str, Any] = read_yaml(args.config) if args.config else {}
    if isinstance(data.get("degradation"), dict):
        data = data["degradation"]
    sets = [s[len("degradation.") :] if s.startswith("degradation.") else s for s in args.set]
    data = apply_overrides(data, sets)
    if args.scale is not None:
        data["scale"] = args.scale
    return from_dict(DegradationConfig, data, where="degradation")


def _grid(gts: list[Any], lqs: list[Any]) -> Any:
    """Contact sheet: rows of (gt | lq upscaled nearest to the gt size), 4 pairs per row."""
    import numpy as np

    per_row, pad = 4, 4
    h, w = gts[0].shape[:2]
    cell_w = 2 * w + pad
    rows = (len(gts) + per_row - 1) // per_row
    sheet = np.full((rows * (h + pad) + pad, per_row * (cell_w + pad) + pad, 3), 255, np.uint8)
    for n, (g, q) in enumerate(zip(gts, lqs, strict=True)):
        r, c = divmod(n, per_row)
        y, x = pad + r * (h + pad), pad + c * (cell_w + pad)
        fy, fx = h // q.shape[0], w // q.shape[1]
        up = q.repeat(fy, axis=0).repeat(fx, axis=1)
        sheet[y : y + h, x : x + w] = g
        sheet[y : y + h, x + w + pad : x + 2 * w + pad] = up
    return sheet


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    import numpy as np
    import torch
    from tqdm import tqdm

    from ..data.hr import HRFolder
    from ..degradation.params import sample_degradation
    from ..degradation.pipeline import make_training_batch
    from ..errors import ImageReadError, UsageError
    from ..io.images import write_image
    from ..paths import atomic_path
    from ..seeds import derive_seed

    if args.num < 1:
        raise UsageError(f"--num: {args.num} must be at least 1")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: {args.batch_size} must be at least 1")
    cfg = _config(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu")
    data = HRFolder(
        args.input, crop_pad_size=cfg.crop_pad_size, use_hflip=cfg.use_hflip, seed=args.seed
    )
    out = Path(args.output)
    width = max(4, len(str(args.num - 1)))
    names = [f"{n:0{width}d}.png" for n in range(args.num)]
    subdirs = ["gt", "lq"] + (["gt_usm"] if args.write_usm else [])
    if not args.overwrite:
        taken = [out / d / names[0] for d in subdirs if (out / d / names[0]).exists()]
        if (out / "params.jsonl").exists():
            taken.append(out / "params.jsonl")
        if taken:
            raise UsageError(f"{taken[0]}: already exists; use --overwrite or another -o folder")
    for d in subdirs:
        (out / d).mkdir(parents=True, exist_ok=True)

    params_gen = torch.Generator().manual_seed(derive_seed(args.seed, -1, 0, scheme="splitmix64"))
    order: list[int] = []
    epoch = -1
    cursor = 0

    def next_gt() -> tuple[Any, str]:
        nonlocal epoch, cursor, order
        failures = 0
        while True:
            if cursor >= len(order):
                epoch += 1
                g = torch.Generator().manual_seed(
                    derive_seed(args.seed, epoch, -1, scheme="splitmix64")
                )
                order = torch.randperm(len(data), generator=g).tolist()
                cursor = 0
                data.set_epoch(epoch)
            idx = order[cursor]
            cursor += 1
            try:
                item = data[idx]
                return item["gt"], str(item["gt_path"])
            except ImageReadError as e:
                print(f"resrgan degrade: skipping unreadable image: {e}", file=sys.stderr)
                failures += 1
                if failures >= len(data):
                    raise ImageReadError(f"{args.input}: none of the images can be read") from None

    grid_gt: list[Any] = []
    grid_lq: list[Any] = []
    done = 0
    batches = (args.num + args.batch_size - 1) // args.batch_size
    with (
        atomic_path(out / "params.jsonl") as tmp_jsonl,
        open(tmp_jsonl, "w", encoding="utf-8") as log,
        tqdm(total=args.num, unit="pair", file=sys.stderr, disable=None) as bar,
    ):
        for k in range(batches):
            items = [next_gt() for _ in range(args.batch_size)]
            gt = torch.stack([t for t, _ in items]).to(device)
            params = sample_degradation(
                args.batch_size, cfg, generator=params_gen, gt_size_in=tuple(gt.shape[-2:])
            )
            tb = make_training_batch(gt, params, cfg)
            as_u8 = {
                "gt": tb.gt,
                "lq": tb.lq,
                "gt_usm": tb.gt_usm,
            }
            arrays = {
                key: (v.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                for key, v in as_u8.items()
                if key in subdirs
            }
            for i in range(min(args.batch_size, args.num - done)):
                name = names[done]
                for d in subdirs:
                    write_image(out / d / name, np.ascontiguousarray(arrays[d][i]))
                record = {
                    "name": name,
                    "gt_path": items[i][1],
                    "seed": args.seed,
                    "batch": k,
                    "sample": i,
                    **params.sample_dict(i),
                }
                log.write(json.dumps(record) + "\n")
                if args.grid and len(grid_gt) < 64:
                    grid_gt.append(arrays["gt"][i])
                    grid_lq.append(arrays["lq"][i])
                done += 1
                bar.update(1)
    if args.grid:
        write_image(out / "grid.png", _grid(grid_gt, grid_lq))
    print(
        f"wrote {done} pairs to {out} (gt {tb.gt.shape[-1]}px, lq {tb.lq.shape[-1]}px, "
        f"x{cfg.scale}, seed {args.seed})"
    )
    return 0
