"""Our second-order degradation against the ORIGINAL feed_data: stage by stage, and in distribution.

    python bench/degrade_stages.py stages [--batches 4] [--seed 0]
    python bench/degrade_stages.py distribution [--batches 30] [--seeds 0 1] [--save runs.json]
    python bench/degrade_stages.py params [--batches 2000]

The original is upstream ``RealESRGANModel.feed_data`` (realesrgan 0.3.0) and ``RealESRGANDataset``
with basicsr 1.4.2's ops, fetched and imported unchanged as bench/degrade_original.py does
(torchvision stubbed). Both sides start from the same GT crops: 400x400 crops of
``../shared/data/hr_val`` (flipped and cropped by resrgan's HRFolder, one image per pair).

``stages``: both pipelines get the SAME sampled parameters, drawn by our ``sample_degradation``:

- the original's kernels are built by basicsr's own functions (``bivariate_Gaussian``,
  ``bivariate_generalized_Gaussian``, ``bivariate_plateau``, ``circular_lowpass_kernel``) from our
  kernel parameters, and compared with ours first;
- feed_data's ``random``/``np.random`` draws (resize type, factor and mode, Gaussian or Poisson,
  second blur, final order and mode) and the paired-crop position are replayed from our params;
- its noise draws (``torch.rand`` for sigma/scale and the gray flags) are our values, and its
  ``torch.randn``/``torch.poisson`` return the bulk noise our per-sample generators draw (only the
  samples that use a map get ours; the maps a sample discards are not drawn);
- its DiffJPEG gets our per-sample qualities.

Every op on each side is recorded (ours by wrapping the functions our pipeline module calls, the
original's by wrapping the names ``realesrgan_model`` calls), and the PSNR between the two
implementations is printed after each stage, over the whole batch and for the worst sample.

``distribution``: the parameters are sampled independently, each side its own way (ours:
``sample_degradation`` from a seeded generator; original: ``RealESRGANDataset.__getitem__`` for the
kernels and feed_data's own ``random``/``numpy``/``torch`` draws, seeded). For every pair it prints
the PSNR of the LQ against the area-downscaled sharpened GT crop, their mean/std per run and the
two-sample Kolmogorov-Smirnov statistic between runs (ours vs ours, original vs original, ours vs
original). The sharpened GT is the crop of USM(400x400 GT), the image the LQ is made from; the
original's trainer afterwards re-sharpens the 256 crop (``gt_usm = USMSharp(gt)`` after the pool),
whose border differs: that reference is printed too.

``params``: no images. Our ``sample_degradation`` against the original's own draws
(``RealESRGANDataset.__getitem__`` with image decoding stubbed, ``feed_data`` with every op
replaced by a recorder), many batches each: shares of the per-batch and per-sample choices
(z-scores) and the distributions of the continuous ones (KS): kernel widths, resize factors and
sizes, noise sigma/scale, JPEG qualities.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from degrade_original import (  # noqa: E402
    original_dataset_class,
    original_model_module,
    original_modules,
    original_opt,
)

import resrgan.degradation.pipeline as ours_pipeline  # noqa: E402
from resrgan.data.hr import HRFolder, read_rgb_float  # noqa: E402
from resrgan.degradation.config import DegradationConfig  # noqa: E402
from resrgan.degradation.noise import derived_seed, sample_generators, sample_poisson  # noqa: E402
from resrgan.degradation.params import DegradationParams, KernelBatch, sample_degradation  # noqa: E402
from resrgan.degradation.pipeline import make_training_batch  # noqa: E402
from resrgan.degradation.sharpen import usm_sharpen  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HR_VAL = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared")) / "data" / "hr_val"
# the functions of our pipeline module that make a stage's output, and the kind of stage each is
OURS_OPS = {
    "usm_sharpen": "usm",
    "filter2d": "filter",
    "resize": "resize",
    "add_gaussian_noise": "noise",
    "add_poisson_noise": "noise",
    "jpeg_compress": "jpeg",
    "quantise": "quantise",
}


# ---------------------------------------------------------------------------------------- crops
def gt_crops(n: int, seed: int, size: int = 400) -> Iterator[torch.Tensor]:
    """``n`` (3, size, size) GT crops of hr_val: image ``i % len`` in epoch ``i // len`` of an
    HRFolder (flip p 0.5, reflect pad, uniform crop), each image read once."""
    data = HRFolder(HR_VAL, crop_pad_size=size, use_hflip=True, seed=seed)
    images = [torch.from_numpy(read_rgb_float(p)).permute(2, 0, 1) for p in data.paths]
    for i in range(n):
        data.set_epoch(i // len(images))
        yield data.augment(images[i % len(images)], i % len(images))


def batches(count: int, size: int, seed: int) -> Iterator[torch.Tensor]:
    it = gt_crops(count * size, seed)
    for _ in range(count):
        yield torch.stack([next(it) for _ in range(size)])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


# ----------------------------------------------------------------------------- tracing helpers
class Trace:
    """A list of (kind, output) of every wrapped call, in call order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, torch.Tensor]] = []

    def wrap(self, kind: str, fn: Callable[..., Any], pick: Callable[..., Any] | None = None):  # type: ignore[no-untyped-def]
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            self.log.append((kind, (pick(args, out) if pick else out).detach().clone()))
            return out

        return wrapped


@contextlib.contextmanager
def patched(obj: Any, **names: Any) -> Iterator[None]:
    old = {k: getattr(obj, k) for k in names}
    for k, v in names.items():
        setattr(obj, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(obj, k, v)


def stage_names(p: DegradationParams) -> list[tuple[str, str]]:
    """(stage, op kind) in the order both pipelines run them for these params."""
    st = [("USM", "usm"), ("blur 1", "filter"), ("resize 1", "resize"), ("noise 1", "noise")]
    st += [("JPEG 1", "jpeg")]
    st += [("blur 2", "filter")] if p.second_blur else []
    st += [("resize 2", "resize"), ("noise 2", "noise")]
    if p.final_order == "resize_first":
        st += [("final resize", "resize"), ("final sinc", "filter"), ("final JPEG", "jpeg")]
    else:
        st += [("final JPEG", "jpeg"), ("final resize", "resize"), ("final sinc", "filter")]
    return [*st, ("quantise", "quantise")]


def by_stage(trace: Trace, stages: list[tuple[str, str]]) -> list[torch.Tensor]:
    """Align a trace with ``stages``; a skipped filter (ours skips an all-pulse sinc) repeats the
    previous output."""
    out, i = [], 0
    for name, kind in stages:
        if i < len(trace.log) and trace.log[i][0] == kind:
            out.append(trace.log[i][1])
            i += 1
        elif kind == "filter" and out:
            out.append(out[-1])
        else:
            got = trace.log[i][0] if i < len(trace.log) else "nothing"
            raise RuntimeError(f"stage {name}: expected a {kind} op, the trace has {got}")
    return out


# ------------------------------------------------------------------ the original, replayed
def original_model(rm: types.ModuleType, cfg: DegradationConfig, usm: Any, jpeger: Any) -> Any:
    """A RealESRGANModel with just what feed_data reads (``__init__`` would build the networks
    and move to CUDA); the training-pair pool is off (pairs are compared before it)."""
    model = rm.RealESRGANModel.__new__(rm.RealESRGANModel)
    model.is_train, model.device, model.opt = True, "cpu", original_opt(cfg)
    model.usm_sharpener, model.jpeger = usm, jpeger
    model._dequeue_and_enqueue = lambda: None
    return model


def original_kernels(deg: types.ModuleType, kb: KernelBatch, pad_to: int) -> torch.Tensor:
    """Our sampled kernel parameters built by basicsr's own kernel functions, zero-padded to
    ``pad_to`` as RealESRGANDataset pads them (the pulse: its 21x21 delta)."""
    out = []
    for kind, k, sx, sy, th, beta, om in zip(
        kb.kinds, kb.sizes, kb.sigma_x, kb.sigma_y, kb.theta, kb.beta, kb.omega_c, strict=True
    ):
        iso = kind.endswith("_iso") or kind == "iso"
        if kind == "pulse":
            ker = np.zeros((pad_to, pad_to))
            ker[pad_to // 2, pad_to // 2] = 1
        elif kind == "sinc":
            ker = deg.circular_lowpass_kernel(om, k, pad_to=False)
        elif kind in ("iso", "aniso"):
            ker = deg.bivariate_Gaussian(k, sx, sy, th, isotropic=iso)
        elif kind.startswith("generalized"):
            ker = deg.bivariate_generalized_Gaussian(k, sx, sy, th, beta, isotropic=iso)
        else:
            ker = deg.bivariate_plateau(k, sx, sy, th, beta, isotropic=iso)
        pad = (pad_to - ker.shape[0]) // 2
        out.append(torch.FloatTensor(np.pad(ker, ((pad, pad), (pad, pad)))))
    return torch.stack(out)


class _Script:
    """Values to hand out in order, each tagged with the call that must ask for it."""

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self.items = list(items)

    def pop(self, kind: str) -> Any:
        want, value = self.items.pop(0)
        if want != kind:
            raise RuntimeError(f"replay out of step: feed_data asked for {kind}, next is {want}")
        return value


def replay_script(p: DegradationParams) -> _Script:
    """feed_data's random/np.random calls, in its order, answered with our params."""
    items: list[tuple[str, Any]] = []
    for n, st in enumerate((p.stage1, p.stage2)):
        if n:
            items.append(("uniform()", 0.0 if p.second_blur else 1.0))
        items.append(("choices", st.resize))
        if st.resize != "keep":
            items.append(("uniform(a, b)", st.resize_scale))
        items.append(("choice", st.resize_mode))
        items.append(("uniform()", 0.0 if st.noise == "gaussian" else 1.0))
    items.append(("uniform()", 0.0 if p.final_order == "resize_first" else 1.0))
    items.append(("choice", p.final_resize_mode))
    return _Script(items)


def _random_proxy(script: _Script) -> Any:
    def choices(population: Any, weights: Any = None, **_: Any) -> list[Any]:
        return [script.pop("choices")]

    return types.SimpleNamespace(choices=choices, choice=lambda seq: script.pop("choice"))


def _np_proxy(script: _Script) -> Any:
    def uniform(*args: Any) -> float:
        return script.pop("uniform(a, b)" if args else "uniform()")

    return types.SimpleNamespace(random=types.SimpleNamespace(uniform=uniform))


class _NoiseReplay:
    """Stands in for ``torch`` inside basicsr.data.degradations: randn and poisson return the
    bulk noise of our per-sample generators for the stage being run; everything else is torch."""

    def __init__(self, p: DegradationParams) -> None:
        self.stages = [p.stage1, p.stage2]
        self.stage = p.stage1

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def next_stage(self) -> Any:
        self.stage = self.stages.pop(0)
        return self.stage

    def randn(self, *size: int, dtype: torch.dtype, device: Any) -> torch.Tensor:
        st = self.stage
        if len(size) == 2:  # the one gray map of the batch
            g = torch.Generator().manual_seed(derived_seed(st.noise_seed, "gray"))
            return torch.randn(size, generator=g, dtype=dtype)
        b, c, h, w = size
        gens = sample_generators(st.noise_seed, 0, b)
        out = torch.zeros(size, dtype=dtype)
        for i in range(b):
            if not st.gray_noise[i]:
                out[i] = torch.randn((c, h, w), generator=gens[i], dtype=dtype)
        return out

    def poisson(self, rate: torch.Tensor) -> torch.Tensor:
        st = self.stage
        gens = sample_generators(st.noise_seed, 0, rate.shape[0])
        out = rate.clone()  # samples that discard this map: no noise
        gray = rate.shape[1] == 1
        for i in range(rate.shape[0]):
            if st.gray_noise[i] == gray:
                out[i : i + 1] = sample_poisson(rate[i : i + 1], generator=gens[i])
        return out


def run_original_replayed(
    o: types.SimpleNamespace, rm: types.ModuleType, gt: torch.Tensor, p: DegradationParams,
    cfg: DegradationConfig,
) -> tuple[Trace, torch.Tensor]:  # fmt: skip
    """The original feed_data on ``gt`` with ``p`` replayed; returns its trace and its lq crop."""
    deg, tr = o.modules.degradations, o.modules.transforms
    trace = Trace()
    replay = _NoiseReplay(p)

    def gen_gauss(img: torch.Tensor, sigma_range: Any, gray_prob: Any) -> torch.Tensor:
        st = replay.next_stage()
        sigma = torch.tensor(st.noise_sigma, dtype=img.dtype)
        gray = torch.tensor(st.gray_noise, dtype=img.dtype)
        return deg.generate_gaussian_noise_pt(img, sigma, gray)

    def gen_poisson(img: torch.Tensor, scale_range: Any, gray_prob: Any) -> torch.Tensor:
        st = replay.next_stage()
        scale = torch.tensor(st.poisson_scale, dtype=img.dtype)
        gray = torch.tensor(st.gray_noise, dtype=img.dtype)
        return deg.generate_poisson_noise_pt(img, scale, gray)

    qualities = [p.stage1.jpeg_quality, p.stage2.jpeg_quality]

    def jpeger(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        return o.jpeger(x, quality=torch.tensor(qualities.pop(0), dtype=quality.dtype))

    crop = iter([p.crop_top, p.crop_left])
    model = original_model(rm, cfg, trace.wrap("usm", o.usm), trace.wrap("jpeg", jpeger))
    script = replay_script(p)
    interp = trace.wrap("resize", F.interpolate)
    data = {
        "gt": gt,
        "kernel1": original_kernels(deg, p.kernel1, cfg.blur_kernel_size),
        "kernel2": original_kernels(deg, p.kernel2, cfg.blur_kernel_size2),
        "sinc_kernel": original_kernels(deg, p.sinc_kernel, cfg.blur_kernel_size),
    }
    with (
        patched(rm, random=_random_proxy(script), np=_np_proxy(script),
                F=types.SimpleNamespace(interpolate=interp),
                filter2D=trace.wrap("filter", o.filter2D),
                random_add_gaussian_noise_pt=trace.wrap("noise", deg.random_add_gaussian_noise_pt),
                random_add_poisson_noise_pt=trace.wrap("noise", deg.random_add_poisson_noise_pt),
                paired_random_crop=trace.wrap(
                    "quantise", tr.paired_random_crop, pick=lambda a, out: a[1])),
        patched(deg, torch=replay, random_generate_gaussian_noise_pt=gen_gauss,
                random_generate_poisson_noise_pt=gen_poisson),
        patched(tr, random=types.SimpleNamespace(randint=lambda a, b: next(crop))),
    ):  # fmt: skip
        model.feed_data(data)
    trace.log = trace.log[:-1]  # the trainer's second USM (of the crop, after the pool)
    return trace, model.lq


def run_ours_traced(
    gt: torch.Tensor, p: DegradationParams, cfg: DegradationConfig
) -> tuple[Trace, torch.Tensor, dict[str, torch.Tensor]]:
    """Our make_training_batch (one chunk) with every op's output recorded; returns the trace,
    the lq crop and our kernels."""
    trace = Trace()
    wraps = {n: trace.wrap(k, getattr(ours_pipeline, n)) for n, k in OURS_OPS.items()}
    with patched(ours_pipeline, **wraps):
        tb = make_training_batch(gt, p, cfg, chunk=gt.shape[0])
    kernels = {
        "kernel1": p.kernel1.build(cfg.blur_kernel_size),
        "kernel2": p.kernel2.build(cfg.blur_kernel_size2),
        "sinc_kernel": p.sinc_kernel.build(cfg.blur_kernel_size),
    }
    return trace, tb.lq, kernels


def stages_main(args: argparse.Namespace) -> None:
    o = original_modules(args.src)
    rm = original_model_module()
    deg = o.modules.degradations
    cfg = DegradationConfig()
    g = torch.Generator().manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batches of "
          f"{args.batch_size} hr_val crops (400x400), params from sample_degradation seed "
          f"{args.seed}\n")  # fmt: skip
    for n, gt in enumerate(batches(args.batches, args.batch_size, args.seed)):
        p = sample_degradation(args.batch_size, cfg, generator=g)
        with torch.no_grad():
            ours, ours_lq, ours_k = run_ours_traced(gt, p, cfg)
            theirs, their_lq = run_original_replayed(o, rm, gt, p, cfg)[0:2]
        names = stage_names(p)
        a, b = by_stage(ours, names), by_stage(theirs, names)
        s1, s2 = p.stage1, p.stage2
        print(f"batch {n}: resize {s1.resize} {s1.resize_scale:.2f} {s1.resize_mode}, "
              f"{s1.noise}; blur 2 {p.second_blur}; resize {s2.resize} "
              f"{s2.resize_scale:.2f} {s2.resize_mode}, {s2.noise}; "
              f"final {p.final_order} {p.final_resize_mode}")  # fmt: skip
        kd = [
            float((ours_k[k] - original_kernels(deg, getattr(p, k), 21)).abs().max())
            for k in ("kernel1", "kernel2", "sinc_kernel")
        ]
        print(f"kernels max |ours - basicsr|: k1 {kd[0]:.1e}, k2 {kd[1]:.1e}, sinc {kd[2]:.1e}")
        print("| stage | shape | PSNR batch (dB) | worst sample (dB) | max abs diff |")
        print("|---|---|---|---|---|")
        for (name, _), x, y in zip(names, a, b, strict=True):
            if x.shape != y.shape:
                print(f"| {name} | {tuple(x.shape)} vs {tuple(y.shape)} | - | - | - |")
                continue
            worst = min(psnr(x[i], y[i]) for i in range(x.shape[0]))
            print(f"| {name} | {tuple(x.shape[-2:])} | {psnr(x, y):.1f} | {worst:.1f} | "
                  f"{float((x - y).abs().max()):.2e} |")  # fmt: skip
        print(f"| lq crop | {tuple(ours_lq.shape[-2:])} | {psnr(ours_lq, their_lq):.1f} | | |\n",
              flush=True)  # fmt: skip


# ------------------------------------------------------------------------------ distribution
def area_psnrs(lq: torch.Tensor, ref: torch.Tensor) -> list[float]:
    down = F.interpolate(ref, size=lq.shape[-2:], mode="area")
    return [psnr(lq[i], down[i]) for i in range(lq.shape[0])]


def ours_distribution(cfg: DegradationConfig, gts: list[torch.Tensor], seed: int):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    crop_ref, resharp_ref = [], []
    for gt in gts:
        p = sample_degradation(gt.shape[0], cfg, generator=g)
        tb = make_training_batch(gt, p, cfg)
        crop_ref += area_psnrs(tb.lq, tb.gt_usm)
        resharp_ref += area_psnrs(tb.lq, usm_sharpen(tb.gt))
    return crop_ref, resharp_ref


def original_distribution(  # type: ignore[no-untyped-def]
    o, rm, ds_cls, cfg: DegradationConfig, gts: list[torch.Tensor], seed: int
):
    """The original's own sampling: RealESRGANDataset (kernels; our crops handed to it as 400x400
    PNG bytes, so it neither pads nor crops; flips off, ours already flipped) and feed_data."""
    import cv2

    b = gts[0].shape[0]
    ds = _original_dataset(ds_cls, cfg, b)
    files: dict[str, bytes] = {}
    ds.file_client = types.SimpleNamespace(get=lambda path, key: files[os.path.basename(path)])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = original_model(rm, cfg, o.usm, o.jpeger)
    crops: list[Any] = []
    keep_crop = lambda a, out: out[0][1]  # noqa: E731  (the gt_usm crop, before the pool)
    capture = Trace().wrap("crop", rm.paired_random_crop, pick=keep_crop)
    crop_ref, resharp_ref = [], []
    for gt in gts:
        for i in range(b):
            u8 = (gt[i].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8)
            files[f"{i}.png"] = cv2.imencode(".png", u8)[1].tobytes()
        items = [ds[i] for i in range(b)]
        data = {k: torch.stack([it[k] for it in items]) for k in ("gt", "kernel1", "kernel2",
                                                                  "sinc_kernel")}  # fmt: skip

        def record(*a: Any, **k: Any) -> Any:
            out = capture(*a, **k)
            crops.append(out[0][1])
            return out

        with patched(rm, filter2D=o.filter2D, paired_random_crop=record), torch.no_grad():
            model.feed_data(data)
        crop_ref += area_psnrs(model.lq, crops[-1])
        resharp_ref += area_psnrs(model.lq, model.gt_usm)
    return crop_ref, resharp_ref


def ks(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    x, y = np.sort(a), np.sort(b)
    grid = np.concatenate([x, y])
    cx = np.searchsorted(x, grid, side="right") / len(x)
    cy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.abs(cx - cy).max())


def distribution_main(args: argparse.Namespace) -> None:
    import json

    o = original_modules(args.src)
    rm = original_model_module()
    ds_cls = original_dataset_class()
    cfg = DegradationConfig()
    gts = list(batches(args.batches, args.batch_size, args.crop_seed))
    runs: dict[str, tuple[list[float], list[float]]] = {}
    for path in args.load:
        runs.update({k: tuple(v) for k, v in json.loads(Path(path).read_text()).items()})
    t0 = time.perf_counter()
    for seed in args.seeds:
        for side in args.sides:
            with torch.no_grad():
                if side == "ours":
                    runs[f"ours seed {seed}"] = ours_distribution(cfg, gts, seed)
                else:
                    runs[f"original seed {seed}"] = original_distribution(
                        o, rm, ds_cls, cfg, gts, seed
                    )
            print(f"{side} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)  # fmt: skip
            if args.save:  # after every run, so a long comparison can be stopped and resumed
                Path(args.save).write_text(json.dumps(runs))
    n = args.batches * args.batch_size
    b = args.batch_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} pairs: the same "
          f"{n} hr_val crops (crop seed {args.crop_seed}) for every run, parameters sampled "
          "independently. SE: standard error of the mean from the spread of the batch means "
          "(the per-batch draws make pairs of a batch alike)\n")  # fmt: skip
    print("| run | PSNR lq vs area(USM(gt) crop): mean ± SE (dB) | sd | median | "
          "vs area(USM(gt crop)), mean |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, (x, y) in runs.items():
        means = np.asarray(x).reshape(-1, b).mean(axis=1)
        se = float(np.std(means, ddof=1) / math.sqrt(len(means)))
        print(f"| {name} | {np.mean(x):.2f} ± {se:.2f} | {np.std(x):.2f} | {np.median(x):.2f} | "
              f"{np.mean(y):.2f} |")  # fmt: skip
    print("\n| KS (PSNR vs area(USM(gt) crop)) | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for name, (x, _) in runs.items():
        print(f"| {name} | " + " | ".join(f"{ks(x, y[0]):.3f}" for y in runs.values()) + " |")


# -------------------------------------------------------------------------------- parameters
def kernel_spread(k: torch.Tensor) -> list[float]:
    """sqrt(E[x² + y²]) of each (B, K, K) kernel: one number for its width (sinc lobes too)."""
    r = (k.shape[-1] - 1) / 2
    ax = torch.arange(k.shape[-1], dtype=torch.float64) - r
    r2 = ax.view(-1, 1) ** 2 + ax.view(1, -1) ** 2
    return (k.double() * r2).sum(dim=(-2, -1)).clamp_min(0).sqrt().tolist()


class _Draws:
    """Per-sample and per-batch draws of one side, by name."""

    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {}

    def add(self, name: str, vals: Any) -> None:
        self.values.setdefault(name, []).extend(vals if isinstance(vals, list) else [vals])


def ours_draws(cfg: DegradationConfig, n: int, b: int, seed: int) -> _Draws:
    d = _Draws()
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        p = sample_degradation(b, cfg, generator=g)
        for name in ("kernel1", "kernel2", "sinc_kernel"):
            kb = getattr(p, name)
            d.add(f"{name} spread", kernel_spread(kb.build(21)))
        d.add("final sinc share", [float(k == "sinc") for k in p.sinc_kernel.kinds])
        d.add("resize 1 type", p.stage1.resize)
        if p.stage1.resize != "keep":
            d.add(f"resize 1 factor ({p.stage1.resize})", p.stage1.resize_scale)
        d.add("resize 2 size", int(p.gt_size_in[0] / cfg.scale * p.stage2.resize_scale))
        for n_, st in (("1", p.stage1), ("2", p.stage2)):
            d.add(f"resize {n_} mode", st.resize_mode)
            d.add(f"noise {n_} gaussian share", float(st.noise == "gaussian"))
            d.add(f"noise {n_} sigma", list(st.noise_sigma))
            d.add(f"noise {n_} poisson scale", list(st.poisson_scale))
            d.add(f"noise {n_} gray share", [float(x) for x in st.gray_noise])
            d.add(f"JPEG {n_} quality", list(st.jpeg_quality))
        d.add("second blur share", float(p.second_blur))
        d.add("final order resize_first share", float(p.final_order == "resize_first"))
        d.add("final mode", p.final_resize_mode)
    return d


def original_draws(o, rm, ds_cls, cfg: DegradationConfig, n: int, b: int, seed: int) -> _Draws:  # type: ignore[no-untyped-def]
    """The original's own draws: RealESRGANDataset.__getitem__ (kernels; image decoding stubbed
    to a blank 400x400) and feed_data with every op replaced by a recorder that returns blank
    tensors of the right size, so only its random choices run."""
    deg = o.modules.degradations
    d = _Draws()
    ds = _original_dataset(ds_cls, cfg, b)
    ds_mod = sys.modules[ds_cls.__module__]
    blank = np.zeros((400, 400, 3), np.float32)
    ds.file_client = types.SimpleNamespace(get=lambda path, key: b"")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    stage = {"n": "1"}
    calls = {"size": 0, "jpeg": 0, "filter": 0}  # per batch

    def interpolate(x, scale_factor=None, size=None, mode=None):  # type: ignore[no-untyped-def]
        h = x.shape[-2]
        if scale_factor is not None:  # first order
            d.add("resize 1 mode", mode)
            kind = "keep" if scale_factor == 1 else ("up" if scale_factor > 1 else "down")
            d.add("resize 1 type", kind)
            if kind != "keep":
                d.add(f"resize 1 factor ({kind})", float(scale_factor))
            return x.new_zeros((*x.shape[:2], int(h * scale_factor), int(h * scale_factor)))
        calls["size"] += 1
        if calls["size"] == 1:  # the second order's resize, then the final one
            d.add("resize 2 mode", mode)
            d.add("resize 2 size", size[0])
        else:
            d.add("final mode", mode)
            d.add("final order resize_first share", float(calls["jpeg"] == 1))
        return x.new_zeros((*x.shape[:2], *size))

    def noise_gen(kind: str):  # type: ignore[no-untyped-def]
        real = getattr(deg, f"random_generate_{kind}_noise_pt")

        def gen(img, *args, **kwargs):  # type: ignore[no-untyped-def]
            n_ = stage["n"]
            with patched(deg, generate_gaussian_noise_pt=lambda im, sigma, gray: record(
                    im, "sigma", sigma, gray), generate_poisson_noise_pt=lambda im, scale, gray:
                    record(im, "poisson scale", scale, gray)):  # fmt: skip
                out = real(img, *args, **kwargs)
            d.add(f"noise {n_} gaussian share", float(kind == "gaussian"))
            stage["n"] = "2"
            return out

        return gen

    def record(img, what, values, gray):  # type: ignore[no-untyped-def]
        n_ = stage["n"]
        d.add(f"noise {n_} {what}", values.tolist())
        d.add(f"noise {n_} gray share", gray.view(-1).tolist())
        return torch.zeros_like(img)

    def jpeger(x, quality):  # type: ignore[no-untyped-def]
        calls["jpeg"] += 1
        d.add(f"JPEG {calls['jpeg']} quality", quality.tolist())
        return x

    model = original_model(rm, cfg, lambda x: x, jpeger)

    def filter2d(x, k):  # type: ignore[no-untyped-def]
        calls["filter"] += 1
        return x

    gt = torch.zeros((b, 3, 400, 400))
    with (
        patched(ds_mod, imfrombytes=lambda content, float32: blank),
        patched(rm, F=types.SimpleNamespace(interpolate=interpolate), filter2D=filter2d),
        patched(deg, random_generate_gaussian_noise_pt=noise_gen("gaussian"),
                random_generate_poisson_noise_pt=noise_gen("poisson")),
        torch.no_grad(),
    ):  # fmt: skip
        for _ in range(n):
            items = [ds[i] for i in range(b)]
            for name in ("kernel1", "kernel2", "sinc_kernel"):
                k = torch.stack([it[name] for it in items])
                d.add(f"{name} spread", kernel_spread(k))
            pulse = torch.stack([it["sinc_kernel"] for it in items])[:, 10, 10] == 1
            d.add("final sinc share", [float(not x) for x in pulse.tolist()])
            stage["n"] = "1"
            calls.update(size=0, jpeg=0, filter=0)
            kernels = ("kernel1", "kernel2", "sinc_kernel")
            model.feed_data(
                {"gt": gt, **{k: torch.stack([it[k] for it in items]) for k in kernels}}
            )
            # filter2D calls: kernel1, [kernel2], sinc: 3 means the second blur ran
            d.add("second blur share", float(calls["filter"] == 3))
    return d


def _original_dataset(ds_cls, cfg: DegradationConfig, b: int):  # type: ignore[no-untyped-def]
    """RealESRGANDataset with our options, over ``b`` names (no files are read: the caller sets
    its file_client); flips off."""
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "meta.txt"
        meta.write_text("".join(f"{i}.png\n" for i in range(b)))
        return ds_cls({
            "io_backend": {"type": "disk"}, "dataroot_gt": tmp, "meta_info": str(meta),
            "use_hflip": False, "use_rot": False,
            **{k: getattr(cfg, k) for k in (
                "blur_kernel_size", "kernel_list", "kernel_prob", "blur_sigma", "betag_range",
                "betap_range", "sinc_prob", "blur_kernel_size2", "kernel_list2", "kernel_prob2",
                "blur_sigma2", "betag_range2", "betap_range2", "sinc_prob2", "final_sinc_prob")},
        })  # fmt: skip


def params_main(args: argparse.Namespace) -> None:
    o = original_modules(args.src)
    rm = original_model_module()
    ds_cls = original_dataset_class()
    cfg = DegradationConfig()
    ours = ours_draws(cfg, args.batches, args.batch_size, args.seed)
    theirs = original_draws(o, rm, ds_cls, cfg, args.batches, args.batch_size, args.seed)
    print(f"{args.batches} batches of {args.batch_size}: our sample_degradation (seed "
          f"{args.seed}) against the original's own draws (RealESRGANDataset + feed_data, "
          "seeded the same way)\n")  # fmt: skip
    print("| draw | n ours / original | ours | original | KS or z |")
    print("|---|---|---|---|---|")
    for name in sorted(set(ours.values) | set(theirs.values)):
        a, b = ours.values.get(name, []), theirs.values.get(name, [])
        if not a or not b:
            print(f"| {name} | {len(a)} / {len(b)} | | | |")
            continue
        if isinstance(a[0], str):
            keys = sorted(set(a) | set(b))
            fa = {k: a.count(k) / len(a) for k in keys}
            fb = {k: b.count(k) / len(b) for k in keys}
            share = ", ".join(f"{k} {fa[k]:.3f}" for k in keys)
            share_b = ", ".join(f"{k} {fb[k]:.3f}" for k in keys)
            print(f"| {name} | {len(a)} / {len(b)} | {share} | {share_b} | |")
        elif name.endswith("share"):
            pa, pb = float(np.mean(a)), float(np.mean(b))
            pool = (pa * len(a) + pb * len(b)) / (len(a) + len(b))
            se = math.sqrt(max(pool * (1 - pool), 1e-12) * (1 / len(a) + 1 / len(b)))
            z = (pa - pb) / se
            print(f"| {name} | {len(a)} / {len(b)} | {pa:.4f} | {pb:.4f} | z {z:+.2f} |")
        else:
            print(f"| {name} | {len(a)} / {len(b)} | mean {np.mean(a):.4f} | "
                  f"mean {np.mean(b):.4f} | KS {ks(a, b):.4f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["stages", "distribution", "params"])
    ap.add_argument("--batches", type=int, default=0, help="default: stages 4, distribution 30")
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0, help="stages: params and crop seed")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="distribution runs")
    ap.add_argument("--crop-seed", type=int, default=0, help="distribution: the GT crops")
    ap.add_argument("--sides", nargs="+", default=["ours", "original"], help="distribution runs")
    ap.add_argument("--save", help="distribution: write the runs' PSNRs to this JSON file")
    ap.add_argument("--load", nargs="*", default=[], help="distribution: runs saved before")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--src", type=Path, default=Path(tempfile.gettempdir()) / "resrgan_original")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mode == "stages":
        args.batches = args.batches or 4
        stages_main(args)
    elif args.mode == "params":
        args.batches = args.batches or 2000
        params_main(args)
    else:
        args.batches = args.batches or 30
        distribution_main(args)


if __name__ == "__main__":
    main()
