"""The second-order degradation (spec §1.4), as the paper draws it (Real-ESRGAN, Fig. 2)::

    x   = degradation_order(gt, first)                       # blur, resize, noise, JPEG
    x   = degradation_order(x, second, jpeg=False)           # blur (p 0.8), resize, noise
    lq  = final_stage(x)       # [resize to the LQ size + sinc] and the second order's JPEG,
                               # in the order drawn; then clamp and round to 8 bits

``degrade`` applies sampled :class:`~resrgan.degradation.params.DegradationParams` to a GT batch and
reproduces upstream ``RealESRGANModel.feed_data`` from the (already sharpened) GT to the quantised
LQ; ``make_training_batch`` adds the USM of the GT and the paired random crop.

Every sample's result depends on its own parameters only, so a batch may be worked through in
chunks (cache-sized on CPU, :func:`chunk_size`) by an :mod:`~resrgan.degradation.executor` without
changing a byte; that choice is made by the two drivers at the bottom, not by the stages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import DegradationConfig
from .executor import Executor, default_executor
from .filter import filter2d
from .jpeg import jpeg_compress
from .noise import add_gaussian_noise, add_poisson_noise, derived_seed, sample_generators
from .params import FINAL_ORDERS, DegradationParams, StageParams
from .resize import resize
from .sharpen import usm_sharpen

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ stages
def blur(x: Tensor, kernels: Tensor | None) -> Tensor:
    """Filter each sample with its kernel ((B, k, k)); ``None`` (all pulses) is the identity."""
    return x if kernels is None else filter2d(x, kernels)


def add_noise(x: Tensor, st: StageParams, samples: slice, *, shared_gray: bool) -> Tensor:
    """The order's Gaussian or Poisson noise for ``x`` = samples ``samples`` of the batch.

    Sample i's noise comes from a generator seeded by (``st.noise_seed``, i); with
    ``shared_gray`` the gray Gaussian samples use the batch's one gray map (upstream), seeded by
    (``st.noise_seed``, "gray"), so any part of a batch gets the values of the whole batch.
    """
    gens = sample_generators(st.noise_seed, samples.start, samples.stop, x.device)
    gray = torch.tensor(st.gray_noise[samples], device=x.device)
    if st.noise == "poisson":
        scale = torch.tensor(st.poisson_scale[samples], device=x.device, dtype=x.dtype)
        return add_poisson_noise(x, scale, gray, generator=gens, clip=True)
    sigma = torch.tensor(st.noise_sigma[samples], device=x.device, dtype=x.dtype)
    gray_map = None
    if shared_gray and any(st.gray_noise[samples]):
        gen = torch.Generator(device=x.device).manual_seed(derived_seed(st.noise_seed, "gray"))
        gray_map = torch.randn(x.shape[-2:], generator=gen, device=x.device, dtype=x.dtype)
    return add_gaussian_noise(
        x, sigma, gray, generator=gens, shared_gray=shared_gray, gray_map=gray_map, clip=True
    )


def jpeg(x: Tensor, quality: tuple[float, ...]) -> Tensor:
    """Clamp to [0, 1] (upstream: else the JPEGer gives artifacts), then JPEG per sample."""
    q = torch.tensor(quality, device=x.device, dtype=torch.float32)
    return jpeg_compress(torch.clamp(x, 0, 1), q)


def quantise(x: Tensor) -> Tensor:
    """``clamp(round(255·x), 0, 255) / 255``: the pipeline's only 8-bit rounding."""
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def degradation_order(
    x: Tensor,
    kernels: Tensor | None,
    st: StageParams,
    *,
    samples: slice,
    shared_gray: bool,
    size: tuple[int, int] | None = None,
    with_jpeg: bool = True,
) -> Tensor:
    """One degradation order: blur with ``kernels``, the random resize (by ``st.resize_scale``,
    or to ``size``), noise, and clamp + JPEG unless ``with_jpeg`` is False (the second order's
    JPEG belongs to the final stage)."""
    x = blur(x, kernels)
    if size is None:
        x = resize(x, mode=st.resize_mode, scale_factor=st.resize_scale)
    else:
        x = resize(x, mode=st.resize_mode, size=size)
    x = add_noise(x, st, samples, shared_gray=shared_gray)
    return jpeg(x, st.jpeg_quality[samples]) if with_jpeg else x


def final_stage(
    x: Tensor,
    sinc: Tensor | None,
    quality: tuple[float, ...],
    *,
    order: str,
    mode: str,
    size: tuple[int, int],
) -> Tensor:
    """Resize to the LQ ``size`` + the sinc filter, and JPEG at ``quality``, in ``order``
    ('resize_first': upstream's order A; 'jpeg_first': order B); then :func:`quantise`."""
    if order == "resize_first":
        x = jpeg(blur(resize(x, mode=mode, size=size), sinc), quality)
    else:
        x = blur(resize(jpeg(x, quality), mode=mode, size=size), sinc)
    return quantise(x)


def bicubic(x: Tensor, scale: int) -> Tensor:
    """``order: bicubic``: antialiased bicubic downsampling (as MATLAB imresize), quantised."""
    h, w = x.shape[-2:]
    out = torch.nn.functional.interpolate(
        x, size=(h // scale, w // scale), mode="bicubic", antialias=True
    )
    return quantise(out)


@dataclass(frozen=True)
class _Batch:
    """What every chunk of a batch reads: the params, the config and the kernels (built once)."""

    params: DegradationParams
    cfg: DegradationConfig
    kernels: dict[str, Tensor | None]

    @classmethod
    def build(cls, params: DegradationParams, cfg: DegradationConfig, ref: Tensor) -> _Batch:
        kernels: dict[str, Tensor | None] = {}
        for name, size in (
            ("kernel1", cfg.first.blur_kernel_size),
            ("kernel2", cfg.second.blur_kernel_size),
            ("sinc_kernel", cfg.first.blur_kernel_size),
        ):
            kb = getattr(params, name)
            identity = kb.is_identity() or (name == "kernel2" and not params.second_blur)
            kernels[name] = None if identity else kb.build(size, device=ref.device, dtype=ref.dtype)
        return cls(params, cfg, kernels)

    def kernel(self, name: str, samples: slice) -> Tensor | None:
        k = self.kernels[name]
        return None if k is None else k[samples]


def _degrade_samples(x: Tensor, batch: _Batch, samples: slice) -> Tensor:
    """The degradation of ``x`` = samples ``samples`` of the batch (see the module doc)."""
    p, cfg = batch.params, batch.cfg
    if cfg.order == "bicubic":
        return bicubic(x, cfg.scale)
    h, w = p.gt_size_in
    s = cfg.scale
    lq_size = (h // s, w // s)
    common = {"samples": samples, "shared_gray": cfg.shared_gray_noise}
    if cfg.order == "first":  # the classical model, straight to the LQ size
        first = batch.kernel("kernel1", samples)
        return quantise(degradation_order(x, first, p.stage1, size=lq_size, **common))
    x = degradation_order(x, batch.kernel("kernel1", samples), p.stage1, **common)
    f2 = p.stage2.resize_scale
    size2 = (int(h / s * f2), int(w / s * f2))  # upstream: relative to the LQ size
    x = degradation_order(
        x, batch.kernel("kernel2", samples), p.stage2, size=size2, with_jpeg=False, **common
    )
    return final_stage(
        x,
        batch.kernel("sinc_kernel", samples),
        p.stage2.jpeg_quality[samples],
        order=p.final_order,
        mode=p.final_resize_mode,
        size=lq_size,
    )


# ----------------------------------------------------------------------------------- drivers
# CPU: work through a batch this many bytes (float32, 3 channels at the input size) at a time,
# so that the dozens of passes of each stage stay in cache (a 12 x 400 x 400 batch is 23 MB; on the
# 2-core reference machine the degradation runs ~1.25x faster in threes than batched)
_CHUNK_BYTES = 6 << 20


def chunk_size(batch: int, h: int, w: int, device: torch.device, workers: int = 1) -> int:
    """Samples per chunk: the whole batch on accelerators; on CPU cache-sized, and small enough
    to give each of ``workers`` a chunk."""
    if device.type != "cpu":
        return batch
    per_worker = -(-batch // max(1, workers))
    return max(1, min(per_worker, _CHUNK_BYTES // (12 * h * w)))


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


def _run_chunks(
    gt: Tensor,
    chunk: int | None,
    executor: Executor | None,
    fn: Callable[[slice], tuple[Tensor, Tensor | None]],
) -> tuple[Tensor, list[Tensor]]:
    """``fn`` over the batch's chunks on ``executor`` (default: :func:`default_executor`);
    the concatenated first results and the list of the second ones."""
    b, _, h, w = gt.shape

    def run(ex: Executor) -> list[tuple[Tensor, Tensor | None]]:
        n = chunk_size(b, h, w, gt.device, ex.workers) if chunk is None else chunk
        if n < 1:
            raise ValueError(f"degrade: chunk must be >= 1, got {n}")
        return ex.map(fn, [slice(i, min(b, i + n)) for i in range(0, b, n)])

    if executor is None:
        with default_executor(gt.device) as ex:
            parts = run(ex)
    else:
        parts = run(executor)
    return torch.cat([a for a, _ in parts]), [x for _, x in parts if x is not None]


def degrade(
    gt: Tensor,
    params: DegradationParams,
    cfg: DegradationConfig,
    *,
    chunk: int | None = None,
    executor: Executor | None = None,
) -> Tensor:
    """(B, 3, H, W) float GT in [0, 1] -> LQ (B, 3, H/s, W/s), quantised to k/255, in [0, 1].

    ``gt`` is the image the degradations start from: the USM-sharpened GT when ``cfg.gt_usm``
    (upstream synthesises the LQ from ``gt_usm`` in both stages). The stages are those of the
    module doc, as upstream ``feed_data``; ``cfg.order`` 'first' is the classical model (first
    order straight to the LQ size), 'bicubic' antialiased bicubic only. Deterministic given
    ``params``; the input is not modified. ``chunk`` (samples per piece, default
    :func:`chunk_size`) and ``executor`` (default: :func:`~resrgan.degradation.executor.
    default_executor` for the call) change the speed, never the values.
    """
    _check(gt, params, cfg)
    batch = _Batch.build(params, cfg, gt)
    lq, _ = _run_chunks(gt, chunk, executor, lambda sl: (_degrade_samples(gt[sl], batch, sl), None))
    return lq


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
    chunk: int | None = None,
    executor: Executor | None = None,
) -> TrainingBatch:
    """GT (B, 3, 400, 400) -> USM -> :func:`degrade` -> paired crop (one top/left for the batch).

    The degradation starts from the USM-sharpened GT when ``cfg.gt_usm`` (upstream: always for
    Real-ESRGAN; Real-ESRNet with ``gt_usm: True``), else from the GT itself. ``chunk`` and
    ``executor`` as for :func:`degrade` (USM, degradation and the GT window per chunk); the
    result does not depend on them.
    """
    _check(gt, params, cfg)
    batch = _Batch.build(params, cfg, gt)

    def part(sl: slice) -> tuple[Tensor, Tensor]:
        x_usm = usm_sharpen(gt[sl])
        lq = _degrade_samples(x_usm if cfg.gt_usm else gt[sl], batch, sl)
        return lq, _gt_window(x_usm, params.crop_top, params.crop_left, cfg)

    out, usm = _run_chunks(gt, chunk, executor, part)
    lq_c, (gt_c,) = paired_crop(out, (gt,), params.crop_top, params.crop_left, cfg)
    return TrainingBatch(lq=lq_c, gt=gt_c, gt_usm=torch.cat(usm))
