"""Degradation options: the original option names and the official x4plus values (spec §1.1).

``DegradationConfig`` is frozen and hashable (tuples, not lists) and loads with
``resrgan.config.from_dict`` / ``load_config``. ``__post_init__`` validates every field and raises
:class:`~resrgan.errors.ConfigError` naming the field, the bad value and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..errors import ConfigError

KERNEL_TYPES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
ORDERS: tuple[str, ...] = ("second", "first", "bicubic")


@dataclass(frozen=True)
class DegradationConfig:
    """Every option of the second-order degradation, with the official x4plus defaults.

    Names follow the original option files (``train_realesrnet_x4plus.yml``). Extra fields that are
    hard-coded upstream are exposed with the upstream value: ``kernel_range`` (the odd kernel sizes
    7..21 drawn uniformly) and ``shared_gray_noise`` (upstream draws one gray Gaussian noise map per
    batch, shared by all gray samples; set False to give each gray sample its own map).
    """

    # general
    scale: int = 4
    gt_size: int = 256
    crop_pad_size: int = 400
    use_hflip: bool = True
    gt_usm: bool = True
    queue_size: int = 180
    # first degradation: kernel
    blur_kernel_size: int = 21
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = _KERNEL_PROB
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    # first degradation: resize, noise, JPEG
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # second degradation
    second_blur_prob: float = 0.8
    blur_kernel_size2: int = 21
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    kernel_prob2: tuple[float, ...] = _KERNEL_PROB
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # final stage
    final_sinc_prob: float = 0.8
    # hard-coded upstream, exposed here
    kernel_range: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    shared_gray_noise: bool = True
    # "second" (Real-ESRGAN), or for the paper's ablations: "first" (the classical model: blur,
    # resize to the LQ size, noise, JPEG, with the first stage's draws) or "bicubic" (antialiased
    # bicubic downsampling only)
    order: str = "second"

    def __post_init__(self) -> None:
        for f in fields(self):
            name = f.name
            value = getattr(self, name)
            if isinstance(value, list):  # tolerate lists from direct construction
                object.__setattr__(self, name, tuple(value))
        if self.order not in ORDERS:
            raise ConfigError(
                f"degradation.order: {self.order!r} is not one of {list(ORDERS)} (second = the "
                "Real-ESRGAN pipeline)"
            )
        for name in ("scale", "gt_size", "crop_pad_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"degradation.{name}: {getattr(self, name)} must be >= 1")
        if self.queue_size < 0:
            raise ConfigError(
                f"degradation.queue_size: {self.queue_size} must be >= 0 (0 turns the pool off)"
            )
        if self.gt_size % self.scale:
            raise ConfigError(
                f"degradation.gt_size: {self.gt_size} is not divisible by scale {self.scale}; "
                f"use a multiple of {self.scale}"
            )
        if self.crop_pad_size < self.gt_size or self.crop_pad_size % self.scale:
            raise ConfigError(
                f"degradation.crop_pad_size: {self.crop_pad_size} must be >= gt_size "
                f"({self.gt_size}) and divisible by scale {self.scale}"
            )
        ks = max(self.kernel_range, default=0)
        if not self.kernel_range or any(k < 1 or k % 2 == 0 for k in self.kernel_range):
            raise ConfigError(
                f"degradation.kernel_range: {list(self.kernel_range)} must be non-empty odd sizes"
            )
        for name in ("blur_kernel_size", "blur_kernel_size2"):
            v = getattr(self, name)
            if v % 2 == 0 or v < ks:
                raise ConfigError(
                    f"degradation.{name}: {v} must be odd and >= the largest kernel_range size {ks}"
                )
        for suffix in ("", "2"):
            klist = getattr(self, "kernel_list" + suffix)
            kprob = getattr(self, "kernel_prob" + suffix)
            for k in klist:
                if k not in KERNEL_TYPES:
                    raise ConfigError(
                        f"degradation.kernel_list{suffix}: unknown kernel type {k!r}; "
                        f"choose from {list(KERNEL_TYPES)}"
                    )
            if len(klist) != len(kprob):
                raise ConfigError(
                    f"degradation.kernel_prob{suffix}: {len(kprob)} probabilities for "
                    f"{len(klist)} kernel types in kernel_list{suffix}; give one per type"
                )
            self._check_probs("kernel_prob" + suffix)
            self._check_probs("resize_prob" + suffix)
            for name in ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
                self._check_p(name + suffix)
            for name in ("blur_sigma", "betag_range", "betap_range", "noise_range"):
                self._check_range(name + suffix, positive=True)
            self._check_range("poisson_scale_range" + suffix, positive=False)
            self._check_range("jpeg_range" + suffix, positive=True)
            q = getattr(self, "jpeg_range" + suffix)
            if q[1] > 100:
                raise ConfigError(f"degradation.jpeg_range{suffix}: {list(q)} must lie in (0, 100]")
            r = getattr(self, "resize_range" + suffix)
            self._check_range("resize_range" + suffix, positive=True)
            if not r[0] <= 1.0 <= r[1]:
                raise ConfigError(
                    f"degradation.resize_range{suffix}: {list(r)} must contain 1 "
                    "(down factors are drawn from [lo, 1], up factors from [1, hi])"
                )
        for name in ("second_blur_prob", "final_sinc_prob"):
            self._check_p(name)

    def _check_p(self, name: str) -> None:
        v = getattr(self, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(
                f"degradation.{name}: {v} is not a probability; use a value in [0, 1]"
            )

    def _check_probs(self, name: str) -> None:
        v = getattr(self, name)
        if any(p < 0 for p in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"degradation.{name}: {list(v)} must be non-negative and sum to 1 "
                f"(sums to {sum(v):.6g})"
            )

    def _check_range(self, name: str, *, positive: bool) -> None:
        v = getattr(self, name)
        if len(v) != 2 or v[0] > v[1] or (positive and v[0] <= 0) or v[0] < 0:
            raise ConfigError(
                f"degradation.{name}: {list(v)} must be [lo, hi] with "
                f"{'0 < ' if positive else '0 <= '}lo <= hi"
            )

    @property
    def lq_size(self) -> int:
        """Side of the LQ training patch (64 for x4, 128 for x2)."""
        return self.gt_size // self.scale
