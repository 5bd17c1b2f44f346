"""Training of Real-ESRNet (stage 1) and Real-ESRGAN (stage 2): ``train(config, run_dir=..., ...)``.

Modules: config (TrainConfig), loop (the run, top to bottom), steps (one iteration), ema,
checkpoint (atomic states, resume), distributed (torchrun/DDP, data order), logging (metrics.jsonl,
TensorBoard).

``resrgan.train`` is both this package and the public function ``resrgan.train(...)``: which object
the attribute holds depends on import order, so the package itself is callable and forwards to
:func:`resrgan.train.loop.train`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .config import TrainConfig, load_train_config
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
