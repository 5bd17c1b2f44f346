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
``--before REV`` also times that git revision of resrgan (imported under another name as
bench/before_after.py does) on the same batches, in turn with the others, and counts the LQ values
where it and the working tree differ.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_original import fetch, import_original  # noqa: E402

from resrgan.degradation import DegradationConfig, make_training_batch, sample_degradation  # noqa: E402


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
    _original_classes(rg_root, bs_root, jpeg, proc)
    return types.SimpleNamespace(
        modules=types.SimpleNamespace(degradations=deg, transforms=tr, diffjpeg=jpeg),
        # with this torch the DiffJPEG output (and what is resized from it) is not contiguous, and
        # filter2D .view()s its input: hand it a contiguous copy
        filter2D=lambda img, k: proc.filter2D(img.contiguous(), k),
        usm=proc.USMSharp(),
        jpeger=jpeg.DiffJPEG(differentiable=False),
        gaussian=deg.random_add_gaussian_noise_pt,
        poisson=deg.random_add_poisson_noise_pt,
        crop=tr.paired_random_crop,
    )


def _original_classes(rg_root: Path, bs_root: Path, jpeg, proc) -> None:  # type: ignore[no-untyped-def]
    """Make ``realesrgan.models.realesrgan_model`` and ``realesrgan.data.realesrgan_dataset``
    importable unchanged: ``basicsr.utils`` gets the names they import (DiffJPEG, USMSharp,
    FileClient, ...) without running its ``__init__``, ``basicsr.models.srgan_model`` is a stub
    (``SRGANModel = object``: feed_data needs none of the training machinery)."""
    utils = sys.modules["basicsr.utils"]
    img_util = importlib.import_module("basicsr.utils.img_util")
    utils.DiffJPEG, utils.USMSharp = jpeg.DiffJPEG, proc.USMSharp  # type: ignore[attr-defined]
    utils.FileClient = importlib.import_module("basicsr.utils.file_client").FileClient  # type: ignore[attr-defined]
    utils.get_root_logger = importlib.import_module("basicsr.utils.logger").get_root_logger  # type: ignore[attr-defined]
    utils.imfrombytes, utils.img2tensor = img_util.imfrombytes, img_util.img2tensor  # type: ignore[attr-defined]
    models = types.ModuleType("basicsr.models")
    models.__path__ = []  # type: ignore[attr-defined]
    srgan = types.ModuleType("basicsr.models.srgan_model")
    srgan.SRGANModel = object  # type: ignore[attr-defined]
    sys.modules.update({"basicsr.models": models, "basicsr.models.srgan_model": srgan})
    for name in ("realesrgan.models", "realesrgan.data"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(rg_root / Path(*name.split(".")))]  # type: ignore[attr-defined]
        sys.modules[name] = pkg


def original_model_module() -> types.ModuleType:
    """``realesrgan/models/realesrgan_model.py`` (RealESRGANModel.feed_data), unchanged; call
    after :func:`original_modules`."""
    return importlib.import_module("realesrgan.models.realesrgan_model")


def original_dataset_class() -> type:
    """``realesrgan/data/realesrgan_dataset.py``'s RealESRGANDataset, unchanged; call after
    :func:`original_modules`."""
    return importlib.import_module("realesrgan.data.realesrgan_dataset").RealESRGANDataset


def original_opt(cfg: DegradationConfig) -> dict:
    """The original's model options (``self.opt``) that feed_data reads, from our config."""
    keys = ("scale", "gt_size", "resize_prob", "resize_range", "gaussian_noise_prob",
            "noise_range", "poisson_scale_range", "gray_noise_prob", "jpeg_range",
            "second_blur_prob", "resize_prob2", "resize_range2", "gaussian_noise_prob2",
            "noise_range2", "poisson_scale_range2", "gray_noise_prob2", "jpeg_range2")  # fmt: skip
    return {k: getattr(cfg, k) for k in keys}


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


def before_side(rev: str, into: Path, cfg: DegradationConfig):  # type: ignore[no-untyped-def]
    """(config, sample_degradation, make_training_batch) of git revision ``rev`` of resrgan,
    imported under another name as bench/before_after.py does."""
    from before_after import ALIAS, import_revision

    from resrgan.config import to_dict

    import_revision(rev, into)
    conf = importlib.import_module(f"{ALIAS}.config")
    old_cfg_cls = importlib.import_module(f"{ALIAS}.degrade.config").DegradationConfig
    params = importlib.import_module(f"{ALIAS}.degrade.params")
    pipe = importlib.import_module(f"{ALIAS}.degrade.pipeline")
    old_cfg = conf.from_dict(old_cfg_cls, to_dict(cfg))
    return old_cfg, params.sample_degradation, pipe.make_training_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--src", type=Path, default=Path(tempfile.gettempdir()) / "resrgan_original")
    ap.add_argument(
        "--before", metavar="REV", help="also time this git revision of resrgan (same batches)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    o = original_modules(args.src)
    cfg = DegradationConfig(scale=4)
    opt = original_opt(cfg)
    random.seed(0)
    np.random.seed(0)
    g = torch.Generator().manual_seed(0)
    b = args.batch_size
    gt = torch.rand((b, 3, 400, 400), generator=torch.Generator().manual_seed(1))
    gt = F.avg_pool2d(gt, 5, stride=1, padding=2, count_include_pad=False)
    sides = {"resrgan make_training_batch": (cfg, sample_degradation, make_training_batch)}
    tmp = tempfile.TemporaryDirectory()
    if args.before:
        sides = {
            f"resrgan {args.before} (before)": before_side(args.before, Path(tmp.name), cfg),
            "resrgan working tree (after)": sides["resrgan make_training_batch"],
        }
    times: dict[str, list[float]] = {"original": [], **{k: [] for k in sides}}
    differ = 0
    with torch.no_grad():
        for i in range(args.batches + 1):  # the first batch warms up all and is not counted
            state = g.get_state()
            p = sample_degradation(b, cfg, generator=g)
            k1, k2 = p.kernel1.build(cfg.blur_kernel_size), p.kernel2.build(cfg.blur_kernel_size2)
            sinc = p.sinc_kernel.build(cfg.blur_kernel_size)
            t0 = time.perf_counter()
            lq, _, _ = original_feed_data(o, gt, k1, k2, sinc, opt)
            row = {"original": time.perf_counter() - t0}
            outs = []
            for name, (side_cfg, sample, make) in sides.items():
                g_side = torch.Generator()
                g_side.set_state(state)
                ps = sample(b, side_cfg, generator=g_side)  # the same draws on every side
                t0 = time.perf_counter()
                outs.append(make(gt, ps, side_cfg).lq)
                row[name] = time.perf_counter() - t0
            assert lq.shape == outs[0].shape == (b, 3, cfg.gt_size // 4, cfg.gt_size // 4)
            differ += int((outs[0] != outs[-1]).sum())
            if i:
                for k, v in row.items():
                    times[k].append(v)
                print(f"batch {i}: " + ", ".join(f"{k} {v:.3f} s" for k, v in row.items()),
                      flush=True)  # fmt: skip
    tmp.cleanup()
    n = b * args.batches
    t_orig = times["original"]
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, "
        f"{args.batches} timed batches, alternated\n"
        "| | pairs/s | s/batch | original / this, overall | median per batch |\n"
        "|---|---|---|---|---|"
    )
    for name, ts in times.items():
        ratio = statistics.median(a / c for a, c in zip(t_orig, ts, strict=True))
        label = "original (basicsr 1.4.2 feed_data, CPU)" if name == "original" else name
        print(f"| {label} | {n / sum(ts):.2f} | {sum(ts) / args.batches:.3f} | "
              f"{sum(t_orig) / sum(ts):.1f}x | {ratio:.1f}x |")  # fmt: skip
    if args.before:
        print(f"\nLQ values that differ between before and after: {differ} of "
              f"{(args.batches + 1) * b * 3 * (cfg.gt_size // 4) ** 2}")  # fmt: skip


if __name__ == "__main__":
    main()
