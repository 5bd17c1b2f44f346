"""VGG19 ImageNet weights for the perceptual loss (spec §2.4): where they come from and the loaded
network.

Weights come from, in order: an explicit path, the torch hub cache
(``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``, by default under ``~/.cache/torch``), or a
download from download.pytorch.org through :func:`resrgan.weights.download.download`, whose sha256
must start with ``dcbb9e9d`` (the hash prefix in the file name, as torch.hub checks it).
``source="random"`` gives a randomly initialised VGG (tests, smoke runs, and the offline perceptual
loss: Liu et al., CVPR 2021, report random-weight perceptual losses on par for super-resolution).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotFoundError
from ..nets.vgg import VGG19Features
from .download import download as fetch
from .download import offline
from .load import load_state_dict

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
VGG19_HASH_PREFIX = "dcbb9e9d"


def hub_checkpoint_path() -> Path:
    """Where torch hub / torchvision cache ``vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def vgg19_if_present() -> Path | None:
    """The ImageNet VGG19 file when the torch hub cache holds it, else None (never downloads):
    ``losses.vgg_weights: if-present`` trains with the real perceptual loss where the file is,
    and without a perceptual loss elsewhere."""
    cached = hub_checkpoint_path()
    return cached if cached.is_file() else None


def resolve_vgg19_weights(source: str = "auto", *, download: bool | None = None) -> Path | None:
    """Find the VGG19 ImageNet weights. ``source``: ``"auto"``, ``"random"`` (returns None) or a
    path.

    ``"auto"`` uses the torch hub cache, else downloads (sha256-checked) unless ``download`` is
    False or ``RESRGAN_OFFLINE=1``. Raises ModelNotFoundError listing the options when nothing is
    available.
    """
    if source == "random":
        return None
    if source != "auto":
        p = Path(source).expanduser()
        if not p.is_file():
            raise ModelNotFoundError(
                f"losses.vgg_weights: {p} does not exist; give the path of {VGG19_FILE}, 'auto' "
                "(torch hub cache, else download) or 'random' (fixed random weights, for offline "
                "training)"
            )
        return p
    cached = hub_checkpoint_path()
    if cached.is_file():
        return cached
    if download is None:
        download = not offline()
    if download:
        return fetch(
            VGG19_URL,
            cached,
            sha256_prefix=VGG19_HASH_PREFIX,
            manual=f"set losses.vgg_weights=/path/to/{VGG19_FILE} (or =random)",
        )
    raise ModelNotFoundError(
        f"the perceptual loss needs the VGG19 ImageNet weights {VGG19_FILE} and none is available "
        f"offline. Options: put the file at {cached} (torch hub cache), set "
        f"losses.vgg_weights=/path/to/{VGG19_FILE}, allow the download (unset "
        f"RESRGAN_OFFLINE) from {VGG19_URL}, or set losses.vgg_weights=random (fixed random "
        "weights: the offline option, see docs/training.md)"
    )


def build_vgg19_features(
    source: str = "auto",
    *,
    layers: Sequence[str] = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"),
    use_input_norm: bool = True,
    generator_seed: int = 0,
    download: bool | None = None,
) -> VGG19Features:
    """A frozen VGG19Features with weights from ``source`` (see resolve_vgg19_weights).

    ``random`` initialises deterministically from ``generator_seed`` (He-normal weights, zero
    biases).
    """
    net = VGG19Features(layers=layers, use_input_norm=use_input_norm)
    path = resolve_vgg19_weights(source, download=download)
    if path is None:
        g = torch.Generator().manual_seed(generator_seed)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                    assert m.bias is not None
                    m.bias.zero_()
        return net
    net.load_torchvision(load_state_dict(path), source=str(path))
    return net
