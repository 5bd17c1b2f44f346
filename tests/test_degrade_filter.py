"""filter2d (reflect padding + cross-correlation, spec §1.5) and resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from resrgan.degradation.filter import filter2d
from resrgan.degradation.kernels import make_kernels, pulse_kernel
from resrgan.degradation.resize import resize


def kernels(b: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return make_kernels(
        ["aniso"] * b,
        [21, 7, 13, 21][:b],
        sigma_x=(torch.rand(b, generator=g) * 2 + 0.5).tolist(),
        sigma_y=(torch.rand(b, generator=g) * 2 + 0.5).tolist(),
        theta=(torch.rand(b, generator=g) * 3).tolist(),
        beta=[1.0] * b,
        omega_c=[0.0] * b,
        dtype=torch.float64,
    )


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_delta_kernel_is_identity(method: str) -> None:
    x = torch.rand(2, 3, 30, 41, dtype=torch.float64)
    out = filter2d(x, pulse_kernel(21, dtype=torch.float64), method=method)
    torch.testing.assert_close(out, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_matches_scipy_mirror_correlation_per_sample(method: str) -> None:
    x = torch.rand(4, 3, 37, 50, dtype=torch.float64)
    k = kernels(4)
    out = filter2d(x, k, method=method)
    for b in range(4):
        for c in range(3):
            # scipy 'mirror' is reflect-101 (d c b | a b c d | c b a), as torch 'reflect'
            ref = ndimage.correlate(x[b, c].numpy(), k[b].numpy(), mode="mirror")
            np.testing.assert_allclose(out[b, c].numpy(), ref, atol=1e-10)


def test_fft_equals_direct_in_float32() -> None:
    x = torch.rand(3, 3, 64, 48)
    k = kernels(3).float()
    torch.testing.assert_close(
        filter2d(x, k, method="fft"), filter2d(x, k, method="direct"), atol=2e-6, rtol=0
    )


def test_shared_kernel_applies_to_every_plane() -> None:
    x = torch.rand(2, 3, 25, 25, dtype=torch.float64)
    k = kernels(1)
    out = filter2d(x, k)
    torch.testing.assert_close(out, filter2d(x, k.expand(2, -1, -1).contiguous()))


def test_batched_equals_looped_and_input_untouched() -> None:
    x = torch.rand(4, 3, 40, 40)
    before = x.clone()
    k = kernels(4).float()
    out = filter2d(x, k)
    loop = torch.cat([filter2d(x[i : i + 1], k[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(out, loop, atol=1e-6, rtol=0)
    assert torch.equal(x, before)


def test_bad_kernels_are_refused_with_reasons() -> None:
    x = torch.rand(2, 3, 30, 30)
    with pytest.raises(ValueError, match="kernel size must be odd, got 4"):
        filter2d(x, torch.ones(4, 4) / 16)
    with pytest.raises(ValueError, match="3 kernels for a batch of 2"):
        filter2d(x, torch.ones(3, 5, 5))
    with pytest.raises(ValueError, match="reflect padding 10 needs an image larger"):
        filter2d(torch.rand(1, 3, 8, 30), torch.ones(21, 21))


def test_area_downscale_by_half_is_2x2_average() -> None:
    x = torch.rand(2, 3, 40, 60, dtype=torch.float64)
    out = resize(x, mode="area", scale_factor=0.5)
    torch.testing.assert_close(out, F.avg_pool2d(x, 2))


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_scale_factor_output_size_is_floor(mode: str) -> None:
    x = torch.rand(1, 3, 400, 400)
    assert resize(x, mode=mode, scale_factor=0.15).shape[-2:] == (60, 60)
    assert resize(x, mode=mode, scale_factor=1.37).shape[-2:] == (548, 548)
    assert resize(x, mode=mode, size=(30, 120)).shape[-2:] == (30, 120)


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_resize_to_same_size_is_identity(mode: str) -> None:
    x = torch.rand(2, 3, 33, 17)
    assert torch.equal(resize(x, mode=mode, size=(33, 17)), x)
    torch.testing.assert_close(resize(x, mode=mode, scale_factor=1.0), x)


def test_bilinear_upscale_of_a_linear_ramp_stays_linear_inside() -> None:
    ramp = torch.arange(20, dtype=torch.float64).view(1, 1, 1, 20).expand(1, 1, 4, 20)
    out = resize(ramp, mode="bilinear", size=(4, 40))[0, 0, 0]
    # align_corners=False: output j samples input (j + 0.5)/2 - 0.5
    j = torch.arange(2, 38, dtype=torch.float64)
    torch.testing.assert_close(out[2:38], (j + 0.5) / 2 - 0.5)


def test_resize_rejects_bad_arguments() -> None:
    x = torch.rand(1, 3, 10, 10)
    with pytest.raises(ValueError, match="mode 'nearest' is not one of"):
        resize(x, mode="nearest", scale_factor=2.0)
    with pytest.raises(ValueError, match="exactly one of scale_factor or size"):
        resize(x, mode="area")


@settings(max_examples=15)
@given(
    b=st.integers(1, 3),
    h=st.integers(11, 40),
    w=st.integers(11, 40),
    k=st.sampled_from([1, 3, 7, 21]),
    method=st.sampled_from(["direct", "fft"]),
)
def test_property_batched_equals_looped_any_shape(
    b: int, h: int, w: int, k: int, method: str
) -> None:
    if k // 2 >= min(h, w):
        k = 3
    x = torch.rand(b, 3, h, w, dtype=torch.float64)
    ker = torch.rand(b, k, k, dtype=torch.float64)
    out = filter2d(x, ker, method=method)
    assert out.shape == x.shape
    loop = torch.cat([filter2d(x[i : i + 1], ker[i : i + 1], method="direct") for i in range(b)])
    torch.testing.assert_close(out, loop, atol=1e-10, rtol=1e-10)


def test_fft_single_thread_per_sample_path_equals_batched_path() -> None:
    x = torch.rand(3, 3, 40, 44)
    k = kernels(3).float()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = filter2d(x, k, method="fft")
        torch.set_num_threads(2)
        two = filter2d(x, k, method="fft")
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(one, two, atol=1e-6, rtol=0)


def test_fft_size_is_even_smooth_and_minimal() -> None:
    from resrgan.degradation.filter import fft_size

    def smooth(m: int) -> bool:
        for f in (2, 3, 5, 7):
            while m % f == 0:
                m //= f
        return m == 1

    for n in range(1, 700):
        m = fft_size(n)
        assert m >= n and m % 2 == 0 and smooth(m)
        assert not any(smooth(k) for k in range(n + (n % 2), m, 2))
    assert fft_size(420) == 420 and fft_size(437) == 448


@pytest.mark.parametrize("size", [37, 61, 437])
def test_fft_filter_at_awkward_sizes_equals_direct(size: int) -> None:
    g = torch.Generator().manual_seed(size)
    img = torch.rand(2, 3, size, size + 3, generator=g, dtype=torch.float64)
    k = torch.rand(2, 21, 21, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        filter2d(img, k, method="fft"), filter2d(img, k, method="direct"), rtol=0, atol=1e-12
    )
