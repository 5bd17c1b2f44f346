"""Training of Real-ESRNet (stage 1) and Real-ESRGAN (stage 2).

Modules: config (TrainConfig), loop (the run, top to bottom), steps (one iteration), ema,
checkpoint (atomic states, resume), distributed (torchrun/DDP, data order), guard (stops a run that
diverges), logging (metrics.jsonl, TensorBoard).

The public function is ``resrgan.train(config, run_dir=..., ...)``
(:func:`resrgan.training.loop.train`, also importable from here); this package is named
``training`` so that the function and the package never share a name.
"""

from __future__ import annotations

from .config import TrainConfig, load_train_config
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]
