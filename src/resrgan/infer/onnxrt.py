"""Run an exported ``.onnx`` upscaling network on onnxruntime, as a drop-in for the torch module.

:class:`OnnxNetwork` is an ``nn.Module`` without parameters whose forward hands the tensor to an
onnxruntime session: float32 NCHW RGB in [0, 1] in, float32 NCHW out (unclamped), on the input's
device. The Upscaler's tiling, padding, alpha, 16-bit and outscale therefore stay one code path;
only the runtime differs.

* Providers from ``device``: ``None``/``"auto"``: every accelerated provider installed (CUDA,
  DirectML, CoreML, in that order), then CPU; ``"cpu"``; ``"cuda"``/``"cuda:N"``;
  ``"dml"``/``"directml"``/``"dml:N"``; ``"coreml"``/``"mps"``. Asking for a provider that the
  installed onnxruntime lacks is a UsageError naming the package that has it.
* The graph must be an image model: one 4-D float/float16 input with 3 channels, one 4-D output
  whose height and width are ``scale`` times the input's (checked from the declared shapes when they
  are fixed, else by running a 16x16 probe). ``scale`` comes from the file's metadata (written by
  :mod:`resrgan.export.onnx`), else from that check.
* fp16 graphs: the input is converted to float16 and the output back to float32.

A file that is not one (missing, truncated, not ONNX, not an image model) raises
:class:`OnnxModelError` with one line naming the file: a WeightsError that exits with code 2, as a
bad input.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UsageError, WeightsError

log = logging.getLogger(__name__)

__all__ = ["OnnxModelError", "OnnxNetwork", "is_onnx_path", "onnx_path", "providers_for"]

PROBE = 16
# device type -> (provider, the pip package that brings it)
PROVIDERS: dict[str, tuple[str, str]] = {
    "cuda": ("CUDAExecutionProvider", "onnxruntime-gpu"),
    "dml": ("DmlExecutionProvider", "onnxruntime-directml"),
    "coreml": ("CoreMLExecutionProvider", "onnxruntime (macOS build)"),
}
_ALIASES = {"directml": "dml", "mps": "coreml"}
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxModelError(WeightsError, UsageError):
    """An .onnx file that cannot be used: a weights error the user must fix (exit code 2)."""

    exit_code = 2


def is_onnx_path(model: object) -> bool:
    """Whether ``model`` names an ONNX file (by its ``.onnx`` suffix)."""
    return isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"


def onnx_path(model: object, model_path: object = None) -> Path | None:
    """The .onnx file that an Upscaler's ``model``/``model_path`` name, if any (``model_path``
    first, as it overrides the model's weights)."""
    for m in (model_path, model):
        if is_onnx_path(m):
            return Path(m)  # type: ignore[arg-type]
    return None


def providers_for(device: str | torch.device | None, available: list[str] | None = None) -> list:
    """onnxruntime providers (with options) for a device string (see module doc)."""
    if available is None:
        import onnxruntime as ort

        available = list(ort.get_available_providers())
    text = "auto" if device is None else str(device).strip().lower()
    kind, _, index = text.partition(":")
    kind = _ALIASES.get(kind, kind)
    cpu = "CPUExecutionProvider"
    if kind == "auto" and not index:
        return [p for p, _pkg in PROVIDERS.values() if p in available] + [cpu]
    if kind == "cpu" and not index:
        return [cpu]
    if kind not in PROVIDERS or (index and not index.isdigit()):
        raise UsageError(
            f"device: '{device}' is not an onnxruntime device; use auto, cpu, cuda[:N], "
            "dml[:N] or coreml"
        )
    provider, package = PROVIDERS[kind]
    if provider not in available:
        raise UsageError(
            f"device: '{device}' needs onnxruntime's {provider}, which the installed onnxruntime "
            f"does not have (it has {', '.join(available)}); install {package} or use device cpu"
        )
    options: dict[str, Any] = {"device_id": int(index)} if index else {}
    return [(provider, options) if options else provider, cpu]


class OnnxNetwork(nn.Module):
    """An ONNX upscaling network on onnxruntime (see module doc).

    >>> net = OnnxNetwork("x4.onnx")                  # CPU, or CUDA/DirectML/CoreML if installed
    >>> net(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3, 128, 128])
    """

    scale: int

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = _open(self.path, providers_for(device), threads)
        self.providers: list[str] = list(self.session.get_providers())
        meta = self.session.get_modelmeta()
        self.metadata: dict[str, str] = dict(meta.custom_metadata_map or {})
        self.name = self.metadata.get("name") or self.path.stem
        self.arch = self.metadata.get("architecture")
        inp, out = self._check_io()
        self._input, self._output = inp.name, out.name
        self.input_dtype = _FLOAT_TYPES[inp.type]
        self.static_size = _fixed(inp.shape[2:])
        self.scale = self._check_scale(inp.shape, out.shape)
        kwargs = _json(self.metadata.get("arch_kwargs"))
        # for the engine: the tile multiple (x2/x1 RRDBNet's pixel-unshuffle; assumed for x2/x1
        # files from elsewhere) and the feature width of its memory estimate (64 when unknown)
        unshuffle = {2: 2, 1: 4}.get(self.scale, 1)
        self.tile_multiple = 1 if self.arch == "SRVGGNetCompact" else unshuffle
        self.num_feat = int(kwargs.get("num_feat", 64))
        log.info("%s: x%d on %s", self.path, self.scale, ", ".join(self.providers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float NCHW (3 channels) in [0, 1] -> float32 NCHW on ``x``'s device."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise UsageError(f"{self.path}: input shape {tuple(x.shape)} is not (N, 3, H, W)")
        if self.static_size is not None and tuple(x.shape[2:]) != self.static_size:
            h, w = self.static_size
            raise UsageError(
                f"{self.path}: exported for {h}x{w} inputs only (--static), got "
                f"{x.shape[2]}x{x.shape[3]}; export it without --static, or use tiles of that size"
            )
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        y = self._run(arr.astype(self.input_dtype, copy=False))
        return torch.from_numpy(y.astype(np.float32, copy=False)).to(x.device)

    def _run(self, arr: np.ndarray) -> np.ndarray:
        (y,) = self.session.run([self._output], {self._input: arr})
        return np.asarray(y)

    def extra_repr(self) -> str:
        return f"'{self.path}', scale={self.scale}, providers={self.providers}"

    # ------------------------------------------------------------------ checks
    def _fail(self, why: str) -> OnnxModelError:
        return OnnxModelError(f"{self.path}: {why}; not an image upscaling model")

    def _check_io(self) -> tuple[Any, Any]:
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise self._fail(
                f"the graph has {len(ins)} inputs and {len(outs)} outputs, not 1 and 1"
            )
        inp, out = ins[0], outs[0]
        for what, t in (("input", inp), ("output", out)):
            if t.type not in _FLOAT_TYPES:
                raise self._fail(f"{what} '{t.name}' is {t.type}, not float or float16")
            if len(t.shape) != 4:
                raise self._fail(f"{what} '{t.name}' has shape {t.shape}, not 4-D NCHW")
        if inp.shape[1] != 3:
            raise self._fail(f"input '{inp.name}' has {inp.shape[1]} channels, not 3 (NCHW RGB)")
        return inp, out

    def _check_scale(self, in_shape: list, out_shape: list) -> int:
        declared = self.metadata.get("scale")
        hw_in, hw_out = _fixed(in_shape[2:]), _fixed(out_shape[2:])
        if hw_in is not None and hw_out is not None and out_shape[1] == 3:
            sizes = (hw_in, hw_out, (3,))
        else:  # run the graph once: also proves that it runs
            h, w = hw_in or (PROBE, PROBE)
            probe = np.zeros((1, 3, h, w), dtype=self.input_dtype)
            try:
                y = self._run(probe)
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise self._fail(f"a 1x3x{h}x{w} input does not run ({_first_line(e)})") from None
            sizes = ((h, w), tuple(y.shape[2:]), (y.shape[1],))
        (h, w), (oh, ow), (oc,) = sizes
        s = oh // h
        if oc != 3 or s < 1 or (oh, ow) != (s * h, s * w):
            raise self._fail(
                f"maps a 3x{h}x{w} input to {oc}x{oh}x{ow}, not 3 channels at an integer scale"
            )
        if declared is not None and declared != str(s):
            raise self._fail(f"metadata says scale {declared} but the graph upscales x{s}")
        return s


def _json(text: str | None) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _fixed(dims: list) -> tuple[int, ...] | None:
    """The dimensions as ints when all are fixed, else None."""
    return tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) else None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    line = text.splitlines()[0]
    return line[-200:] if len(line) > 200 else line


def _open(path: Path, providers: list, threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(
            f"{path}: running .onnx files needs onnxruntime: pip install 'resrgan[onnx]'"
        ) from None
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such ONNX file")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: the provider fallback notes are ours to log
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # noqa: BLE001 - InvalidProtobuf, Fail, NoSuchFile, InvalidGraph, ...
        msg = _first_line(e)
        tail = msg.rsplit(" : ", 1)[-1].strip()
        raise OnnxModelError(
            f"{path}: not a readable ONNX model ({tail}); the file may be truncated or not ONNX"
        ) from None
