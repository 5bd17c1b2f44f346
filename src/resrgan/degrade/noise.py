"""Gaussian and Poisson noise (spec §1.6, upstream ``random_add_gaussian_noise_pt`` /
``random_add_poisson_noise_pt`` of ``basicsr/data/degradations.py``), with per-sample parameters.

The bulk noise is drawn from the ``generator`` argument (on the image's device). Noise is drawn only
for the samples that use it (colour maps for colour samples, gray maps for gray samples), so the
values differ from upstream's stream while the distribution is the same. Batched equals looped in
distribution; bit-for-bit equality holds for the deterministic ops only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale, as upstream uses


def _per_sample(v: Tensor | float, b: int, img: Tensor) -> Tensor:
    t = torch.as_tensor(v, device=img.device, dtype=img.dtype)
    return t.expand(b) if t.ndim == 0 else t


def _finish(out: Tensor, clip: bool, rounds: bool) -> Tensor:
    """Clamp / quantise ``out`` in place (it is always a fresh tensor here)."""
    if clip:
        out = out.clamp_(0, 1)
    if rounds:
        out = out.mul_(255).round_().div_(255)
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
    colour_idx = (~g).nonzero().flatten()
    gray_idx = g.nonzero().flatten()
    kw = {"generator": generator, "device": img.device, "dtype": img.dtype}
    if gray_idx.numel() == 0:
        noise = torch.randn((b, c, h, w), **kw)
    else:
        noise = torch.empty_like(img)
        if colour_idx.numel():
            noise[colour_idx] = torch.randn((colour_idx.numel(), c, h, w), **kw)
        count = 1 if shared_gray else gray_idx.numel()
        gray_map = torch.randn((count, 1, h, w), **kw)
        noise[gray_idx] = gray_map.expand(gray_idx.numel(), c, h, w)
    return _finish(torch.addcmul(img, noise, sig.view(b, 1, 1, 1)), clip, rounds)


def _levels(x: Tensor) -> Tensor:
    """8-bit levels of x in [0, 1]: clamp(round(255·x), 0, 255), as a float tensor."""
    return (x * 255.0).round_().clamp_(0, 255)


def unique_value_counts(img_q: Tensor) -> Tensor:
    """Number of distinct values per sample of an image quantised to k/255 -> (B,) int64."""
    return _unique_level_counts(_levels(img_q))


def _unique_level_counts(levels: Tensor) -> Tensor:
    b = levels.shape[0]
    flat = levels.reshape(b, -1).long()
    offsets = torch.arange(b, device=levels.device).view(b, 1) * 256
    hist = torch.bincount((flat + offsets).flatten(), minlength=b * 256).view(b, 256)
    return (hist > 0).sum(dim=1)


_POISSON_CHUNKS = 4  # fixed, so results do not depend on the thread count
_POISSON_MIN_PARALLEL = 1 << 18


def sample_poisson(rate: Tensor, *, generator: torch.Generator) -> Tensor:
    """``torch.poisson(rate)``, drawn in parallel on CPU.

    PyTorch's CPU Poisson sampler is serial; large CPU tensors are split into a fixed number of
    chunks, each drawn from its own generator seeded from ``generator``, on up to
    ``torch.get_num_threads()`` threads (the op releases the GIL). The values depend only on
    ``generator``'s state, not on the number of threads. Other devices: one ``torch.poisson`` call.
    """
    if rate.device.type != "cpu" or rate.numel() < _POISSON_MIN_PARALLEL:
        return torch.poisson(rate, generator=generator)
    seeds = torch.randint(0, 2**62, (_POISSON_CHUNKS,), generator=generator).tolist()
    parts = rate.reshape(-1).tensor_split(_POISSON_CHUNKS)

    def draw(i: int) -> Tensor:
        return torch.poisson(parts[i], generator=torch.Generator().manual_seed(seeds[i]))

    workers = max(1, min(_POISSON_CHUNKS, torch.get_num_threads()))
    if workers == 1:
        outs = [draw(i) for i in range(_POISSON_CHUNKS)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            outs = list(ex.map(draw, range(_POISSON_CHUNKS)))
    return torch.cat(outs).view(rate.shape)


def _poisson_noise(x: Tensor, generator: torch.Generator) -> Tensor:
    """Upstream's Poisson noise of an image x: quantise to 8 bits, count the distinct values,
    round the count up to a power of two ``vals``; noise = Poisson(x_q·vals)/vals − x_q."""
    b = x.shape[0]
    levels = _levels(x)
    vals = _unique_level_counts(levels).to(torch.float64)
    vals = torch.pow(2.0, torch.ceil(torch.log2(vals))).view(b, 1, 1, 1)
    vals_t = vals.to(x.dtype)
    rate = (levels * (vals_t / 255.0)).float()  # x_q · vals (torch.poisson wants float32)
    counts = sample_poisson(rate, generator=generator).to(x.dtype)
    return counts.div_(vals_t).sub_(levels.div_(255.0))  # P/vals - x_q, in x's precision


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
    colour_idx = (~g).nonzero().flatten()
    gray_idx = g.nonzero().flatten()
    if gray_idx.numel() == 0:
        noise = _poisson_noise(img, generator)
    else:
        noise = torch.empty_like(img)
        if colour_idx.numel():
            noise[colour_idx] = _poisson_noise(img[colour_idx], generator)
        x = img[gray_idx]
        if c == 3:
            wts = torch.tensor(GRAY_WEIGHTS, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
            x = (x * wts).sum(dim=1, keepdim=True)
        elif c != 1:
            x = x.mean(dim=1, keepdim=True)
        noise[gray_idx] = _poisson_noise(x, generator).expand(-1, c, h, w)
    return _finish(torch.addcmul(img, noise, sc.view(b, 1, 1, 1)), clip, rounds)
