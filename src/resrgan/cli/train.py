"""``resrgan train CONFIG --data HR_DIR --out RUN_DIR``: train Real-ESRNet / Real-ESRGAN.

Multi-GPU / multi-node: ``torchrun --nproc_per_node K -m resrgan train CONFIG ...`` (only rank 0
prints and writes).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

HELP = "train Real-ESRNet (stage 1) or Real-ESRGAN (stage 2) from a YAML config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training YAML (e.g. configs/realesrgan_x4plus.yaml)")
    parser.add_argument("--data", help="folder of HR training images (paired mode: the GT folder)")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, metrics, model)")
    parser.add_argument("--iters", type=int, help="total iterations (overrides total_iters)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest valid checkpoint in --out"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="training device (default: cuda when available)",
    )
    parser.add_argument("--val-data", help="HR folder for validation (sets val.hr_dir)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr_g=1e-4 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")


def run(args: argparse.Namespace) -> int:
    import logging

    import torch
    from tqdm import tqdm

    from ..training.config import load_train_config
    from ..training.loop import train

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    overrides = list(args.overrides)
    if args.val_data:
        overrides.append(f"val.hr_dir={args.val_data}")
    cfg = load_train_config(args.config, overrides)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    main_rank = int(os.environ.get("RANK", "0")) == 0
    bar: Any = None
    last: dict[str, Any] = {}

    def progress(rec: dict[str, Any]) -> None:
        nonlocal bar
        if args.quiet or not main_rank:
            return
        if bar is None:
            bar = tqdm(
                total=int(rec["total"]),
                initial=int(rec["step"]) - 1,
                unit="it",
                desc=cfg.name,
                dynamic_ncols=True,
            )
        if int(rec["step"]) > bar.n:
            bar.update(int(rec["step"]) - bar.n)
        shown = {k: v for k, v in rec.items() if k.startswith(("l_", "val_"))}
        if shown:
            last.update(shown)
            bar.set_postfix({k: f"{v:.4g}" for k, v in last.items()}, refresh=False)

    try:
        result = train(
            cfg,
            run_dir=args.out,
            data_root=args.data,
            device=device,
            resume=args.resume,
            iters=args.iters,
            callback=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    if main_rank:
        msg = f"step {result.step}: model {result.model_path}"
        if result.last_val:
            msg += "  " + "  ".join(f"{k} {v:.4f}" for k, v in result.last_val.items())
        print(msg)
    return 0
