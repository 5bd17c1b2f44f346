"""2-D filtering with reflect padding (spec §1.5; upstream ``img_process_util.filter2D``)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# Above this many multiply-adds per output pixel the FFT path is faster on CPU (measured with
# bench/degrade.py on 400x400 batches: direct 21x21 grouped conv 0.17 s, FFT 0.08 s for 36 planes).
_FFT_MIN_TAPS = 121


def _check(img: Tensor, kernel: Tensor) -> tuple[Tensor, int]:
    if img.ndim != 4:
        raise ValueError(f"filter2d: img must be (B, C, H, W), got shape {tuple(img.shape)}")
    if kernel.ndim == 2:
        kernel = kernel[None]
    if kernel.ndim != 3 or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(
            f"filter2d: kernel must be (k, k), (1, k, k) or (B, k, k), got {tuple(kernel.shape)}"
        )
    k = kernel.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"filter2d: kernel size must be odd, got {k}")
    if kernel.shape[0] not in (1, img.shape[0]):
        raise ValueError(
            f"filter2d: {kernel.shape[0]} kernels for a batch of {img.shape[0]}; give 1 or B"
        )
    h, w = img.shape[-2:]
    if k // 2 >= h or k // 2 >= w:
        raise ValueError(
            f"filter2d: reflect padding {k // 2} needs an image larger than that, got {h}x{w}"
        )
    return kernel.to(device=img.device, dtype=img.dtype), k


def filter2d(
    img: Tensor, kernel: Tensor, *, method: Literal["auto", "direct", "fft"] = "auto"
) -> Tensor:
    """Cross-correlate every plane of ``img`` (B, C, H, W) with its sample's kernel.

    ``kernel`` is (k, k) or (1, k, k) (shared) or (B, k, k) (per sample, repeated over channels),
    k odd. The image is reflect-padded by k//2 on every side (torch ``mode='reflect'``, i.e.
    reflect-101), then filtered without further padding, exactly as upstream ``filter2D``; the
    output has the input's shape and dtype and is not clamped. ``method='fft'`` computes the same
    correlation through a real FFT of the padded image (equal up to float rounding, ~1e-7 relative);
    ``'auto'`` picks it for large kernels on CPU float32/64. Half-precision input on CPU is
    computed in float32 and cast back.
    """
    if img.device.type == "cpu" and img.dtype in (torch.float16, torch.bfloat16):
        # CPU half-precision convolutions are slow and FFTs unsupported: compute in float32
        return filter2d(img.float(), kernel.float(), method=method).to(img.dtype)
    kernel, k = _check(img, kernel)
    b, c, h, w = img.shape
    p = k // 2
    if method == "auto":
        big = k * k >= _FFT_MIN_TAPS and img.device.type == "cpu"
        method = "fft" if big and img.dtype in (torch.float32, torch.float64) else "direct"
    if method == "fft":
        return _filter_fft(img, kernel, p)
    if method != "direct":
        raise ValueError(f"filter2d: method {method!r} is not one of 'auto', 'direct', 'fft'")
    padded = F.pad(img, (p, p, p, p), mode="reflect")
    if kernel.shape[0] == 1:
        out = F.conv2d(padded.reshape(b * c, 1, h + 2 * p, w + 2 * p), kernel[:, None])
        return out.view(b, c, h, w)
    weight = kernel.repeat_interleave(c, dim=0)[:, None]  # (B*C, 1, k, k)
    out = F.conv2d(padded.reshape(1, b * c, h + 2 * p, w + 2 * p), weight, groups=b * c)
    return out.view(b, c, h, w)


def _filter_fft(img: Tensor, kernel: Tensor, p: int) -> Tensor:
    """Correlation through FFTs of the reflect-padded planes (see :func:`filter2d`).

    The 2-D transforms are composed of 1-D ones of length :func:`fft_size` (zero-padded): a real
    FFT along W, then a complex FFT along H. The kernel spectrum transforms only its k rows along
    W; the inverse keeps just the H output rows before the last real inverse. Same numbers as
    ``rfft2``/``irfft2`` up to float rounding, fewer copies.
    """
    b, c, h, w = img.shape
    # transform lengths >= the padded size have no wrap-around in the rows and columns kept;
    # a length with small prime factors is several times faster (437: 40 ms, 448: 8 ms)
    hf, wf = fft_size(h + 2 * p), fft_size(w + 2 * p)
    kspec = torch.fft.fft(torch.fft.rfft(kernel, n=wf, dim=-1), n=hf, dim=-2).conj()
    out = torch.empty_like(img)
    # single-threaded CPU: one sample at a time keeps the spectra in cache (~2x faster, same
    # numbers); otherwise one batched call parallelises better
    step = 1 if img.device.type == "cpu" and torch.get_num_threads() == 1 else b
    for i in range(0, b, step):
        padded = F.pad(img[i : i + step], (p, p, p, p), mode="reflect")
        spec = torch.fft.fft(torch.fft.rfft(padded, n=wf, dim=-1), n=hf, dim=-2)
        spec.mul_(kspec[i : i + step, None] if kspec.shape[0] == b else kspec[:, None])
        rows = torch.fft.ifft(spec, dim=-2)[..., :h, :]
        out[i : i + step] = torch.fft.irfft(rows, n=wf, dim=-1)[..., :w]
    return out


def fft_size(n: int) -> int:
    """The smallest even m >= n whose prime factors are all 2, 3, 5 or 7 (fast FFT lengths)."""
    m = n + (n % 2)
    while True:
        r = m
        for f in (2, 3, 5, 7):
            while r % f == 0:
                r //= f
        if r == 1:
            return m
        m += 2
