"""Export networks for other runtimes: ONNX (onnxruntime, TensorRT, DirectML, chaiNNer, ComfyUI) and
ncnn ``.param``/``.bin`` (Real-ESRGAN-ncnn-vulkan, upscayl).

    >>> from resrgan.export import export_onnx, export_ncnn
    >>> export_onnx("RealESRGAN_x4plus", "x4.onnx")                    # dynamic batch/H/W, opset 17
    >>> export_ncnn("realesr-animevideov3", "models/")   # models/realesr-animevideov3-x4.param/.bin

``model`` is a zoo name, a weights file (``.pth``, ``.safetensors``, a training run's
``model.safetensors``) or an ``nn.Module``. Importing this package is cheap: torch loads on first
use of a function.
"""

from __future__ import annotations

import importlib
from typing import Any

_FUNCTIONS = {"export_onnx": "onnx", "export_ncnn": "ncnn"}

__all__ = sorted(_FUNCTIONS)


def __getattr__(name: str) -> Any:
    module = _FUNCTIONS.get(name)
    if module is None:
        raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
