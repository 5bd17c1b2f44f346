"""Gaussian and Poisson noise (spec §1.6, upstream ``random_add_gaussian_noise_pt`` /
``random_add_poisson_noise_pt`` of ``basicsr/data/degradations.py``), with per-sample parameters.

The bulk noise is drawn from the ``generator`` argument (on the image's device): one generator for
the whole batch, or one per sample (:func:`sample_generators`), in which case every sample's noise
depends on its own generator only and a batch gives bit for bit what its samples give one at a
time (the pipeline uses this to work through a batch in cache-sized chunks). Noise is drawn only
for the samples that use it (colour maps for colour samples, gray maps for gray samples), so the
values differ from upstream's stream while the distribution is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from ..seeds import derive_seed

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale, as upstream uses


Generators = torch.Generator | Sequence[torch.Generator]


def derived_seed(seed: int, key: int | str) -> int:
    """The noise seed of one sample (``key``: its index, or ``"gray"``):
    :func:`resrgan.seeds.derive_seed` with the pinned ``"blake2b"`` scheme."""
    return derive_seed(seed, key, scheme="blake2b")


def sample_generators(
    seed: int, start: int, stop: int, device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """Generators for samples ``start..stop-1`` of a batch whose noise seed is ``seed``."""
    return [
        torch.Generator(device=device).manual_seed(derived_seed(seed, i))
        for i in range(start, stop)
    ]


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
    generator: Generators,
    shared_gray: bool = True,
    gray_map: Tensor | None = None,
    clip: bool = True,
    rounds: bool = False,
) -> Tensor:
    """Add N(0, (σ/255)²) noise to (B, C, H, W); σ (B,) is on the 0-255 scale.

    Colour samples get an independent map per channel; gray samples (``gray`` (B,) bool) get one map
    repeated over the channels. With ``shared_gray`` (upstream behaviour) a single (H, W) standard
    normal map is drawn per call and every gray sample uses it, scaled by its own σ; otherwise each
    gray sample gets its own map. ``generator`` is one generator or one per sample; with one per
    sample, a shared gray map must be passed as ``gray_map`` ((H, W), standard normal) so that
    it is the same for every part of a batch. ``clip`` clamps to [0, 1]; ``rounds`` then
    quantises to 1/255.
    """
    b, c, h, w = img.shape
    sig = _per_sample(sigma, b, img) / 255.0
    g = torch.as_tensor(gray, device=img.device, dtype=torch.bool)
    g = g.expand(b) if g.ndim == 0 else g
    kw = {"device": img.device, "dtype": img.dtype}
    if not isinstance(generator, torch.Generator):
        gens = _check_generators(generator, b)
        flags = g.tolist()
        if shared_gray and any(flags) and gray_map is None:
            raise ValueError(
                "add_gaussian_noise: per-sample generators with shared gray noise need gray_map"
            )
        noise = torch.empty_like(img)
        for i, gen in enumerate(gens):
            if not flags[i]:
                noise[i] = torch.randn((c, h, w), generator=gen, **kw)
            elif shared_gray:
                noise[i] = gray_map.to(**kw).view(1, h, w).expand(c, h, w)
            else:
                noise[i] = torch.randn((1, h, w), generator=gen, **kw).expand(c, h, w)
        return _finish(torch.addcmul(img, noise, sig.view(b, 1, 1, 1)), clip, rounds)
    colour_idx = (~g).nonzero().flatten()
    gray_idx = g.nonzero().flatten()
    kw["generator"] = generator
    if gray_idx.numel() == 0:
        noise = torch.randn((b, c, h, w), **kw)
    else:
        noise = torch.empty_like(img)
        if colour_idx.numel():
            noise[colour_idx] = torch.randn((colour_idx.numel(), c, h, w), **kw)
        if shared_gray and gray_map is not None:
            gray_noise = gray_map.to(img.device, img.dtype).view(1, 1, h, w)
        else:
            gray_noise = torch.randn((1 if shared_gray else gray_idx.numel(), 1, h, w), **kw)
        noise[gray_idx] = gray_noise.expand(gray_idx.numel(), c, h, w)
    return _finish(torch.addcmul(img, noise, sig.view(b, 1, 1, 1)), clip, rounds)


def _check_generators(generator: Sequence[torch.Generator], b: int) -> list[torch.Generator]:
    gens = list(generator)
    if len(gens) != b:
        raise ValueError(f"noise: {len(gens)} generators for a batch of {b}; give 1 or {b}")
    return gens


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
    return _draw_poisson([(rate, generator)])[0]


def _draw_poisson(jobs: list[tuple[Tensor, torch.Generator]]) -> list[Tensor]:
    """:func:`sample_poisson` of every (rate, generator) pair, all drawn on one thread pool."""
    parts: list[tuple[Tensor, torch.Generator]] = []
    counts = []
    for rate, gen in jobs:
        if rate.device.type != "cpu" or rate.numel() < _POISSON_MIN_PARALLEL:
            split = [(rate, gen)]
        else:
            seeds = torch.randint(0, 2**62, (_POISSON_CHUNKS,), generator=gen).tolist()
            pieces = rate.reshape(-1).tensor_split(_POISSON_CHUNKS)
            split = [
                (r, torch.Generator().manual_seed(sd)) for r, sd in zip(pieces, seeds, strict=True)
            ]
        parts.extend(split)
        counts.append(len(split))

    def draw(job: tuple[Tensor, torch.Generator]) -> Tensor:
        return torch.poisson(job[0], generator=job[1])

    workers = min(len(parts), torch.get_num_threads())
    cpu = all(r.device.type == "cpu" for r, _ in parts)
    if workers <= 1 or not cpu or sum(r.numel() for r, _ in parts) < _POISSON_MIN_PARALLEL // 4:
        drawn = [draw(j) for j in parts]
    else:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            drawn = list(ex.map(draw, parts))
    out, at = [], 0
    for (rate, _), n in zip(jobs, counts, strict=True):
        out.append(drawn[at] if n == 1 else torch.cat(drawn[at : at + n]).view(rate.shape))
        at += n
    return out


def _poisson_rate(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Upstream's Poisson set-up for an image x: quantise to 8 bits (``levels``), count the
    distinct values, round the count up to a power of two ``vals``; the rate is x_q·vals."""
    b = x.shape[0]
    levels = _levels(x)
    vals = _unique_level_counts(levels).to(torch.float64)
    vals = torch.pow(2.0, torch.ceil(torch.log2(vals))).view(b, 1, 1, 1).to(x.dtype)
    return (levels * (vals / 255.0)).float(), levels, vals  # torch.poisson wants float32


def _poisson_finish(counts: Tensor, levels: Tensor, vals: Tensor) -> Tensor:
    """noise = P/vals − x_q, in the image's precision."""
    return counts.to(levels.dtype).div_(vals).sub_(levels.div_(255.0))


def _poisson_noise(x: Tensor, generator: torch.Generator) -> Tensor:
    """Upstream's Poisson noise of an image x: Poisson(x_q·vals)/vals − x_q."""
    rate, levels, vals = _poisson_rate(x)
    return _poisson_finish(sample_poisson(rate, generator=generator), levels, vals)


def add_poisson_noise(
    img: Tensor,
    scale: Tensor | float,
    gray: Tensor | bool = False,
    *,
    generator: Generators,
    clip: bool = True,
    rounds: bool = False,
) -> Tensor:
    """Add scaled Poisson (shot) noise to (B, C, H, W) in [0, 1]; ``scale``, ``gray`` (B,).

    Per sample, the image (colour) or its gray version (0.2989R + 0.587G + 0.114B; gray samples,
    C=3) is quantised to 8 bits; ``vals`` = 2^ceil(log2(number of distinct values in that sample));
    the noise is ``Poisson(img_q·vals)/vals − img_q``, repeated over channels for gray, times
    ``scale``, and is added to the original (unquantised) image. Noise variance is therefore
    ``scale²·img_q/vals``. ``generator``: one, or one per sample (see :func:`add_gaussian_noise`).
    ``clip`` clamps to [0, 1]; ``rounds`` then quantises to 1/255.
    """
    b, c, h, w = img.shape
    sc = _per_sample(scale, b, img)
    g = torch.as_tensor(gray, device=img.device, dtype=torch.bool)
    g = g.expand(b) if g.ndim == 0 else g
    if not isinstance(generator, torch.Generator):
        gens = _check_generators(generator, b)
        flags = g.tolist()
        setups = [
            _poisson_rate(_gray(img[i : i + 1]) if flags[i] else img[i : i + 1]) for i in range(b)
        ]
        counts = _draw_poisson([(st[0], gen) for st, gen in zip(setups, gens, strict=True)])
        noise = torch.empty_like(img)
        for i, (cnt, (_, levels, vals)) in enumerate(zip(counts, setups, strict=True)):
            noise[i : i + 1] = _poisson_finish(cnt, levels, vals)
        return _finish(torch.addcmul(img, noise, sc.view(b, 1, 1, 1)), clip, rounds)
    colour_idx = (~g).nonzero().flatten()
    gray_idx = g.nonzero().flatten()
    if gray_idx.numel() == 0:
        noise = _poisson_noise(img, generator)
    else:
        noise = torch.empty_like(img)
        if colour_idx.numel():
            noise[colour_idx] = _poisson_noise(img[colour_idx], generator)
        noise[gray_idx] = _poisson_noise(_gray(img[gray_idx]), generator).expand(-1, c, h, w)
    return _finish(torch.addcmul(img, noise, sc.view(b, 1, 1, 1)), clip, rounds)


def _gray(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, 1, H, W): torchvision's luma weights for RGB, the mean otherwise."""
    if x.shape[1] == 3:
        wts = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * wts).sum(dim=1, keepdim=True)
    return x if x.shape[1] == 1 else x.mean(dim=1, keepdim=True)
