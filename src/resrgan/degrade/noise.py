"""Gaussian and Poisson noise (spec §1.6, upstream ``random_add_gaussian_noise_pt`` /
``random_add_poisson_noise_pt`` of ``basicsr/data/degradations.py``), with per-sample parameters.

The bulk noise is drawn from the ``generator`` argument (on the image's device). Noise is drawn only
for the samples that use it (colour maps for colour samples, gray maps for gray samples), so the
values differ from upstream's stream while the distribution is the same. Batched equals looped in
distribution; bit-for-bit equality holds for the deterministic ops only.
"""

from __future__ import annotations

import torch
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale, as upstream uses


def _per_sample(v: Tensor | float, b: int, img: Tensor) -> Tensor:
    t = torch.as_tensor(v, device=img.device, dtype=img.dtype)
    return t.expand(b) if t.ndim == 0 else t


def _finish(out: Tensor, clip: bool, rounds: bool) -> Tensor:
    if clip:
        out = out.clamp(0, 1)
    if rounds:
        out = (out * 255).round() / 255
    return out


def add_gaussian_noise(
    img: Tensor,
    sigma: Tensor | float,
    gray: Tensor | bool = False,
    *,
    generator: torch.Generator,
    shared_gray: bool = True,
    clip: bool = True,
    rounds: bool = False,
) -> Tensor:
    """Add N(0, (σ/255)²) noise to (B, C, H, W); σ (B,) is on the 0-255 scale.

    Colour samples get an independent map per channel; gray samples (``gray`` (B,) bool) get one map
    repeated over the channels. With ``shared_gray`` (upstream behaviour) a single (H, W) standard
    normal map is drawn per call and every gray sample uses it, scaled by its own σ; otherwise each
    gray sample gets its own map. ``clip`` clamps to [0, 1]; ``rounds`` then quantises to 1/255.
    """
    b, c, h, w = img.shape
    sig = _per_sample(sigma, b, img) / 255.0
    g = torch.as_tensor(gray, device=img.device, dtype=torch.bool)
    g = g.expand(b) if g.ndim == 0 else g
    noise = torch.empty_like(img)
    colour_idx = (~g).nonzero().flatten()
    gray_idx = g.nonzero().flatten()
    if colour_idx.numel():
        n = torch.randn(
            (colour_idx.numel(), c, h, w), generator=generator, device=img.device, dtype=img.dtype
        )
        noise[colour_idx] = n
    if gray_idx.numel():
        count = 1 if shared_gray else gray_idx.numel()
        n = torch.randn((count, 1, h, w), generator=generator, device=img.device, dtype=img.dtype)
        noise[gray_idx] = n.expand(gray_idx.numel(), c, h, w)
    return _finish(img + noise * sig.view(b, 1, 1, 1), clip, rounds)


def _quantise(x: Tensor) -> Tensor:
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def unique_value_counts(img_q: Tensor) -> Tensor:
    """Number of distinct values per sample of an image quantised to k/255 -> (B,) int64."""
    b = img_q.shape[0]
    levels = (img_q * 255).round().long().clamp(0, 255).reshape(b, -1)
    offsets = torch.arange(b, device=img_q.device).view(b, 1) * 256
    hist = torch.bincount((levels + offsets).flatten(), minlength=b * 256).view(b, 256)
    return (hist > 0).sum(dim=1)


def _poisson_noise(x: Tensor, generator: torch.Generator) -> Tensor:
    """Upstream's Poisson noise of an image x: quantise, power-of-two unique count, Poisson."""
    b = x.shape[0]
    x_q = _quantise(x)
    vals = unique_value_counts(x_q).to(torch.float64)
    vals = torch.pow(2.0, torch.ceil(torch.log2(vals))).to(x.dtype).view(b, 1, 1, 1)
    rate = (x_q * vals).float()
    out = torch.poisson(rate, generator=generator).to(x.dtype) / vals
    return out - x_q


def add_poisson_noise(
    img: Tensor,
    scale: Tensor | float,
    gray: Tensor | bool = False,
    *,
    generator: torch.Generator,
    clip: bool = True,
    rounds: bool = False,
) -> Tensor:
    """Add scaled Poisson (shot) noise to (B, C, H, W) in [0, 1]; ``scale``, ``gray`` (B,).

    Per sample, the image (colour) or its gray version (0.2989R + 0.587G + 0.114B; gray samples,
    C=3) is quantised to 8 bits; ``vals`` = 2^ceil(log2(number of distinct values in that sample));
    the noise is ``Poisson(img_q·vals)/vals − img_q``, repeated over channels for gray, times
    ``scale``, and is added to the original (unquantised) image. Noise variance is therefore
    ``scale²·img_q/vals``. ``clip`` clamps to [0, 1]; ``rounds`` then quantises to 1/255.
    """
    b, c, h, w = img.shape
    sc = _per_sample(scale, b, img)
    g = torch.as_tensor(gray, device=img.device, dtype=torch.bool)
    g = g.expand(b) if g.ndim == 0 else g
    noise = torch.empty_like(img)
    colour_idx = (~g).nonzero().flatten()
    gray_idx = g.nonzero().flatten()
    if colour_idx.numel():
        noise[colour_idx] = _poisson_noise(img[colour_idx], generator)
    if gray_idx.numel():
        x = img[gray_idx]
        if c == 3:
            wts = torch.tensor(GRAY_WEIGHTS, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
            x = (x * wts).sum(dim=1, keepdim=True)
        elif c != 1:
            x = x.mean(dim=1, keepdim=True)
        noise[gray_idx] = _poisson_noise(x, generator).expand(-1, c, h, w)
    return _finish(img + noise * sc.view(b, 1, 1, 1), clip, rounds)
