"""NIQE of bicubic x4 and of the official models on a folder of real low-quality images.

    python bench/niqe_table.py                       # ../shared/data/real_lr, all methods
    python bench/niqe_table.py --models ""           # input + bicubic only (seconds)
    python bench/niqe_table.py --models realesr-animevideov3 --tile 256
    python bench/niqe_table.py --speed               # seconds per metric call at a few sizes

Prints a Markdown table: one row per image, one column per method (the LQ input itself, bicubic x4
with cv2 INTER_CUBIC, then each model through `resrgan upscale`), and the mean over the images
every column could score. NIQE is BasicSR's (lower is better), crop_border 0, images read as RGB
(grey replicated, alpha dropped). Timings are wall-clock and only indicative on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real_lr"
DEFAULT_MODELS = "RealESRGAN_x4plus,RealESRGAN_x4plus_anime_6B,realesr-animevideov3"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of LQ images")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated; '' = none")
    ap.add_argument("--niqe-params", type=Path, default=None, help="NIQE .npz (else the default)")
    ap.add_argument("--work", type=Path, default=None, help="keep model outputs here")
    ap.add_argument("--tile", default="auto", help="passed to resrgan upscale -t")
    ap.add_argument("--device", default=None, help="passed to resrgan upscale --device")
    ap.add_argument("--speed", action="store_true", help="time niqe/psnr/ssim and exit")
    args = ap.parse_args()
    if args.speed:
        return speed(args)

    import cv2

    from resrgan.cli.evaluate import list_images, read_rgb
    from resrgan.errors import ResrganError
    from resrgan.metrics.niqe import load_niqe_params, niqe

    params = load_niqe_params(args.niqe_params)
    files = list_images(args.data)
    if not files:
        print(f"no images in {args.data}", file=sys.stderr)
        return 2

    def score(path_or_px: object, name: str) -> float | None:
        try:
            px = read_rgb(path_or_px) if isinstance(path_or_px, Path) else path_or_px
            return niqe(px, params=params, name=name)
        except ResrganError as e:
            print(f"  {name}: {e}", file=sys.stderr)
            return None

    columns: dict[str, dict[str, float | None]] = {}
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    columns["input (LQ)"] = {f.name: score(f, f.name) for f in files}
    seconds["input (LQ)"] = time.perf_counter() - t

    t = time.perf_counter()
    col: dict[str, float | None] = {}
    for f in files:
        px = read_rgb(f)
        h, w = px.shape[:2]
        col[f.name] = score(cv2.resize(px, (4 * w, 4 * h), interpolation=cv2.INTER_CUBIC), f.name)
    columns["bicubic x4"] = col
    seconds["bicubic x4"] = time.perf_counter() - t

    work = args.work or Path(tempfile.mkdtemp(prefix="niqe_table_"))
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        out = work / model
        cmd = [sys.executable, "-m", "resrgan", "upscale", "-i", str(args.data), "-o", str(out)]
        cmd += ["-n", model, "--ext", "png", "-t", str(args.tile), "--json", "--overwrite"]
        if args.device:
            cmd += ["--device", args.device]
        print(f"$ {' '.join(cmd[1:])}", file=sys.stderr)
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds[model] = time.perf_counter() - t
        outputs: dict[str, Path] = {}
        for line in proc.stdout.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("output") and rec.get("status") in ("done", "ok", "skipped"):
                outputs[Path(rec["input"]).name] = Path(rec["output"])
        if not outputs:
            for f in files:  # fall back to the naming rule {stem}_out.png
                cand = out / f"{f.stem}_out.png"
                if cand.is_file():
                    outputs[f.name] = cand
        if not outputs:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"  {model}: unavailable (rc {proc.returncode}): {tail}", file=sys.stderr)
        columns[model] = {
            f.name: score(outputs[f.name], f.name) if f.name in outputs else None for f in files
        }

    names = list(columns)
    complete = [f.name for f in files if all(columns[c][f.name] is not None for c in names[1:])]
    print(
        f"NIQE (BasicSR, lower is better) on {args.data}; mean over the {len(complete)} images "
        "every upscaled column scored"
    )
    print()
    print("| image | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for f in files:
        cells = [columns[c][f.name] for c in names]
        print(f"| {f.name} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |")

    def mean(c: str) -> str:
        vals = [columns[c][n] for n in complete if columns[c][n] is not None]
        return f"**{math.fsum(vals) / len(vals):.4f}**" if vals else "-"

    print("| **mean** | " + " | ".join(mean(c) for c in names) + " |")
    print("| seconds (wall) | " + " | ".join(f"{seconds[c]:.1f}" for c in names) + " |")
    return 0


def speed(args: argparse.Namespace) -> int:
    """Median seconds of one niqe / psnr / ssim call on a random-texture RGB image per size."""
    import numpy as np

    from resrgan.metrics import load_niqe_params, niqe, psnr, ssim

    params = load_niqe_params(args.niqe_params)
    rng = np.random.default_rng(0)
    print("| size | niqe (s) | psnr (s) | ssim (s) |")
    print("|---|---:|---:|---:|")
    for side in (256, 512, 1024, 2048):
        a = rng.integers(0, 256, (side, side, 3)).astype(np.uint8)
        b = rng.integers(0, 256, (side, side, 3)).astype(np.uint8)
        cells = []
        calls = (partial(niqe, a, params=params), partial(psnr, a, b), partial(ssim, a, b))
        for fn in calls:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            cells.append(f"{sorted(times)[1]:.3f}")
        print(f"| {side}x{side} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
