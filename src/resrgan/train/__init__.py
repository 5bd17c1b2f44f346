"""Training of Real-ESRNet (stage 1) and Real-ESRGAN (stage 2): ``train(config, run_dir=..., ...)``.

Modules: config (TrainConfig), loop (the run, top to bottom), steps (one iteration), ema, checkpoint
(atomic states, resume), distributed (torchrun/DDP, data order), logging (metrics.jsonl,
TensorBoard).
"""

from __future__ import annotations

from .config import TrainConfig, load_train_config
from .loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]
