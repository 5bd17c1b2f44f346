"""ONNX export of RRDBNet (x4, x2, x1) and SRVGGNetCompact, in the conventions other tools use.

* Input ``input``, output ``output``: NCHW float RGB in [0, 1] (the output is not clamped, as the
  network's).
* Dynamic batch, height and width (``batch``, ``height``, ``width`` on the input; ``out_height``,
  ``out_width`` on the output) unless ``static=(h, w)`` fixes a 1 x 3 x h x w input.
* Opset 17 by default, 14-20 selectable; constant folding on.
* The exporter is chosen explicitly: the TorchScript-based one (``dynamo=False``), which traces
  dynamic height and width and needs only ``onnx``. torch >= 2.9 defaults to the dynamo exporter,
  which also needs ``onnxscript``; the TorchScript exporter is deprecated there but works.
* The traced network is :func:`resrgan.export.network.plain_network`: the upstream computation,
  with the x2/x1 pixel-unshuffle as Reshape/Transpose, so it exports at every opset offered.
* ``fp16=True`` writes a half-precision graph (weights and compute) with float16 input and output.
* Metadata (``metadata_props``): ``scale``, ``architecture``, ``arch_kwargs`` (JSON), ``name``,
  ``resrgan_version``, ``input_range`` (``0-1``), ``io_dtype`` (``float32``/``float16``).

The file is written to a temporary name next to ``path`` and renamed when complete.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..paths import atomic_path
from .network import ExportSource, plain_network, resolve

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
OPSETS = range(14, 21)
INPUT_NAME = "input"
OUTPUT_NAME = "output"
PROBE_SIZE = 8  # the traced example's side when the size is dynamic (a multiple of 4: x1 models)


def export_onnx(
    model: str | os.PathLike[str] | nn.Module | ExportSource,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    static: tuple[int, int] | None = None,
    name: str | None = None,
) -> Path:
    """Write ``model`` (a zoo name, a weights file or an ``nn.Module``) as an ONNX file at ``path``.

    See the module doc for the file's conventions. ``static``: (height, width) of a fixed-size
    graph; None for dynamic batch/height/width. ``name`` overrides the model name recorded in the
    metadata. Returns ``path``.
    """
    if opset not in OPSETS:
        raise UsageError(
            f"opset: {opset} is not offered; use {OPSETS.start}-{OPSETS.stop - 1} "
            f"(default {DEFAULT_OPSET})"
        )
    src = resolve(model, name=name)
    m = _unshuffle(src)
    if static is not None:
        h, w = static
        if h < 1 or w < 1 or h % m or w % m:
            raise UsageError(
                f"static: {h}x{w} is not a positive size"
                + (f" divisible by {m} (the x{src.scale} model's pixel-unshuffle)" if m > 1 else "")
            )
    data = onnx_bytes(src, opset=opset, fp16=fp16, static=static)
    out = Path(path)
    _write_atomic(out, data)
    log.info("%s: %s x%d (%s, opset %d) written", out, src.name, src.scale, src.arch, opset)
    return out


def onnx_bytes(
    src: ExportSource, *, opset: int = DEFAULT_OPSET, fp16: bool = False,
    static: tuple[int, int] | None = None,
) -> bytes:  # fmt: skip
    """The serialized ONNX model of ``src`` (see :func:`export_onnx`)."""
    import onnx

    dtype = torch.float16 if fp16 else torch.float32
    net = plain_network(src, dtype=dtype)
    h, w = static if static is not None else (PROBE_SIZE, PROBE_SIZE)
    example = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dtype)
    dynamic_axes = None
    if static is None:
        dynamic_axes = {
            INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
        }
    kwargs: dict[str, Any] = dict(
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_axes=dynamic_axes,
        do_constant_folding=True,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: no onnxscript needed (module doc)
    buf = io.BytesIO()
    # grad mode on (with frozen parameters): any module that branches on it takes the plain path
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(net, (example,), buf, **kwargs)
    proto = onnx.load_from_string(buf.getvalue())
    from .. import __version__

    meta = {
        "scale": str(src.scale),
        "architecture": src.arch,
        "arch_kwargs": json.dumps(src.kwargs, sort_keys=True),
        "name": src.name,
        "resrgan_version": __version__,
        "input_range": "0-1",
        "io_dtype": "float16" if fp16 else "float32",
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name, proto.producer_version = "resrgan", __version__
    proto.doc_string = (
        f"{src.name}: {src.arch} x{src.scale}; input '{INPUT_NAME}' NCHW RGB in [0, 1], "
        f"output '{OUTPUT_NAME}' NCHW RGB (clamp to [0, 1])"
    )
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _unshuffle(src: ExportSource) -> int:
    return {1: 4, 2: 2}.get(src.scale, 1) if src.arch == "RRDBNet" else 1


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
