"""Gaussian and Poisson noise (spec §1.6): statistics, gray sharing, power-of-two quantisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from resrgan.degradation.noise import (
    add_gaussian_noise,
    add_poisson_noise,
    derived_seed,
    sample_generators,
    unique_value_counts,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_std_matches_sigma() -> None:
    img = torch.full((2, 3, 200, 200), 0.5, dtype=torch.float64)
    out = add_gaussian_noise(img, torch.tensor([10.0, 20.0]), False, generator=gen())
    n = 3 * 200 * 200
    for b, s in enumerate((10.0, 20.0)):
        std = (out[b] - 0.5).std().item()
        # std of the sample std ~ sigma/sqrt(2n); 4.5 of those
        assert abs(std - s / 255) < 4.5 * (s / 255) / math.sqrt(2 * n)
        assert abs((out[b] - 0.5).mean().item()) < 4.5 * (s / 255) / math.sqrt(n)


def test_gray_gaussian_noise_is_equal_across_channels_and_shared_upstream_style() -> None:
    img = torch.full((3, 3, 50, 50), 0.5, dtype=torch.float64)
    sig = torch.tensor([5.0, 10.0, 20.0])
    gray = torch.tensor([True, False, True])
    out = add_gaussian_noise(img, sig, gray, generator=gen())
    noise = out - img
    for b in (0, 2):
        torch.testing.assert_close(noise[b, 0], noise[b, 1])
        torch.testing.assert_close(noise[b, 0], noise[b, 2])
    assert (noise[1, 0] - noise[1, 1]).abs().max() > 0.01  # colour noise differs per channel
    # upstream quirk: one gray map for the batch, scaled per sample
    torch.testing.assert_close(noise[0] / 5.0, noise[2] / 20.0)
    own = add_gaussian_noise(img, sig, gray, generator=gen(), shared_gray=False) - img
    assert (own[0] / 5.0 - own[2] / 20.0).abs().max() > 1e-3


def test_gaussian_noise_clips_and_rounds() -> None:
    img = torch.rand(2, 3, 30, 30)
    out = add_gaussian_noise(img, 30.0, False, generator=gen(), rounds=True)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)


def test_unique_value_counts_match_numpy() -> None:
    g = gen(1)
    x = torch.randint(0, 40, (3, 3, 20, 20), generator=g).float() / 255
    x[1] = 0.2
    ref = [len(np.unique(x[i].numpy())) for i in range(3)]
    assert unique_value_counts(x).tolist() == ref
    assert ref[1] == 1


def ramp_image(levels: list[int], n: int) -> torch.Tensor:
    """(1, 3, len(levels) + 1, n): one 8-bit level per row, and a row with all 256 values."""
    rows = [torch.full((n,), lv / 255.0, dtype=torch.float64) for lv in levels]
    extra = torch.arange(256, dtype=torch.float64).repeat(n // 256 + 1)[:n] / 255
    return torch.stack([*rows, extra]).expand(3, -1, -1)[None].contiguous()


def test_poisson_variance_is_proportional_to_intensity() -> None:
    levels, n = [32, 96, 160, 224], 20000
    img = ramp_image(levels, n)  # 256 distinct values -> vals = 256
    scale = 1.5
    out = add_poisson_noise(img, scale, False, generator=gen(2), clip=False)
    noise = out - img
    for r, lv in enumerate(levels):
        var = noise[0, :, r].var().item()
        expect = scale**2 * (lv / 255) / 256
        # 3n samples; relative std of a sample variance ~ sqrt(2/(3n)) (Poisson, lam >= 32)
        assert abs(var / expect - 1) < 4.5 * math.sqrt(2 / (3 * n)) + 0.01
        assert abs(noise[0, :, r].mean().item()) < 4.5 * math.sqrt(expect / (3 * n))


def test_poisson_counts_are_quantised_to_a_power_of_two_of_unique_values() -> None:
    # 5 distinct values -> vals = 8: out = Poisson(8 * img) / 8 with scale 1 and exact 8-bit input
    vals = torch.tensor([0, 51, 102, 153, 204], dtype=torch.float64) / 255
    img = vals.repeat(1, 3, 40, 40)
    out = add_poisson_noise(img, 1.0, False, generator=gen(3), clip=False)
    counts = out * 8
    torch.testing.assert_close(counts, counts.round(), atol=1e-9, rtol=0)
    assert counts.min() >= 0
    assert (counts.round() != (img * 8).round()).any()


def test_gray_poisson_noise_is_equal_across_channels() -> None:
    img = ramp_image([80, 120], 3000).repeat(2, 1, 1, 1)
    img[:, 1] = img[:, 1] * 0.9  # make channels differ: gray = weighted mix
    out = add_poisson_noise(
        img, torch.tensor([1.0, 1.0]), torch.tensor([True, False]), generator=gen(4), clip=False
    )
    noise = out - img
    torch.testing.assert_close(noise[0, 0], noise[0, 1])
    torch.testing.assert_close(noise[0, 0], noise[0, 2])
    assert (noise[1, 0] - noise[1, 1]).abs().max() > 0.01


def test_noise_is_deterministic_for_a_seed_and_input_untouched() -> None:
    img = torch.rand(2, 3, 32, 32)
    before = img.clone()
    for fn, arg in ((add_gaussian_noise, 10.0), (add_poisson_noise, 1.0)):
        a = fn(img, arg, torch.tensor([True, False]), generator=gen(5))
        b = fn(img, arg, torch.tensor([True, False]), generator=gen(5))
        c = fn(img, arg, torch.tensor([True, False]), generator=gen(6))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(img, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_keeps_shape_and_dtype(dtype: torch.dtype) -> None:
    img = torch.rand(2, 3, 17, 23, dtype=dtype)
    assert add_gaussian_noise(img, 5.0, generator=gen()).dtype == dtype
    assert add_poisson_noise(img, 1.0, generator=gen()).shape == img.shape


def test_chunked_poisson_sampler_is_thread_count_independent_and_poisson() -> None:
    from resrgan.degradation.noise import sample_poisson

    rate = torch.full((300_000,), 7.5)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = sample_poisson(rate, generator=gen(9))
        torch.set_num_threads(2)
        b = sample_poisson(rate, generator=gen(9))
    finally:
        torch.set_num_threads(old)
    assert torch.equal(a, b)
    n = rate.numel()
    assert abs(a.mean().item() - 7.5) < 4.5 * math.sqrt(7.5 / n)
    # var of the sample variance of Poisson(λ): (λ + 2λ²)/n
    assert abs(a.var().item() - 7.5) < 4.5 * math.sqrt((7.5 + 2 * 7.5**2) / n)
    assert torch.equal(a, a.round())


@pytest.mark.parametrize("kind", ["gaussian", "poisson"])
@pytest.mark.parametrize("shared", [True, False])
def test_per_sample_generators_make_batched_equal_looped_bit_for_bit(
    kind: str, shared: bool
) -> None:
    img = torch.rand(4, 3, 24, 24, generator=gen(1))
    arg = torch.tensor([5.0, 10.0, 20.0, 30.0]) if kind == "gaussian" else torch.rand(4) * 3
    gray = torch.tensor([True, False, True, False])
    gmap = torch.randn(24, 24, generator=gen(2))

    def run(x, a, g, start, stop):
        gens = sample_generators(7, start, stop)
        if kind == "poisson":
            return add_poisson_noise(x, a, g, generator=gens, clip=False)
        return add_gaussian_noise(
            x, a, g, generator=gens, shared_gray=shared, gray_map=gmap, clip=False
        )

    batched = run(img, arg, gray, 0, 4)
    looped = torch.cat(
        [run(img[i : i + 1], arg[i : i + 1], gray[i : i + 1], i, i + 1) for i in range(4)]
    )
    assert torch.equal(batched, looped)
    assert (batched - img).abs().max() > 1e-3  # noise was added
    noise = batched - img
    torch.testing.assert_close(noise[0, 0], noise[0, 2])  # gray stays gray
    if kind == "gaussian" and shared:  # the one shared map, scaled per sample
        torch.testing.assert_close(noise[0] / 5.0, noise[2] / 20.0)
        torch.testing.assert_close(noise[0, 0] / 5.0, gmap / 255.0)


def test_per_sample_generators_are_checked() -> None:
    img = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        add_gaussian_noise(img, 5.0, generator=sample_generators(0, 0, 3))
    with pytest.raises(ValueError, match="need gray_map"):
        add_gaussian_noise(img, 5.0, True, generator=sample_generators(0, 0, 2))


def test_derived_seeds_differ_in_the_low_32_bits() -> None:
    seeds = [derived_seed(123, i) for i in range(1000)] + [derived_seed(123, "gray")]
    assert len({s & 0xFFFFFFFF for s in seeds}) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    assert derived_seed(123, 0) == derived_seed(123, 0) != derived_seed(124, 0)
