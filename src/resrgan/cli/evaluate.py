"""``resrgan evaluate``: NIQE (no reference) and PSNR/SSIM (against ground truth) for a folder.

Pairs are matched by file stem: ``foo.png`` in the input folder pairs with ``foo.*`` in ``--gt``;
the upscaler's output names ``{stem}_{suffix}`` (``--suffix``, default ``out``) are understood, so
``foo_out.png`` pairs with ``foo.png``. Every image is read in RGB order and evaluated as 3-channel
RGB in [0, 255]: a grey image is replicated to RGB (so it scores like the same picture stored as
RGB, and like ``cv2.imread``, which BasicSR's reference scores used), alpha is dropped, 16-bit is
scaled by 255/65535.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import write_json_line

HELP = "score images: NIQE (no reference) and PSNR/SSIM against a ground-truth folder"

METRICS = ("niqe", "psnr", "ssim")
_FALLBACK_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".jfif"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i",
        "--input",
        required=True,
        type=Path,
        help="image file or folder to score (e.g. SR output)",
    )
    parser.add_argument(
        "--gt",
        type=Path,
        default=None,
        help="ground-truth file or folder for psnr/ssim; pairs are matched by file stem",
    )
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated subset of niqe,psnr,ssim (default: niqe; psnr,ssim,niqe with --gt)",
    )
    parser.add_argument(
        "--crop-border",
        "--crop_border",
        type=int,
        default=0,
        help="pixels cut from every side before scoring (BasicSR default 0; SR papers often use "
        "the scale)",
    )
    parser.add_argument(
        "--test-y-channel",
        "--test_y_channel",
        action="store_true",
        help="psnr/ssim on the BT.601 luma instead of RGB (NIQE always uses the luma)",
    )
    parser.add_argument(
        "--suffix",
        default="out",
        help="output-name suffix to strip when matching against --gt (default: out, so "
        "foo_out.png pairs with foo.png)",
    )
    parser.add_argument(
        "--niqe-params",
        "--niqe_params",
        type=Path,
        default=None,
        help="NIQE pristine-model .npz (default: $RESRGAN_NIQE_PARAMS, the cache, or a download "
        "of BasicSR's niqe_pris_params.npz)",
    )
    parser.add_argument("--recursive", action="store_true", help="look into sub-folders too")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per image, then a summary line ({'summary': true, ...})",
    )


# ----------------------------------------------------------------------------------------------
# pairing (pure Python: no numpy needed)


@dataclass
class Pair:
    """One image to score, its ground truth (if any) and why there is none."""

    path: Path
    gt: Path | None = None
    note: str | None = None


@dataclass
class Plan:
    pairs: list[Pair] = field(default_factory=list)
    unmatched_gt: list[Path] = field(default_factory=list)


def _is_image(p: Path) -> bool:
    try:
        from ..io.images import is_image_path
    except ImportError:  # pragma: no cover - io.images is part of the package
        return p.suffix.lower() in _FALLBACK_SUFFIXES
    return is_image_path(p)


def list_images(root: Path, *, recursive: bool = False) -> list[Path]:
    """The image files under ``root`` (or ``root`` itself when it is a file), sorted."""
    if root.is_file():
        return [root]
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.is_file() and _is_image(p))


def _key(p: Path, root: Path) -> str:
    """Match key: the stem, with the sub-folder when recursive (``a/b/foo``)."""
    rel = p.relative_to(root) if root.is_dir() else Path(p.name)
    return str(rel.with_suffix("").as_posix())


def candidate_stems(stem: str, suffix: str) -> list[str]:
    """GT stems an output stem may match, best first: ``foo_out`` -> ``[foo_out, foo]``."""
    out = [stem]
    tail = f"_{suffix}" if suffix else ""
    if tail and stem.endswith(tail) and len(stem) > len(tail):
        out.append(stem[: -len(tail)])
    return out


def plan_pairs(
    inputs: Path, gt: Path | None, *, suffix: str = "out", recursive: bool = False
) -> Plan:
    """Pair every image under ``inputs`` with its ground truth under ``gt`` by stem."""
    plan = Plan()
    sr_files = list_images(inputs, recursive=recursive)
    if gt is None:
        plan.pairs = [Pair(p) for p in sr_files]
        return plan
    gt_files = list_images(gt, recursive=recursive)
    by_stem: dict[str, list[Path]] = {}
    for g in gt_files:
        by_stem.setdefault(_key(g, gt), []).append(g)
    if inputs.is_file() and gt.is_file():
        plan.pairs = [Pair(inputs, gt)]
        return plan
    used: set[Path] = set()
    for p in sr_files:
        stems = candidate_stems(_key(p, inputs), suffix)
        if gt.is_file():
            match: list[Path] = [gt] if gt.stem in [Path(s).name for s in stems] else []
        else:
            match = next((by_stem[s] for s in stems if s in by_stem), [])
        if len(match) == 1:
            plan.pairs.append(Pair(p, match[0]))
            used.add(match[0])
        elif not match:
            looked = " or ".join(f"{s}.*" for s in stems)
            plan.pairs.append(Pair(p, None, f"no ground truth: looked for {looked} in {gt}"))
        else:
            names = ", ".join(m.name for m in match)
            plan.pairs.append(Pair(p, None, f"ambiguous ground truth: {names}; keep one"))
    plan.unmatched_gt = [g for g in gt_files if g not in used]
    return plan


# ----------------------------------------------------------------------------------------------
# run


def _parse_metrics(raw: str | None, have_gt: bool) -> list[str]:
    from ..errors import UsageError

    if raw is None:
        return ["psnr", "ssim", "niqe"] if have_gt else ["niqe"]
    names = [m.strip().lower() for m in raw.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise UsageError(
            f"--metrics {raw!r}: unknown metric(s) {', '.join(bad) or '(none given)'}; "
            f"choose from {','.join(METRICS)}"
        )
    needs_gt = [m for m in names if m in ("psnr", "ssim")]
    if needs_gt and not have_gt:
        raise UsageError(
            f"--metrics {','.join(needs_gt)} needs ground truth: pass --gt GT_DIR "
            "(or use --metrics niqe for a no-reference score)"
        )
    return list(dict.fromkeys(names))


def read_rgb(path: Path) -> Any:
    """Pixels as HxWx3 in RGB order (uint8/uint16): grey replicated, alpha dropped."""
    from ..io.images import read_rgb as _read

    return _read(path)


def _fmt(v: float | None, digits: int) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def _json_value(v: float | None) -> float | str | None:
    """JSON has no infinity: an infinite PSNR (identical images) is written as the string "inf"."""
    if v is not None and math.isinf(v):
        return "inf"
    return v


DIGITS = {"niqe": 4, "psnr": 4, "ssim": 4}


def run(args: argparse.Namespace) -> int:

    from ..errors import ResrganError, UsageError
    from ..metrics.niqe import load_niqe_params, niqe
    from ..metrics.psnr_ssim import psnr, ssim

    if not args.input.exists():
        raise UsageError(f"--input {args.input}: no such file or folder")
    if args.gt is not None and not args.gt.exists():
        raise UsageError(f"--gt {args.gt}: no such file or folder")
    if args.gt is not None and args.input.is_dir() and args.gt.is_file():
        raise UsageError(
            f"--gt {args.gt} is a file but --input {args.input} is a folder; "
            "pass a ground-truth folder"
        )
    if args.crop_border < 0:
        raise UsageError(f"--crop-border {args.crop_border}: must be >= 0")
    metrics = _parse_metrics(args.metrics, args.gt is not None)
    params = load_niqe_params(args.niqe_params) if "niqe" in metrics else None

    plan = plan_pairs(args.input, args.gt, suffix=args.suffix, recursive=args.recursive)
    if not plan.pairs:
        raise UsageError(f"--input {args.input}: no image files found")
    needs_gt = any(m in metrics for m in ("psnr", "ssim"))

    show_bar = not args.json and sys.stderr.isatty() and len(plan.pairs) > 1
    pairs_iter: Any = plan.pairs
    if show_bar:
        from tqdm import tqdm

        pairs_iter = tqdm(plan.pairs, desc="evaluate", unit="img", file=sys.stderr, leave=False)

    rows: list[dict[str, Any]] = []
    for pair in pairs_iter:
        row: dict[str, Any] = {"path": str(pair.path), "gt": str(pair.gt) if pair.gt else None}
        row.update({m: None for m in metrics})
        errors: list[str] = []
        try:
            img = read_rgb(pair.path)
            if "niqe" in metrics:
                try:
                    row["niqe"] = niqe(
                        img, crop_border=args.crop_border, params=params, name=str(pair.path)
                    )
                except ResrganError as e:
                    errors.append(str(e))
            if needs_gt:
                if pair.gt is None:
                    errors.append(pair.note or "no ground truth")
                else:
                    gt = read_rgb(pair.gt)
                    kw = {"crop_border": args.crop_border, "test_y_channel": args.test_y_channel}
                    if "psnr" in metrics:
                        row["psnr"] = psnr(img, gt, **kw)
                    if "ssim" in metrics:
                        row["ssim"] = ssim(img, gt, **kw)
        except ResrganError as e:
            errors.append(str(e))
        row["error"] = "; ".join(errors) if errors else None
        rows.append(row)
        if args.json:
            out = {k: _json_value(v) if k in METRICS else v for k, v in row.items()}
            write_json_line(out)

    means: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for m in metrics:
        vals = [r[m] for r in rows if r[m] is not None]
        counts[m] = len(vals)
        means[m] = (math.fsum(vals) / len(vals)) if vals else None
    failed = sum(1 for r in rows if r["error"])

    if args.json:
        summary: dict[str, Any] = {"summary": True, "count": len(rows)}
        summary.update({m: _json_value(means[m]) for m in metrics})
        summary.update({f"{m}_count": counts[m] for m in metrics})
        summary["failed"] = failed
        summary["unmatched_gt"] = [str(p) for p in plan.unmatched_gt]
        summary["crop_border"] = args.crop_border
        summary["test_y_channel"] = bool(args.test_y_channel)
        write_json_line(summary)
    else:
        _print_table(rows, metrics, means, counts, args)
        if plan.unmatched_gt:
            print(f"\nground-truth files with no matching input ({len(plan.unmatched_gt)}):")
            for g in plan.unmatched_gt:
                print(f"  {g}")
        if failed:
            print(f"\n{failed} of {len(rows)} image(s) could not be fully scored (see 'note')")
    return 1 if failed else 0


def _print_table(
    rows: list[dict[str, Any]],
    metrics: list[str],
    means: dict[str, float | None],
    counts: dict[str, int],
    args: argparse.Namespace,
) -> None:
    root = args.input if args.input.is_dir() else args.input.parent
    header = ["image", *(m.upper() for m in metrics), "note"]
    body: list[list[str]] = []
    for r in rows:
        p = Path(r["path"])
        name = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
        body.append([name, *(_fmt(r[m], DIGITS[m]) for m in metrics), r["error"] or ""])
    mean_note = ", ".join(f"{m} over {counts[m]}" for m in metrics if counts[m] != len(rows))
    body.append(["mean", *(_fmt(means[m], DIGITS[m]) for m in metrics), mean_note])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header[:-1])]
    conv = f"crop_border={args.crop_border}"
    if any(m in metrics for m in ("psnr", "ssim")):
        conv += ", y_channel" if args.test_y_channel else ", rgb"
    print(f"# {conv}")

    def line(cells: list[str]) -> str:
        left = [cells[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells[1:-1], widths[1:], strict=True)
        ]
        return ("  ".join(left) + ("  " + cells[-1] if cells[-1] else "")).rstrip()

    print(line(header))
    for b in body[:-1]:
        print(line(b))
    print(line(["-" * widths[0], *("-" * w for w in widths[1:]), ""]))
    print(line(body[-1]))
