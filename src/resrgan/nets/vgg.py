"""VGG19 feature extractor for the perceptual loss, without torchvision (spec §2.4).

``VGG19Features`` rebuilds torchvision's ``vgg19().features`` up to conv5_4 (indices 0..34) with the
same state-dict keys (``features.N.weight``/``bias``), so torchvision's ImageNet file
``vgg19-dcbb9e9d.pth`` loads into it. It returns the **pre-ReLU** outputs of the requested conv
layers (the ReLUs are not in place, so nothing needs cloning). The network is frozen and kept in
eval mode.

Weights come from, in order: an explicit path, the torch hub cache
(``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``, by default under ``~/.cache/torch``), or a
download from download.pytorch.org whose sha256 must start with ``dcbb9e9d`` (the hash prefix in the
file name, as torch.hub checks it). ``source="random"`` gives a randomly initialised VGG (tests,
smoke runs, and the offline perceptual loss: Liu et al., CVPR 2021, report random-weight
perceptual losses on par for super-resolution).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotFoundError, WeightsError

log = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
VGG19_HASH_PREFIX = "dcbb9e9d"

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


def hub_checkpoint_path() -> Path:
    """Where torch hub / torchvision cache ``vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def download_checked(url: str, dest: Path, *, sha256_prefix: str) -> Path:
    """Download ``url`` to ``dest`` atomically; the file's sha256 must start with
    ``sha256_prefix``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                fh.write(chunk)
        got = digest.hexdigest()
        if not got.startswith(sha256_prefix):
            raise WeightsError(
                f"{url}: sha256 {got[:16]}... does not start with {sha256_prefix}; the download is "
                "corrupt or not the expected file. Delete it and retry, or pass a local file"
            )
        os.replace(tmp, dest)
    except OSError as e:
        raise ModelNotFoundError(f"{url}: download failed ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


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
        from ..weights.download import offline

        download = not offline()
    if download:
        log.info("downloading %s to %s", VGG19_URL, cached)
        return download_checked(VGG19_URL, cached, sha256_prefix=VGG19_HASH_PREFIX)
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
    from ..weights.load import load_state_dict

    net.load_torchvision(load_state_dict(path), source=str(path))
    return net
