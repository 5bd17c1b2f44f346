"""The second-order degradation (spec §1.4): apply sampled :class:`DegradationParams` to a GT batch.

``degrade`` reproduces upstream ``RealESRGANModel.feed_data`` from the (already sharpened) GT to the
quantised LQ; ``make_training_batch`` adds the USM of the GT and the paired random crop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import DegradationConfig
from .filter import filter2d
from .jpeg import jpeg_compress
from .noise import add_gaussian_noise, add_poisson_noise, derived_seed, sample_generators
from .params import FINAL_ORDERS, DegradationParams, KernelBatch, StageParams
from .resize import resize
from .sharpen import usm_sharpen
from .workers import cpu_workers, map_samples

log = logging.getLogger(__name__)


@contextmanager
def _timed(profile: dict[str, float] | None, stage: str, ref: Tensor) -> Iterator[None]:
    """Add the wall time of the block to ``profile[stage]`` (synchronising CUDA) when profiling."""
    if profile is None:
        yield
        return
    if ref.is_cuda:
        torch.cuda.synchronize(ref.device)
    t0 = time.perf_counter()
    yield
    if ref.is_cuda:
        torch.cuda.synchronize(ref.device)
    profile[stage] = profile.get(stage, 0.0) + time.perf_counter() - t0


# CPU: work through a batch this many bytes (float32, 3 channels at the input size) at a time,
# so that the dozens of passes of each stage stay in cache (a 12 x 400 x 400 batch is 23 MB; on the
# 2-core reference machine the degradation runs ~1.25x faster in threes than batched)
_CHUNK_BYTES = 6 << 20


def chunk_size(batch: int, h: int, w: int, device: torch.device) -> int:
    """Samples per chunk: the whole batch on accelerators; on CPU cache-sized, and small enough
    to give every sample-parallel worker (:mod:`resrgan.degrade.workers`) a chunk."""
    if device.type != "cpu":
        return batch
    per_worker = -(-batch // cpu_workers())
    return max(1, min(per_worker, _CHUNK_BYTES // (12 * h * w)))


class _Run:
    """The batch-level state of one :func:`degrade` call, shared by its chunks: the kernels (built
    once) and each stage's shared gray-noise map (drawn once, whatever the chunking)."""

    def __init__(self, params: DegradationParams, cfg: DegradationConfig, ref: Tensor) -> None:
        self.params, self.cfg = params, cfg
        self.device, self.dtype = ref.device, ref.dtype
        self._kernels: dict[str, Tensor | None] = {}
        self._gray: dict[tuple[int, int, int], Tensor] = {}
        self._lock = threading.Lock()  # chunks may run on worker threads

    def kernels(self, name: str, size: int) -> Tensor | None:
        with self._lock:
            if name not in self._kernels:
                kb: KernelBatch = getattr(self.params, name)
                self._kernels[name] = (
                    None
                    if kb.is_identity()
                    else kb.build(size, device=self.device, dtype=self.dtype)
                )
            return self._kernels[name]

    def blur(self, x: Tensor, name: str, size: int, sl: slice) -> Tensor:
        k = self.kernels(name, size)
        return x if k is None else filter2d(x, k[sl])

    def noise(self, x: Tensor, st: StageParams, sl: slice) -> Tensor:
        gens = sample_generators(st.noise_seed, sl.start, sl.stop, x.device)
        gray = torch.tensor(st.gray_noise[sl], device=x.device)
        if st.noise == "poisson":
            scale = torch.tensor(st.poisson_scale[sl], device=x.device, dtype=x.dtype)
            return add_poisson_noise(x, scale, gray, generator=gens, clip=True)
        sigma = torch.tensor(st.noise_sigma[sl], device=x.device, dtype=x.dtype)
        shared = self.cfg.shared_gray_noise
        gray_map = self.gray_map(st, x) if shared and any(st.gray_noise[sl]) else None
        return add_gaussian_noise(
            x, sigma, gray, generator=gens, shared_gray=shared, gray_map=gray_map, clip=True
        )

    def gray_map(self, st: StageParams, x: Tensor) -> Tensor:
        """The stage's one gray map (upstream draws one per call and every gray sample uses it)."""
        key = (st.noise_seed, *x.shape[-2:])
        with self._lock:
            if key not in self._gray:
                seed = derived_seed(st.noise_seed, "gray")
                gen = torch.Generator(device=x.device).manual_seed(seed)
                self._gray[key] = torch.randn(
                    x.shape[-2:], generator=gen, device=x.device, dtype=x.dtype
                )
            return self._gray[key]


def _jpeg(x: Tensor, quality: tuple[float, ...]) -> Tensor:
    q = torch.tensor(quality, device=x.device, dtype=torch.float32)
    return jpeg_compress(torch.clamp(x, 0, 1), q)


def _check(gt: Tensor, params: DegradationParams, cfg: DegradationConfig) -> None:
    if gt.ndim != 4 or gt.shape[1] != 3:
        raise ValueError(f"degrade: gt must be (B, 3, H, W), got {tuple(gt.shape)}")
    b, _, h, w = gt.shape
    if b != params.batch_size or (h, w) != tuple(params.gt_size_in):
        raise ValueError(
            f"degrade: params were sampled for {params.batch_size} x {tuple(params.gt_size_in)}, "
            f"got a batch of {b} x {(h, w)}; call sample_degradation with batch_size={b}, "
            f"gt_size_in={(h, w)}"
        )
    if params.scale != cfg.scale:
        raise ValueError(f"degrade: params.scale {params.scale} != cfg.scale {cfg.scale}")
    if params.final_order not in FINAL_ORDERS:
        raise ValueError(f"degrade: unknown final_order {params.final_order!r}")


def _chunks(gt: Tensor, chunk: int | None) -> list[slice]:
    b, _, h, w = gt.shape
    n = chunk_size(b, h, w, gt.device) if chunk is None else chunk
    if n < 1:
        raise ValueError(f"degrade: chunk must be >= 1, got {n}")
    return [slice(i, min(b, i + n)) for i in range(0, b, n)]


def degrade(
    gt: Tensor,
    params: DegradationParams,
    cfg: DegradationConfig,
    *,
    profile: dict[str, float] | None = None,
    chunk: int | None = None,
) -> Tensor:
    """(B, 3, H, W) float GT in [0, 1] -> LQ (B, 3, H/s, W/s), quantised to k/255, in [0, 1].

    ``gt`` is the image the degradations start from: the USM-sharpened GT when ``cfg.gt_usm``
    (upstream synthesises the LQ from ``gt_usm`` in both stages). Steps, as upstream ``feed_data``:
    blur(kernel1); resize by ``scale_factor``; noise; clamp + JPEG; [blur(kernel2) if drawn]; resize
    to (H/s·f2, W/s·f2); noise; final stage in ``params.final_order``: 'resize_first' = resize to
    (H/s, W/s), sinc, clamp, JPEG; 'jpeg_first' = clamp, JPEG, resize, sinc; then
    ``clamp(round(255·x), 0, 255)/255``. Deterministic given ``params``: the bulk noise of sample
    i comes from generators seeded by ``params`` and i, so the result does not depend on how the
    batch is cut into ``chunk``-sample pieces (default: :func:`chunk_size`). The input is not
    modified. ``profile``, if given, accumulates seconds per stage (blur, resize, noise, jpeg,
    final) for bench/degrade.py.
    """
    return _in_chunks(gt, params, cfg, chunk, profile, sharpen=False)[0]


def _in_chunks(
    gt: Tensor,
    params: DegradationParams,
    cfg: DegradationConfig,
    chunk: int | None,
    profile: dict[str, float] | None,
    *,
    sharpen: bool,
) -> tuple[Tensor, list[Tensor]]:
    """:func:`degrade` of ``gt`` worked through in chunks (on the worker threads on CPU); with
    ``sharpen`` each chunk is USM-sharpened first (and degraded from that when ``cfg.gt_usm``),
    and its sharpened GT window is returned too. Stage times are summed over the chunks."""
    _check(gt, params, cfg)
    run = _Run(params, cfg, gt)

    def part(sl: slice) -> tuple[Tensor, Tensor | None, dict[str, float] | None]:
        prof = None if profile is None else {}
        x, window = gt[sl], None
        if sharpen:
            with _timed(prof, "usm", x):
                x_usm = usm_sharpen(x)
            window = _gt_window(x_usm, params.crop_top, params.crop_left, cfg)
            x = x_usm if cfg.gt_usm else x
        if cfg.order == "first":
            return _classical(x, run, sl, prof), window, prof
        if cfg.order == "bicubic":
            return _bicubic(x, cfg), window, prof
        return _first(x, run, sl, prof), window, prof

    parts = map_samples(part, _chunks(gt, chunk), gt.device)
    if profile is not None:
        for _, _, prof in parts:
            for k, v in (prof or {}).items():
                profile[k] = profile.get(k, 0.0) + v
    lq = torch.cat([lq for lq, _, _ in parts])
    if cfg.order == "second":
        lq = _second(lq, run, profile)
    return lq, [w for _, w, _ in parts if w is not None]


def _first(x: Tensor, run: _Run, sl: slice, profile: dict[str, float] | None) -> Tensor:
    """The large-image part of :func:`degrade` for the samples ``sl`` (``x`` = gt[sl]): the first
    order and the second order's blur and resize."""
    params, cfg = run.params, run.cfg
    h, w = params.gt_size_in
    st1, st2 = params.stage1, params.stage2
    with _timed(profile, "blur", x):
        out = run.blur(x, "kernel1", cfg.blur_kernel_size, sl)
    with _timed(profile, "resize", out):
        out = resize(out, mode=st1.resize_mode, scale_factor=st1.resize_scale)
    with _timed(profile, "noise", out):
        out = run.noise(out, st1, sl)
    with _timed(profile, "jpeg", out):
        out = _jpeg(out, st1.jpeg_quality[sl])
    with _timed(profile, "blur", out):
        if params.second_blur:
            out = run.blur(out, "kernel2", cfg.blur_kernel_size2, sl)
    size2 = (int(h / cfg.scale * st2.resize_scale), int(w / cfg.scale * st2.resize_scale))
    with _timed(profile, "resize", out):
        return resize(out, mode=st2.resize_mode, size=size2)


def _quantise(x: Tensor) -> Tensor:
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def _classical(x: Tensor, run: _Run, sl: slice, profile: dict[str, float] | None) -> Tensor:
    """``cfg.order == "first"``, the classical degradation y = JPEG((x * k) resized + n) with the
    first stage's draws (its resize mode, straight to the LQ size; its noise and JPEG quality)."""
    params, cfg = run.params, run.cfg
    h, w = params.gt_size_in
    st1 = params.stage1
    with _timed(profile, "blur", x):
        out = run.blur(x, "kernel1", cfg.blur_kernel_size, sl)
    with _timed(profile, "resize", out):
        out = resize(out, mode=st1.resize_mode, size=(h // cfg.scale, w // cfg.scale))
    with _timed(profile, "noise", out):
        out = run.noise(out, st1, sl)
    with _timed(profile, "jpeg", out):
        return _quantise(_jpeg(out, st1.jpeg_quality[sl]))


def _bicubic(x: Tensor, cfg: DegradationConfig) -> Tensor:
    """``cfg.order == "bicubic"``: antialiased bicubic downsampling (as MATLAB imresize),
    quantised."""
    h, w = x.shape[-2:]
    out = torch.nn.functional.interpolate(
        x, size=(h // cfg.scale, w // cfg.scale), mode="bicubic", antialias=True
    )
    return _quantise(out)


def _second(out: Tensor, run: _Run, profile: dict[str, float] | None) -> Tensor:
    """The rest of :func:`degrade` at LQ size (whole batch): noise, final stage, quantisation."""
    params, cfg = run.params, run.cfg
    h, w = params.gt_size_in
    st2 = params.stage2
    sl = slice(0, params.batch_size)
    with _timed(profile, "noise", out):
        out = run.noise(out, st2, sl)
    final = (h // cfg.scale, w // cfg.scale)
    with _timed(profile, "final", out):
        if params.final_order == "resize_first":
            out = resize(out, mode=params.final_resize_mode, size=final)
            out = run.blur(out, "sinc_kernel", cfg.blur_kernel_size, sl)
            out = _jpeg(out, st2.jpeg_quality)
        else:
            out = _jpeg(out, st2.jpeg_quality)
            out = resize(out, mode=params.final_resize_mode, size=final)
            out = run.blur(out, "sinc_kernel", cfg.blur_kernel_size, sl)
        return _quantise(out)


@dataclass
class TrainingBatch:
    """One training batch after the paired crop: ``lq`` (B,3,P,P), ``gt``, ``gt_usm`` (B,3,sP,sP).

    ``gt`` is the unsharpened crop, ``gt_usm`` its USM-sharpened version (the trainer decides which
    one goes into the pool and into which loss).
    """

    lq: Tensor
    gt: Tensor
    gt_usm: Tensor


def paired_crop(
    lq: Tensor, gts: tuple[Tensor, ...], top: int, left: int, cfg: DegradationConfig
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Crop the LQ patch (gt_size/s) at (top, left) and each GT at (top·s, left·s) (gt_size)."""
    p = cfg.gt_size // cfg.scale
    lh, lw = lq.shape[-2:]
    if top < 0 or left < 0 or top + p > lh or left + p > lw:
        raise ValueError(f"paired_crop: ({top}, {left}) + {p} outside the {lh}x{lw} LQ")
    lq_c = lq[..., top : top + p, left : left + p]
    return lq_c.contiguous(), tuple(_gt_window(g, top, left, cfg) for g in gts)


def _gt_window(gt: Tensor, top: int, left: int, cfg: DegradationConfig) -> Tensor:
    """The GT patch (gt_size) matching the LQ patch at (top, left)."""
    s, gp = cfg.scale, cfg.gt_size
    return gt[..., top * s : top * s + gp, left * s : left * s + gp].contiguous()


@torch.no_grad()
def make_training_batch(
    gt: Tensor,
    params: DegradationParams,
    cfg: DegradationConfig,
    *,
    profile: dict[str, float] | None = None,
    chunk: int | None = None,
) -> TrainingBatch:
    """GT (B, 3, 400, 400) -> USM -> :func:`degrade` -> paired crop (one top/left for the batch).

    The degradation starts from the USM-sharpened GT when ``cfg.gt_usm`` (upstream: always for
    Real-ESRGAN; Real-ESRNet with ``gt_usm: True``), else from the GT itself. The batch is
    worked through ``chunk`` samples at a time (USM, degradation and crop per chunk; default
    :func:`chunk_size`); the result does not depend on the chunking.
    """
    out, usm = _in_chunks(gt, params, cfg, chunk, profile, sharpen=True)
    with _timed(profile, "crop", out):
        lq_c, (gt_c,) = paired_crop(out, (gt,), params.crop_top, params.crop_left, cfg)
    return TrainingBatch(lq=lq_c, gt=gt_c, gt_usm=torch.cat(usm))
