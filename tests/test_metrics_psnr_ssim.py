"""PSNR and SSIM: closed forms, BasicSR conventions, and an independent direct SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resrgan.errors import ResrganError
from resrgan.metrics import psnr, rgb_to_y, ssim
from resrgan.metrics.psnr_ssim import SSIM_C1, SSIM_C2


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# PSNR


def test_psnr_identical_is_inf() -> None:
    a = _rand((20, 30, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a.astype(np.float32), a.astype(np.float64)) == math.inf


@pytest.mark.parametrize("delta", [1, 5, 16, 100])
def test_psnr_known_mse(delta: int) -> None:
    a = np.full((10, 12, 3), 50, np.uint8)
    b = a + np.uint8(delta)  # MSE = delta^2
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / delta**2), abs=1e-12)


def test_psnr_mixed_error_mse() -> None:
    a = np.zeros((2, 2), np.uint8)
    b = np.array([[0, 2], [4, 6]], np.uint8)  # MSE = (0 + 4 + 16 + 36) / 4 = 14
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 14), abs=1e-12)


def test_psnr_crop_border_ignores_the_frame() -> None:
    a = _rand((32, 32, 3))
    b = a.copy()
    b[:3] = 255 - b[:3]
    b[:, -2:] = 0
    assert psnr(a, b) < 20
    assert psnr(a, b, crop_border=3) == math.inf
    assert psnr(a, b, crop_border=2) < math.inf


def test_psnr_y_channel_formula() -> None:
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] = 110  # R + 10 -> Y + 65.481 * 10 / 255
    d = 65.481 * 10 / 255
    expected = 20 * math.log10(255 / d)
    assert psnr(a, b, test_y_channel=True) == pytest.approx(expected, abs=1e-4)
    # the same change in BGR order is in the last channel
    assert psnr(a[..., ::-1], b[..., ::-1], test_y_channel=True, channel_order="bgr") == (
        pytest.approx(expected, abs=1e-4)
    )
    # RGB PSNR: MSE = 100 / 3
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (100 / 3)), abs=1e-12)


def test_rgb_to_y_limited_range_endpoints() -> None:
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(img)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481], atol=1e-4)


def test_psnr_uint16_is_scaled_to_0_255() -> None:
    a, b = _rand((16, 16, 3), 1), _rand((16, 16, 3), 2)
    wide = psnr(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257)
    assert wide == pytest.approx(psnr(a, b), abs=1e-9)


def test_psnr_float_input_is_taken_as_0_255() -> None:
    a = np.zeros((4, 4), np.float32)
    assert psnr(a, a + 2.5) == pytest.approx(20 * math.log10(255 / 2.5), abs=1e-9)


def test_shape_mismatch_message() -> None:
    with pytest.raises(ResrganError) as e:
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    assert "image shapes differ: (4, 4, 3) vs (4, 5, 3)" in str(e.value)


def test_crop_border_too_large_message() -> None:
    with pytest.raises(ResrganError) as e:
        psnr(np.zeros((8, 10), np.uint8), np.zeros((8, 10), np.uint8), crop_border=4)
    assert "crop_border=4 leaves nothing of a 10x8 image" in str(e.value)


def test_unsupported_dtype_message() -> None:
    with pytest.raises(ResrganError) as e:
        psnr(np.zeros((8, 8), np.int32), np.zeros((8, 8), np.int32))
    assert "unsupported dtype int32" in str(e.value)


# ------------------------------------------------------------------------------------------------
# SSIM


def _ssim_direct(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) pixel by pixel over the valid region, window from its formula."""
    r = 5
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * 1.5**2))
    g /= g.sum()
    w = np.outer(g, g)
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    vals = []
    for i in range(r, a.shape[0] - r):
        for j in range(r, a.shape[1] - r):
            pa = a[i - r : i + r + 1, j - r : j + r + 1]
            pb = b[i - r : i + r + 1, j - r : j + r + 1]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va = (w * pa * pa).sum() - ma * ma
            vb = (w * pb * pb).sum() - mb * mb
            cab = (w * pa * pb).sum() - ma * mb
            vals.append(
                ((2 * ma * mb + SSIM_C1) * (2 * cab + SSIM_C2))
                / ((ma * ma + mb * mb + SSIM_C1) * (va + vb + SSIM_C2))
            )
    return float(np.mean(vals))


def test_ssim_identical_is_one() -> None:
    a = _rand((24, 24, 3))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_images_closed_form() -> None:
    a = np.full((16, 16), 100, np.uint8)
    b = np.full((16, 16), 110, np.uint8)
    expected = (2 * 100 * 110 + SSIM_C1) / (100**2 + 110**2 + SSIM_C1)  # variances are 0
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_equals_direct_formula() -> None:
    a = _rand((21, 19), 3)
    b = np.clip(a.astype(int) + np.random.default_rng(4).integers(-30, 31, a.shape), 0, 255)
    b = b.astype(np.uint8)
    assert ssim(a, b) == pytest.approx(_ssim_direct(a, b), abs=1e-12)


def test_ssim_matches_2d_filter2d_window() -> None:
    """BasicSR's form: cv2.filter2D with the full 11x11 window (the numbers must agree)."""
    import cv2

    a = _rand((70, 90), 9).astype(np.float64)
    b = np.clip(a + np.random.default_rng(10).normal(0, 20, a.shape), 0, 255)
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k)

    def f(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    m1, m2 = f(a), f(b)
    s1, s2, s12 = f(a * a) - m1**2, f(b * b) - m2**2, f(a * b) - m1 * m2
    ref = np.mean(
        ((2 * m1 * m2 + SSIM_C1) * (2 * s12 + SSIM_C2))
        / ((m1**2 + m2**2 + SSIM_C1) * (s1 + s2 + SSIM_C2))
    )
    assert ssim(a, b) == pytest.approx(float(ref), abs=1e-12)


def test_ssim_averages_channels() -> None:
    a = _rand((20, 20, 3), 5)
    b = a.copy()
    b[..., 1] = _rand((20, 20), 6)
    s1 = _ssim_direct(a[..., 1], b[..., 1])
    assert ssim(a, b) == pytest.approx((1 + s1 + 1) / 3, abs=1e-9)


def test_ssim_y_channel_uses_luma() -> None:
    a, b = _rand((20, 20, 3), 7), _rand((20, 20, 3), 8)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    assert ssim(a, b, test_y_channel=True) == pytest.approx(_ssim_direct(ya, yb), abs=1e-9)


def test_ssim_too_small_message() -> None:
    with pytest.raises(ResrganError) as e:
        ssim(np.zeros((14, 14), np.uint8), np.zeros((14, 14), np.uint8), crop_border=2)
    assert "at least 11x11 px after cropping, got 10x10" in str(e.value)


@given(
    seed=st.integers(0, 2**16),
    h=st.integers(11, 24),
    w=st.integers(11, 24),
)
def test_metrics_are_symmetric_and_bounded(seed: int, h: int, w: int) -> None:
    a, b = _rand((h, w, 3), seed), _rand((h, w, 3), seed + 1)
    assert psnr(a, b) == pytest.approx(psnr(b, a), abs=1e-12)
    s = ssim(a, b)
    assert s == pytest.approx(ssim(b, a), abs=1e-12)
    assert -1.0 <= s <= 1.0
    a_before = a.copy()
    psnr(a, b, test_y_channel=True, crop_border=1)
    assert np.array_equal(a, a_before)  # inputs are not modified
