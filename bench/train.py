"""Training speed: seconds per iteration (batch 2 by default), with and without the degradation
pipeline.

    python bench/train.py [--data HR_DIR] [--steps 10] [--stage esrnet|esrgan] [--device cpu|cuda]
        [--archs compact-16,compact-32,rrdb-23] [--batch 8]

Rows: SRVGGNetCompact (64 feat, ``compact-N``: N convs) and RRDBNet (23 blocks), x4, gt 256 / lq 64.
"step only" trains on one pre-made batch; "with data" runs the whole per-iteration path of the
trainer: HRFolder in a DataLoader worker -> degradation on the device -> pool -> G step (-> D step)
-> EMA. On CUDA it also compares fp32 with bf16 autocast. Figures are indicative on a shared
machine.

The original (BasicSR + Real-ESRGAN, 2-core CPU): compact-16 0.17 s/step, 0.92 s with its data
pipeline; RRDBNet-23 5.5 s / 5.8 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

ORIGINAL = {
    ("compact-16", False): 0.17,
    ("compact-16", True): 0.92,
    ("rrdb-23", False): 5.5,
    ("rrdb-23", True): 5.8,
}
SHARED_HR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hr_train"


def _synthetic_hr(root: Path, n: int = 8) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = np.mgrid[0:512, 0:512].astype(np.float32)
        img = np.stack(
            [
                0.5 + 0.4 * np.sin(rng.uniform(0.01, 0.2) * x + c) * np.cos(0.05 * y)
                for c in range(3)
            ],
            -1,
        )
        Image.fromarray((img * 255).astype("uint8")).save(root / f"{i}.png")
    return root


def bench(arch: str, with_data: bool, args: argparse.Namespace, amp: str = "none") -> float:
    from resrgan.training.config import NetGConfig, TrainConfig, validate
    from resrgan.training.distributed import EpochIndexed, ShardedBatchSampler, make_generator
    from resrgan.training.ema import ema_update, make_ema
    from resrgan.training.loop import build_discriminator, build_generator
    from resrgan.training.steps import (
        Batch,
        discriminator_step,
        esrnet_step,
        generator_step,
        synthesize_batch,
    )

    net = (
        NetGConfig(type="SRVGGNetCompact", num_feat=64, num_conv=int(arch.split("-")[1]))
        if arch.startswith("compact-")
        else NetGConfig(type="RRDBNet", num_block=23)
    )
    cfg = TrainConfig(
        model=args.stage, network_g=net, init_from=None, amp=amp, channels_last=args.channels_last
    )
    bs = args.batch
    queue = 180 // bs * bs  # the official pool of 180, rounded down to a multiple of the batch
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, batch_size=bs),
        degradation=dataclasses.replace(cfg.degradation, queue_size=queue),
    )
    cfg = validate(cfg)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    g = build_generator(cfg).to(dev, memory_format=mf)
    ema = make_ema(g)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.9, 0.99))
    scaler = torch.amp.GradScaler(dev.type, enabled=False)
    d = opt_d = percep = None
    if args.stage == "esrgan":
        from resrgan.losses import PerceptualLoss
        from resrgan.weights.vgg19 import build_vgg19_features

        d = build_discriminator(cfg).to(dev)
        opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.99))
        percep = PerceptualLoss(build_vgg19_features(args.vgg_weights)).to(dev)
    pool = None
    if with_data:
        from resrgan.data.hr import HRFolder
        from resrgan.degradation.pool import PairPool

        ds = HRFolder(args.data, crop_pad_size=400)
        loader = torch.utils.data.DataLoader(
            EpochIndexed(ds),
            batch_size=bs,
            num_workers=args.workers,
            drop_last=True,
            sampler=ShardedBatchSampler(len(ds), batch_size=bs, seed=0),  # type: ignore[arg-type]
            persistent_workers=args.workers > 0,
            pin_memory=dev.type == "cuda",
        )
        batches = iter(loader)
        pool = PairPool(cfg.degradation.queue_size)
    else:
        gen = torch.Generator().manual_seed(0)
        gt = torch.rand(bs, 3, 256, 256, generator=gen).to(dev)
        fixed = Batch(lq=torch.nn.functional.avg_pool2d(gt, 4), gt=gt, gt_usm=gt)

    def step(i: int) -> None:
        if with_data:
            data = next(batches)
            b = synthesize_batch(
                data["gt"].to(dev, non_blocking=True),
                cfg,
                pool,
                generator=make_generator(0, "degrade", 0, i),
                pool_generator=make_generator(0, "pool", 0, i),
            )
        else:
            b = fixed
        if args.channels_last:
            b = Batch(
                *(t.contiguous(memory_format=torch.channels_last) for t in (b.lq, b.gt, b.gt_usm))
            )
        if args.stage == "esrnet":
            esrnet_step(g, b, opt_g, scaler, cfg.losses, amp=amp)
        else:
            assert d is not None and opt_d is not None
            out, _ = generator_step(g, d, percep, b, opt_g, scaler, cfg.losses, amp=amp)
            discriminator_step(d, out, b, opt_d, scaler, cfg.losses, amp=amp)
        ema_update(ema, g, 0.999)

    steps = args.steps if arch.startswith("compact-") else max(2, args.steps // 4)
    for i in range(2):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        step(2 + i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="HR folder (default: ../shared/data/hr_train, else synthetic)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (RRDBNet: a quarter)")
    p.add_argument("--stage", choices=("esrnet", "esrgan"), default="esrnet")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    p.add_argument("--vgg-weights", default="random", help="esrgan stage: 'random' or a path")
    p.add_argument("--archs", default="compact-16,rrdb-23", help="compact-N (N convs), rrdb-23")
    p.add_argument("--batch", type=int, default=2, help="batch size (the compact configs: 8)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    args = p.parse_args()
    tmp = None
    if args.data is None:
        if SHARED_HR.is_dir():
            args.data = str(SHARED_HR)
        else:
            tmp = tempfile.TemporaryDirectory()
            args.data = str(_synthetic_hr(Path(tmp.name)))
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, stage {args.stage}, "
        f"channels_last {args.channels_last}, "
        f"batch {args.batch}, x4 gt 256 / lq 64, data {args.data}"
    )
    amps = ["none", "bf16"] if args.device == "cuda" else ["none"]
    print("| model | data | precision | s/step | it/s | original s/step | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        for with_data in (False, True):
            for amp in amps:
                s = bench(arch, with_data, args, amp)
                orig = ORIGINAL.get((arch, with_data))
                orig = orig if args.device == "cpu" and args.batch == 2 else None
                ratio = f"{orig / s:.2f}x" if orig and args.stage == "esrnet" else "-"
                print(
                    f"| {arch} | {'with data' if with_data else 'step only'} | "
                    f"{'fp32' if amp == 'none' else amp} | {s:.3f} | {1 / s:.2f} | "
                    f"{orig if orig else '-'} | {ratio} |",
                    flush=True,
                )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
