"""A model argument (zoo name, weights file, or a ready ``nn.Module``) -> the network to run.

* a zoo name (``"RealESRGAN_x4plus"``; anything after the first ``.`` is dropped, as the original
  CLI does) loads through :mod:`resrgan.weights.zoo`;
* a path to a ``.pth``/``.safetensors`` file, or ``model_path=``, loads safely with the
  architecture detected from the weights (:func:`resrgan.weights.load.load_model`);
* an ``nn.Module`` is used as it is; with ``model_path=`` the weights are loaded into it strictly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from ..errors import ModelNotFoundError, UsageError

__all__ = ["Resolved", "resolve_model"]


class Resolved(NamedTuple):
    net: nn.Module
    name: str  # for messages: the zoo name, the file's stem or the module's class
    scale: int | None  # None: the module does not say; the engine probes it


def resolve_model(
    model: str | nn.Module, model_path: str | Path | None = None, *, denoise_strength: float = 0.5
) -> Resolved:
    """Resolve ``model`` (see the module docstring). ``denoise_strength`` applies to
    realesr-general-x4v3 only."""
    from ..weights.load import load_model

    if isinstance(model, nn.Module):
        if model_path is not None:
            from ..weights.load import load_state_dict, load_strict

            sd = load_state_dict(model_path)
            load_strict(model, sd, source=str(model_path), target="the given model")
        return Resolved(model, type(model).__name__, module_scale(model))
    if not isinstance(model, str):
        raise UsageError(f"model: {model!r} is not a model name, a weights path or an nn.Module")
    path = Path(model_path) if model_path is not None else None
    if path is None and (
        Path(model).is_file()
        or (Path(model).suffix in (".pth", ".safetensors") and not _is_zoo_name(model))
    ):
        path = Path(model)
    if path is not None:
        net, _arch, kwargs = load_model(path)
        scale = kwargs.get("scale", kwargs.get("upscale"))
        return Resolved(net, path.stem, int(scale) if scale is not None else None)
    try:
        from ..weights.zoo import load_zoo_model
    except ImportError as e:
        raise ModelNotFoundError(
            f"model: '{model}' needs the model zoo (resrgan.weights.zoo), "
            f"which is unavailable ({e}); "
            "pass model_path= or a weights file instead"
        ) from None
    name = model.split(".")[0]
    kw: dict[str, Any] = {}
    if name == "realesr-general-x4v3":
        kw["denoise_strength"] = denoise_strength
    net, info = load_zoo_model(name, **kw)
    return Resolved(net, name, int(info.scale))


def module_scale(model: object) -> int | None:
    """The ``scale`` (or ``upscale``) an object declares, if it is a positive int."""
    for attr in ("scale", "upscale"):
        v = getattr(model, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return v
    return None


def _is_zoo_name(model: str) -> bool:
    """``"RealESRGAN_x4plus.pth"`` is the zoo model (as the original CLI) unless a file exists."""
    try:
        from ..weights.zoo import MODELS
    except ImportError:
        return False
    return "/" not in model and "\\" not in model and model.split(".")[0] in MODELS
