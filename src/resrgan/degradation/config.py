"""Degradation options, nested as the paper describes them: two orders and a final stage.

``DegradationConfig.first`` and ``.second`` are :class:`OrderConfig` (blur kernel, random resize,
noise, JPEG), ``.final`` is :class:`FinalConfig` (the sinc filter). In files and ``--set`` the
options keep the official flat names of the original option files (spec §1.1: ``blur_sigma`` for the
first order, ``blur_sigma2`` for the second, ``second_blur_prob``, ``final_sinc_prob``):
:data:`FLAT_KEYS` maps each to its place, ``resrgan.config.from_dict`` reads them through
:attr:`DegradationConfig.__flat_config__` and ``to_dict`` writes them back. ``cfg.blur_sigma2``
reads the nested value by its flat name too.

Every value is validated in ``__post_init__``; a :class:`~resrgan.errors.ConfigError` names the
flat key, the bad value and the fix. All dataclasses are frozen and hashable (tuples, not lists).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

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


def _tuples(obj: Any) -> None:
    """Lists given to a frozen config (direct construction) become tuples, so it stays hashable."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, list):
            object.__setattr__(obj, f.name, tuple(value))


@dataclass(frozen=True)
class OrderConfig:
    """One degradation order (spec §1.1): blur with a random kernel, random resize, noise, JPEG.

    The defaults are the first order's. ``blur_prob`` is 1 for the first order (upstream always
    blurs) and ``second_blur_prob`` (0.8) for the second. The second order's ``jpeg_range`` is the
    JPEG of the final stage (upstream ``jpeg_range2``).
    """

    blur_prob: float = 1.0
    # kernel
    blur_kernel_size: int = 21
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = _KERNEL_PROB
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    # resize, noise, JPEG
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)

    def __post_init__(self) -> None:
        _tuples(self)


SECOND_ORDER = OrderConfig(
    blur_prob=0.8,
    blur_sigma=(0.2, 1.5),
    resize_prob=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise_range=(1.0, 25.0),
    poisson_scale_range=(0.05, 2.5),
)


@dataclass(frozen=True)
class FinalConfig:
    """The final stage: a sinc filter with probability ``sinc_prob`` (upstream
    ``final_sinc_prob``), combined with the resize to the LQ size and the second order's JPEG."""

    sinc_prob: float = 0.8


@dataclass(frozen=True)
class DegradationConfig:
    """Every option of the second-order degradation, with the official x4plus defaults.

    Extra options that are hard-coded upstream are exposed with the upstream value:
    ``kernel_range`` (the odd kernel sizes 7..21 drawn uniformly) and ``shared_gray_noise``
    (upstream draws one gray Gaussian noise map per batch, shared by all gray samples; False gives
    each gray sample its own map). ``order``: "second" (Real-ESRGAN), or for the paper's ablations
    "first" (the classical model: blur, resize to the LQ size, noise, JPEG, with the first order's
    draws) or "bicubic" (antialiased bicubic downsampling only).
    """

    scale: int = 4
    gt_size: int = 256
    crop_pad_size: int = 400
    use_hflip: bool = True
    gt_usm: bool = True
    queue_size: int = 180
    first: OrderConfig = field(default_factory=OrderConfig)
    second: OrderConfig = SECOND_ORDER
    final: FinalConfig = field(default_factory=FinalConfig)
    kernel_range: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    shared_gray_noise: bool = True
    order: str = "second"

    def __post_init__(self) -> None:
        _tuples(self)
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
        if not self.kernel_range or any(k < 1 or k % 2 == 0 for k in self.kernel_range):
            raise ConfigError(
                f"degradation.kernel_range: {list(self.kernel_range)} must be non-empty odd sizes"
            )
        if self.first.blur_prob != 1.0:
            raise ConfigError(
                f"degradation.first.blur_prob: {self.first.blur_prob}; the first order always "
                "blurs (upstream); only the second order's blur is random (second_blur_prob)"
            )
        for order in ("first", "second"):
            _check_order(getattr(self, order), _FLAT_NAMES[order], max(self.kernel_range))
        _check_p(self.final.sinc_prob, "final_sinc_prob")

    def __getattr__(self, name: str) -> Any:
        """The official flat names (``blur_sigma2``, ``final_sinc_prob``, ...) read the nested
        values."""
        place = FLAT_KEYS.get(name)
        if place is None:
            raise AttributeError(f"'DegradationConfig' object has no attribute '{name}'")
        return getattr(getattr(self, place[0]), place[1])

    @classmethod
    def from_flat(cls, flat: Any) -> DegradationConfig:
        """Build from the flat options (a mapping or a ``__flat_config__`` instance)."""
        if isinstance(flat, Mapping):
            data = dict(flat)
        else:
            data = {f.name: getattr(flat, f.name) for f in fields(flat)}
        top: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {"first": {}, "second": {}, "final": {}}
        for key, value in data.items():
            if key in FLAT_KEYS:
                part, name = FLAT_KEYS[key]
                parts[part][name] = value
            else:
                top[key] = value
        default = cls()
        for part, values in parts.items():
            top[part] = dataclasses.replace(getattr(default, part), **values)
        return cls(**top)

    def to_flat(self) -> Any:
        """The flat options, as a ``__flat_config__`` instance (what files hold)."""
        flat = type(self).__flat_config__
        return flat(**{f.name: getattr(self, f.name) for f in fields(flat)})

    @property
    def lq_size(self) -> int:
        """Side of the LQ training patch (64 for x4, 128 for x2)."""
        return self.gt_size // self.scale


def _flat_names() -> dict[str, dict[str, str]]:
    """Per part, nested field name -> flat key (first: as is; second: '2' suffix; the second
    order's blur_prob is second_blur_prob; the first's has none; final: 'final_' prefix)."""
    order_fields = [f.name for f in fields(OrderConfig)]
    first = {n: n for n in order_fields if n != "blur_prob"}
    second = {n: (f"{n}2" if n != "blur_prob" else "second_blur_prob") for n in order_fields}
    final = {f.name: f"final_{f.name}" for f in fields(FinalConfig)}
    return {"first": first, "second": second, "final": final}


_FLAT_NAMES = _flat_names()
# flat key -> (part, nested field), in the order of the official option files
FLAT_KEYS: dict[str, tuple[str, str]] = {
    flat: (part, name) for part, names in _FLAT_NAMES.items() for name, flat in names.items()
}


def _make_flat_config() -> type:
    """The file schema: a frozen dataclass whose fields are the flat keys, typed and defaulted
    from the nested config (general options first, then first order, second order, final)."""
    hints = {
        "first": typing.get_type_hints(OrderConfig),
        "second": typing.get_type_hints(OrderConfig),
        "final": typing.get_type_hints(FinalConfig),
    }
    top_hints = typing.get_type_hints(DegradationConfig)
    default = DegradationConfig()
    specs: list[tuple[str, Any, Any]] = []
    for f in fields(DegradationConfig):
        if f.name in _FLAT_NAMES:
            for name, flat in _FLAT_NAMES[f.name].items():
                value = getattr(getattr(default, f.name), name)
                specs.append((flat, hints[f.name][name], field(default=value)))
        else:
            specs.append((f.name, top_hints[f.name], field(default=getattr(default, f.name))))
    return dataclasses.make_dataclass("FlatDegradationConfig", specs, frozen=True)


def _check_p(v: float, key: str) -> None:
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"degradation.{key}: {v} is not a probability; use a value in [0, 1]")


def _check_order(o: OrderConfig, keys: dict[str, str], largest_kernel: int) -> None:
    """Validate one order; messages name the flat keys (``keys``: field -> flat key)."""
    k = keys.get
    if o.blur_kernel_size % 2 == 0 or o.blur_kernel_size < largest_kernel:
        raise ConfigError(
            f"degradation.{k('blur_kernel_size')}: {o.blur_kernel_size} must be odd and >= the "
            f"largest kernel_range size {largest_kernel}"
        )
    for kind in o.kernel_list:
        if kind not in KERNEL_TYPES:
            raise ConfigError(
                f"degradation.{k('kernel_list')}: unknown kernel type {kind!r}; "
                f"choose from {list(KERNEL_TYPES)}"
            )
    if len(o.kernel_list) != len(o.kernel_prob):
        raise ConfigError(
            f"degradation.{k('kernel_prob')}: {len(o.kernel_prob)} probabilities for "
            f"{len(o.kernel_list)} kernel types in {k('kernel_list')}; give one per type"
        )
    for name in ("kernel_prob", "resize_prob"):
        v = getattr(o, name)
        if any(p < 0 for p in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"degradation.{k(name)}: {list(v)} must be non-negative and sum to 1 "
                f"(sums to {sum(v):.6g})"
            )
    for name in ("blur_prob", "sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
        if name in keys:
            _check_p(getattr(o, name), k(name))
    for name in ("blur_sigma", "betag_range", "betap_range", "noise_range", "poisson_scale_range"):
        _check_range(getattr(o, name), k(name), positive=name != "poisson_scale_range")
    _check_range(o.jpeg_range, k("jpeg_range"), positive=True)
    if o.jpeg_range[1] > 100:
        raise ConfigError(
            f"degradation.{k('jpeg_range')}: {list(o.jpeg_range)} must lie in (0, 100]"
        )
    _check_range(o.resize_range, k("resize_range"), positive=True)
    if not o.resize_range[0] <= 1.0 <= o.resize_range[1]:
        raise ConfigError(
            f"degradation.{k('resize_range')}: {list(o.resize_range)} must contain 1 "
            "(down factors are drawn from [lo, 1], up factors from [1, hi])"
        )


def _check_range(v: tuple[float, ...], key: str, *, positive: bool) -> None:
    if len(v) != 2 or v[0] > v[1] or (positive and v[0] <= 0) or v[0] < 0:
        raise ConfigError(
            f"degradation.{key}: {list(v)} must be [lo, hi] with "
            f"{'0 < ' if positive else '0 <= '}lo <= hi"
        )


DegradationConfig.__flat_config__ = _make_flat_config()  # type: ignore[attr-defined]
