"""Safe loading and saving of network weights.

* ``.safetensors`` through safetensors; ``.pth``/``.pt``/``.ckpt`` through
  ``torch.load(weights_only=True)``: nothing is ever unpickled beyond tensors and plain containers.
* Official BasicSR checkpoints hold ``{'params_ema': sd}`` and/or ``{'params': sd}``;
  ``params_ema`` is preferred, then ``params``, then a bare state dict. A ``module.`` prefix (DDP)
  is stripped.
* ``save_weights`` writes files the original code (``params_ema`` key) and spandrel load unchanged.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError
from ..paths import atomic_path

PTH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
PARAM_KEYS = ("params_ema", "params")


def _read_raw(path: Path) -> Any:
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported pickle content"
        raise WeightsError(
            f"{path}: refused to load: the file needs arbitrary code to unpickle ({first[:160]}); "
            "it may be unsafe. If you trust it, convert it once to .safetensors in an isolated "
            "environment, or ask its author for a safetensors/state-dict file"
        ) from None
    except Exception as e:  # the weights-only unpickler raises many types on garbage input
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({msg[:200]})") from None


def select_state_dict(
    obj: Any, *, key: str | None = None, source: str = "weights"
) -> dict[str, torch.Tensor]:
    """Pick the network state dict out of a loaded checkpoint object.

    ``key`` forces a specific top-level key; otherwise ``params_ema`` > ``params`` > the object
    itself.
    """
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source}: expected a state dict, got {type(obj).__name__}")
    if key is not None:
        if key not in obj:
            raise WeightsError(
                f"{source}: no '{key}' entry (has: {', '.join(map(str, list(obj)[:6]))})"
            )
        sd = obj[key]
    else:
        sd = next((obj[k] for k in PARAM_KEYS if k in obj and isinstance(obj[k], Mapping)), obj)
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"{source}: entry '{k}' is not a tensor; not a network state dict")
        out[k[7:] if k.startswith("module.") else k] = v
    return out


def load_state_dict(
    path: str | os.PathLike[str], *, key: str | None = None
) -> dict[str, torch.Tensor]:
    """Load a network state dict from ``.pth`` or ``.safetensors`` safely (see module doc)."""
    p = Path(path)
    return select_state_dict(_read_raw(p), key=key, source=str(p))


def load_model(
    path: str | os.PathLike[str], *, key: str | None = None
) -> tuple[nn.Module, str, dict[str, Any]]:
    """Load weights, detect the architecture, build it and load strictly.

    Returns (net, arch, kwargs).
    """
    from ..nets import build_arch, detect_arch

    sd = load_state_dict(path, key=key)
    try:
        arch, kwargs = detect_arch(sd)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    net = build_arch(arch, **kwargs)
    load_strict(net, sd, source=str(path), target=f"{arch}({kwargs})")
    net.eval()
    return net, arch, kwargs


def load_strict(
    net: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    target: str,
    hint: str = "",
) -> None:
    """``net.load_state_dict(state_dict, strict=True)``, with a mismatch (missing, unexpected or
    differently shaped keys) raised as WeightsError: ``"{source}: weights do not fit {target}:
    {torch's first complaint}[; {hint}]"``."""
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0]) if lines else type(e).__name__
        if len(detail) > 200:
            detail = detail[:197] + "..."
        raise WeightsError(
            f"{source}: weights do not fit {target}: {detail}" + (f"; {hint}" if hint else "")
        ) from None


def save_weights(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a state dict atomically.

    ``.safetensors``: tensors at the top level (what spandrel expects), with string ``metadata``.
    ``.pth``: ``{'params_ema': state_dict}`` as the original RealESRGANer and BasicSR expect.
    """
    p = Path(path)
    sd = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        if p.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(sd, tmp, metadata=dict(metadata or {}))
        else:
            torch.save({"params_ema": sd}, tmp)
    return p


def interpolate_state_dicts(
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    wa: float,
    wb: float,
    *,
    names: tuple[str, str] = ("first", "second"),
) -> dict[str, torch.Tensor]:
    """Network interpolation (DNI): ``wa * a[k] + wb * b[k]`` for every key, computed in float32 and
    cast back to ``a``'s dtype. Keys and shapes must match; ``names`` label the two sources in
    errors.
    """
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        k, src = (only_a[0], names[0]) if only_a else (only_b[0], names[1])
        raise WeightsError(
            f"cannot interpolate {names[0]} and {names[1]}: key '{k}' is only in {src} "
            f"({len(only_a) + len(only_b)} keys differ); both must be the same architecture"
        )
    out: dict[str, torch.Tensor] = {}
    for k, va in a.items():
        vb = b[k]
        if va.shape != vb.shape:
            raise WeightsError(
                f"cannot interpolate {names[0]} and {names[1]}: '{k}' has shape {tuple(va.shape)} "
                f"vs {tuple(vb.shape)}; both must be the same architecture"
            )
        mixed = wa * va.to(torch.float32) + wb * vb.to(torch.float32)
        out[k] = mixed.to(va.dtype) if va.is_floating_point() else va.clone()
    return out
