"""Importer for ncnn ``.param``/``.bin`` model files (the realesrgan-ncnn-vulkan format).

``read_ncnn`` parses the two files without the ncnn runtime:

* ``.param`` (text): the magic ``7767517``, then ``layer_count blob_count``, then one line per
  layer: ``type name bottom_count top_count bottom... top... k=v...``. Keys ``0..`` hold an int or a
  float (a float when the token has a ``.`` or an exponent); a key ``-233xx`` holds an array for
  key ``xx``, written ``count,v1,v2,...``.
* ``.bin`` (binary): the weights of each layer, in layer order, without any index. A Convolution
  stores its weight as one blob that starts with a 4-byte storage tag (``0x01306B47`` fp16,
  ``0x000D4B38`` int8, ``0x0002C056`` or all-zero fp32, other non-zero tags: a 256-entry fp32 table
  followed by uint8 indices; fp16/int8/index data padded to 4 bytes), then ``num_output`` raw fp32
  biases when ``5=1``, then per-output-channel int8 scales when ``8`` is set. PReLU stores its
  ``0=num_slope`` slopes as raw fp32.

``ncnn_to_state_dict`` then maps the graph onto our networks by structure: it walks the layers in
order, follows the blob wiring through ``Split`` layers, and checks every layer type, channel count,
kernel, activation (fused leaky-ReLU ``9=2`` slope 0.2, PReLU), ``Concat`` input order, ``Eltwise``
coefficients (0.2, 1.0), the nearest ``Interp`` x2 steps, ``PixelShuffle`` and the leading ``Reorg``
(pixel-unshuffle) of the x2/x1 RRDBNet graphs that ``resrgan export`` writes. Anything else raises
WeightsError naming the file and the first layer that does not fit. The keys are the official ones
(spec §2.1, §2.2), so the result loads with ``strict=True``. The official ncnn files store fp16
weights: the converted fp32 tensors are exactly those fp16 values.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import WeightsError

log = logging.getLogger(__name__)

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

# Layer types that carry no weights in the .bin (so the reader can skip them safely).
NO_WEIGHTS = frozenset(
    {
        "Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "Reorg",
        "ReLU", "Sigmoid", "Clip", "Crop", "Padding", "Reshape", "Permute", "Noop", "Dropout",
        "Flatten", "UnaryOp", "Slice", "TanH", "Softmax", "Pooling",
    }
)  # fmt: skip

ParamValue = int | float | tuple[int | float, ...]
ANY = "any"  # conv(): activation checked by the caller
_FLOAT_RX = re.compile(r"[.eE]")


@dataclass(frozen=True)
class NcnnLayer:
    """One layer of an ncnn graph. ``weights`` holds fp32 tensors: ``weight``/``bias`` (Convolution,
    weight shaped (out, in, kh, kw)) or ``slope`` (PReLU)."""

    index: int
    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Mapping[int, ParamValue]
    line: int
    weights: Mapping[str, torch.Tensor] = field(default_factory=dict)
    storage: str | None = None  # "fp16" | "fp32" | "int8" | "table" for Convolution weights

    def get(self, key: int, default: ParamValue) -> ParamValue:
        return self.params.get(key, default)

    def getf(self, key: int, default: float) -> float:
        """A scalar parameter as float (an array value raises WeightsError)."""
        v = self.params.get(key, default)
        if isinstance(v, tuple):
            raise WeightsError(
                f"layer '{self.name}' (line {self.line}): parameter {key} is an array"
            )
        return float(v)


@dataclass(frozen=True)
class NcnnModel:
    """A parsed ncnn model: layers in file order (= .bin order)."""

    param_path: Path
    bin_path: Path
    layers: tuple[NcnnLayer, ...]
    blob_count: int

    def producers(self) -> dict[str, NcnnLayer]:
        """Map blob name -> the layer that writes it."""
        return {t: layer for layer in self.layers for t in layer.tops}


def _parse_value(tok: str, where: str) -> int | float:
    try:
        return float(tok) if _FLOAT_RX.search(tok) else int(tok)
    except ValueError:
        raise WeightsError(f"{where}: bad parameter value '{tok}'") from None


def _parse_params(tokens: list[str], where: str) -> dict[int, ParamValue]:
    params: dict[int, ParamValue] = {}
    for tok in tokens:
        key_s, sep, val = tok.partition("=")
        if not sep:
            raise WeightsError(f"{where}: expected key=value, got '{tok}'")
        try:
            key = int(key_s)
        except ValueError:
            raise WeightsError(f"{where}: bad parameter key '{key_s}'") from None
        if key <= -23300:
            parts = val.split(",")
            try:
                n = int(parts[0])
            except ValueError:
                raise WeightsError(f"{where}: bad array length in '{tok}'") from None
            if n != len(parts) - 1:
                raise WeightsError(
                    f"{where}: array parameter '{tok}' declares {n} values but has {len(parts) - 1}"
                )
            params[-key - 23300] = tuple(_parse_value(p, where) for p in parts[1:])
        else:
            params[key] = _parse_value(val, where)
    return params


class _BinReader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise WeightsError(
                f"{self.path}: file ends at byte {len(self.data)} while reading {what} "
                f"({n} bytes at offset {self.pos}); the .bin does not belong to this .param or is "
                "truncated"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def raw_f32(self, n: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * n, what), dtype="<f4").astype(np.float32)

    def auto(self, n: int, what: str) -> tuple[np.ndarray, str]:
        """ncnn ModelBin::load(n, type=0): a tagged blob (see module doc). int8 data is returned as
        raw integers (the caller dequantizes)."""
        head = self.take(4, f"{what} storage tag")
        tag = int.from_bytes(head, "little")
        if tag == TAG_FP16:
            raw = self.take(_align4(2 * n), what)
            return np.frombuffer(raw[: 2 * n], dtype="<f2").astype(np.float32), "fp16"
        if tag == TAG_INT8:
            raw = self.take(_align4(n), what)
            return np.frombuffer(raw[:n], dtype=np.int8).astype(np.float32), "int8"
        if tag == TAG_FP32_SCALED:
            return self.raw_f32(n, what), "fp32"
        if sum(head) != 0:
            table = self.raw_f32(256, f"{what} quantization table")
            idx = np.frombuffer(self.take(_align4(n), what)[:n], dtype=np.uint8)
            return table[idx], "table"
        return self.raw_f32(n, what), "fp32"


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _as_int(layer: NcnnLayer, key: int, default: int, where: str) -> int:
    v = layer.get(key, default)
    if not isinstance(v, int):
        raise WeightsError(f"{where}: parameter {key}={v!r} should be an integer")
    return v


def _load_weights(layer: NcnnLayer, rd: _BinReader, where: str) -> NcnnLayer:
    if layer.type == "Convolution":
        out = _as_int(layer, 0, 0, where)
        size = _as_int(layer, 6, 0, where)
        kw = _as_int(layer, 1, 0, where)
        kh = _as_int(layer, 11, kw, where)
        if out <= 0 or kw <= 0 or size <= 0 or size % (out * kw * kh):
            raise WeightsError(
                f"{where}: inconsistent Convolution (0={out} 1={kw} 11={kh} 6={size}): weight size "
                "must be num_output * in_channels * kernel_h * kernel_w"
            )
        w, storage = rd.auto(size, f"{layer.name} weight")
        weights: dict[str, torch.Tensor] = {}
        if _as_int(layer, 5, 0, where):
            weights["bias"] = torch.from_numpy(rd.raw_f32(out, f"{layer.name} bias").copy())
        int8_term = _as_int(layer, 8, 0, where)
        if int8_term:
            scales = rd.raw_f32(out, f"{layer.name} int8 weight scales")
            rd.raw_f32(1, f"{layer.name} int8 input scale")
            if int8_term > 100:
                rd.raw_f32(1, f"{layer.name} int8 output scale")
            if storage == "int8":
                safe = np.where(scales == 0, 1.0, scales).astype(np.float32)
                w = (w.reshape(out, -1) / safe[:, None]).reshape(-1)
        elif storage == "int8":
            raise WeightsError(f"{where}: int8 weights without scales (8=0); cannot dequantize")
        weights["weight"] = torch.from_numpy(w.reshape(out, size // (out * kw * kh), kh, kw).copy())
        return _replace(layer, weights=weights, storage=storage)
    if layer.type == "PReLU":
        n = _as_int(layer, 0, 0, where)
        if n <= 0:
            raise WeightsError(f"{where}: PReLU needs 0=num_slope > 0, got {n}")
        slope = torch.from_numpy(rd.raw_f32(n, f"{layer.name} slopes").copy())
        return _replace(layer, weights={"slope": slope})
    if layer.type in NO_WEIGHTS:
        return layer
    raise WeightsError(
        f"{where}: layer type '{layer.type}' is not supported by the importer (its weight layout "
        "is unknown); only official Real-ESRGAN graphs (RRDBNet, SRVGGNetCompact) can be read"
    )


def _replace(layer: NcnnLayer, **changes: Any) -> NcnnLayer:
    import dataclasses

    return dataclasses.replace(layer, **changes)


def read_ncnn(param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]) -> NcnnModel:
    """Parse an ncnn ``.param`` text file and its ``.bin`` weights (see module doc)."""
    pp, bp = Path(param_path), Path(bin_path)
    for p in (pp, bp):
        if not p.is_file():
            raise WeightsError(f"{p}: no such file")
    try:
        text = pp.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WeightsError(f"{pp}: cannot read as ncnn .param text ({e})") from None
    lines = [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines or lines[0][1] != [str(MAGIC)]:
        got = " ".join(lines[0][1])[:40] if lines else "an empty file"
        raise WeightsError(
            f"{pp}: not an ncnn .param file (first line must be the magic {MAGIC}, got '{got}'); "
            "binary .param.bin files are not supported"
        )
    try:
        layer_count, blob_count = (int(t) for t in lines[1][1])
    except (IndexError, ValueError):
        raise WeightsError(f"{pp}: line 2 must be 'layer_count blob_count'") from None
    body = lines[2:]
    if len(body) != layer_count:
        raise WeightsError(
            f"{pp}: header declares {layer_count} layers but the file has {len(body)}"
        )
    rd = _BinReader(bp.read_bytes(), bp)
    layers: list[NcnnLayer] = []
    for index, (lineno, toks) in enumerate(body):
        where = f"{pp}:{lineno}"
        if len(toks) < 4:
            raise WeightsError(f"{where}: a layer line needs 'type name bottoms tops', got {toks}")
        ltype, name = toks[0], toks[1]
        try:
            nb, nt = int(toks[2]), int(toks[3])
        except ValueError:
            raise WeightsError(f"{where}: bad bottom/top counts '{toks[2]} {toks[3]}'") from None
        if len(toks) < 4 + nb + nt:
            raise WeightsError(f"{where}: layer '{name}' lists fewer blobs than {nb} + {nt}")
        bottoms = tuple(toks[4 : 4 + nb])
        tops = tuple(toks[4 + nb : 4 + nb + nt])
        params = _parse_params(toks[4 + nb + nt :], where)
        layer = NcnnLayer(index, ltype, name, bottoms, tops, params, lineno)
        layers.append(_load_weights(layer, rd, f"{where} ({ltype} '{name}')"))
    if rd.pos != len(rd.data):
        raise WeightsError(
            f"{bp}: {len(rd.data) - rd.pos} bytes left over after the last layer of {pp.name}; "
            "the .bin does not belong to this .param"
        )
    return NcnnModel(pp, bp, tuple(layers), blob_count)


# --------------------------------------------------------------------------------------------------
# Structural mapping onto RRDBNet / SRVGGNetCompact


class _Walker:
    """Consumes layers in file order (skipping Split) and checks wiring and parameters."""

    def __init__(self, model: NcnnModel) -> None:
        self.model = model
        self.origin: dict[str, str] = {}
        for layer in model.layers:
            if layer.type == "Split":
                src = self.resolve(layer.bottoms[0])
                for t in layer.tops:
                    self.origin[t] = src
        self.seq = [la for la in model.layers if la.type != "Split"]
        self.pos = 0
        self.channels: dict[str, int] = {}
        self.sd: dict[str, torch.Tensor] = {}

    def resolve(self, blob: str) -> str:
        return self.origin.get(blob, blob)

    def fail(self, layer: NcnnLayer | None, msg: str) -> WeightsError:
        if layer is None:
            return WeightsError(f"{self.model.param_path}: graph ends early: {msg}")
        return WeightsError(
            f"{self.model.param_path}: layer '{layer.name}' ({layer.type}, line {layer.line}): "
            f"{msg}; "
            "not an official Real-ESRGAN RRDBNet/SRVGGNetCompact graph"
        )

    def peek(self, k: int = 0) -> NcnnLayer | None:
        i = self.pos + k
        return self.seq[i] if i < len(self.seq) else None

    def take(self, ltype: str, what: str) -> NcnnLayer:
        layer = self.peek()
        if layer is None:
            raise self.fail(None, f"expected {ltype} ({what})")
        if layer.type != ltype:
            raise self.fail(layer, f"expected {ltype} ({what})")
        self.pos += 1
        return layer

    def bottom_is(
        self, layer: NcnnLayer, blobs: list[str], what: str, *, ordered: bool = True
    ) -> None:
        got = [self.resolve(b) for b in layer.bottoms]
        want = [self.resolve(b) for b in blobs]
        ok = got == want if ordered else sorted(got) == sorted(want)
        if not ok:
            raise self.fail(layer, f"inputs {list(layer.bottoms)} are not {what}")

    def conv(
        self, src: str, key: str, *, act: float | None | str, out: int | None = None
    ) -> tuple[str, NcnnLayer]:
        """A 3x3 stride-1 pad-1 conv with bias reading ``src``; ``act`` = leaky slope, 0.0 = relu,
        None = none, ``ANY`` = not checked here (the caller does). Stores ``key.weight/bias``."""
        layer = self.take("Convolution", f"conv {key}")
        self.bottom_is(layer, [src], f"the output of the previous step ({src})")
        w = layer.weights["weight"]
        p = layer.params
        kw = p.get(1, 0)
        dw, sw, pl = p.get(2, 1), p.get(3, 1), p.get(4, 0)
        pt = p.get(14, pl)
        geometry = (
            kw, p.get(11, kw), dw, p.get(12, dw), sw, p.get(13, sw), pl, pt, p.get(15, pl),
            p.get(16, pt),
        )  # fmt: skip
        if geometry != (3, 3, 1, 1, 1, 1, 1, 1, 1, 1):
            raise self.fail(layer, "expected a 3x3 conv with stride 1, dilation 1 and padding 1")
        if "bias" not in layer.weights:
            raise self.fail(layer, "has no bias (5=0); the official convs all have one")
        if out is not None and w.shape[0] != out:
            raise self.fail(layer, f"{w.shape[0]} output channels, expected {out}")
        have = self.channels.get(self.resolve(src))
        if have is not None and w.shape[1] != have:
            raise self.fail(layer, f"weights expect {w.shape[1]} input channels, input has {have}")
        top = layer.tops[0]
        self.sd[f"{key}.weight"] = w
        self.sd[f"{key}.bias"] = layer.weights["bias"]
        self.channels[self.resolve(top)] = int(w.shape[0])
        if isinstance(act, str):  # ANY
            return top, layer
        fused = layer.params.get(9, 0)
        slope = layer.params.get(10, (0.0,))
        got_act: float | None
        if fused == 0:
            got_act = None
        elif fused == 1:
            got_act = 0.0
        elif fused == 2 and isinstance(slope, tuple) and len(slope) >= 1:
            got_act = float(slope[0])
        else:
            raise self.fail(layer, f"fused activation 9={fused} is not supported")
        if got_act is None and act is not None:
            nxt = self.peek()
            if nxt is not None and nxt.type == "ReLU" and self.resolve(nxt.bottoms[0]) == top:
                self.pos += 1
                got_act, top = nxt.getf(0, 0.0), nxt.tops[0]
        if (got_act is None) != (act is None) or (
            act is not None and got_act is not None and abs(got_act - act) > 1e-6
        ):
            want = "none" if act is None else f"leaky ReLU {act}" if act else "ReLU"
            have_s = "none" if got_act is None else f"leaky ReLU {got_act}" if got_act else "ReLU"
            raise self.fail(layer, f"activation {have_s}, expected {want}")
        self.channels[self.resolve(top)] = int(w.shape[0])
        return top, layer

    def activated(self, conv: NcnnLayer) -> bool:
        """Whether a conv has an activation: fused, or a ReLU layer right after it."""
        if conv.get(9, 0) != 0:
            return True
        nxt = self.peek(1) if self.peek() is conv else None
        return bool(
            nxt is not None
            and nxt.type in ("ReLU", "PReLU")
            and self.resolve(nxt.bottoms[0]) == conv.tops[0]
        )

    def concat(self, srcs: list[str]) -> str:
        layer = self.take("Concat", f"concatenation of {len(srcs)} features")
        if layer.get(0, 0) != 0:
            raise self.fail(layer, f"concatenates along axis {layer.get(0, 0)}, expected 0")
        self.bottom_is(layer, srcs, f"the {len(srcs)} features in order")
        self.channels[layer.tops[0]] = sum(self.channels[self.resolve(s)] for s in srcs)
        return layer.tops[0]

    def residual(self, branch: str, skip: str, what: str) -> str:
        layer = self.take("Eltwise", what)
        coeffs = layer.get(1, ())
        if layer.get(0, -1) != 1 or not (
            isinstance(coeffs, tuple)
            and len(coeffs) == 2
            and abs(float(coeffs[0]) - 0.2) < 1e-6
            and abs(float(coeffs[1]) - 1.0) < 1e-6
        ):
            raise self.fail(
                layer, f"Eltwise 0={layer.get(0, -1)} coefficients {coeffs}, expected sum 0.2, 1.0"
            )
        self.bottom_is(layer, [branch, skip], f"(branch, skip) = ({branch}, {skip})")
        self.channels[layer.tops[0]] = self.channels[self.resolve(skip)]
        return layer.tops[0]

    def add(self, a: str, b: str, what: str) -> str:
        layer = self.take("BinaryOp", what)
        if layer.get(0, 0) != 0 or layer.get(1, 0) != 0:
            raise self.fail(
                layer, f"BinaryOp 0={layer.get(0, 0)} 1={layer.get(1, 0)}, expected add"
            )
        self.bottom_is(layer, [a, b], f"{a} + {b}", ordered=False)
        self.channels[layer.tops[0]] = self.channels[self.resolve(a)]
        return layer.tops[0]

    def nearest(self, src: str, scale: float, what: str) -> str:
        layer = self.take("Interp", what)
        _check_interp(self, layer, mode=1, scale=scale)
        self.bottom_is(layer, [src], f"the output of the previous step ({src})")
        self.channels[layer.tops[0]] = self.channels[self.resolve(src)]
        return layer.tops[0]

    def input(self) -> str:
        layer = self.take("Input", "the network input")
        return layer.tops[0]

    def finish(self, out: str) -> None:
        extra = self.peek()
        if extra is not None:
            raise self.fail(extra, "unexpected layer after the end of the network")
        if not self.model.layers or out not in self.model.layers[-1].tops:
            raise self.fail(self.model.layers[-1], "the last layer does not write the output")


def _check_interp(w: _Walker, layer: NcnnLayer, *, mode: int, scale: float) -> None:
    got = (layer.get(0, 0), layer.getf(1, 1.0), layer.getf(2, 1.0))
    if got[0] != mode or abs(got[1] - scale) > 1e-6 or abs(got[2] - scale) > 1e-6:
        raise w.fail(
            layer,
            f"Interp 0={got[0]} scale {got[1]}x{got[2]}, expected nearest (0={mode}) x{scale}",
        )


INTERP_MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


def _final_resize(w: _Walker, src: str) -> tuple[str, dict[str, Any]]:
    """An optional trailing Interp (the x2/x3 animevideov3 graphs): returns its mode and scale."""
    layer = w.peek()
    if layer is None or layer.type != "Interp":
        return src, {}
    w.pos += 1
    w.bottom_is(layer, [src], f"the network output ({src})")
    mode = layer.get(0, 0)
    sh, sw = layer.get(1, 1.0), layer.get(2, 1.0)
    if mode not in INTERP_MODES or sh != sw or not isinstance(sh, float) or sh <= 0:
        raise w.fail(layer, f"unsupported final resize 0={mode} scale {sh}x{sw}")
    if layer.get(6, 0) != 0 or layer.get(3, 0) or layer.get(4, 0):
        raise w.fail(layer, "final resize with align_corners or a fixed output size")
    return layer.tops[0], {"resize_mode": INTERP_MODES[int(mode)], "resize_scale": float(sh)}


def _pixel_unshuffle(w: _Walker, src: str) -> tuple[str, int]:
    """An optional leading ``Reorg 0=r`` (the x2/x1 RRDBNet pixel-unshuffle): returns (top, r)."""
    layer = w.peek()
    if layer is None or layer.type != "Reorg":
        return src, 1
    w.pos += 1
    w.bottom_is(layer, [src], f"the network input ({src})")
    r = layer.get(0, 1)
    if r not in (2, 4) or layer.get(1, 0) != 0:
        raise w.fail(layer, f"Reorg 0={r} 1={layer.get(1, 0)}, expected pixel-unshuffle 0=2 or 0=4")
    return layer.tops[0], int(r)


def _map_rrdbnet(w: _Walker) -> tuple[str, dict[str, Any], dict[str, Any]]:
    x, unshuffle = _pixel_unshuffle(w, w.input())
    feat, first = w.conv(x, "conv_first", act=None)
    num_feat = int(first.weights["weight"].shape[0])
    num_in_ch = int(first.weights["weight"].shape[1])
    w.channels[w.resolve(x)] = num_in_ch
    if num_in_ch % unshuffle**2:
        raise w.fail(
            first,
            f"{num_in_ch} input channels after Reorg 0={unshuffle}: not a multiple of "
            f"{unshuffle**2}",
        )
    num_in_ch //= unshuffle**2
    h = feat
    num_block = 0
    grow = 0
    while True:
        nxt = w.peek()
        if nxt is None or nxt.type != "Convolution" or not w.activated(nxt):
            break  # an RRDB starts with an activated conv; conv_body has no activation
        block_in = h
        for r in (1, 2, 3):
            prefix = f"body.{num_block}.rdb{r}"
            rdb_in = h
            feats = [rdb_in]
            for c in (1, 2, 3, 4, 5):
                src = rdb_in if c == 1 else w.concat(feats)
                top, layer = w.conv(
                    src, f"{prefix}.conv{c}", act=0.2 if c < 5 else None,
                    out=(grow or None) if c < 5 else num_feat,
                )  # fmt: skip
                if c == 1 and not grow:
                    grow = int(layer.weights["weight"].shape[0])
                feats.append(top)
            h = w.residual(feats[-1], rdb_in, f"RDB residual of {prefix}")
        h = w.residual(h, block_in, f"RRDB residual of body.{num_block}")
        num_block += 1
    if num_block == 0:
        raise w.fail(w.peek(), "expected the first RRDB block (a conv with leaky ReLU 0.2)")
    body, _ = w.conv(h, "conv_body", act=None, out=num_feat)
    h = w.add(feat, body, "feat + conv_body(body(feat))")
    h = w.nearest(h, 2.0, "nearest x2 upsampling")
    h, _ = w.conv(h, "conv_up1", act=0.2, out=num_feat)
    h = w.nearest(h, 2.0, "nearest x2 upsampling")
    h, _ = w.conv(h, "conv_up2", act=0.2, out=num_feat)
    h, _ = w.conv(h, "conv_hr", act=0.2, out=num_feat)
    h, last = w.conv(h, "conv_last", act=None)
    out, extra = _final_resize(w, h)
    w.finish(out)
    kwargs = dict(
        num_in_ch=num_in_ch,
        num_out_ch=int(last.weights["weight"].shape[0]),
        scale=4 // unshuffle,
        num_feat=num_feat,
        num_block=num_block,
        num_grow_ch=grow,
    )
    return "RRDBNet", kwargs, extra


def _srvgg_act(w: _Walker, conv_top: str, conv: NcnnLayer, idx: int) -> tuple[str, str] | None:
    """The activation after an SRVGG conv: (type, output blob), or None when there is none."""
    fused = conv.get(9, 0)
    if fused == 1:
        return "relu", conv_top
    if fused == 2:
        slope = conv.get(10, (0.0,))
        s = float(slope[0]) if isinstance(slope, tuple) and slope else 0.0
        if abs(s - 0.1) > 1e-6:
            raise w.fail(conv, f"leaky ReLU slope {s}, expected 0.1")
        return "lrelu", conv_top
    if fused != 0:
        raise w.fail(conv, f"fused activation 9={fused} is not supported")
    nxt = w.peek()
    if nxt is None or not nxt.bottoms or w.resolve(nxt.bottoms[0]) != conv_top:
        return None
    if nxt.type == "PReLU":
        w.pos += 1
        w.sd[f"body.{idx}.weight"] = nxt.weights["slope"]
        return "prelu", nxt.tops[0]
    if nxt.type == "ReLU":
        w.pos += 1
        s = nxt.getf(0, 0.0)
        if s == 0.0:
            return "relu", nxt.tops[0]
        if abs(s - 0.1) < 1e-6:
            return "lrelu", nxt.tops[0]
        raise w.fail(nxt, f"leaky ReLU slope {s}, expected 0.1 or 0")
    return None


def _map_srvgg(w: _Walker) -> tuple[str, dict[str, Any], dict[str, Any]]:
    x = w.input()
    h, first = w.conv(x, "body.0", act=ANY)
    num_feat = int(first.weights["weight"].shape[0])
    num_in_ch = int(first.weights["weight"].shape[1])
    act = _srvgg_act(w, h, first, 1)
    if act is None:
        raise w.fail(w.peek() or first, "expected an activation after the first conv")
    act_type, h = act
    idx = 2
    while True:
        top, conv = w.conv(h, f"body.{idx}", act=ANY)
        nxt = _srvgg_act(w, top, conv, idx + 1)
        if nxt is None:
            last_top, last = top, conv
            break
        if nxt[0] != act_type:
            raise w.fail(conv, f"activation {nxt[0]} differs from the first one ({act_type})")
        if conv.weights["weight"].shape[0] != num_feat:
            raise w.fail(conv, f"{conv.weights['weight'].shape[0]} channels, expected {num_feat}")
        h = nxt[1]
        idx += 2
    num_conv = idx // 2 - 1
    last_out = int(last.weights["weight"].shape[0])
    up = int(round((last_out / num_in_ch) ** 0.5))
    if up * up * num_in_ch != last_out:
        raise w.fail(last, f"{last_out} output channels is not {num_in_ch} * upscale^2")
    # The tail (PixelShuffle of the last conv, nearest upsampling of the input, their sum) may come
    # in either order; match it by wiring.
    tail: dict[str, NcnnLayer] = {}
    for _ in range(3):
        layer = w.peek()
        if layer is None:
            raise w.fail(None, "expected PixelShuffle, nearest Interp of the input and their sum")
        if layer.type == "PixelShuffle" and "ps" not in tail:
            if layer.get(0, 0) != up or layer.get(1, 0) != 0:
                raise w.fail(layer, f"PixelShuffle 0={layer.get(0, 0)}, expected {up}")
            w.bottom_is(layer, [last_top], "the last conv")
            tail["ps"] = layer
        elif layer.type == "Interp" and "up" not in tail:
            _check_interp(w, layer, mode=1, scale=float(up))
            w.bottom_is(layer, [x], "the network input")
            tail["up"] = layer
        elif layer.type == "BinaryOp" and {"ps", "up"} <= tail.keys():
            if layer.get(0, 0) != 0 or layer.get(1, 0) != 0:
                raise w.fail(layer, "expected an add")
            w.bottom_is(
                layer, [tail["ps"].tops[0], tail["up"].tops[0]], "upsampled input + residual",
                ordered=False,
            )  # fmt: skip
            tail["add"] = layer
        else:
            raise w.fail(layer, "expected PixelShuffle, nearest Interp of the input, or their sum")
        w.pos += 1
    out, extra = _final_resize(w, tail["add"].tops[0])
    w.finish(out)
    kwargs = dict(
        num_in_ch=num_in_ch,
        num_out_ch=num_in_ch,
        num_feat=num_feat,
        num_conv=num_conv,
        upscale=up,
        act_type=act_type,
    )
    return "SRVGGNetCompact", kwargs, extra


_MAPPERS: dict[str, Callable[[_Walker], tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "RRDBNet": _map_rrdbnet,
    "SRVGGNetCompact": _map_srvgg,
}


def _guess_arch(model: NcnnModel) -> str:
    types = {la.type for la in model.layers}
    if "Concat" in types:
        return "RRDBNet"
    if "PixelShuffle" in types:
        return "SRVGGNetCompact"
    first = next((la for la in model.layers if la.type not in ("Input", "Split")), None)
    where = f"layer '{first.name}' ({first.type}, line {first.line})" if first else "no layers"
    raise WeightsError(
        f"{model.param_path}: neither an RRDBNet (no Concat) nor an SRVGGNetCompact (no "
        "PixelShuffle) "
        f"graph; first layer: {where}"
    )


def ncnn_to_state_dict(
    param_path: str | os.PathLike[str], bin_path: str | os.PathLike[str]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Convert an official Real-ESRGAN ncnn model to a state dict in the official key layout.

    Returns ``(state_dict, info)``; ``info`` has ``arch``, ``kwargs``, ``scale``, ``storage`` (the
    weight formats found, e.g. ``["fp16"]``) and, when the graph ends in an Interp resize,
    ``outscale`` (network scale times the resize factor), ``resize_mode`` and ``resize_scale``. The
    state dict's keys and shapes are checked against the detected network.
    """
    from ..nets import build_arch

    model = read_ncnn(param_path, bin_path)
    arch = _guess_arch(model)
    walker = _Walker(model)
    arch, kwargs, extra = _MAPPERS[arch](walker)
    sd = {k: v.contiguous() for k, v in walker.sd.items()}
    with torch.device("meta"):  # keys and shapes only: no memory, no init cost
        want = {k: tuple(v.shape) for k, v in build_arch(arch, **kwargs).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if got != want:
        bad = sorted(set(got) ^ set(want)) or [k for k in want if got[k] != want[k]]
        raise WeightsError(
            f"{model.param_path}: converted weights do not fit {arch}({kwargs}): first "
            f"difference at '{bad[0]}' ({got.get(bad[0])} vs {want.get(bad[0])})"
        )
    scale = kwargs.get("scale", kwargs.get("upscale", 1))
    info: dict[str, Any] = {
        "arch": arch,
        "kwargs": kwargs,
        "scale": scale,
        "storage": sorted({la.storage for la in model.layers if la.storage}),
    }
    if extra:
        info.update(extra)
        info["outscale"] = scale * extra["resize_scale"]
    log.info("%s: %s %s (%d tensors)", model.param_path, arch, kwargs, len(sd))
    return sd, info


def iter_layers(model: NcnnModel, ltype: str) -> Iterator[NcnnLayer]:
    """The layers of one type, in file order."""
    return (la for la in model.layers if la.type == ltype)
