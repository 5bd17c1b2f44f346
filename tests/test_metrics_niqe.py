"""NIQE vs BasicSR's reference scores; AGGD/MVG closed forms; MATLAB imresize; parameter files."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.special import gamma as gamma_fn

from resrgan.errors import ResrganError, UsageError
from resrgan.metrics import imresize as imresize_fn
from resrgan.metrics import niqe as niqe_fn
from resrgan.metrics.imresize import cubic, resize_taps, resize_weights
from resrgan.metrics.niqe import (
    NIQE_PARAMS_SHA256,
    NiqeImageTooSmallError,
    NiqeParams,
    fit_aggd,
    fit_mvg,
    fit_niqe_params,
    gaussian_window,
    image_block_features,
    load_niqe_params,
    niqe_features,
    niqe_luma,
    read_niqe_params,
    select_sharp_blocks,
)

BASICSR_BABOON = 5.7295763
MATLAB_BABOON = 5.72957338


@pytest.fixture(scope="module")
def params(niqe_dir: Path) -> NiqeParams:
    return read_niqe_params(niqe_dir / "niqe_pris_params.npz")


@pytest.fixture(scope="module")
def baboon(niqe_dir: Path) -> np.ndarray:
    img = cv2.imread(str(niqe_dir / "baboon.png"))
    assert img is not None and img.shape == (480, 492, 3)
    return img


# ------------------------------------------------------------------------------------------------
# reference scores


def test_baboon_matches_basicsr_and_matlab(baboon: np.ndarray, params: NiqeParams) -> None:
    score = niqe_fn(baboon, channel_order="bgr", params=params)
    assert abs(score - BASICSR_BABOON) < 1e-3
    assert abs(score - MATLAB_BABOON) < 1e-3


def test_every_reference_value_within_1e_3(data_dir: Path, params: NiqeParams) -> None:
    ref = json.loads((data_dir / "niqe" / "reference_values.json").read_text())["values"]
    assert len(ref) == 10
    for rel, expected in ref.items():
        img = cv2.imread(str(data_dir / rel))  # default flags: BGR 8-bit, as the reference
        if expected is None:
            with pytest.raises(NiqeImageTooSmallError) as e:
                niqe_fn(img, channel_order="bgr", params=params, name=rel)
            msg = str(e.value)
            assert rel in msg and "179x179" in msg and "at least 2" in msg and "192x96" in msg
            continue
        score = niqe_fn(img, channel_order="bgr", params=params, name=rel)
        assert abs(score - expected) < 1e-3, (rel, score, expected)


def test_rgb_order_gives_the_bgr_score(baboon: np.ndarray, params: NiqeParams) -> None:
    bgr = niqe_fn(baboon, channel_order="bgr", params=params)
    rgb = niqe_fn(baboon[..., ::-1], channel_order="rgb", params=params)
    assert rgb == bgr


def test_uint16_is_scaled_to_the_8bit_score(baboon: np.ndarray, params: NiqeParams) -> None:
    wide = baboon.astype(np.uint16) * 257  # v * 257 * 255 / 65535 == v exactly
    assert niqe_fn(wide, channel_order="bgr", params=params) == niqe_fn(
        baboon, channel_order="bgr", params=params
    )


def test_crop_border_equals_cropping_first(baboon: np.ndarray, params: NiqeParams) -> None:
    a = niqe_fn(baboon, channel_order="bgr", params=params, crop_border=7)
    b = niqe_fn(baboon[7:-7, 7:-7], channel_order="bgr", params=params)
    assert a == b
    assert a != niqe_fn(baboon, channel_order="bgr", params=params)


def test_luma_is_rounded_bt601(baboon: np.ndarray) -> None:
    y = niqe_luma(baboon, channel_order="bgr")
    b, g, r = (baboon[..., i].astype(np.float64) / 255 for i in range(3))
    expected = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    assert np.all(y == np.round(y))
    assert np.abs(y - expected).max() <= 0.5 + 1e-4
    gray = niqe_luma(baboon[..., 1])  # one channel: used as is, no limited-range mapping
    assert np.array_equal(gray, baboon[..., 1].astype(np.float32))


# ------------------------------------------------------------------------------------------------
# errors


def test_small_after_crop_border_names_image_size_and_minimum(params: NiqeParams) -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(NiqeImageTooSmallError) as e:
        niqe_fn(img, params=params, crop_border=5, name="x.png")
    assert str(e.value).startswith("x.png: 190x190 px (after crop_border=5) holds 1 whole 96x96")
    assert "96x192" in str(e.value)


def test_flat_image_has_undefined_features(params: NiqeParams) -> None:
    with pytest.raises(NiqeImageTooSmallError) as e:
        niqe_fn(np.full((192, 192, 3), 128, np.uint8), params=params, name="flat.png")
    assert "flat.png: only 0 of 4 blocks have defined NIQE features" in str(e.value)


def test_alpha_is_refused_with_advice(params: NiqeParams) -> None:
    with pytest.raises(ResrganError) as e:
        niqe_fn(np.zeros((200, 200, 4), np.uint8), params=params)
    assert "got 4" in str(e.value) and "drop the alpha channel" in str(e.value)


# ------------------------------------------------------------------------------------------------
# AGGD and the model


def _aggd_direct(x: np.ndarray) -> tuple[float, float, float]:
    """Direct, per-row moment matching + grid search, written from the NIQE paper's formulas."""
    grid = [0.2 + 0.001 * k for k in range(9801)]
    left = math.sqrt(float(np.mean(x[x < 0] ** 2)))
    right = math.sqrt(float(np.mean(x[x > 0] ** 2)))
    g = left / right
    r = float(np.mean(np.abs(x))) ** 2 / float(np.mean(x**2))
    rn = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    table = [gamma_fn(2 / a) ** 2 / (gamma_fn(1 / a) * gamma_fn(3 / a)) for a in grid]
    best, best_err = 0, math.inf
    for k, ra in enumerate(table):
        err = (ra - rn) ** 2
        if err < best_err:
            best, best_err = k, err
    a = grid[best]
    s = math.sqrt(gamma_fn(1 / a) / gamma_fn(3 / a))
    return a, left * s, right * s


def test_fit_aggd_equals_direct_loop() -> None:
    rng = np.random.default_rng(1)
    rows = np.stack(
        [
            rng.standard_normal(2000),
            rng.laplace(size=2000),
            np.where(rng.random(2000) < 0.5, -1.0, 2.0) * np.abs(rng.standard_normal(2000)),
        ]
    )
    alpha, bl, br = fit_aggd(rows)
    for i in range(3):
        a, l_, r_ = _aggd_direct(rows[i])
        assert alpha[i] == pytest.approx(a, abs=1e-9)
        assert bl[i] == pytest.approx(l_, rel=1e-9)
        assert br[i] == pytest.approx(r_, rel=1e-9)


def test_fit_aggd_recovers_gaussian_and_laplacian_shapes() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    alpha, bl, br = fit_aggd(np.stack([2.0 * rng.standard_normal(n), rng.laplace(size=n)]))
    # Gaussian sigma 2: alpha 2, beta = sigma * sqrt(Gamma(1/2) / Gamma(3/2)) = 2 * sqrt(2)
    assert abs(alpha[0] - 2.0) < 0.05
    assert abs(bl[0] - 2 * math.sqrt(2)) < 0.03 and abs(br[0] - 2 * math.sqrt(2)) < 0.03
    # Laplace(0, 1): alpha 1, beta = 1
    assert abs(alpha[1] - 1.0) < 0.03
    assert abs(bl[1] - 1.0) < 0.02 and abs(br[1] - 1.0) < 0.02


def test_fit_aggd_row_without_negatives_is_nan_with_smallest_gamma() -> None:
    alpha, bl, br = fit_aggd(np.array([[0.0, 1.0, 2.0, 3.0], [-1.0, 1.0, -2.0, 2.0]]))
    assert alpha[0] == pytest.approx(0.2) and math.isnan(bl[0]) and br[0] > 0
    assert not math.isnan(bl[1]) and bl[1] == pytest.approx(br[1])


def test_distance_is_zero_for_the_model_of_the_same_features(baboon: np.ndarray) -> None:
    window = gaussian_window()
    feats, _ = niqe_features(niqe_luma(baboon, channel_order="bgr"), window)
    mu, cov = fit_mvg(feats)
    own = NiqeParams(mu=mu, cov=cov, window=window)
    assert niqe_fn(baboon, channel_order="bgr", params=own) == pytest.approx(0.0, abs=1e-6)


def test_feature_shapes_and_block_count(baboon: np.ndarray) -> None:
    feats, sharp = niqe_features(niqe_luma(baboon, channel_order="bgr"), gaussian_window())
    assert feats.shape == (5 * 5, 36) and sharp.shape == (25,)  # 480x492 -> 5x5 blocks of 96
    assert np.all((feats[:, 0] >= 0.2) & (feats[:, 0] <= 10.0))


def test_gaussian_window_is_the_pristine_window(params: NiqeParams) -> None:
    w = gaussian_window()
    assert w.sum() == pytest.approx(1.0)
    assert w[3, 3] == pytest.approx(0.11739636, abs=1e-8)
    np.testing.assert_allclose(params.window, w, atol=1e-7)


def test_select_sharp_blocks_threshold() -> None:
    s = np.array([1.0, 7.0, 8.0, 10.0])
    assert select_sharp_blocks(s, 0.75).tolist() == [False, False, True, True]
    assert select_sharp_blocks(s, 0.0).all()


def test_fitted_params_round_trip_through_file(baboon: np.ndarray, tmp_path: Path) -> None:
    from resrgan.metrics import write_niqe_params

    feats = image_block_features(baboon, channel_order="bgr", sharpness_threshold=0)
    assert feats.shape == (25, 36)
    p = fit_niqe_params([feats[:12], feats[12:]])
    out = write_niqe_params(tmp_path / "m.npz", p)
    back = read_niqe_params(out)
    np.testing.assert_array_equal(back.mu, p.mu)
    np.testing.assert_array_equal(back.cov, p.cov)
    assert niqe_fn(baboon, channel_order="bgr", params=back) == pytest.approx(0.0, abs=1e-6)
    assert not list(tmp_path.glob(".*tmp"))


# ------------------------------------------------------------------------------------------------
# MATLAB bicubic imresize

HALF_TAPS = [
    -0.01171875, -0.03515625, 0.11328125, 0.43359375,
    0.43359375, 0.11328125, -0.03515625, -0.01171875,
]  # fmt: skip


def test_cubic_kernel_closed_form() -> None:
    x = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, -0.75])
    expected = [1.0, 0.8671875, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.2265625]
    np.testing.assert_array_equal(cubic(x), expected)


def test_half_scale_antialias_taps() -> None:
    w, pos = resize_taps(16, 8, 0.5)
    nz = w[3][w[3] != 0]
    np.testing.assert_array_equal(nz, HALF_TAPS)
    assert pos[3][w[3] != 0].tolist() == list(range(3, 11))  # centred on 7.5 (1-based)


def test_half_scale_without_antialias_taps() -> None:
    w, _ = resize_taps(16, 8, 0.5, antialiasing=False)
    np.testing.assert_array_equal(w[3], [0.0, -0.0625, 0.5625, 0.5625, -0.0625, 0.0])


def test_double_scale_taps() -> None:
    w, _ = resize_taps(8, 16, 2.0)
    assert sorted(w[5][w[5] != 0].tolist()) == [-0.0703125, -0.0234375, 0.2265625, 0.8671875]


def test_ramp_halved_like_matlab() -> None:
    # Derived by hand from the taps and symmetric padding of f(i) = i, i = 1..16: 1-based
    # positions -2, -1, 0 read 3, 2, 1. Output k is centred on 2k - 0.5 where a ramp is kept,
    # except where a tap reads a reflected value: output 1 (taps -2..5) gives 1.44921875,
    # output 2 (taps 0..7) reads 1 instead of 0: 3.5 + HALF_TAPS[0] * (1 - 0).
    out = imresize_fn(np.arange(1, 17, dtype=np.float64)[None, :], 0.5)
    assert out.shape == (1, 8)
    assert out[0, 0] == pytest.approx(1.44921875, abs=1e-12)
    assert out[0, 1] == pytest.approx(3.5 + HALF_TAPS[0], abs=1e-12)
    np.testing.assert_allclose(out[0, 2:6], [5.5, 7.5, 9.5, 11.5], atol=1e-12)
    assert out[0, 6] == pytest.approx(17 - out[0, 1], abs=1e-12)  # the ramp's symmetry
    assert out[0, 7] == pytest.approx(17 - 1.44921875, abs=1e-12)


@pytest.mark.parametrize("scale", [0.5, 0.3, 0.75, 2.0, 1.7])
def test_weights_sum_to_one_and_constant_stays_constant(scale: float) -> None:
    for n in (5, 37, 96):
        m = resize_weights(n, math.ceil(n * scale), scale)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    img = np.full((37, 23, 3), 0.4321)
    out = imresize_fn(img, scale)
    assert out.shape == (math.ceil(37 * scale), math.ceil(23 * scale), 3)
    np.testing.assert_allclose(out, 0.4321, atol=1e-12)


def test_imresize_equals_separable_matrix_product() -> None:
    rng = np.random.default_rng(3)
    img = rng.random((41, 30))
    ref = resize_weights(41, 21, 0.5) @ img @ resize_weights(30, 15, 0.5).T
    np.testing.assert_allclose(imresize_fn(img, 0.5), ref, atol=1e-12)
    f32 = imresize_fn(img.astype(np.float32), 0.5, dtype=np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, ref, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# finding the parameter file


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RESRGAN_HOME", str(home))
    monkeypatch.delenv("RESRGAN_NIQE_PARAMS", raising=False)
    monkeypatch.setenv("RESRGAN_OFFLINE", "1")
    return home


def test_offline_without_params_lists_the_options(clean_env: Path) -> None:
    with pytest.raises(UsageError) as e:
        load_niqe_params()
    msg = str(e.value)
    assert "RESRGAN_OFFLINE=1" in msg and "--niqe-params" in msg
    assert "RESRGAN_NIQE_PARAMS" in msg and str(clean_env / "niqe_pris_params.npz") in msg


def test_env_and_cache_are_used(
    clean_env: Path, niqe_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = niqe_dir / "niqe_pris_params.npz"
    monkeypatch.setenv("RESRGAN_NIQE_PARAMS", str(src))
    assert load_niqe_params().source == str(src)
    monkeypatch.delenv("RESRGAN_NIQE_PARAMS")
    clean_env.mkdir(parents=True)
    shutil.copy(src, clean_env / "niqe_pris_params.npz")
    assert load_niqe_params().source == str(clean_env / "niqe_pris_params.npz")


def test_cache_with_wrong_hash_is_refused(clean_env: Path, niqe_dir: Path) -> None:
    clean_env.mkdir(parents=True)
    fake = fit_niqe_params(np.random.default_rng(0).standard_normal((50, 36)))
    from resrgan.metrics import write_niqe_params

    write_niqe_params(clean_env / "niqe_pris_params.npz", fake)
    with pytest.raises(ResrganError) as e:
        load_niqe_params()
    assert "is not that of BasicSR's niqe_pris_params.npz" in str(e.value)
    assert "delete it" in str(e.value)


class _FakeResponse(io.BytesIO):
    headers = None  # no Content-Length

    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *a: object) -> None:
        self.close()


def test_download_is_checked_and_atomic(
    clean_env: Path, niqe_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request

    good = (niqe_dir / "niqe_pris_params.npz").read_bytes()
    assert hashlib.sha256(good).hexdigest() == NIQE_PARAMS_SHA256
    monkeypatch.delenv("RESRGAN_OFFLINE")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(b"junk" * 10))
    with pytest.raises(ResrganError) as e:
        load_niqe_params()
    assert "niqe_pris_params.npz: SHA-256 mismatch for" in str(e.value)
    assert "the file was deleted" in str(e.value)
    assert not any(clean_env.iterdir())  # no partial file left behind
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(good))
    p = load_niqe_params()
    assert p.source == str(clean_env / "niqe_pris_params.npz") and p.mu.shape == (36,)
    assert [f.name for f in clean_env.iterdir()] == ["niqe_pris_params.npz"]


def test_bad_param_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="NIQE parameter file not found"):
        read_niqe_params(tmp_path / "nope.npz")
    np.savez(tmp_path / "k.npz", mu_pris_param=np.zeros((1, 36)))
    with pytest.raises(UsageError, match=r"missing key\(s\) cov_pris_param"):
        read_niqe_params(tmp_path / "k.npz")
    (tmp_path / "t.npz").write_text("not a zip")
    with pytest.raises(UsageError, match="not a readable .npz file"):
        read_niqe_params(tmp_path / "t.npz")


def test_imresize_channels_are_independent() -> None:
    img = np.random.default_rng(5).random((19, 23, 3))
    out = imresize_fn(img, 0.5)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], imresize_fn(img[..., c], 0.5))
    assert np.array_equal(img, np.random.default_rng(5).random((19, 23, 3)))  # input untouched
