"""Kernels of the degradation against their closed forms (spec §1.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import j1

from resrgan.degradation.kernels import gaussian_kernel, make_kernels, pulse_kernel

ALL = [
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
    "pulse",
]


def one(
    kind: str,
    size: int = 21,
    sx: float = 1.5,
    sy: float = 1.5,
    th: float = 0.0,
    beta: float = 1.0,
    omega: float = 1.0,
    pad_to: int = 21,
) -> np.ndarray:
    k = make_kernels(
        [kind],
        [size],
        sigma_x=[sx],
        sigma_y=[sy],
        theta=[th],
        beta=[beta],
        omega_c=[omega],
        pad_to=pad_to,
        dtype=torch.float64,
    )
    return k[0].numpy()


def reference(size: int, sx: float, sy: float, th: float, fn) -> np.ndarray:
    """Independent numpy build: grid x (columns), y (rows); Σ = R diag(sx², sy²) Rᵀ; f(Q)."""
    r = (size - 1) / 2
    ax = np.arange(size) - r
    xx, yy = np.meshgrid(ax, ax)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    sigma = rot @ np.diag([sx * sx, sy * sy]) @ rot.T
    inv = np.linalg.inv(sigma)
    p = np.stack([xx, yy], -1)
    q = np.einsum("...i,ij,...j->...", p, inv, p)
    k = fn(q)
    return k / k.sum()


@pytest.mark.parametrize("kind", ALL)
def test_every_kernel_type_sums_to_one(kind: str) -> None:
    k = one(kind, size=13, sx=2.0, sy=0.7, th=0.4, beta=1.7, omega=2.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)


def test_iso_gaussian_matches_closed_form() -> None:
    s = 1.3
    ax = np.arange(21) - 10.0
    g = np.exp(-(ax[:, None] ** 2 + ax[None] ** 2) / (2 * s * s))
    np.testing.assert_allclose(one("iso", sx=s, sy=s), g / g.sum(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(
        gaussian_kernel(21, s, dtype=torch.float64).numpy(), g / g.sum(), rtol=1e-10, atol=1e-15
    )


def test_aniso_gaussian_matches_rotated_covariance() -> None:
    sx, sy, th = 2.5, 0.8, 0.7
    ref = reference(21, sx, sy, th, lambda q: np.exp(-0.5 * q))
    np.testing.assert_allclose(one("aniso", sx=sx, sy=sy, th=th), ref, rtol=1e-9, atol=1e-15)
    assert not np.allclose(ref, ref.T)  # the rotation really is tested


def test_gaussian_second_moments_equal_covariance() -> None:
    # sigma small enough that truncation at 21x21 is negligible
    sx, sy, th = 1.0, 1.6, 0.5
    k = one("aniso", sx=sx, sy=sy, th=th)
    ax = np.arange(21) - 10.0
    xx, yy = np.meshgrid(ax, ax)
    cov = np.array(
        [[(k * xx * xx).sum(), (k * xx * yy).sum()], [(k * xx * yy).sum(), (k * yy * yy).sum()]]
    )
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    np.testing.assert_allclose(cov, rot @ np.diag([sx**2, sy**2]) @ rot.T, atol=1e-6)
    k_iso = one("iso", sx=1.0, sy=1.0)
    assert (k_iso * xx * xx).sum() == pytest.approx(1.0, abs=1e-6)


def test_generalized_beta_one_is_the_gaussian_and_beta_two_is_q_squared() -> None:
    # upstream formula exp(-0.5 * Q**beta): beta = 1 (not 2) gives the Gaussian
    g = one("aniso", sx=2.0, sy=1.2, th=0.3)
    np.testing.assert_allclose(
        one("generalized_aniso", sx=2.0, sy=1.2, th=0.3, beta=1.0), g, rtol=1e-12
    )
    ref2 = reference(21, 2.0, 1.2, 0.3, lambda q: np.exp(-0.5 * q**2))
    got2 = one("generalized_aniso", sx=2.0, sy=1.2, th=0.3, beta=2.0)
    np.testing.assert_allclose(got2, ref2, rtol=1e-9, atol=1e-15)
    assert np.abs(got2 - g).max() > 1e-3


@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0])
def test_plateau_formula(beta: float) -> None:
    ref = reference(21, 1.7, 2.2, -1.1, lambda q: 1.0 / (1.0 + q**beta))
    np.testing.assert_allclose(
        one("plateau_aniso", sx=1.7, sy=2.2, th=-1.1, beta=beta), ref, rtol=1e-9, atol=1e-15
    )


def test_small_kernel_is_zero_padded_symmetrically() -> None:
    k = one("aniso", size=7, sx=2.0, sy=1.0, th=0.3)
    inner = reference(7, 2.0, 1.0, 0.3, lambda q: np.exp(-0.5 * q))
    np.testing.assert_allclose(k[7:14, 7:14], inner, rtol=1e-9, atol=1e-15)
    outside = k.copy()
    outside[7:14, 7:14] = 0
    assert np.count_nonzero(outside) == 0


def test_sinc_centre_symmetry_and_bessel_values() -> None:
    omega = 1.3
    k = one("sinc", size=21, omega=omega)
    np.testing.assert_allclose(k, k.T, atol=1e-15)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
    # unnormalised: centre ω²/(4π), at distance r: ω J1(ω r)/(2π r); ratios are scale-free
    centre = omega**2 / (4 * math.pi)
    for dy, dx in [(0, 1), (2, 3), (0, 7)]:
        r = math.hypot(dx, dy)
        val = omega * j1(omega * r) / (2 * math.pi * r)
        assert k[10 + dy, 10 + dx] / k[10, 10] == pytest.approx(val / centre, rel=1e-7)


def test_sinc_frequency_response_passes_below_and_stops_above_cutoff() -> None:
    omega = math.pi / 2
    k = one("sinc", size=21, omega=omega)
    n = 256
    resp = np.abs(np.fft.fft2(k, s=(n, n)))
    freqs = 2 * math.pi * np.fft.fftfreq(n)
    fx, fy = np.meshgrid(freqs, freqs)
    rad = np.hypot(fx, fy)
    assert resp[rad < 0.6 * omega].min() > 0.85
    assert resp[rad < 0.6 * omega].max() < 1.15
    assert resp[(rad > 1.5 * omega) & (rad < math.pi)].max() < 0.12


def test_pulse_is_a_centred_delta() -> None:
    k = one("pulse", size=1)
    assert k[10, 10] == 1.0 and np.count_nonzero(k) == 1
    assert torch.equal(pulse_kernel(21, dtype=torch.float64), torch.from_numpy(k))


def test_batch_of_mixed_kernels_equals_one_by_one() -> None:
    kinds = ["iso", "plateau_aniso", "sinc", "generalized_iso", "pulse"]
    sizes = [7, 21, 11, 15, 1]
    sx, sy, th = [1.0, 2.0, 0, 1.5, 0], [1.0, 0.5, 0, 1.5, 0], [0, 0.3, 0, 0, 0]
    be, om = [1, 1.4, 1, 0.7, 1], [0, 0, 2.0, 0, 0]
    batch = make_kernels(
        kinds, sizes, sigma_x=sx, sigma_y=sy, theta=th, beta=be, omega_c=om, dtype=torch.float64
    )
    for i in range(5):
        single = one(kinds[i], sizes[i], sx[i], sy[i], th[i], be[i], om[i])
        np.testing.assert_array_equal(batch[i].numpy(), single)


def test_even_or_oversized_kernel_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="kernel size 8 must be odd"):
        make_kernels(["iso"], [8], sigma_x=[1], sigma_y=[1], theta=[0], beta=[1], omega_c=[0])
    with pytest.raises(ValueError, match="unknown kernel type 'box'"):
        make_kernels(["box"], [7], sigma_x=[1], sigma_y=[1], theta=[0], beta=[1], omega_c=[0])


def test_kernels_follow_requested_dtype() -> None:
    k = make_kernels(
        ["iso"],
        [7],
        sigma_x=[1],
        sigma_y=[1],
        theta=[0],
        beta=[1],
        omega_c=[0],
        dtype=torch.float16,
    )
    assert k.dtype == torch.float16 and k.shape == (1, 21, 21)
