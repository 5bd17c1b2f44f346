"""The ORIGINAL second-order degradation against ours, on this machine, batch by batch.

    python bench/degrade_original.py [--batches 6] [--batch-size 12] [--threads N]

The original is upstream ``RealESRGANModel.feed_data`` from ``basicsr==1.4.2`` /
``realesrgan==0.3.0`` (fetched and imported as in bench/compare_original.py, torchvision stubbed;
its ``rgb_to_grayscale`` is given torchvision's formula), run on the CPU: the same calls in the same
order (USMSharp, filter2D, F.interpolate, random_add_gaussian/poisson_noise_pt, DiffJPEG, sinc,
rounding, paired_random_crop), its own random choices from ``random``/``numpy``, and the kernels
that our sampler drew for the batch (upstream draws them in its data loader, outside the timed part;
with this torch its filter2D needs its input made contiguous). Ours: ``make_training_batch`` with
parameters from ``sample_degradation``. Both start from the same (B, 3, 400, 400) smooth random GT
batch and end with the gt/lq crops (256/64); the two are timed alternately, one batch each, so a
busy machine slows both alike. Prints pairs/s of each and the median per-batch speed-up.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_original import fetch, import_original  # noqa: E402

from resrgan.degrade import DegradationConfig, make_training_batch, sample_degradation  # noqa: E402


def rgb_to_grayscale(img: torch.Tensor, num_output_channels: int = 1) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` (0.2989, 0.587, 0.114), for the stubbed module."""
    r, g, b = img.unbind(dim=-3)
    gray = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(dim=-3)
    return gray.expand(img.shape) if num_output_channels == 3 else gray


def original_modules(src: Path) -> types.SimpleNamespace:
    bs_root, rg_root = fetch(src)
    import_original(bs_root, rg_root)  # stubs torchvision, registers the bare packages
    for name in ("basicsr.utils", "basicsr.data"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(bs_root / Path(*name.split(".")))]  # type: ignore[attr-defined]
        sys.modules[name] = pkg
    tv = importlib.import_module("torchvision.transforms.functional_tensor")
    tv.rgb_to_grayscale = rgb_to_grayscale  # type: ignore[attr-defined]
    deg = importlib.import_module("basicsr.data.degradations")
    proc = importlib.import_module("basicsr.utils.img_process_util")
    jpeg = importlib.import_module("basicsr.utils.diffjpeg")
    tr = importlib.import_module("basicsr.data.transforms")
    return types.SimpleNamespace(
        # with this torch the DiffJPEG output (and what is resized from it) is not contiguous, and
        # filter2D .view()s its input: hand it a contiguous copy
        filter2D=lambda img, k: proc.filter2D(img.contiguous(), k),
        usm=proc.USMSharp(),
        jpeger=jpeg.DiffJPEG(differentiable=False),
        gaussian=deg.random_add_gaussian_noise_pt,
        poisson=deg.random_add_poisson_noise_pt,
        crop=tr.paired_random_crop,
    )


def original_feed_data(o: types.SimpleNamespace, gt: torch.Tensor, k1, k2, sinc, opt: dict):  # type: ignore[no-untyped-def]
    """Upstream ``feed_data`` (training branch) up to the paired crop, on the CPU."""
    gt_usm = o.usm(gt)
    ori_h, ori_w = gt.size()[2:4]

    def resize_noise(out, size_of, suffix):  # type: ignore[no-untyped-def]
        updown = random.choices(["up", "down", "keep"], opt["resize_prob" + suffix])[0]
        rng = opt["resize_range" + suffix]
        scale = (
            np.random.uniform(1, rng[1])
            if updown == "up"
            else (np.random.uniform(rng[0], 1) if updown == "down" else 1)
        )
        mode = random.choice(["area", "bilinear", "bicubic"])
        out = F.interpolate(out, **size_of(scale), mode=mode)
        gray = opt["gray_noise_prob" + suffix]
        if np.random.uniform() < opt["gaussian_noise_prob" + suffix]:
            rng = opt["noise_range" + suffix]
            return o.gaussian(out, sigma_range=rng, clip=True, rounds=False, gray_prob=gray)
        return o.poisson(
            out,
            scale_range=opt["poisson_scale_range" + suffix],
            gray_prob=gray,
            clip=True,
            rounds=False,
        )

    def jpeg(out, rng):  # type: ignore[no-untyped-def]
        q = out.new_zeros(out.size(0)).uniform_(*rng)
        return o.jpeger(torch.clamp(out, 0, 1), quality=q)

    s = opt["scale"]
    out = o.filter2D(gt_usm, k1)
    out = resize_noise(out, lambda sc: {"scale_factor": sc}, "")
    out = jpeg(out, opt["jpeg_range"])
    if np.random.uniform() < opt["second_blur_prob"]:
        out = o.filter2D(out, k2)
    out = resize_noise(out, lambda sc: {"size": (int(ori_h / s * sc), int(ori_w / s * sc))}, "2")
    final = (ori_h // s, ori_w // s)
    if np.random.uniform() < 0.5:
        out = F.interpolate(out, size=final, mode=random.choice(["area", "bilinear", "bicubic"]))
        out = jpeg(o.filter2D(out, sinc), opt["jpeg_range2"])
    else:
        out = jpeg(out, opt["jpeg_range2"])
        out = F.interpolate(out, size=final, mode=random.choice(["area", "bilinear", "bicubic"]))
        out = o.filter2D(out, sinc)
    lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
    (gt_c, usm_c), lq = o.crop([gt, gt_usm], lq, opt["gt_size"], s)
    return lq, gt_c, usm_c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--src", type=Path, default=Path("/tmp/orig_src"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    o = original_modules(args.src)
    cfg = DegradationConfig(scale=4)
    opt = {
        "scale": 4, "gt_size": cfg.gt_size,
        "resize_prob": cfg.resize_prob, "resize_range": cfg.resize_range,
        "gaussian_noise_prob": cfg.gaussian_noise_prob, "noise_range": cfg.noise_range,
        "poisson_scale_range": cfg.poisson_scale_range, "gray_noise_prob": cfg.gray_noise_prob,
        "jpeg_range": cfg.jpeg_range, "second_blur_prob": cfg.second_blur_prob,
        "resize_prob2": cfg.resize_prob2, "resize_range2": cfg.resize_range2,
        "gaussian_noise_prob2": cfg.gaussian_noise_prob2, "noise_range2": cfg.noise_range2,
        "poisson_scale_range2": cfg.poisson_scale_range2, "gray_noise_prob2": cfg.gray_noise_prob2,
        "jpeg_range2": cfg.jpeg_range2,
    }  # fmt: skip
    random.seed(0)
    np.random.seed(0)
    g = torch.Generator().manual_seed(0)
    b = args.batch_size
    gt = torch.rand((b, 3, 400, 400), generator=torch.Generator().manual_seed(1))
    gt = F.avg_pool2d(gt, 5, stride=1, padding=2, count_include_pad=False)
    t_orig, t_ours = [], []
    with torch.no_grad():
        for i in range(args.batches + 1):  # the first batch warms up both and is not counted
            p = sample_degradation(b, cfg, generator=g)
            k1, k2 = p.kernel1.build(cfg.blur_kernel_size), p.kernel2.build(cfg.blur_kernel_size2)
            sinc = p.sinc_kernel.build(cfg.blur_kernel_size)
            t0 = time.perf_counter()
            lq, _, _ = original_feed_data(o, gt, k1, k2, sinc, opt)
            t1 = time.perf_counter()
            ours = make_training_batch(gt, p, cfg)
            t2 = time.perf_counter()
            assert lq.shape == ours.lq.shape == (b, 3, cfg.gt_size // 4, cfg.gt_size // 4)
            if i:
                t_orig.append(t1 - t0)
                t_ours.append(t2 - t1)
                print(f"batch {i}: original {t1 - t0:.2f} s, ours {t2 - t1:.3f} s", flush=True)
    n = b * args.batches
    ratio = statistics.median(a / c for a, c in zip(t_orig, t_ours, strict=True))
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, "
        f"{args.batches} timed batches\n"
        f"| | pairs/s | s/batch |\n|---|---|---|\n"
        f"| original (basicsr 1.4.2 feed_data, CPU) | {n / sum(t_orig):.2f} "
        f"| {sum(t_orig) / args.batches:.2f} |\n"
        f"| resrgan make_training_batch | {n / sum(t_ours):.1f} "
        f"| {sum(t_ours) / args.batches:.3f} |\n"
        f"\nspeed-up {sum(t_orig) / sum(t_ours):.1f}x overall, median per batch {ratio:.1f}x"
    )


if __name__ == "__main__":
    main()
