"""Sampling every random choice of one degradation batch (spec §1.2 steps 4-6, §1.4).

``sample_degradation`` draws, from one CPU ``torch.Generator``, exactly what upstream draws per
batch (resize type/factor/mode, noise type, second blur yes/no, final order) and per sample (the
three kernels, noise sigma/scale, gray flag, JPEG qualities), plus the seeds of the bulk noise and
the paired-crop position. The result is a frozen, JSON-friendly :class:`DegradationParams`; applying
it (:func:`resrgan.degradation.pipeline.degrade`) is deterministic. The first and second orders are
drawn by the same two functions (:func:`sample_kernels`, :func:`sample_stage`) from their
:class:`~resrgan.degradation.config.OrderConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from ..config import from_dict as _from_dict
from ..config import to_dict as _to_dict
from ..errors import ConfigError
from .config import RESIZE_MODES, DegradationConfig, OrderConfig
from .kernels import make_kernels

RESIZE_TYPES = ("up", "down", "keep")
_SINGULAR = {"kinds": "kind", "sizes": "size"}  # per-sample names in DegradationParams.sample_dict
FINAL_ORDERS = ("resize_first", "jpeg_first")  # spec §1.4 step 8: order A, order B


@dataclass(frozen=True)
class KernelBatch:
    """Per-sample kernel parameters (each tuple has one entry per sample).

    ``kinds`` are config kernel types, ``'sinc'`` or ``'pulse'``; unused parameters are 0
    (sigmas/theta/beta of a sinc, ``omega_c`` of a Gaussian, ...).
    """

    kinds: tuple[str, ...]
    sizes: tuple[int, ...]
    sigma_x: tuple[float, ...]
    sigma_y: tuple[float, ...]
    theta: tuple[float, ...]
    beta: tuple[float, ...]
    omega_c: tuple[float, ...]

    def build(
        self,
        pad_to: int = 21,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """The (B, pad_to, pad_to) kernels, each summing to 1."""
        return make_kernels(
            self.kinds,
            self.sizes,
            sigma_x=self.sigma_x,
            sigma_y=self.sigma_y,
            theta=self.theta,
            beta=self.beta,
            omega_c=self.omega_c,
            pad_to=pad_to,
            device=device,
            dtype=dtype,
        )

    def is_identity(self) -> bool:
        return all(k == "pulse" for k in self.kinds)


@dataclass(frozen=True)
class StageParams:
    """The random resize, noise and JPEG of one degradation order.

    ``resize`` is 'up'/'down'/'keep' with factor ``resize_scale`` and ``resize_mode`` (per batch).
    ``noise`` is 'gaussian' (per-sample ``noise_sigma`` on the 0-255 scale; ``poisson_scale`` empty)
    or 'poisson' (per-sample ``poisson_scale``; ``noise_sigma`` empty); ``gray_noise`` per sample;
    ``noise_seed`` seeds the device generator of the bulk noise. ``jpeg_quality`` per sample (for
    the second order it is the JPEG of the final stage).
    """

    resize: str
    resize_scale: float
    resize_mode: str
    noise: str
    noise_sigma: tuple[float, ...]
    poisson_scale: tuple[float, ...]
    gray_noise: tuple[bool, ...]
    noise_seed: int
    jpeg_quality: tuple[float, ...]


@dataclass(frozen=True)
class DegradationParams:
    """Everything sampled for one batch; ``to_dict``/``from_dict`` round-trip through JSON."""

    batch_size: int
    scale: int
    gt_size_in: tuple[int, int]
    kernel1: KernelBatch
    kernel2: KernelBatch
    sinc_kernel: KernelBatch
    stage1: StageParams
    second_blur: bool
    stage2: StageParams
    final_order: str
    final_resize_mode: str
    crop_top: int  # paired crop, in LQ pixels (GT at crop_top * scale)
    crop_left: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly data (tuples become lists)."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradationParams:
        """Inverse of :meth:`to_dict`; raises ConfigError naming a bad or unknown field."""
        return _from_dict(cls, data, where="params")

    def sample_dict(self, i: int) -> dict[str, Any]:
        """The parameters that apply to sample ``i``: batch-level values plus its own entries
        (kernel ``kinds``/``sizes`` become ``kind``/``size``)."""
        if not 0 <= i < self.batch_size:
            raise IndexError(f"sample {i} out of range for a batch of {self.batch_size}")

        def pick(obj: Any) -> Any:
            out = {}
            for f in fields(obj):
                v = getattr(obj, f.name)
                if isinstance(v, tuple) and len(v) == self.batch_size and f.name != "gt_size_in":
                    out[_SINGULAR.get(f.name, f.name)] = v[i]
                elif isinstance(v, tuple) and not v:
                    continue
                elif hasattr(v, "__dataclass_fields__"):
                    out[f.name] = pick(v)
                else:
                    out[f.name] = _to_dict(v)
            return out

        return pick(self)


class _Uniforms:
    """Uniform [0, 1) floats from a torch.Generator, drawn 256 at a time (one call per block
    instead of one per scalar keeps sampling cheap; the stream is still fixed by the seed)."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator
        self.buf: list[float] = []

    def take(self, n: int) -> list[float]:
        while len(self.buf) < n:
            self.buf += torch.rand(256, generator=self.generator, dtype=torch.float64).tolist()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def integer(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return min(hi, lo + int(self.take(1)[0] * (hi - lo + 1)))


def _rand(g: _Uniforms, n: int = 1) -> list[float]:
    return g.take(n)


def _uniform(g: _Uniforms, lo: float, hi: float, n: int = 1) -> list[float]:
    return [lo + (hi - lo) * u for u in _rand(g, n)]


def _choice(g: _Uniforms, probs: Sequence[float], n: int = 1) -> list[int]:
    """Indices drawn with the given probabilities (inverse CDF of one uniform each)."""
    cum, acc = [], 0.0
    for p in probs:
        acc += p
        cum.append(acc)
    out = []
    for u in _rand(g, n):
        u *= acc
        idx = next((i for i, c in enumerate(cum) if u < c), len(cum) - 1)
        while probs[idx] == 0:  # never return a zero-probability entry at the float boundary
            idx -= 1
        out.append(idx)
    return out


def _beta(g: _Uniforms, lo: float, hi: float) -> float:
    # upstream: with p 0.5 U(lo, 1), else U(1, hi)  (so beta = 1 exactly half the time if lo = 1)
    if _rand(g)[0] < 0.5:
        return _uniform(g, lo, 1.0)[0]
    return _uniform(g, 1.0, hi)[0]


def sample_kernels(
    batch_size: int,
    order: OrderConfig,
    *,
    kernel_range: Sequence[int],
    generator: torch.Generator | _Uniforms,
) -> KernelBatch:
    """Per-sample blur kernels of one degradation order, as upstream ``RealESRGANDataset`` draws
    them.

    Size uniform over ``kernel_range``; with p ``order.sinc_prob`` a sinc with ω ~ U(π/3, π) for
    sizes < 13, else U(π/5, π); otherwise a type from ``order.kernel_list`` by ``kernel_prob``; σx
    (and σy for anisotropic types, else σy = σx) ~ U(blur_sigma); θ ~ U(-π, π) for anisotropic
    types (else 0); β per :func:`_beta` from ``betag_range`` (generalized) or ``betap_range``
    (plateau), else 1.
    """
    g = generator if isinstance(generator, _Uniforms) else _Uniforms(generator)
    cols: dict[str, list[Any]] = {f.name: [] for f in fields(KernelBatch)}
    for _ in range(batch_size):
        size = kernel_range[_choice(g, [1.0] * len(kernel_range))[0]]
        sx = sy = th = 0.0
        beta, omega = 1.0, 0.0
        if _rand(g)[0] < order.sinc_prob:
            kind = "sinc"
            lo = math.pi / 3 if size < 13 else math.pi / 5
            omega = _uniform(g, lo, math.pi)[0]
        else:
            kind = order.kernel_list[_choice(g, order.kernel_prob)[0]]
            sx = _uniform(g, *order.blur_sigma)[0]
            sy = sx
            if kind.endswith("aniso"):
                sy = _uniform(g, *order.blur_sigma)[0]
                th = _uniform(g, -math.pi, math.pi)[0]
            if kind.startswith("generalized"):
                beta = _beta(g, *order.betag_range)
            elif kind.startswith("plateau"):
                beta = _beta(g, *order.betap_range)
        for name, v in zip(
            ("kinds", "sizes", "sigma_x", "sigma_y", "theta", "beta", "omega_c"),
            (kind, size, sx, sy, th, beta, omega),
            strict=True,
        ):
            cols[name].append(v)
    return KernelBatch(**{k: tuple(v) for k, v in cols.items()})


def sample_final_sinc(
    batch_size: int,
    *,
    final_sinc_prob: float,
    kernel_range: Sequence[int],
    generator: torch.Generator | _Uniforms,
) -> KernelBatch:
    """Per sample: with p ``final_sinc_prob`` a sinc (size from kernel_range, ω ~ U(π/3, π)
    regardless of size), otherwise the pulse (identity)."""
    g = generator if isinstance(generator, _Uniforms) else _Uniforms(generator)
    kinds, sizes, omegas = [], [], []
    for _ in range(batch_size):
        if _rand(g)[0] < final_sinc_prob:
            kinds.append("sinc")
            sizes.append(kernel_range[_choice(g, [1.0] * len(kernel_range))[0]])
            omegas.append(_uniform(g, math.pi / 3, math.pi)[0])
        else:
            kinds.append("pulse")
            sizes.append(1)
            omegas.append(0.0)
    zeros = (0.0,) * batch_size
    return KernelBatch(
        kinds=tuple(kinds),
        sizes=tuple(sizes),
        sigma_x=zeros,
        sigma_y=zeros,
        theta=zeros,
        beta=(1.0,) * batch_size,
        omega_c=tuple(omegas),
    )


def sample_stage(g: _Uniforms, b: int, order: OrderConfig) -> StageParams:
    """The random resize, noise and JPEG of one degradation order (upstream ``feed_data``)."""
    resize = RESIZE_TYPES[_choice(g, order.resize_prob)[0]]
    if resize == "up":
        factor = _uniform(g, 1.0, order.resize_range[1])[0]
    elif resize == "down":
        factor = _uniform(g, order.resize_range[0], 1.0)[0]
    else:
        factor = 1.0
    mode = RESIZE_MODES[_choice(g, [1.0] * len(RESIZE_MODES))[0]]
    gaussian = _rand(g)[0] < order.gaussian_noise_prob
    if gaussian:
        sigma, pscale = tuple(_uniform(g, *order.noise_range, b)), ()
    else:
        sigma, pscale = (), tuple(_uniform(g, *order.poisson_scale_range, b))
    gray = tuple(u < order.gray_noise_prob for u in _rand(g, b))
    seed = g.integer(0, 2**52)
    quality = tuple(_uniform(g, *order.jpeg_range, b))
    return StageParams(
        resize=resize,
        resize_scale=factor,
        resize_mode=mode,
        noise="gaussian" if gaussian else "poisson",
        noise_sigma=sigma,
        poisson_scale=pscale,
        gray_noise=gray,
        noise_seed=seed,
        jpeg_quality=quality,
    )


def sample_degradation(
    batch_size: int,
    cfg: DegradationConfig,
    *,
    generator: torch.Generator,
    gt_size_in: tuple[int, int] = (400, 400),
) -> DegradationParams:
    """Draw every random choice of one batch of ``batch_size`` GT crops of size ``gt_size_in``.

    Order of draws (fixed, so a seed reproduces a batch): kernel1, kernel2, final sinc (per sample);
    first order (resize type, factor, mode, noise type, per-sample σ or scale, gray flags, noise
    seed, JPEG qualities); second blur yes/no; second order (same, qualities from ``jpeg_range2``);
    final order; final resize mode; paired-crop (top, left) in LQ pixels.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size: {batch_size} must be >= 1")
    h, w = int(gt_size_in[0]), int(gt_size_in[1])
    s = cfg.scale
    lq_h, lq_w, patch = h // s, w // s, cfg.gt_size // s
    if lq_h < patch or lq_w < patch:
        raise ConfigError(
            f"gt_size_in: {h}x{w} gives an LQ of {lq_h}x{lq_w}, smaller than the LQ patch {patch} "
            f"(gt_size {cfg.gt_size} / scale {s}); pad or crop the GT to at least {cfg.gt_size}"
        )
    g = _Uniforms(generator)
    b = batch_size
    # upstream's data loader draws the three kernels, then feed_data the rest
    k1 = sample_kernels(b, cfg.first, kernel_range=cfg.kernel_range, generator=g)
    k2 = sample_kernels(b, cfg.second, kernel_range=cfg.kernel_range, generator=g)
    ks = sample_final_sinc(
        b, final_sinc_prob=cfg.final.sinc_prob, kernel_range=cfg.kernel_range, generator=g
    )
    st1 = sample_stage(g, b, cfg.first)
    second_blur = _rand(g)[0] < cfg.second.blur_prob
    st2 = sample_stage(g, b, cfg.second)
    order = FINAL_ORDERS[_choice(g, [0.5, 0.5])[0]]
    final_mode = RESIZE_MODES[_choice(g, [1.0] * len(RESIZE_MODES))[0]]
    top = g.integer(0, lq_h - patch)
    left = g.integer(0, lq_w - patch)
    return DegradationParams(
        batch_size=b,
        scale=s,
        gt_size_in=(h, w),
        kernel1=k1,
        kernel2=k2,
        sinc_kernel=ks,
        stage1=st1,
        second_blur=second_blur,
        stage2=st2,
        final_order=order,
        final_resize_mode=final_mode,
        crop_top=top,
        crop_left=left,
    )
