"""Device and precision choices for inference, and the checks that trigger a fallback.

* ``auto``: fp16 on CUDA and MPS, fp32 on CPU. ``bf16`` on CPU is opt-in (fast on CPUs with
  AVX512-BF16/AMX); ``fp16`` on a CPU whose torch cannot run fp16 convolutions becomes bf16.
* Reduced precision runs under ``torch.autocast`` with the weights already in that dtype, so fp32
  tensors the network keeps (its input, SRVGG's skip, RRDBNet's residual trunk with
  :func:`keep_residual_fp32`) stay fp32.
* A half-precision result with NaN/Inf, or an all-black tile from a non-black input (the fp16
  failure of upstream issue #330), is reported by :func:`half_output_is_bad`; the upscaler then
  redoes the image in fp32.
* :func:`is_out_of_memory` recognises CUDA and CPU allocation failures.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError

PRECISIONS: dict[str, torch.dtype | None] = {
    "auto": None,
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}

# An input tile brighter than this whose output is all <= 0 is treated as the fp16 "black output"
# failure.
_BLACK_INPUT_MIN = 4.0 / 255.0


def resolve_device(
    device: str | torch.device | None, gpu_id: int | None, *, cli: bool = False
) -> torch.device:
    """Explicit ``device`` wins; else ``cuda:{gpu_id}`` (0 included), else ``cuda`` if available,
    else CPU. Raises UsageError for a bad name or a device that is not there, worded for the
    Python API, or for the command line's ``--device``/``--gpu-id`` when ``cli``."""
    if device is not None:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as e:
            raise UsageError(
                f"--device: {device!r} is not a torch device; use cpu, cuda, cuda:N or mps"
                if cli
                else f"device: '{device}' is not a torch device ({e}); use e.g. 'cpu' or 'cuda:0'"
            ) from None
    elif gpu_id is not None:
        dev = torch.device(f"cuda:{int(gpu_id)}")
    else:
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where, instead = (
        ("--device/--gpu-id: ", "--device cpu") if cli else ("device: ", "device='cpu'")
    )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{where}'{dev}' requested but CUDA is not available; use {instead}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"{where}'{dev}' does not exist: only {torch.cuda.device_count()} CUDA device(s)"
                " are visible"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{where}'{dev}' requested but MPS is not available; use {instead}")
    return dev


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Map a precision name to the compute dtype on ``device``."""
    if precision not in PRECISIONS:
        raise UsageError(
            f"precision: '{precision}' is not one of {', '.join(PRECISIONS)}; "
            "use fp32 for exact results, bf16/fp16 for speed"
        )
    dtype = PRECISIONS[precision]
    if dtype is None:
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if dtype is torch.float16 and device.type == "cpu" and not _cpu_supports(torch.float16):
        return torch.bfloat16
    return dtype


def _cpu_supports(dtype: torch.dtype) -> bool:
    try:
        conv = torch.nn.Conv2d(3, 4, 3, padding=1).to(dtype)
        with torch.inference_mode():
            conv(torch.zeros(1, 3, 8, 8, dtype=dtype))
    except RuntimeError:
        return False
    return True


def half_output_is_bad(tile_in: torch.Tensor, tile_out: torch.Tensor) -> bool:
    """True when a reduced-precision tile output has NaN/Inf, or is all black from a non-black
    input."""
    if not bool(torch.isfinite(tile_out).all()):
        return True
    return bool(tile_out.amax() <= 0) and bool(tile_in.amax() > _BLACK_INPUT_MIN)


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA OOM, or a CPU allocation failure (``DefaultCPUAllocator: can't allocate memory``)."""
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    if isinstance(err, MemoryError):
        return True
    if isinstance(err, RuntimeError):
        msg = str(err)
        return "out of memory" in msg.lower() or "DefaultCPUAllocator" in msg
    return False


def _rdb_forward_fp32_residual(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``ResidualDenseBlock.forward`` with the dense convs in the weights' dtype and the residual
    stream ``x`` kept in fp32 (same maths as the original; no-op casts in fp32)."""
    xb = x.to(self.conv1.weight.dtype)
    x1 = F.leaky_relu(self.conv1(xb), 0.2)
    x2 = F.leaky_relu(self.conv2(torch.cat((xb, x1), 1)), 0.2)
    x3 = F.leaky_relu(self.conv3(torch.cat((xb, x1, x2), 1)), 0.2)
    x4 = F.leaky_relu(self.conv4(torch.cat((xb, x1, x2, x3), 1)), 0.2)
    x5 = self.conv5(torch.cat((xb, x1, x2, x3, x4), 1))
    return x5.to(x.dtype) * 0.2 + x


def _to_fp32(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
    return out.float()


def keep_residual_fp32(model: nn.Module) -> int:
    """For reduced precision under autocast: keep RRDBNet's trunk (its residual sums) in fp32.

    In bf16 the 69 residual additions of RealESRGAN_x4plus lose enough that the result is 44.8 dB
    from fp32; with an fp32 trunk it is 46.5 dB for ~15 % more time (bench/infer.py). Patches the
    ``ResidualDenseBlock`` instances' ``forward`` and makes ``conv_first`` return fp32; results in
    fp32 are unchanged. Returns the number of blocks patched (idempotent).
    """
    from ..nets.rrdbnet import ResidualDenseBlock

    n = 0
    for m in model.modules():
        if isinstance(m, ResidualDenseBlock):
            if "forward" not in vars(m):
                m.forward = types.MethodType(_rdb_forward_fp32_residual, m)  # type: ignore[method-assign]
            n += 1
    first = getattr(model, "conv_first", None)
    if n and isinstance(first, nn.Conv2d) and not getattr(first, "_resrgan_fp32_out", False):
        first.register_forward_hook(_to_fp32)
        first._resrgan_fp32_out = True  # type: ignore[assignment]
    return n
