"""``RealESRGANer``: the original ``realesrgan.RealESRGANer``'s constructor and ``enhance``, on
top of :class:`~resrgan.infer.upscaler.Upscaler`, for scripts written against the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelNotFoundError, UsageError, WeightsError
from ..weights.load import load_state_dict
from .upscaler import Upscaler

__all__ = ["RealESRGANer"]


class RealESRGANer:
    """Drop-in for the original ``realesrgan.RealESRGANer`` (same constructor and ``enhance``).

    Differences: weights load safely (no arbitrary unpickling); ``gpu_id=0`` selects ``cuda:0``;
    tiles are blended; the bit depth follows the dtype; OOM retries with smaller tiles; half
    precision that fails (NaN/black) is redone in fp32; URLs are not downloaded (use the model zoo
    / ``resrgan models``).
    """

    def __init__(
        self,
        scale: int,
        model_path: str | Path | list[str | Path] | None,
        dni_weight: list[float] | None = None,
        model: nn.Module | None = None,
        tile: int = 0,
        tile_pad: int = 10,
        pre_pad: int = 10,
        half: bool = False,
        device: str | torch.device | None = None,
        gpu_id: int | None = None,
    ) -> None:
        if model is None:
            raise UsageError("RealESRGANer: model= must be an nn.Module (as in the original)")
        if model_path is not None:
            model.load_state_dict(_legacy_state_dict(model_path, dni_weight), strict=True)
        self.scale = scale
        self.tile_size = tile
        self.tile_pad = tile_pad
        self.pre_pad = pre_pad
        self.half = half
        self._up = Upscaler(
            model,
            device=device,
            gpu_id=gpu_id,
            tile=tile,
            tile_pad=tile_pad,
            pre_pad=pre_pad,
            precision="fp16" if half else "fp32",
        )
        if int(scale) != self._up.scale:
            raise UsageError(
                f"scale: {scale} but the model upscales x{self._up.scale}; "
                f"pass scale={self._up.scale}"
            )
        self.model = self._up.model
        self.device = self._up.device

    def enhance(
        self, img: np.ndarray, outscale: float | None = None, alpha_upsampler: str = "realesrgan"
    ) -> tuple[np.ndarray, str]:
        """See :meth:`Upscaler.enhance`."""
        return self._up.enhance(img, outscale=outscale, alpha_upsampler=alpha_upsampler)


def _params_first(path: Path) -> dict[str, torch.Tensor]:
    """The original's ``dni`` reads the ``params`` key; files without it fall back to the usual
    choice (``params_ema``, then a bare state dict)."""
    try:
        return load_state_dict(path, key="params")
    except WeightsError:  # no 'params' (or an unreadable file: the next call says why)
        return load_state_dict(path)


def _legacy_state_dict(
    model_path: str | Path | list[str | Path], dni_weight: list[float] | None
) -> dict[str, torch.Tensor]:
    def local(p: str | Path) -> Path:
        if str(p).startswith(("http://", "https://")):
            raise ModelNotFoundError(
                f"model_path: {p} is a URL and resrgan does not download here; fetch the file with "
                "`resrgan models` (or by hand) and pass its local path"
            )
        return Path(p)

    if isinstance(model_path, (list, tuple)):
        if dni_weight is None or len(dni_weight) != len(model_path):
            raise UsageError(
                f"dni_weight: {dni_weight} must give one weight per model_path ({len(model_path)})"
            )
        # the original's dni() reads only the 'params' key of every file
        sds = [_params_first(local(p)) for p in model_path]
        return {k: sum(wt * sd[k] for wt, sd in zip(dni_weight, sds, strict=True)) for k in sds[0]}
    return load_state_dict(local(model_path))
