"""Second-order degradation synthesis (spec §1): sample parameters, then apply pure batched ops.

    >>> from resrgan.degrade import DegradationConfig, sample_degradation, make_training_batch
    >>> cfg = DegradationConfig()
    >>> params = sample_degradation(12, cfg, generator=torch.Generator().manual_seed(0))
    >>> batch = make_training_batch(gt, params, cfg)   # gt: (12, 3, 400, 400) in [0, 1]

Submodules import torch; this package imports them lazily.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS: dict[str, str] = {
    "DegradationConfig": "config",
    "OrderConfig": "config",
    "FinalConfig": "config",
    "SampleThreads": "executor",
    "DegradationParams": "params",
    "KernelBatch": "params",
    "StageParams": "params",
    "sample_degradation": "params",
    "degrade": "pipeline",
    "make_training_batch": "pipeline",
    "TrainingBatch": "pipeline",
    "PairPool": "pool",
    "filter2d": "filter",
    "make_kernels": "kernels",
    "add_gaussian_noise": "noise",
    "add_poisson_noise": "noise",
    "jpeg_compress": "jpeg",
    "usm_sharpen": "sharpen",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'resrgan.degrade' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


class _CallableModule(types.ModuleType):
    """``resrgan.degrade`` is both this package and the public function ``degrade``.

    Once any submodule is imported, Python binds the attribute ``resrgan.degrade`` to this package,
    shadowing the lazily exported function of ``resrgan/__init__.py``. Making the package callable
    (forwarding to :func:`resrgan.degrade.pipeline.degrade`) keeps ``resrgan.degrade(gt, params,
    cfg)`` working either way.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .pipeline import degrade

        return degrade(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
