"""Second-order degradation synthesis (spec §1): sample parameters, then apply pure batched ops.

    >>> from resrgan.degradation import DegradationConfig, sample_degradation, make_training_batch
    >>> cfg = DegradationConfig()
    >>> params = sample_degradation(12, cfg, generator=torch.Generator().manual_seed(0))
    >>> batch = make_training_batch(gt, params, cfg)   # gt: (12, 3, 400, 400) in [0, 1]

The package is ``resrgan.degradation``; ``resrgan.degrade`` is the public function
(:func:`resrgan.degradation.pipeline.degrade`). Submodules import torch; this package imports them
lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "DegradationConfig": "config",
    "OrderConfig": "config",
    "FinalConfig": "config",
    "DegradationParams": "params",
    "KernelBatch": "params",
    "StageParams": "params",
    "sample_degradation": "params",
    "degrade": "pipeline",
    "degradation_order": "pipeline",
    "final_stage": "pipeline",
    "make_training_batch": "pipeline",
    "TrainingBatch": "pipeline",
    "SampleThreads": "executor",
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
        raise AttributeError(f"module 'resrgan.degradation' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
