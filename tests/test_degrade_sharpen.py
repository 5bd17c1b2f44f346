"""USM sharpening (spec §1.5): separable evaluation against the dense 51x51 upstream filter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from resrgan.degradation.filter import filter2d
from resrgan.degradation.sharpen import (
    USM_SIGMA,
    gaussian_1d,
    reflect_filter_matrix,
    separable_filter,
    usm_kernel,
    usm_sharpen,
)


def usm_reference(img: torch.Tensor, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
    """Upstream USMSharp.forward with the dense (1, 51, 51) kernel and a direct conv."""
    k = usm_kernel(dtype=img.dtype)
    blur = filter2d(img, k, method="direct")
    residual = img - blur
    mask = (torch.abs(residual) * 255 > threshold).to(img.dtype)
    soft = filter2d(mask, k, method="direct")
    sharp = torch.clamp(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def test_kernel_is_opencv_gaussian_51_with_sigma_8() -> None:
    assert abs(USM_SIGMA - 8.0) < 1e-12
    ref = cv2.getGaussianKernel(51, 0)[:, 0]
    np.testing.assert_allclose(gaussian_1d().numpy(), ref, rtol=1e-12)
    k = usm_kernel(dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(k, np.outer(ref, ref), rtol=1e-12)


def test_reflect_matrix_reproduces_reflect_padded_correlation() -> None:
    taps = torch.rand(7, dtype=torch.float64)
    x = torch.rand(30, dtype=torch.float64)
    padded = torch.nn.functional.pad(x.view(1, 1, 30), (3, 3), mode="reflect")[0, 0]
    ref = torch.stack([(padded[i : i + 7] * taps).sum() for i in range(30)])
    torch.testing.assert_close(reflect_filter_matrix(30, taps) @ x, ref)


def test_separable_filter_equals_dense_2d_filter() -> None:
    x = torch.rand(2, 3, 60, 75, dtype=torch.float64)
    dense = filter2d(x, usm_kernel(dtype=torch.float64), method="direct")
    torch.testing.assert_close(separable_filter(x, gaussian_1d()), dense, atol=1e-12, rtol=0)


def test_usm_matches_dense_reference() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 80, 96, generator=g), 3, 1, 1)
    ref = usm_reference(x.double())
    out = usm_sharpen(x)
    assert out.dtype == torch.float32
    # float32 vs float64: ~1e-6; a mask flip at the threshold would show as a larger error
    assert (out.double() - ref).abs().max().item() < 2e-6
    assert (out - x).abs().max().item() > 0.01  # it really sharpens


def test_usm_output_range_batched_and_input_untouched() -> None:
    x = torch.rand(3, 3, 64, 64)
    before = x.clone()
    out = usm_sharpen(x)
    assert torch.equal(x, before)
    assert out.min() >= 0 and out.max() <= 1
    loop = torch.cat([usm_sharpen(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(out, loop, atol=1e-6, rtol=0)


def test_constant_image_is_unchanged() -> None:
    x = torch.full((1, 3, 40, 40), 0.3)
    torch.testing.assert_close(usm_sharpen(x), x, atol=1e-6, rtol=0)


def test_too_small_image_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than 25 px per side, got 25x100"):
        usm_sharpen(torch.rand(1, 3, 25, 100))


def test_blur_equals_opencv_gaussian_blur_with_reflect101() -> None:
    """Independent reference: cv2.GaussianBlur(ksize 51, sigma 0 -> 8), BORDER_DEFAULT
    (reflect-101), the blur of upstream's NumPy twin ``usm_sharp``."""
    rng = np.random.default_rng(0)
    img = rng.random((70, 90, 3))
    ref = cv2.GaussianBlur(img, (51, 51), 0)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    out = separable_filter(x)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_single_thread_per_sample_path_equals_batched_path() -> None:
    x = torch.rand(3, 3, 48, 40)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = usm_sharpen(x)
        torch.set_num_threads(2)
        two = usm_sharpen(x)
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(one, two, atol=1e-6, rtol=0)
