"""Device and precision choices for inference, and the check that triggers the fp32 fallback.

* ``auto``: fp16 on CUDA and MPS, fp32 on CPU. ``bf16`` on CPU is opt-in (fast on CPUs with
  AVX512-BF16/AMX); ``fp16`` on a CPU whose torch cannot run fp16 convolutions becomes bf16.
* ``half``: reduced precision wherever the hardware runs it natively: fp16 on CUDA and MPS, bf16
  on a CPU with AVX512-BF16 or AMX, else fp32. The default of ``resrgan video``, like the original
  video script's half-precision default (which on a CPU runs fp16 ~50x slower than fp32).
* Reduced precision runs under ``torch.autocast`` with the weights already in that dtype, so fp32
  tensors the network keeps (its input, SRVGG's skip, RRDBNet's residual trunk: the engine's
  ``residual_dtype``, :mod:`resrgan.infer.fastrrdb`) stay fp32.
* A half-precision result with NaN/Inf, or an all-black tile from a non-black input (the fp16
  failure of upstream issue #330), is reported by :func:`half_output_is_bad`; the engine then
  redoes the image in fp32.
"""

from __future__ import annotations

import torch

from ..errors import UsageError

PRECISIONS: dict[str, torch.dtype | None] = {
    "auto": None,
    "half": None,
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
        if device.type in ("cuda", "mps"):
            return torch.float16
        return torch.bfloat16 if precision == "half" and cpu_has_native_bf16() else torch.float32
    if dtype is torch.float16 and device.type == "cpu" and not _cpu_supports(torch.float16):
        return torch.bfloat16
    return dtype


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 convolutions
    run about twice as fast as fp32; elsewhere torch emulates them, slower than fp32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


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
    input. One pass over the output (``aminmax`` propagates NaN, and an infinity is an extreme):
    the check was ~4 % of a bf16 video frame as isfinite().all() plus amax()."""
    lo, hi = torch.aminmax(tile_out)
    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
        return True
    return bool(hi <= 0) and bool(tile_in.amax() > _BLACK_INPUT_MIN)
