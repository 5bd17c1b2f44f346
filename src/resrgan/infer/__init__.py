"""Inference: model resolution (resolve), the engine (engine: tensors, precision, tiles, retries;
fastrrdb/winograd: RRDBNet's fast path; tiling: pure plans), the Upscaler front (upscaler: arrays,
PIL, alpha, gray, outscale), RealESRGANer (legacy) and the batch runner.

Importing this package is cheap: ``Upscaler`` and ``RealESRGANer`` load torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RealESRGANer", "Upscaler"]
_MODULES = {"RealESRGANer": "legacy", "Upscaler": "upscaler"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
