"""Network architectures and architecture detection from state dicts.

``ARCHS`` maps an architecture name to its class; ``detect_arch(state_dict)`` returns the name and
the
constructor keyword arguments that reproduce the state dict's keys and shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError
from .rrdbnet import RRDBNet
from .srvgg import SRVGGNetCompact
from .unet_disc import UNetDiscriminatorSN

ARCHS: dict[str, type[nn.Module]] = {
    "RRDBNet": RRDBNet,
    "SRVGGNetCompact": SRVGGNetCompact,
    "UNetDiscriminatorSN": UNetDiscriminatorSN,
}

__all__ = ["ARCHS", "RRDBNet", "SRVGGNetCompact", "build_arch", "detect_arch"]


def _count_indices(keys: list[str], pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in keys if (m := rx.match(k))}
    return max(found) + 1 if found else 0


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """Recover (arch name, constructor kwargs) from a state dict's keys and shapes.

    Raises WeightsError when the keys match no known architecture.
    """
    keys = list(state_dict.keys())
    if "conv_first.weight" in state_dict and "body.0.rdb1.conv1.weight" in state_dict:
        first = state_dict["conv_first.weight"]
        num_feat = int(first.shape[0])
        in_ch = int(first.shape[1])
        out_ch = int(state_dict["conv_last.weight"].shape[0])
        num_grow_ch = int(state_dict["body.0.rdb1.conv1.weight"].shape[0])
        num_block = _count_indices(keys, r"body\.(\d+)\.rdb1\.conv1\.weight$")
        # x2/x1 put pixel-unshuffle (2 or 4) in front: 4x or 16x the image channels.
        if in_ch == 4 * out_ch:
            scale, num_in_ch = 2, in_ch // 4
        elif in_ch == 16 * out_ch:
            scale, num_in_ch = 1, in_ch // 16
        else:
            scale, num_in_ch = 4, in_ch
        return "RRDBNet", dict(
            num_in_ch=num_in_ch,
            num_out_ch=out_ch,
            scale=scale,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
        )
    if "body.0.weight" in state_dict and state_dict["body.0.weight"].ndim == 4:
        first = state_dict["body.0.weight"]
        num_feat, num_in_ch = int(first.shape[0]), int(first.shape[1])
        conv_idx = sorted(
            int(m.group(1))
            for k in keys
            if (m := re.match(r"body\.(\d+)\.weight$", k)) and state_dict[k].ndim == 4
        )
        has_prelu = "body.1.weight" in state_dict and state_dict["body.1.weight"].ndim == 1
        # With PReLU every conv is followed by a parametrised activation: convs sit at even indices.
        # Without it the activation has no keys but still occupies an index: the same layout.
        last = conv_idx[-1]
        num_conv = last // 2 - 1
        last_out = int(state_dict[f"body.{last}.weight"].shape[0])
        num_out_ch = num_in_ch
        upscale = int(round((last_out / num_out_ch) ** 0.5))
        if upscale * upscale * num_out_ch != last_out:
            raise WeightsError(
                f"SRVGGNetCompact: last conv has {last_out} output channels, "
                f"not num_out_ch * upscale^2 for num_out_ch={num_out_ch}"
            )
        return "SRVGGNetCompact", dict(
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            num_conv=num_conv,
            upscale=upscale,
            act_type="prelu" if has_prelu else "relu",
        )
    sample = ", ".join(keys[:4])
    raise WeightsError(
        f"state dict matches no known architecture (RRDBNet, SRVGGNetCompact); first keys: {sample}"
    )


def build_arch(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate architecture ``name`` from ``ARCHS``."""
    try:
        cls = ARCHS[name]
    except KeyError:
        raise WeightsError(f"unknown architecture '{name}'; known: {', '.join(ARCHS)}") from None
    return cls(**kwargs)
