"""VGG19 feature extractor for the perceptual loss, without torchvision (spec §2.4).

``VGG19Features`` rebuilds torchvision's ``vgg19().features`` up to conv5_4 (indices 0..34) with the
same state-dict keys (``features.N.weight``/``bias``), so torchvision's ImageNet file
``vgg19-dcbb9e9d.pth`` loads into it. It returns the **pre-ReLU** outputs of the requested conv
layers (the ReLUs are not in place, so nothing needs cloning). The network is frozen and kept in
eval mode.

This module is the network only: finding, downloading and loading its weights (or a random
initialisation) is :func:`resrgan.weights.vgg19.build_vgg19_features`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..errors import WeightsError

# torchvision's "E" configuration; "M" is a 2x2 max-pool.
_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    """Names of the modules of ``features`` in order: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names: list[str] = []
    block, idx = 1, 1
    for v in _CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


VGG19_LAYERS: tuple[str, ...] = tuple(_layer_names())


class VGG19Features(nn.Module):
    """Frozen VGG19 ``features`` truncated after the deepest requested layer.

    ``forward(x)`` takes (B, 3, H, W) RGB in [0, 1] (ImageNet-normalised inside when
    ``use_input_norm``) and returns ``{layer_name: feature}`` for ``layers`` (e.g. ``"conv5_4"``).
    """

    def __init__(
        self,
        *,
        layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"),
        use_input_norm: bool = True,
    ) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {', '.join(VGG19_LAYERS)}")
        self.layers = tuple(layers)
        self.use_input_norm = use_input_norm
        last = max(VGG19_LAYERS.index(name) for name in layers)
        mods: list[nn.Module] = []
        in_ch = 3
        for name in VGG19_LAYERS[: last + 1]:
            if name.startswith("conv"):
                out_ch = _conv_channels()[name]
                mods.append(nn.Conv2d(in_ch, out_ch, 3, 1, 1))
                in_ch = out_ch
            elif name.startswith("relu"):
                mods.append(nn.ReLU(inplace=False))
            else:
                mods.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*mods)
        self._index = {name: VGG19_LAYERS.index(name) for name in layers}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stays in eval mode (frozen feature extractor)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.use_input_norm:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        wanted = {i: name for name, i in self._index.items()}
        out: dict[str, torch.Tensor] = {}
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in wanted:
                out[wanted[i]] = x
                if len(out) == len(wanted):
                    break
        return out

    def load_torchvision(
        self, state_dict: Mapping[str, torch.Tensor], *, source: str = "weights"
    ) -> None:
        """Load a torchvision ``vgg19`` state dict (``features.N.*``; classifier keys are
        ignored)."""
        own = self.state_dict()
        sd = {k: v for k, v in state_dict.items() if k in own}
        missing = [k for k in own if k not in sd]
        if missing:
            raise WeightsError(
                f"{source}: not a torchvision vgg19 state dict (missing {', '.join(missing[:3])})"
            )
        for k, v in sd.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise WeightsError(
                    f"{source}: '{k}' has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}"
                )
        self.load_state_dict(sd, strict=True)


def _conv_channels() -> dict[str, int]:
    out: dict[str, int] = {}
    block, idx = 1, 1
    for v in _CFG:
        if v == "M":
            block, idx = block + 1, 1
        else:
            out[f"conv{block}_{idx}"] = int(v)
            idx += 1
    return out
