"""Perceptual loss on VGG19 pre-ReLU features (spec §2.4, BasicSR ``PerceptualLoss``), or on any
frozen feature extractor with the same interface (``.layers``; ``net(x) -> {layer: feature}``), such
as the offline EfficientNet-Lite0 (``losses.perceptual_net: effnet_lite0``).

loss = perceptual_weight * sum_l w_l * mean|phi_l(output) - phi_l(target)|, with the original layer
weights conv1_2 0.1, conv2_2 0.1, conv3_4 1, conv4_4 1, conv5_4 1, ImageNet input normalisation,
inputs in [0, 1]. The target side is detached. The style term (weight 0 in Real-ESRGAN) is not
implemented.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.effnet_lite import EfficientNetLite0Features
from ..nets.vgg import VGG19Features

DEFAULT_LAYER_WEIGHTS: dict[str, float] = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_4": 1.0,
    "conv4_4": 1.0,
    "conv5_4": 1.0,
}


class PerceptualLoss(nn.Module):
    """``PerceptualLoss(vgg, layer_weights=DEFAULT_LAYER_WEIGHTS, perceptual_weight=1.0)``.

    ``vgg`` (VGG19Features or EfficientNetLite0Features) must extract (at least) the layers named
    in ``layer_weights``; it stays frozen.
    """

    def __init__(
        self,
        vgg: VGG19Features | EfficientNetLite0Features,
        *,
        layer_weights: Mapping[str, float] | None = None,
        perceptual_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.layer_weights = dict(DEFAULT_LAYER_WEIGHTS if layer_weights is None else layer_weights)
        missing = [k for k in self.layer_weights if k not in vgg.layers]
        if missing:
            raise ValueError(f"PerceptualLoss: the VGG does not extract layer(s) {missing}")
        self.vgg = vgg
        self.perceptual_weight = perceptual_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        feats_out = self.vgg(output)
        with torch.no_grad():
            feats_gt = self.vgg(target.detach())
        loss = output.new_zeros(())
        for name, w in self.layer_weights.items():
            loss = loss + w * F.l1_loss(feats_out[name], feats_gt[name], reduction="mean")
        return self.perceptual_weight * loss
