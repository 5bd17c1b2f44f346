"""resrgan: Real-ESRGAN re-implemented.

Importing this package is cheap and has no side effects: the public names below are loaded on
first use.

    >>> from resrgan import Upscaler
    >>> Upscaler("RealESRGAN_x4plus").upscale("photo.jpg")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ResrganError": "resrgan.errors",
    "RRDBNet": "resrgan.nets",
    "SRVGGNetCompact": "resrgan.nets",
    "detect_arch": "resrgan.nets",
    "load_model": "resrgan.weights.load",
    "load_state_dict": "resrgan.weights.load",
    "save_weights": "resrgan.weights.load",
    "Upscaler": "resrgan.infer.upscaler",
    "RealESRGANer": "resrgan.infer.legacy",
    "degrade": "resrgan.degradation.pipeline",
    "train": "resrgan.training.loop",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'resrgan' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
