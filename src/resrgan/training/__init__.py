"""Training of Real-ESRNet (stage 1) and Real-ESRGAN (stage 2).

Modules: config (TrainConfig), loop (the run, top to bottom), steps (one iteration), ema,
checkpoint (atomic states, resume), distributed (torchrun/DDP, data order), guard (stops a run that
diverges), logging (metrics.jsonl, TensorBoard).

The public function is ``resrgan.train(config, run_dir=..., ...)``
(:func:`resrgan.training.loop.train`, also importable from here); this package is named
``training`` so that the function and the package never share a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import TrainConfig, load_train_config
    from .loop import TrainResult, train

# loaded on first use, so that a light submodule (``training.logging``, read by ``resrgan plot``)
# does not pull in torch and the whole trainer
_LAZY = {
    "TrainConfig": "config",
    "load_train_config": "config",
    "TrainResult": "loop",
    "train": "loop",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]
