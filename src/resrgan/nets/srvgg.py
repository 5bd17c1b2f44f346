"""SRVGGNetCompact, the small VGG-style net of realesr-animevideov3 and realesr-general-x4v3.

Class name, arguments and state-dict keys as in the original (spec §2.2): ``body`` is a ModuleList
conv, act, (conv, act) * num_conv, conv; the output is pixel-shuffled and added to the
nearest-upsampled input.

The convolutions start with PyTorch's default initialisation, as upstream. For training from
scratch, :meth:`SRVGGNetCompact.he_init_` gives the He initialisation for the activation's slope:
under the default one the gradient shrinks about 2.4x per layer, so in a 32-conv net the first
layers get gradients near 1e-15, under Adam's epsilon. Its last conv starts at zero (the net
starts as the nearest upsampling): a 32-conv net whose random residual starts large learns to damp
its signal layer by layer until it hands its input through (docs/training.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACT_TYPES = ("prelu", "relu", "lrelu")
# negative slope of each activation at initialisation (PReLU starts at 0.25)
_SLOPES = {"prelu": 0.25, "relu": 0.0, "lrelu": 0.1}


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "lrelu":
        return nn.LeakyReLU(negative_slope=_SLOPES["lrelu"], inplace=True)
    raise ValueError(f"act_type must be one of {ACT_TYPES}, got {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4,
    act_type='prelu')."""

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.upscale = upscale
        self.scale = upscale
        layers: list[nn.Module] = [
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1),
            _activation(act_type, num_feat),
        ]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)
        self.act_type = act_type

    @torch.no_grad()
    def he_init_(self, last_scale: float = 0.0) -> SRVGGNetCompact:
        """He-normal weights (fan-in, the activation's slope), zero biases; the last conv's weights
        are scaled by ``last_scale`` (0: the net starts as its nearest-upsampled input)."""
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for conv in convs:
            nn.init.kaiming_normal_(
                conv.weight, a=_SLOPES[self.act_type], mode="fan_in", nonlinearity="leaky_relu"
            )
            nn.init.zeros_(conv.bias)
        convs[-1].weight.mul_(last_scale)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
