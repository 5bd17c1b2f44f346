"""Exported models against our torch path: onnxruntime (CPU, fp32) vs torch (CPU, fp32), export
time and file sizes.

    python bench/export.py                  # animevideov3 and x4plus at 128x128 and 512x512
    python bench/export.py --quick          # 128x128 only
    python bench/export.py --reps 3 --threads 1 --models realesr-animevideov3 --sizes 512

Both runtimes run through the same ``Upscaler`` (tiling, padding, blending, quantisation): the torch
side is ``Upscaler(name, device="cpu", precision="fp32")`` (RRDBNet runs its Winograd trunk there,
our fastest CPU path), the onnxruntime side is the same Upscaler around
``OnnxNetwork(exported.onnx, device="cpu")``. They run alternately in this process and each keeps
its best of ``--reps`` (so that both meet the machine in the same state); ``ratio`` is torch time
over onnxruntime time (> 1: onnxruntime is faster), in wall time and in the process's CPU time
(on a shared machine the CPU time is the steadier measure; with one thread it is the compute
time). x4plus at 512x512 runs in 256-pixel tiles (the
whole image needs ~6 GB in either runtime); everything else untiled. Needs the official models
offline (``resrgan.weights.zoo``) and the ``onnx`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared")) / "data" / "real_lr"
MODELS = ("realesr-animevideov3", "RealESRGAN_x4plus")
TILES = {("RealESRGAN_x4plus", 512): 256}


def psnr(a, b) -> float:  # type: ignore[no-untyped-def]
    import numpy as np

    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_image(size: int):  # type: ignore[no-untyped-def]
    """A size x size RGB crop of a real photo (tiled by reflection when the photo is smaller)."""
    import cv2
    import numpy as np

    img = cv2.imread(str(DATA / "OST_009.png"), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"{DATA / 'OST_009.png'}: not found (set RESRGAN_SHARED)")
    img = img[:, :, ::-1]
    reps = (-(-size // img.shape[0]), -(-size // img.shape[1]), 1)
    return np.ascontiguousarray(np.tile(img, reps)[:size, :size])


def alternate_cpu(fns: dict, reps: int) -> dict:
    """Each of ``fns`` ``reps`` times, in turn; per name the best wall time, the best CPU time of
    the process (less disturbed by other processes on a shared machine than the wall time) and the
    last result."""
    best: dict = {}
    for _ in range(reps):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            out = fn()
            w, c = time.perf_counter() - w, time.process_time() - c
            old = best.get(name, (w, c, out))
            best[name] = (min(w, old[0]), min(c, old[1]), out)
    return best


def exports(name: str, d: Path) -> dict[str, object]:
    """Export time and file sizes of one model (ONNX fp32 and fp16, ncnn fp16)."""
    from resrgan.export import export_ncnn, export_onnx

    row: dict[str, object] = {}
    t = time.perf_counter()
    onnx32 = export_onnx(name, d / f"{name}.onnx")
    row["export_s"] = time.perf_counter() - t
    onnx16 = export_onnx(name, d / f"{name}-fp16.onnx", fp16=True)
    param, binf = export_ncnn(name, d / "ncnn")
    row["onnx_mb"] = onnx32.stat().st_size / 1e6
    row["onnx16_mb"] = onnx16.stat().st_size / 1e6
    row["ncnn_mb"] = (param.stat().st_size + binf.stat().st_size) / 1e6
    row["path"] = onnx32
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128x128 only")
    ap.add_argument("--sizes", default="128,512", help="square input sizes (default 128,512)")
    ap.add_argument("--reps", type=int, default=2, help="runs per side, best kept (default 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from resrgan.infer.onnxrt import OnnxNetwork
    from resrgan.infer.upscaler import Upscaler

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = (128,) if args.quick else tuple(int(v) for v in args.sizes.split(","))
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
        f"{ort.__version__} ({args.threads or 'default'} threads), {os.cpu_count()} CPUs; "
        f"best of {args.reps}, alternately\n"
    )
    print(f"{'model':<22} {'export':>8} {'onnx fp32':>10} {'onnx fp16':>10} {'ncnn fp16':>10}")
    sys.stdout.flush()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows[name] = exports(name, Path(tmp))
            r = rows[name]
            print(
                f"{name:<22} {r['export_s']:>7.1f}s {r['onnx_mb']:>8.1f}MB "
                f"{r['onnx16_mb']:>8.1f}MB {r['ncnn_mb']:>8.1f}MB",
                flush=True,
            )
        print(
            f"\n{'model':<22} {'size':>7} {'tile':>5} {'torch s':>8} {'ort s':>8} "
            f"{'ratio':>6} {'torch cpu':>8} {'ort cpu':>8} {'ratio':>6} {'PSNR dB':>8}"
        )
        for name in args.models.split(","):
            onnx_net = OnnxNetwork(rows[name]["path"], device="cpu", threads=args.threads)
            for size in sizes:
                tile = TILES.get((name, size), 0)
                img = test_image(size)
                ups = {
                    "torch": Upscaler(name, device="cpu", precision="fp32", tile=tile),
                    "onnxruntime": Upscaler(
                        onnx_net, device="cpu", precision="fp32", tile=tile, channels_last=False
                    ),
                }
                best = alternate_cpu(
                    {k: (lambda u=u, im=img: u.upscale(im)) for k, u in ups.items()}, args.reps
                )
                (ts, cs, out_t), (to, co, out_o) = best["torch"], best["onnxruntime"]
                print(
                    f"{name:<22} {size:>3}x{size:<3} {tile:>5} {ts:>8.2f} {to:>8.2f} "
                    f"{ts / to:>6.2f} {cs:>8.2f} {co:>8.2f} {cs / co:>6.2f} "
                    f"{psnr(out_t, out_o):>8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
