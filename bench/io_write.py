"""Peak memory and time of ``resrgan.io.images.write_image`` for big arrays, per format.

Each case runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own. The table shows
the array size, the peak RSS above the process's baseline (interpreter + libraries + the array
itself), and that extra as a multiple of the array size (the goal: at most ~1 extra copy).

    python bench/io_write.py                 # 8000x8000x3 uint8, every format
    python bench/io_write.py --side 32000    # 32000x32000x3 (3 GB; needs ~8 GB RAM and disk)
    python bench/io_write.py --formats png tif --dtype uint16

Figures measured on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
from resrgan.io.images import write_image
side, channels, dtype, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
shape = (side, side, channels) if channels > 1 else (side, side)
# a smooth picture with some texture (compresses like a photo, not like noise or a flat field)
a = np.empty(shape, dtype=dtype)
yy = np.arange(side, dtype=np.uint32)[:, None]
step = max(1, 4096 // max(1, side // 1000))
for r0 in range(0, side, step):
    rows = yy[r0:r0 + step]
    xx = np.arange(side, dtype=np.uint32)[None, :]
    base = (rows * 3 + xx * 5 + ((rows * xx) >> 7)) & (0xFFFF if dtype == "uint16" else 0xFF)
    band = a[r0:r0 + step]
    if channels == 1:
        band[...] = base
    else:
        for c in range(channels):
            band[..., c] = base + c * 40
import gc; gc.collect()
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = time.perf_counter()
write_image(path, a)
secs = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"nbytes": a.nbytes, "base": base_rss, "peak": peak, "secs": secs,
                  "size": os.path.getsize(path)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=8000)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--dtype", default="uint8", choices=["uint8", "uint16"])
    ap.add_argument("--formats", nargs="+", default=["png", "tif", "jpg", "webp", "bmp"])
    ap.add_argument("--dir", default=None, help="folder for the output files (default: a temp dir)")
    args = ap.parse_args()

    print(f"write_image, {args.side}x{args.side}x{args.channels} {args.dtype}")
    print(
        f"{'format':<7}{'array MB':>10}{'extra RSS MB':>14}{'extra/array':>13}{'seconds':>9}"
        f"{'file MB':>9}"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        for fmt in args.formats:
            if fmt == "webp" and args.side > 16383:
                print(f"{fmt:<7}{'(refused: WebP is limited to 16383 px per side)':>55}")
                continue
            path = Path(d) / f"out.{fmt}"
            t = time.perf_counter()
            run = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(args.side),
                    str(args.channels),
                    args.dtype,
                    str(path),
                ],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                last = (run.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{fmt:<7} failed after {time.perf_counter() - t:.0f} s: {last}")
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            extra = r["peak"] - r["base"]
            print(
                f"{fmt:<7}{r['nbytes'] / 1e6:>10.0f}{extra / 1e6:>14.0f}"
                f"{extra / r['nbytes']:>13.2f}{r['secs']:>9.1f}{r['size'] / 1e6:>9.1f}"
            )
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
