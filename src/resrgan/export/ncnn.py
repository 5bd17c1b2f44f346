"""ncnn export: a ``.param`` + ``.bin`` pair in the layout of the official Real-ESRGAN ncnn models,
so that Real-ESRGAN-ncnn-vulkan and upscayl load it like theirs.

Layout (the same layer types, parameters and wiring as ``realesrgan-x4plus.param`` and
``realesr-animevideov3-x4.param``; :mod:`resrgan.weights.ncnn` describes the format):

* ``Input`` writing the blob ``data``; the last layer writes ``output``; a blob read by several
  layers goes through a ``Split`` right after its producer;
* RRDBNet: ``Convolution`` 3x3 (``0=out 1=3 4=1 5=1 6=size``, leaky ReLU 0.2 fused as ``9=2
  -23310=1,2.000000e-01``), ``Concat`` of the dense features in order, ``Eltwise`` sums with
  coefficients (0.2, 1.0) for the residuals, ``BinaryOp`` add, nearest ``Interp`` x2 for the
  upsampling; x2/x1 models start with ``Reorg 0=2``/``0=4`` (ncnn's pixel-unshuffle, same channel
  order as PyTorch's);
* SRVGGNetCompact: convolutions with ``PReLU`` layers (ReLU fused as ``9=1``, leaky 0.1 as ``9=2``),
  ``PixelShuffle``, nearest ``Interp`` of the input, ``BinaryOp`` add;
* ``.bin``: per Convolution a 4-byte storage tag and the weights (fp16: tag ``0x01306B47``, padded
  to 4 bytes, as the official files; fp32: tag 0), then the fp32 biases; PReLU slopes raw fp32.

File stem: a zoo model with official ncnn files takes their stem (``realesrgan-x4plus``,
``realesrgan-x4plus-anime``, ``realesr-animevideov3-x4``: what ``realesrgan-ncnn-vulkan -n NAME``
looks for); other models their name. With fp16 storage the weights are rounded to fp16 (the zoo
models converted from the official ncnn files already are fp16 values: lossless, and the .bin is
byte for byte the official one).
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from .network import GENERATORS, ExportSource, resolve
from .onnx import _write_atomic

log = logging.getLogger(__name__)

MAGIC = 7767517
TAG_FP16 = 0x01306B47
INPUT_BLOB = "data"
OUTPUT_BLOB = "output"


@dataclass
class Layer:
    """One ncnn layer: ``params`` as written (``key=value`` tokens in order), ``weights`` the bytes
    it owns in the .bin."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: list[str] = field(default_factory=list)
    weights: list[bytes] = field(default_factory=list)


def export_ncnn(
    model: str | os.PathLike[str] | nn.Module | ExportSource,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    fp16: bool = True,
) -> tuple[Path, Path]:
    """Write ``model`` as ``OUT_DIR/NAME.param`` and ``OUT_DIR/NAME.bin`` (see module doc).

    ``fp16``: store the convolution weights in fp16 as the official files do (half the size; GPUs
    run ncnn in fp16 anyway); False stores fp32 (an exact copy of the weights). Returns the two
    paths.
    """
    src = resolve(model)
    stem = name or src.ncnn_name or src.name
    if not stem or any(c in stem for c in "/\\ \t\n") or stem in (".", ".."):
        raise UsageError(f"name: {stem!r} is not a usable file stem")
    param_text, bin_data = ncnn_files(src, fp16=fp16)
    d = Path(out_dir)
    param, binf = d / f"{stem}.param", d / f"{stem}.bin"
    _write_atomic(binf, bin_data)
    _write_atomic(param, param_text.encode("utf-8"))
    log.info("%s, %s: %s x%d (%s weights)", param, binf.name, src.name, src.scale,
             "fp16" if fp16 else "fp32")  # fmt: skip
    return param, binf


def ncnn_files(src: ExportSource, *, fp16: bool = True) -> tuple[str, bytes]:
    """The ``.param`` text and ``.bin`` bytes of ``src``."""
    if src.arch not in GENERATORS:
        raise UsageError(
            f"{src.name}: ncnn export supports {' and '.join(GENERATORS)}, not {src.arch}"
        )
    g = _Graph(fp16=fp16)
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in src.net.state_dict().items()}
    if src.arch == "RRDBNet":
        _rrdbnet(g, sd, src.kwargs)
    else:
        _srvgg(g, sd, src.kwargs)
    return g.files()


class _Graph:
    def __init__(self, *, fp16: bool) -> None:
        self.fp16 = fp16
        self.layers: list[Layer] = [Layer("Input", "input", [], [INPUT_BLOB])]

    def add(self, layer: Layer) -> str:
        self.layers.append(layer)
        return layer.tops[0]

    def conv(
        self, src: str, key: str, sd: dict[str, torch.Tensor], *, leaky: float | None = None,
        relu: bool = False, top: str | None = None,
    ) -> str:  # fmt: skip
        w, b = sd[f"{key}.weight"], sd[f"{key}.bias"]
        out, _, kh, kw = w.shape
        if (kh, kw) != (3, 3):
            raise UsageError(f"{key}: a {kh}x{kw} convolution; the exporter writes 3x3 ones")
        params = [f"0={out}", "1=3", "4=1", "5=1", f"6={w.numel()}"]
        if relu:
            params.append("9=1")
        elif leaky is not None:
            params += ["9=2", f"-23310=1,{leaky:e}"]
        return self.add(
            Layer("Convolution", key, [src], [top or key], params, [self._weight(w, key), _f32(b)])
        )

    def _weight(self, w: torch.Tensor, key: str) -> bytes:
        flat = w.numpy().reshape(-1)
        if not self.fp16:
            return struct.pack("<I", 0) + flat.astype("<f4").tobytes()
        with np.errstate(over="ignore"):  # overflow is checked just below
            half = flat.astype("<f2")
        if not np.isfinite(half).all():
            raise UsageError(
                f"{key}: weights overflow fp16 (largest |w| = {np.abs(flat).max():.3g}); "
                "export with fp16 storage off (--no-fp16)"
            )
        raw = half.tobytes()
        return struct.pack("<I", TAG_FP16) + raw + b"\0" * (-len(raw) % 4)

    def files(self) -> tuple[str, bytes]:
        layers = _with_splits(self.layers)
        if layers[-1].tops != [OUTPUT_BLOB]:
            raise AssertionError("the last layer must write the output blob")
        blobs = {t for la in layers for t in la.tops}
        lines = [str(MAGIC), f"{len(layers)} {len(blobs)}"]
        for la in layers:
            head = f"{la.type:<24} {la.name:<24} {len(la.bottoms)} {len(la.tops)}"
            lines.append(" ".join([head, *la.bottoms, *la.tops, *la.params]))
        return "\n".join(lines) + "\n", b"".join(b for la in layers for b in la.weights)


def _with_splits(layers: list[Layer]) -> list[Layer]:
    """Give every blob read by k > 1 layers a ``Split`` into k blobs right after its producer
    (ncnn consumes each blob once); as the official converter, the last reader gets ``_0``."""
    readers: dict[str, list[int]] = {}
    for i, la in enumerate(layers):
        for b in la.bottoms:
            readers.setdefault(b, []).append(i)
    renamed: dict[tuple[int, str], str] = {}
    splits: dict[str, Layer] = {}
    for blob, idx in readers.items():
        if len(idx) > 1:
            tops = [f"{blob}_splitncnn_{j}" for j in range(len(idx))]
            splits[blob] = Layer("Split", f"splitncnn_{len(splits)}", [blob], tops)
            for k, i in enumerate(idx):
                renamed[(i, blob)] = tops[len(idx) - 1 - k]
    out: list[Layer] = []
    for i, la in enumerate(layers):
        bottoms = [renamed.get((i, b), b) for b in la.bottoms]
        out.append(Layer(la.type, la.name, bottoms, la.tops, la.params, la.weights))
        out += [splits[t] for t in la.tops if t in splits]
    return out


def _f32(t: torch.Tensor) -> bytes:
    return t.numpy().astype("<f4").tobytes()


def _eltwise_residual(g: _Graph, branch: str, skip: str, name: str) -> str:
    """``branch * 0.2 + skip``."""
    params = ["0=1", f"-23301=2,{0.2:e},{1.0:e}"]
    return g.add(Layer("Eltwise", name, [branch, skip], [name], params))


def _nearest(g: _Graph, src: str, scale: int, name: str) -> str:
    params = ["0=1", f"1={float(scale):e}", f"2={float(scale):e}"]
    return g.add(Layer("Interp", name, [src], [name], params))


def _rrdbnet(g: _Graph, sd: dict[str, torch.Tensor], kwargs: dict) -> None:
    x = INPUT_BLOB
    r = {4: 1, 2: 2, 1: 4}[int(kwargs["scale"])]
    if r > 1:  # Reorg mode 0: channel c * r * r + i * r + j, as F.pixel_unshuffle
        x = g.add(Layer("Reorg", "pixel_unshuffle", [x], ["pixel_unshuffle"], [f"0={r}"]))
    feat = g.conv(x, "conv_first", sd)
    h = feat
    for b in range(int(kwargs["num_block"])):
        block_in = h
        for k in (1, 2, 3):
            p = f"body.{b}.rdb{k}"
            feats = [h]
            for c in (1, 2, 3, 4):
                cat = feats[0] if c == 1 else g.add(
                    Layer("Concat", f"{p}.cat{c}", list(feats), [f"{p}.cat{c}"])
                )  # fmt: skip
                feats.append(g.conv(cat, f"{p}.conv{c}", sd, leaky=0.2))
            cat = g.add(Layer("Concat", f"{p}.cat5", list(feats), [f"{p}.cat5"]))
            x5 = g.conv(cat, f"{p}.conv5", sd)
            h = _eltwise_residual(g, x5, feats[0], f"{p}.out")
        h = _eltwise_residual(g, h, block_in, f"body.{b}.out")
    body = g.conv(h, "conv_body", sd)
    h = g.add(Layer("BinaryOp", "trunk", [feat, body], ["trunk"]))
    h = g.conv(_nearest(g, h, 2, "up1"), "conv_up1", sd, leaky=0.2)
    h = g.conv(_nearest(g, h, 2, "up2"), "conv_up2", sd, leaky=0.2)
    h = g.conv(h, "conv_hr", sd, leaky=0.2)
    g.conv(h, "conv_last", sd, top=OUTPUT_BLOB)


def _srvgg(g: _Graph, sd: dict[str, torch.Tensor], kwargs: dict) -> None:
    act = kwargs["act_type"]
    up = int(kwargs["upscale"])
    n = 2 * int(kwargs["num_conv"]) + 2  # index of the last conv in ``body``
    h = INPUT_BLOB
    for i in range(0, n, 2):
        h = g.conv(h, f"body.{i}", sd, relu=act == "relu", leaky=0.1 if act == "lrelu" else None)
        if act == "prelu":
            slope = sd[f"body.{i + 1}.weight"]
            params = [f"0={slope.numel()}"]
            h = g.add(
                Layer("PReLU", f"body.{i + 1}", [h], [f"body.{i + 1}"], params, [_f32(slope)])
            )
    h = g.conv(h, f"body.{n}", sd)
    h = g.add(Layer("PixelShuffle", "upsampler", [h], ["upsampler"], [f"0={up}"]))
    base = _nearest(g, INPUT_BLOB, up, "base")
    g.add(Layer("BinaryOp", "add", [h, base], [OUTPUT_BLOB]))
