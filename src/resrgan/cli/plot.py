"""``resrgan plot RUN_DIR [-o curves.png]``: a training run's losses and validation curves as a PNG.

Reads ``RUN_DIR/metrics.jsonl`` (or the given .jsonl file) and draws, against the step: every
``l_*`` loss (raw and smoothed), validation PSNR and SSIM, and the guard's colour shift and spread
ratios. Needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paths import atomic_path

HELP = "plot a training run's metrics.jsonl (losses, validation PSNR/SSIM, guard values) to a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run folder (holding metrics.jsonl) or a metrics .jsonl file")
    parser.add_argument("-o", "--output", help="PNG to write (default: RUN_DIR/curves.png)")
    parser.add_argument(
        "--smooth", type=int, default=10, help="moving-average window for losses (records)"
    )
    parser.add_argument("--title", help="figure title (default: the run folder's name)")


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one key, finite numbers only, the last value per step kept (a resumed
    run logs some steps twice)."""
    by_step: dict[int, float] = {}
    for rec in records:
        v = rec.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            by_step[int(rec["step"])] = float(v)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _smooth(values: list[float], n: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= n:
            acc -= values[i - n]
        out.append(acc / min(i + 1, n))
    return out


def plot_metrics(
    path: Path, output: Path, *, smooth: int = 10, title: str | None = None
) -> list[str]:
    """Write the figure; returns the keys drawn."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "resrgan plot needs matplotlib: pip install 'resrgan[plot]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..training.logging import read_metrics

    records = [r for r in read_metrics(path) if isinstance(r.get("step"), int)]
    keys = sorted({k for r in records for k in r})
    losses = [k for k in keys if k.startswith("l_")]
    panels = [
        ("training losses", losses, True),
        ("validation PSNR (dB)", ["val_psnr"], False),
        ("validation SSIM", ["val_ssim"], False),
        (
            "guard: colour shift / spread ratios / false colour / input change",
            [
                "val_color_shift",
                "val_std_ratio",
                "val_chroma_ratio",
                "val_false_color",
                "val_input_change",
            ],
            False,
        ),
    ]
    panels = [(t, [k for k in ks if series(records, k)[0]], sm) for t, ks, sm in panels]
    panels = [p for p in panels if p[1]]
    if not panels:
        raise UsageError(f"{path}: no losses or validation values to plot")
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False, sharex=True
    )
    drawn = []
    for ax, (label, ks, smoothed) in zip(axes[:, 0], panels, strict=True):
        for k in ks:
            steps, vals = series(records, k)
            if smoothed and len(vals) > smooth > 1:
                (line,) = ax.plot(steps, vals, alpha=0.25, linewidth=0.8)
                ax.plot(steps, _smooth(vals, smooth), color=line.get_color(), label=k)
            else:
                ax.plot(steps, vals, marker="o" if len(vals) < 30 else None, markersize=3, label=k)
            drawn.append(k)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title or path.parent.name)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return drawn


def run(args: argparse.Namespace) -> int:
    src = Path(args.run)
    path = src / "metrics.jsonl" if src.is_dir() else src
    if not path.is_file():
        raise UsageError(f"{path}: no such metrics file (give a run folder or a .jsonl file)")
    out = Path(args.output) if args.output else path.parent / "curves.png"
    drawn = plot_metrics(path, out, smooth=args.smooth, title=args.title)
    print(f"{out}: {len(drawn)} curves ({', '.join(drawn)})")
    return 0
