"""Score trained x4 models: NIQE on real photos, PSNR/SSIM on a fixed synthetic set, s/step.

    python bench/trained.py bicubic runs/compact_x4_stage1 runs/compact_x4_stage2 \
        realesr-animevideov3 RealESRGAN_x4plus --grid docs/img/compare.png

Each MODEL is ``bicubic``, a training run folder (its ``model.safetensors``; s/step read from its
``metrics.jsonl``), a weights file, or a zoo name. Prints a Markdown table:

- NIQE (BasicSR's, lower is better, crop_border 0, images as RGB: grey replicated, alpha dropped)
  of each model's x4 output on ``../shared/data/real_lr``, mean over the images;
- PSNR / SSIM (8-bit RGB, border 4 cropped, as training validation) on a fixed synthetic set:
  ``--pairs`` (48) 256x256 gt crops of ``../shared/data/hr_val`` degraded with the official
  second-order pipeline, seeds fixed (crop ``i // 15`` of image ``i % 15``, degradation seed ``i``);
- false colour: the mean chroma (mean |channel - pixel mean|, [0, 1] units) of the outputs for the
  grey photos of real_lr (wolf_gray, 00017_gray): colour a model invents where there is none
  (the training guard's ``val_false_color`` on real photos);
- the mean seconds per training step of a run folder.

``--speed N`` only times the models on an NxN crop of a real photo (fp32, untiled, interleaved,
best of ``--reps``) and prints each one's speed relative to the last model given, e.g.
``--speed 256 resrgan-compact-x4 RealESRGAN_x4plus``.

``--grid PNG`` also writes a picture of real_lr crops side by side (input, nearest x4, then each
model), for looking, not scoring; with ``--grid-only`` it writes only that (no scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
# (image, top, left, size) of the LR crops in the grid: faces of texture, edges, noise, JPEG
GRID_CROPS = (
    ("0014.jpg", 40, 60, 64),
    ("OST_009.png", 300, 180, 64),
    ("ADE_val_00000114.jpg", 100, 60, 64),
    ("00003.png", 90, 300, 64),
    ("wolf_gray.jpg", 70, 90, 64),
)


def synthetic_set(hr_dir: Path, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` (lq uint8 64x64x3, gt uint8 256x256x3) RGB pairs, the same on every run."""
    from resrgan.data.hr import HRFolder
    from resrgan.degradation.config import DegradationConfig
    from resrgan.degradation.params import sample_degradation
    from resrgan.degradation.pipeline import make_training_batch
    from resrgan.training.distributed import make_generator

    cfg = DegradationConfig()
    folders: dict[int, HRFolder] = {}
    lqs, gts = [], []
    n_img = len(HRFolder(hr_dir, crop_pad_size=400))
    for i in range(n):
        k = i // n_img  # the k-th pass over the images takes other crops
        if k not in folders:
            folders[k] = HRFolder(hr_dir, crop_pad_size=400, use_hflip=False, seed=k)
        gt400 = folders[k][i % n_img]["gt"][None]
        params = sample_degradation(
            1, cfg, generator=make_generator(0, "bench-trained", i), gt_size_in=(400, 400)
        )
        tb = make_training_batch(gt400, params, cfg)
        for t, out in ((tb.lq, lqs), (tb.gt, gts)):
            out.append((t[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    return lqs, gts


class Method:
    """One column: bicubic or a network run through the Upscaler (untiled for small inputs)."""

    def __init__(self, spec: str, name: str | None = None) -> None:
        self.spec = spec
        self.s_per_step: float | None = None
        p = Path(spec)
        self.name = name or (p.name if p.exists() else spec)
        self.up = None
        if spec == "bicubic":
            return
        from resrgan import Upscaler

        if p.is_dir():
            self.s_per_step = _s_per_step(p / "metrics.jsonl")
            p = p / "model.safetensors"
        self.up = Upscaler(str(p) if p.exists() else spec, tile="auto")

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.up is None:
            h, w = img.shape[:2]
            return cv2.resize(img, (4 * w, 4 * h), interpolation=cv2.INTER_CUBIC)
        return self.up.upscale(img)


def labels(specs: list[str]) -> list[str]:
    """Column names: a path's last part, or as many last parts as set it apart from the others
    (``runs/a/ema/step_00900.safetensors`` beside ``runs/b/ema/step_00900.safetensors``
    becomes ``a/ema/step_00900.safetensors``)."""

    def tail(spec: str, depth: int) -> str:
        return "/".join(Path(spec).parts[-depth:]) if Path(spec).exists() else spec

    names = []
    for i, spec in enumerate(specs):
        others = [o for j, o in enumerate(specs) if j != i]
        depth = 1
        while depth < len(Path(spec).parts) and tail(spec, depth) in {
            tail(o, depth) for o in others
        }:
            depth += 1
        names.append(tail(spec, depth))
    return names


def _s_per_step(path: Path) -> float | None:
    vals = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "s_per_iter" in rec:
                vals.append(rec["s_per_iter"])
    return vals[-1] if vals else None


def _chroma(img: np.ndarray) -> float:
    """Mean |channel - pixel mean| of an 8-bit RGB picture, in [0, 1] units."""
    x = img.astype(np.float64) / 255.0
    return float(np.abs(x - x.mean(axis=2, keepdims=True)).mean())


def real_lr_images(folder: Path) -> list[tuple[str, np.ndarray]]:
    from resrgan.cli.evaluate import list_images, read_rgb

    return [(f.name, read_rgb(f)) for f in list_images(folder)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("models", nargs="+", help="bicubic, run folders, weights files or zoo names")
    ap.add_argument("--real", type=Path, default=DATA / "real_lr", help="real LQ photos")
    ap.add_argument("--hr-val", type=Path, default=DATA / "hr_val", help="HR validation images")
    ap.add_argument("--pairs", type=int, default=48, help="synthetic pairs (default 48)")
    ap.add_argument(
        "--niqe-params", type=Path, default=DATA / "niqe" / "niqe_pris_params.npz", help="NIQE .npz"
    )
    ap.add_argument("--grid", type=Path, help="write a PNG of real_lr crops side by side")
    ap.add_argument("--grid-only", action="store_true", help="only write --grid (no scores): quick")
    ap.add_argument("--json", action="store_true", help="also print one JSON line per model")
    ap.add_argument(
        "--speed",
        type=int,
        metavar="N",
        help="only time the models on an NxN photo crop (untiled fp32, alternately, best of "
        "--reps), with each one's speed relative to the last model",
    )
    ap.add_argument("--reps", type=int, default=3, help="timing repetitions for --speed")
    args = ap.parse_args()

    from resrgan.metrics.niqe import load_niqe_params, niqe
    from resrgan.metrics.psnr_ssim import psnr, ssim

    torch.set_grad_enabled(False)
    if args.speed:
        return speed(args)
    reals = real_lr_images(args.real)
    if args.grid_only:
        if not args.grid:
            ap.error("--grid-only needs --grid PNG")
        wanted = {c[0] for c in GRID_CROPS}
        reals = [(n, img) for n, img in reals if n in wanted]
        models = [Method(s, n) for s, n in zip(args.models, labels(args.models), strict=True)]
        write_grid(args.grid, reals, {m.name: {n: m(img) for n, img in reals} for m in models})
        print(f"grid: {args.grid}")
        return 0
    params = load_niqe_params(args.niqe_params)
    lqs, gts = synthetic_set(args.hr_val, args.pairs)
    rows, outputs = [], {}
    for spec, label in zip(args.models, labels(args.models), strict=True):
        m = Method(spec, label)
        t = time.perf_counter()
        outs = {name: m(img) for name, img in reals}
        secs = time.perf_counter() - t
        outputs[m.name] = outs
        niqes = [niqe(o, params=params, name=n) for n, o in outs.items()]
        greys = [n for n, img in reals if img.ndim == 3 and np.ptp(img, axis=2).max() == 0]
        false = [_chroma(outs[n]) for n in greys]
        pairs = [(m(lq), gt) for lq, gt in zip(lqs, gts, strict=True)]
        row = {
            "model": m.name,
            "niqe_real_lr": float(np.mean(niqes)),
            "psnr": float(np.mean([psnr(a, b, crop_border=4) for a, b in pairs])),
            "ssim": float(np.mean([ssim(a, b, crop_border=4) for a, b in pairs])),
            "false_color": float(np.mean(false)) if false else float("nan"),
            "s_per_step": m.s_per_step,
            "real_lr_seconds": secs,
        }
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        print(f"  {m.name}: done ({secs:.1f} s for real_lr)", file=sys.stderr, flush=True)

    print(f"\n{len(reals)} real_lr images; {len(lqs)} synthetic second-order pairs from hr_val\n")
    print("| model | NIQE real_lr (lower better) | PSNR (dB) | SSIM | false colour | s/step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        sps = f"{r['s_per_step']:.2f}" if r["s_per_step"] else "-"
        scores = f"{r['niqe_real_lr']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f}"
        scores += f" | {r['false_color']:.4f}"
        print(f"| {r['model']} | {scores} | {sps} |")
    if args.grid:
        write_grid(args.grid, reals, outputs)
        print(f"\ngrid: {args.grid}")
    return 0


def speed(args: argparse.Namespace) -> int:
    """Seconds per NxN upscale for each model, interleaved (model 1, model 2, ..., model 1, ...)
    so that a change in the machine's speed hits all of them alike."""
    from resrgan import Upscaler

    img = real_lr_images(args.real)[0][1]
    n = args.speed
    crop = np.ascontiguousarray(
        np.resize(img, (n, n, 3)) if min(img.shape[:2]) < n else img[:n, :n]
    )
    ups = []
    for spec in args.models:
        p = Path(spec)
        path = p / "model.safetensors" if p.is_dir() else p
        ups.append(
            (p.name if p.exists() else spec, Upscaler(str(path) if path.exists() else spec, tile=0))
        )
    for _, up in ups:  # warm-up
        up.upscale(crop)
    best = {name: float("inf") for name, _ in ups}
    for _ in range(args.reps):
        for name, up in ups:
            t = time.perf_counter()
            up.upscale(crop)
            best[name] = min(best[name], time.perf_counter() - t)
    ref = ups[-1][0]
    print(
        f"\n{n}x{n} input, fp32, untiled, {torch.get_num_threads()} threads, best of {args.reps}\n"
    )
    print(f"| model | seconds | speed relative to {ref} |")
    print("|---|---|---|")
    for name, _ in ups:
        print(f"| {name} | {best[name]:.3f} | {best[ref] / best[name]:.1f}x |")
    return 0


def write_grid(
    path: Path, reals: list[tuple[str, np.ndarray]], outputs: dict[str, dict[str, np.ndarray]]
) -> None:
    """Rows: GRID_CROPS; columns: the input (nearest x4), then each model's output."""
    src = dict(reals)
    tiles_rows = []
    labels = ["input (nearest)", *outputs]
    for name, top, left, size in GRID_CROPS:
        if name not in src:
            continue
        lq = src[name][top : top + size, left : left + size]
        cells = [lq.repeat(4, 0).repeat(4, 1)]
        for outs in outputs.values():
            cells.append(outs[name][4 * top : 4 * (top + size), 4 * left : 4 * (left + size)])
        gap = np.full((4 * size, 6, 3), 255, np.uint8)
        tiles_rows.append(np.concatenate([c for x in cells for c in (x, gap)][:-1], axis=1))
    width = tiles_rows[0].shape[1]
    cell = 4 * GRID_CROPS[0][3] + 6
    head = np.full((28, width, 3), 255, np.uint8)
    for j, label in enumerate(labels):
        cv2.putText(head, label[:30], (j * cell + 4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1)
    hgap = np.full((6, width, 3), 255, np.uint8)
    grid = np.concatenate([head] + [r for row in tiles_rows for r in (row, hgap)][:-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    raise SystemExit(main())
