"""Exponential moving average of the generator (spec §2.4): ema_p <- d * ema_p + (1 - d) * p.

Only **named parameters** are averaged, as in BasicSR ``model_ema``; buffers are left alone (RRDBNet
and SRVGGNetCompact have none). ``decay=0`` copies the parameters, ``decay=1`` leaves the EMA
unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` in eval mode, to be updated with ``ema_update``."""
    ema = copy.deepcopy(unwrap(model))
    ema.requires_grad_(False)
    ema.eval()
    return ema


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def ema_decay_at(step: int, decay: float, *, warmup: bool) -> float:
    """The decay used after iteration ``step`` (1-based): ``decay``, or with ``warmup`` the
    smaller ``(1 + step) / (10 + step)`` while that is below it (0.18 at step 1, 0.9 at step 80,
    0.999 from step 8,990)."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """In place: every parameter of ``ema`` becomes ``decay * ema + (1 - decay) * model``."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"ema_decay must be in [0, 1], got {decay}")
    if decay == 1.0:
        return
    src = dict(unwrap(model).named_parameters())
    pairs = [(p_ema, src[name].detach().to(p_ema.dtype)) for name, p_ema in ema.named_parameters()]
    if not pairs:
        return
    ema_params, params = (list(t) for t in zip(*pairs, strict=True))
    if decay == 0.0:
        torch._foreach_copy_(ema_params, params)
    else:  # the same two operations as BasicSR, batched over tensors
        torch._foreach_mul_(ema_params, decay)
        torch._foreach_add_(ema_params, params, alpha=1.0 - decay)
