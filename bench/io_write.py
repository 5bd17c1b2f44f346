"""Peak memory and time of ``resrgan.io.images.write_image`` for big arrays, per format.

Each case runs in a fresh subprocess; on Linux its peak RSS (VmHWM) is reset just before the write
(``/proc/self/clear_refs``), so the table shows the peak RSS of the write above the RSS before it
(interpreter, libraries and the array itself), and that extra as a multiple of the array size (the
goal: at most ~1 extra copy).

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
# photo-like content: a small random picture upscaled (cubic) plus a little grain, made band by band
# so that no second full-size array ever exists (it would hide the writer's own peak)
import cv2
rng = np.random.default_rng(0)
small = rng.integers(0, 256, (side // 16 + 70, side // 16 + 2, channels), dtype=np.uint8)
a = np.empty(shape, dtype=dtype)
for r0 in range(0, side, 1024):
    rows = min(1024, side - r0)
    part = small[r0 // 16 : r0 // 16 + 66]
    big = cv2.resize(part, (part.shape[1] * 16, part.shape[0] * 16), interpolation=cv2.INTER_CUBIC)
    band = big[:rows, :side].reshape(a[r0:r0 + rows].shape).astype(dtype)
    if dtype == "uint16":
        band *= 257
    band += rng.integers(0, 3, band.shape, dtype=band.dtype)
    a[r0:r0 + rows] = band
del big, band, small
import gc; gc.collect()


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


try:  # reset the peak (VmHWM) to the current RSS, so the peak below is the writer's own
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base_rss = status("VmRSS")
except OSError:
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = time.perf_counter()
write_image(path, a)
secs = time.perf_counter() - t
peak = status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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
