"""Throughput of the second-order degradation: pairs/second with a per-stage breakdown.

    python bench/degrade.py [--batches 8] [--batch-size 12] [--device cpu|cuda|all] [--threads N]

Each batch: (B, 3, 400, 400) GT crops -> USM -> blur, resize, noise, JPEG (first and second order),
final stage, quantisation -> paired crop (gt 256, lq 64 for x4). Parameters are drawn with the
official x4plus distributions from a fixed seed, so every run times the same batches. The first
batch is a warm-up and is not counted. Prints a Markdown table. The per-op columns time the op
functions the pipeline calls (wrapped here, off the library's data path: usm_sharpen, filter2d,
resize, the noise ops, jpeg_compress). On CPU the chunks of a batch run on single-threaded worker
threads (resrgan.degradation.executor.SampleThreads), so the op times are summed over the workers:
with 2 threads they add up to about twice the wall time per batch.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Iterator

import torch

import resrgan.degradation.pipeline as pipeline
from resrgan.degradation import DegradationConfig, make_training_batch, sample_degradation

STAGES = ("usm", "blur", "resize", "noise", "jpeg")
# the functions of the pipeline module that do each op
OPS = {
    "usm_sharpen": "usm",
    "filter2d": "blur",
    "resize": "resize",
    "add_gaussian_noise": "noise",
    "add_poisson_noise": "noise",
    "jpeg_compress": "jpeg",
}


@contextlib.contextmanager
def op_timer(profile: dict[str, float], device: str) -> Iterator[None]:
    """Add each op's seconds (summed over threads; CUDA synchronised) to ``profile``."""
    lock = threading.Lock()
    originals = {name: getattr(pipeline, name) for name in OPS}

    def timed(name: str):  # type: ignore[no-untyped-def]
        fn = originals[name]

        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if device == "cuda":
                torch.cuda.synchronize()
            with lock:
                profile[OPS[name]] = profile.get(OPS[name], 0.0) + time.perf_counter() - t0
            return out

        return run

    for name in OPS:
        setattr(pipeline, name, timed(name))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(pipeline, name, fn)


def bench(device: str, batches: int, batch_size: int, scale: int) -> dict[str, float]:
    cfg = DegradationConfig(scale=scale)
    g = torch.Generator().manual_seed(0)
    data = torch.Generator().manual_seed(1)
    gt = torch.rand((batch_size, 3, 400, 400), generator=data).to(device)
    # smooth random images: closer to photos than white noise (fewer unique values for Poisson)
    gt = torch.nn.functional.avg_pool2d(gt, 5, stride=1, padding=2, count_include_pad=False)
    profile: dict[str, float] = {}
    total = 0.0
    for i in range(batches + 1):
        params = sample_degradation(batch_size, cfg, generator=g)
        prof: dict[str, float] = {}
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with op_timer(prof, device):
            make_training_batch(gt, params, cfg)
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i:  # skip warm-up
            total += dt
            for k, v in prof.items():
                profile[k] = profile.get(k, 0.0) + v
    out = {k: profile.get(k, 0.0) / batches for k in STAGES}
    out["total"] = total / batches
    out["pairs_per_s"] = batch_size * batches / total
    return out


def dense_usm_seconds(device: str, batch_size: int) -> float:
    """Upstream-style USM (dense 51x51 grouped conv) on the same batch, for comparison."""
    from resrgan.degradation.filter import filter2d
    from resrgan.degradation.sharpen import usm_kernel

    gt = torch.rand((batch_size, 3, 400, 400), generator=torch.Generator().manual_seed(1)).to(
        device
    )
    k = usm_kernel(device=device)
    t0 = time.perf_counter()
    blur = filter2d(gt, k, method="direct")
    residual = gt - blur
    mask = (residual.abs() * 255 > 10).float()
    soft = filter2d(mask, k, method="direct")
    sharp = torch.clamp(gt + 0.5 * residual, 0, 1)
    _ = soft * sharp + (1 - soft) * gt
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument(
        "--dense-usm",
        action="store_true",
        help="also time the upstream-style dense 51x51 USM for comparison",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}, x{args.scale}, {args.batches} timed batches"
    )
    head = "| device | pairs/s | s/batch | " + " | ".join(STAGES) + " |"
    print(head)
    print("|" + "---|" * (3 + len(STAGES)))
    for d in devices:
        r = bench(d, args.batches, args.batch_size, args.scale)
        cells = " | ".join(f"{r[k] * 1000:.0f} ms" for k in STAGES)
        name = torch.cuda.get_device_name() if d == "cuda" else "cpu"
        print(f"| {name} | {r['pairs_per_s']:.1f} | {r['total']:.3f} | {cells} |")
    if args.dense_usm:
        for d in devices:
            dense = dense_usm_seconds(d, args.batch_size)
            print(f"\n{d}: upstream-style dense 51x51 USM on the same batch: {dense * 1000:.0f} ms")


if __name__ == "__main__":
    main()
