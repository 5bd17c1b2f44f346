"""Peak memory and time of ``resrgan upscale`` on large inputs; prints a Markdown table.

Each case runs ``python -m resrgan upscale`` in its own subprocess; the peak resident set size is
that process's ``ru_maxrss`` from ``os.wait4`` (so nothing of this script is counted), the time is
the wall clock of the whole command (start-up, model load, read, upscale, write).

Defaults: realesr-animevideov3 (x4), tile 256, RGB inputs of 64x64 (start-up baseline) and
2000x2000, written as PNG and TIFF. The 8000x8000 case (a 32000x32000 output, 3 GB as uint8) takes
10+ minutes on 2 cores and is opt-in::

    python bench/memory.py                       # 64 and 2000
    python bench/memory.py --sizes 8000 --ext tif png
    python bench/memory.py --model-path w.safetensors --sizes 256 512

Inputs are a deterministic smooth-plus-noise pattern written once per size into --workdir
(default: a temporary folder, removed unless --keep). Figures from a shared machine are indicative
only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def make_input(path: Path, size: int) -> None:
    """A size x size RGB PNG: gradients plus seeded noise (compresses like a photo, not flat)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(size)
    y = np.linspace(0, 1, size, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, size, dtype=np.float32)[None, :]
    img = np.empty((size, size, 3), np.uint8)
    for c, (fy, fx) in enumerate(((3.0, 5.0), (7.0, 2.0), (4.0, 4.0))):
        plane = 127 + 90 * np.sin(2 * np.pi * (fy * y + fx * x)) + rng.normal(0, 12, (size, size))
        img[..., c] = np.clip(plane, 0, 255).astype(np.uint8)
    if not cv2.imwrite(str(path), img):
        raise SystemExit(f"could not write {path}")


def run_case(cmd: list[str], log: Path) -> tuple[float, int, int]:
    """(seconds, peak RSS bytes, exit code) of one subprocess."""
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return seconds, rss, proc.returncode


def ratio(row: dict[str, object]) -> str:
    """Peak RSS over the output array's size; only meaningful when the output dominates."""
    array, value = row["array"], row["ratio"]
    assert isinstance(array, float) and isinstance(value, float)
    return f"{value:.2f}" if array >= 64 else "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 2000], help="input side lengths")
    p.add_argument("--ext", nargs="+", default=["png", "tif"], help="output formats")
    p.add_argument("--model", default="realesr-animevideov3", help="zoo model name")
    p.add_argument("--model-path", default=None, help="weights file instead of the zoo model")
    p.add_argument("--tile", default="256", help="tile size (or auto / 0)")
    p.add_argument("--extra", default="", help="more flags for resrgan upscale, e.g. '--bf16'")
    p.add_argument("--workdir", type=Path, default=None, help="where inputs/outputs go")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    args = p.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="resrgan-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    model_flags = ["--model_path", args.model_path] if args.model_path else ["-n", args.model]
    if not args.model_path:  # convert/download the weights now, not inside the first timed case
        from resrgan.weights.zoo import resolve_weights

        resolve_weights(args.model)

    rows: list[dict[str, object]] = []
    try:
        for size in args.sizes:
            src = work / f"in_{size}.png"
            if not src.exists():
                make_input(src, size)
            for ext in args.ext:
                out = work / f"out_{size}_{ext}"
                shutil.rmtree(out, ignore_errors=True)
                cmd = [
                    sys.executable, "-m", "resrgan", "upscale", "-i", str(src), "-o", str(out),
                    *model_flags, "-t", str(args.tile), "--ext", ext, "--json",
                    *args.extra.split(),
                ]  # fmt: skip
                log = work / f"log_{size}_{ext}.txt"
                seconds, rss, rc = run_case(cmd, log)
                lines = log.read_text(errors="replace").splitlines()
                event: dict[str, Any] = next(
                    (json.loads(ln) for ln in lines if ln.startswith('{"input"')), {}
                )
                status = event.get("status", f"rc={rc}")
                if status != "done":
                    status = f"{status}: {(event.get('error') or lines[-1:] or ['?'])!s:.80}"
                outputs = list(out.glob("*")) if out.is_dir() else []
                side = None
                if outputs:
                    from PIL import Image

                    Image.MAX_IMAGE_PIXELS = None
                    with Image.open(outputs[0]) as im:
                        side = f"{im.size[0]}x{im.size[1]}"
                out_array = (4 * size) ** 2 * 3
                rows.append(
                    dict(
                        input=f"{size}x{size}",
                        output=side or "-",
                        ext=ext,
                        seconds=seconds,
                        rss=rss / MiB,
                        array=out_array / MiB,
                        ratio=rss / out_array,
                        file=sum(f.stat().st_size for f in outputs) / 1e6,
                        status=status,
                    )
                )
                r = rows[-1]
                print(
                    f"# {r['input']} -> {ext}: {seconds:.1f} s, peak RSS {r['rss']:.0f} MiB "
                    f"({status})",
                    file=sys.stderr,
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    import platform

    import torch

    print(
        f"\nresrgan upscale, {args.model_path or args.model}, tile {args.tile} "
        f"{args.extra}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}\n"
    )
    print(
        "| input | output | ext | seconds | peak RSS (MiB) | output uint8 (MiB) | RSS / output "
        "| file (MB) | status |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['input']} | {r['output']} | {r['ext']} | {r['seconds']:.1f} | {r['rss']:.0f} | "
            f"{r['array']:.0f} | {ratio(r)} | {r['file']:.1f} | {r['status']} |"
        )
    return 0 if all(r["status"] == "done" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
