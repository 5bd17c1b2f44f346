"""The second-order degradation (spec §1.4): apply sampled :class:`DegradationParams` to a GT batch.

``degrade`` reproduces upstream ``RealESRGANModel.feed_data`` from the (already sharpened) GT to the
quantised LQ; ``make_training_batch`` adds the USM of the GT and the paired random crop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import DegradationConfig
from .filter import filter2d
from .jpeg import jpeg_compress
from .noise import add_gaussian_noise, add_poisson_noise
from .params import DegradationParams, KernelBatch, StageParams
from .resize import resize
from .sharpen import usm_sharpen

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


def _blur(x: Tensor, kernels: KernelBatch, cfg_size: int) -> Tensor:
    if kernels.is_identity():
        return x
    return filter2d(x, kernels.build(cfg_size, device=x.device, dtype=x.dtype))


def _noise(x: Tensor, st: StageParams, cfg: DegradationConfig) -> Tensor:
    gen = torch.Generator(device=x.device).manual_seed(st.noise_seed)
    gray = torch.tensor(st.gray_noise, device=x.device)
    if st.noise == "gaussian":
        sigma = torch.tensor(st.noise_sigma, device=x.device, dtype=x.dtype)
        return add_gaussian_noise(
            x, sigma, gray, generator=gen, shared_gray=cfg.shared_gray_noise, clip=True
        )
    scale = torch.tensor(st.poisson_scale, device=x.device, dtype=x.dtype)
    return add_poisson_noise(x, scale, gray, generator=gen, clip=True)


def _jpeg(x: Tensor, quality: tuple[float, ...]) -> Tensor:
    q = torch.tensor(quality, device=x.device, dtype=torch.float32)
    return jpeg_compress(torch.clamp(x, 0, 1), q)


def degrade(
    gt: Tensor,
    params: DegradationParams,
    cfg: DegradationConfig,
    *,
    profile: dict[str, float] | None = None,
) -> Tensor:
    """(B, 3, H, W) float GT in [0, 1] -> LQ (B, 3, H/s, W/s), quantised to k/255, in [0, 1].

    ``gt`` is the image the degradations start from: the USM-sharpened GT when ``cfg.gt_usm``
    (upstream synthesises the LQ from ``gt_usm`` in both stages). Steps, as upstream ``feed_data``:
    blur(kernel1); resize by ``scale_factor``; noise; clamp + JPEG; [blur(kernel2) if drawn]; resize
    to (H/s·f2, W/s·f2); noise; final stage in ``params.final_order``: 'resize_first' = resize to
    (H/s, W/s), sinc, clamp, JPEG; 'jpeg_first' = clamp, JPEG, resize, sinc; then
    ``clamp(round(255·x), 0, 255)/255``. Deterministic given ``params`` (the bulk noise comes from
    device generators seeded by ``params``). The input is not modified. ``profile``, if given,
    accumulates seconds per stage (blur, resize, noise, jpeg, final) for bench/degrade.py.
    """
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
    s = cfg.scale
    st1, st2 = params.stage1, params.stage2

    # first order
    with _timed(profile, "blur", gt):
        out = _blur(gt, params.kernel1, cfg.blur_kernel_size)
    with _timed(profile, "resize", out):
        out = resize(out, mode=st1.resize_mode, scale_factor=st1.resize_scale)
    with _timed(profile, "noise", out):
        out = _noise(out, st1, cfg)
    with _timed(profile, "jpeg", out):
        out = _jpeg(out, st1.jpeg_quality)
    # second order
    with _timed(profile, "blur", out):
        if params.second_blur:
            out = _blur(out, params.kernel2, cfg.blur_kernel_size2)
    size2 = (int(h / s * st2.resize_scale), int(w / s * st2.resize_scale))
    with _timed(profile, "resize", out):
        out = resize(out, mode=st2.resize_mode, size=size2)
    with _timed(profile, "noise", out):
        out = _noise(out, st2, cfg)
    # final stage
    final = (h // s, w // s)
    with _timed(profile, "final", out):
        if params.final_order == "resize_first":
            out = resize(out, mode=params.final_resize_mode, size=final)
            out = _blur(out, params.sinc_kernel, cfg.blur_kernel_size)
            out = _jpeg(out, st2.jpeg_quality)
        elif params.final_order == "jpeg_first":
            out = _jpeg(out, st2.jpeg_quality)
            out = resize(out, mode=params.final_resize_mode, size=final)
            out = _blur(out, params.sinc_kernel, cfg.blur_kernel_size)
        else:
            raise ValueError(f"degrade: unknown final_order {params.final_order!r}")
        out = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
    return out


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
    s, p, gp = cfg.scale, cfg.gt_size // cfg.scale, cfg.gt_size
    lh, lw = lq.shape[-2:]
    if top < 0 or left < 0 or top + p > lh or left + p > lw:
        raise ValueError(f"paired_crop: ({top}, {left}) + {p} outside the {lh}x{lw} LQ")
    lq_c = lq[..., top : top + p, left : left + p]
    gt_c = tuple(g[..., top * s : top * s + gp, left * s : left * s + gp] for g in gts)
    return lq_c.contiguous(), tuple(g.contiguous() for g in gt_c)


@torch.no_grad()
def make_training_batch(
    gt: Tensor,
    params: DegradationParams,
    cfg: DegradationConfig,
    *,
    profile: dict[str, float] | None = None,
) -> TrainingBatch:
    """GT (B, 3, 400, 400) -> USM -> :func:`degrade` -> paired crop (one top/left for the batch).

    The degradation starts from the USM-sharpened GT when ``cfg.gt_usm`` (upstream: always for
    Real-ESRGAN; Real-ESRNet with ``gt_usm: True``), else from the GT itself.
    """
    with _timed(profile, "usm", gt):
        gt_usm = usm_sharpen(gt)
    lq = degrade(gt_usm if cfg.gt_usm else gt, params, cfg, profile=profile)
    with _timed(profile, "crop", lq):
        lq, (gt_c, usm_c) = paired_crop(lq, (gt, gt_usm), params.crop_top, params.crop_left, cfg)
    return TrainingBatch(lq=lq, gt=gt_c, gt_usm=usm_c)
