"""Inference: tiling (pure), the Upscaler (padding, precision, alpha, outscale) and the batch
runner.

Importing this package is cheap: ``Upscaler`` and ``RealESRGANer`` load torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RealESRGANer", "Upscaler"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module(f"{__name__}.upscaler"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
