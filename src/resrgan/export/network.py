"""What an exporter writes: the network to export, resolved from a name, a file or a module, as a
plain copy that computes the upstream function with export-friendly operators.

* :func:`resolve` takes a zoo name (``RealESRGAN_x4plus``), a weights file (``.pth``,
  ``.safetensors``, a training run's ``model.safetensors``) or an ``nn.Module`` and returns an
  :class:`ExportSource` through the public loaders (:func:`resrgan.weights.zoo.load_zoo_model`,
  :func:`resrgan.weights.load.load_model`, :func:`resrgan.nets.detect_arch`).
* :func:`plain_network` returns a copy of the network whose forward is the upstream computation
  and nothing else: RRDBNet's inference fast path (Winograd dense blocks, buffers written in place,
  the tail in row bands) is never traced, and the x2/x1 pixel-unshuffle is a reshape/permute
  (``F.pixel_unshuffle`` has no ONNX operator at opsets below 18 in the TorchScript exporter and
  breaks other exporters, chaiNNer #1810).
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError, WeightsError

log = logging.getLogger(__name__)

GENERATORS = ("RRDBNet", "SRVGGNetCompact")


@dataclass(frozen=True)
class ExportSource:
    """A network ready to export: ``net`` in eval mode on the CPU in fp32; ``name`` for file names
    and metadata; ``arch``/``kwargs`` as :func:`resrgan.nets.detect_arch` gives them (``arch`` is
    the class name and ``kwargs`` empty for other modules); ``ncnn_name``: the file stem of the
    official ncnn files of a zoo model (``realesrgan-x4plus``), else None."""

    net: nn.Module
    name: str
    arch: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    scale: int = 4
    ncnn_name: str | None = None


def resolve(
    model: str | os.PathLike[str] | nn.Module | ExportSource, *, name: str | None = None
) -> ExportSource:
    """The network behind ``model`` (see module doc; an ExportSource is returned as it is);
    ``name`` overrides the derived name.

    Raises ModelNotFoundError for an unknown zoo name, WeightsError for an unreadable file and
    UsageError for a network that is not an upscaler (a discriminator).
    """
    if isinstance(model, ExportSource):
        src = model
    elif isinstance(model, nn.Module):
        src = _from_module(model)
    else:
        path = Path(model)
        if path.is_file():
            src = _from_file(path)
        elif looks_like_a_file(str(model)):
            raise WeightsError(f"{model}: no such weights file")
        else:  # a zoo name; "RealESRGAN_x4plus.pth" too, as the original CLI takes it
            src = _from_zoo(str(model))
    if name is not None:
        src = ExportSource(src.net, name, src.arch, src.kwargs, src.scale, src.ncnn_name)
    return src


def looks_like_a_file(model: str) -> bool:
    """A path (has a folder) or a weights file name that is not a zoo name with a suffix."""
    from ..weights.zoo import MODELS

    if "/" in model or "\\" in model:
        return True
    suffix = Path(model).suffix.lower()
    weights = suffix in (".pth", ".pt", ".safetensors", ".ckpt", ".bin")
    return weights and model.split(".", 1)[0] not in MODELS


def _from_zoo(model: str) -> ExportSource:
    from ..weights.zoo import get_model_info, load_zoo_model

    info = get_model_info(model)
    if info.arch not in GENERATORS:
        raise UsageError(
            f"{info.name}: is a {info.arch} (a training discriminator), not an upscaling network; "
            "see `resrgan models`"
        )
    net, info = load_zoo_model(info.name)
    return ExportSource(net, info.name, info.arch, dict(info.kwargs), int(info.scale), info.ncnn)


def _from_file(path: Path) -> ExportSource:
    from ..weights.load import load_model

    net, arch, kwargs = load_model(path)
    scale = int(kwargs.get("scale", kwargs.get("upscale", 1)))
    return ExportSource(net, _file_name(path), arch, dict(kwargs), scale)


def _file_name(path: Path) -> str:
    """A training run's ``model.safetensors`` records its run name; other files go by their stem."""
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception:  # noqa: BLE001 - load_model has already read the file; names are cosmetic
            meta = {}
        if meta.get("name"):
            return str(meta["name"])
    return path.stem


def _from_module(net: nn.Module) -> ExportSource:
    from ..nets import detect_arch

    arch = type(net).__name__
    kwargs: dict[str, Any] = {}
    if arch in GENERATORS:
        arch, kwargs = detect_arch(net.state_dict())
        scale = int(kwargs.get("scale", kwargs.get("upscale", 1)))
        if arch == "SRVGGNetCompact" and isinstance(net.body[1], nn.LeakyReLU):
            kwargs["act_type"] = "lrelu"  # no weights: a state dict cannot tell it from ReLU
    else:
        scale = _probe_scale(net)
    return ExportSource(net, arch, arch, kwargs, scale)


def _probe_scale(net: nn.Module) -> int:
    p = next(iter(net.parameters()), None)
    x = torch.zeros(1, 3, 16, 16, dtype=p.dtype if p is not None else torch.float32)
    with torch.no_grad():
        y = net.eval()(x)
    s = y.shape[-1] // 16
    if y.ndim != 4 or s < 1 or tuple(y.shape[-2:]) != (16 * s, 16 * s):
        raise UsageError(
            f"model: {type(net).__name__} maps a 16x16 image to {tuple(y.shape)}; "
            "not an integer upscaler"
        )
    return int(s)


# --------------------------------------------------------------------------------------------------
# plain copies for tracing


def pixel_unshuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """``F.pixel_unshuffle(x, r)`` as reshape/permute (the same channel order: ``c * r * r + i * r
    + j`` for input pixel ``(h * r + i, w * r + j)``)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // r, r, w // r, r)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(n, c * r * r, h // r, w // r)


class PlainRRDBNet(nn.Module):
    """RRDBNet's upstream forward (spec §2.1) over the modules of ``net``, with the pixel-unshuffle
    as reshape/permute. The RRDB blocks are called as modules (their forward is the plain one)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.unshuffle = {4: 1, 2: 2, 1: 4}[int(net.scale)]  # type: ignore[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        if self.unshuffle > 1:
            x = pixel_unshuffle(x, self.unshuffle)
        feat = n.conv_first(x)
        feat = feat + n.conv_body(n.body(feat))
        feat = F.leaky_relu(n.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(n.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return n.conv_last(F.leaky_relu(n.conv_hr(feat), 0.2))


class PlainSRVGGNetCompact(nn.Module):
    """SRVGGNetCompact's upstream forward (spec §2.2) over the modules of ``net``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        out = x
        for layer in n.body:
            out = layer(out)
        out = F.pixel_shuffle(out, n.upscale)
        return out + F.interpolate(x, scale_factor=n.upscale, mode="nearest")


def plain_network(src: ExportSource, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A detached copy of ``src.net`` in ``dtype`` whose forward is the upstream computation (see
    module doc); the caller's module is left as it was."""
    if src.arch not in GENERATORS:
        log.info("%s: not a known architecture; exported through its own forward", src.arch)
        net = copy.deepcopy(src.net).to("cpu", dtype).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net
    from ..nets import build_arch

    with torch.device("meta"):  # no init cost: the weights are assigned below
        net = build_arch(src.arch, **src.kwargs)
    sd = {k: v.detach().to("cpu", dtype, copy=True) for k, v in src.net.state_dict().items()}
    net.load_state_dict(sd, strict=True, assign=True)
    net.eval().requires_grad_(False)
    plain = PlainRRDBNet(net) if src.arch == "RRDBNet" else PlainSRVGGNetCompact(net)
    return plain.eval()
