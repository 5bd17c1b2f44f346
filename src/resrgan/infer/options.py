"""Checks of the upscaling options, in one place for the Python API and the command line.

Each check raises :class:`~resrgan.errors.UsageError` with a message that starts with the option's
name as the caller spells it: ``labels`` maps a parameter name (``"tile_pad"``) to that spelling
(the CLI passes ``"--tile_pad"``); by default the parameter name itself is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import UsageError

__all__ = ["ALPHA_UPSAMPLERS", "MIN_TILE", "check_options", "check_outscale"]

MIN_TILE = 32  # the OOM retry halves the tile down to this, then gives up
_SMALLEST_TILE = 8  # smaller explicit tiles are refused
ALPHA_UPSAMPLERS = ("model", "bicubic")


def check_options(
    *,
    tile: int | str | None = None,
    tile_pad: int | None = None,
    pre_pad: int | None = None,
    tile_overlap: int | None = None,
    alpha_upsampler: str | None = None,
    denoise_strength: float | None = None,
    gpu_id: int | None = None,
    outscale: float | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Check every option given (``None``: not given, not checked)."""

    def label(name: str) -> str:
        return (labels or {}).get(name, name)

    if tile is not None:
        _check_tile(tile, label("tile"))
    counts = {"tile_pad": tile_pad, "pre_pad": pre_pad, "tile_overlap": tile_overlap}
    for name, value in counts.items():
        if value is not None:
            _check_count(value, label(name))
    if alpha_upsampler is not None and alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise UsageError(
            f"{label('alpha_upsampler')}: '{alpha_upsampler}' is not 'model' "
            "(second network pass) or 'bicubic'"
        )
    if denoise_strength is not None and not (
        _is_number(denoise_strength) and 0.0 <= denoise_strength <= 1.0
    ):
        raise UsageError(
            f"{label('denoise_strength')}: {denoise_strength} is outside [0, 1]; "
            "0 keeps noise, 1 is the strongest denoising"
        )
    if gpu_id is not None:
        _check_count(gpu_id, label("gpu_id"), use="0, 1, ...")
    if outscale is not None:
        check_outscale(outscale, label=label("outscale"))


def check_outscale(outscale: float, *, label: str = "outscale") -> None:
    """A final scale must be a positive finite number."""
    if not (_is_number(outscale) and outscale > 0):
        raise UsageError(f"{label}: {outscale!r} is not a positive number; use e.g. 2 or 3.5")


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_tile(tile: int | str, label: str) -> None:
    if not (tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 0)):
        raise UsageError(
            f"{label}: {tile!r} is not a size; use 0 (no tiling), a positive int or 'auto'"
        )
    if isinstance(tile, int) and 0 < tile < _SMALLEST_TILE:
        raise UsageError(
            f"{label}: {tile} is too small; use at least {_SMALLEST_TILE}, better {MIN_TILE} or "
            "more (or 0 for no tiling)"
        )


def _check_count(value: int, label: str, *, use: str = "0 or more") -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{label}: {value!r} is not a whole number; use {use}")
    if value < 0:
        raise UsageError(f"{label}: {value} is negative; use {use}")
