"""NIQE (Mittal, Soundararajan & Bovik, IEEE SPL 2012) exactly as BasicSR computes it.

Reproduces ``basicsr/metrics/niqe.py`` ``calculate_niqe(img, crop_border, convert_to='y')``:

1. the image (in [0, 255], see :mod:`resrgan.metrics.color`) goes to float32, then to MATLAB BT.601
   luma (3 channels) or is used as is (1 channel); ``crop_border`` pixels are cut from every side;
   the result is **rounded** (BasicSR does this to match MATLAB);
2. it is cut to whole 96x96 blocks (no overlap);
3. at two scales: MSCN coefficients ``(I - mu) / (sigma + 1)`` with the 7x7 Gaussian window of the
   pristine model (``scipy.ndimage.convolve``, ``mode='nearest'``); per block 18 AGGD features
   (the block, and its products with the block circularly shifted by (0,1), (1,0), (1,1), (1,-1));
   the AGGD shape comes from a grid search over gamma = 0.2:0.001:10; between the scales the image
   is halved with MATLAB bicubic + antialiasing (:func:`resrgan.metrics.imresize.imresize`);
4. the image model is the NaN-mean of the 36-feature rows and the covariance of the rows without
   NaN; NIQE = sqrt((mu_p - mu_d) pinv((cov_p + cov_d) / 2) (mu_p - mu_d)^T).

Differences from BasicSR, all deliberate: the AGGD grid search is vectorised over blocks (same
argmin, NaN statistics give gamma = 0.2 as ``np.argmin`` does); images with fewer than two whole
96x96 blocks, or fewer than two blocks with defined features, raise :class:`NiqeImageTooSmallError`
instead of numpy's ``LinAlgError``.

The pristine parameters are not bundled: :func:`load_niqe_params` finds them (explicit path,
``RESRGAN_NIQE_PARAMS``, the cache, or a sha256-checked download of BasicSR's file).
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ResrganError, UsageError
from ..paths import atomic_path, cache_dir
from ..weights.download import download as fetch
from ..weights.download import offline, sha256_file
from .color import ChannelOrder, luma_or_gray
from .imresize import imresize

log = logging.getLogger(__name__)

BLOCK_SIZE = 96
NIQE_PARAMS_URL = (
    "https://raw.githubusercontent.com/XPixelGroup/BasicSR/"
    "8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a/basicsr/metrics/niqe_pris_params.npz"
)
NIQE_PARAMS_SHA256 = "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
NIQE_PARAMS_FILENAME = "niqe_pris_params.npz"
ENV_PARAMS = "RESRGAN_NIQE_PARAMS"

# The AGGD shape grid, built exactly as BasicSR does (np.arange(0.2, 10.001, 0.001): 9801 values).
_GAMMA_GRID = np.arange(0.2, 10.001, 0.001)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


class NiqeImageTooSmallError(ResrganError):
    """The image has too few 96x96 blocks (or too few with defined features) for NIQE."""


@dataclass(frozen=True)
class NiqeParams:
    """A pristine multivariate-Gaussian model: mean (36,), covariance (36, 36), window (7, 7)."""

    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray
    source: str = "<memory>"


def gaussian_window(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """The normalised 2-D Gaussian window of the MATLAB NIQE release (7x7, sigma = 7/6)."""
    r = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - r
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    w = np.outer(g, g)
    return w / w.sum()


# ----------------------------------------------------------------------------------------------
# parameters


def read_niqe_params(path: str | Path) -> NiqeParams:
    """Read a NIQE parameter file (BasicSR's ``.npz`` layout); no pickles are loaded.

    Raises :class:`UsageError` (exit 2) when the file is missing or malformed.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(
            f"{p}: NIQE parameter file not found; pass an existing .npz "
            "(e.g. BasicSR's niqe_pris_params.npz or one made by `resrgan niqe-fit`)"
        )
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], dtype=np.float64) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"{p}: not a readable .npz file ({e})") from None
    missing = [k for k in ("mu_pris_param", "cov_pris_param") if k not in arrays]
    if missing:
        raise UsageError(
            f"{p}: missing key(s) {', '.join(missing)} (found {sorted(arrays)}); expected "
            "mu_pris_param (1x36), cov_pris_param (36x36) and optionally gaussian_window (7x7)"
        )
    mu = arrays["mu_pris_param"].reshape(-1)
    cov = arrays["cov_pris_param"]
    window = arrays.get("gaussian_window", gaussian_window())
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise UsageError(
            f"{p}: mu_pris_param has {mu.size} values and cov_pris_param shape {cov.shape}; "
            "expected 36 and (36, 36)"
        )
    if window.ndim != 2 or window.shape[0] != window.shape[1] or window.shape[0] % 2 != 1:
        raise UsageError(
            f"{p}: gaussian_window has shape {window.shape}; expected a square odd-sized window"
        )
    return NiqeParams(mu=mu, cov=cov, window=window, source=str(p))


def write_niqe_params(path: str | Path, params: NiqeParams) -> Path:
    """Write ``params`` atomically in BasicSR's layout (mu 1x36, cov 36x36, gaussian_window)."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            mu_pris_param=np.asarray(params.mu, dtype=np.float64).reshape(1, -1),
            cov_pris_param=np.asarray(params.cov, dtype=np.float64),
            gaussian_window=np.asarray(params.window, dtype=np.float64),
        )
    return p


def load_niqe_params(path: str | Path | None = None, *, download: bool = True) -> NiqeParams:
    """Find and read the pristine NIQE model.

    Order: ``path``; the ``RESRGAN_NIQE_PARAMS`` environment variable; the cache file
    ``cache_dir()/niqe_pris_params.npz`` (sha256-checked); a download of BasicSR's file into the
    cache (sha256-checked, atomic), unless ``download`` is False or ``RESRGAN_OFFLINE=1``.
    """
    if path is not None:
        return read_niqe_params(path)
    env = os.environ.get(ENV_PARAMS)
    if env:
        return read_niqe_params(env)
    cached = cache_dir() / NIQE_PARAMS_FILENAME
    if cached.is_file():
        got = sha256_file(cached)
        if got != NIQE_PARAMS_SHA256:
            raise ResrganError(
                f"{cached}: sha256 {got} is not that of BasicSR's niqe_pris_params.npz "
                f"({NIQE_PARAMS_SHA256}); "
                f"delete it to re-download, or pass your own file with --niqe-params / {ENV_PARAMS}"
            )
        return read_niqe_params(cached)
    options = (
        f"pass --niqe-params PATH, set {ENV_PARAMS}=PATH, or copy BasicSR's "
        f"niqe_pris_params.npz (sha256 {NIQE_PARAMS_SHA256}) to {cached}"
    )
    if not download or offline():
        why = "RESRGAN_OFFLINE=1" if offline() else "downloads are disabled"
        raise UsageError(f"NIQE parameters not found and {why}: {options}")
    log.info("downloading NIQE parameters from %s", NIQE_PARAMS_URL)
    fetch(
        NIQE_PARAMS_URL,
        cached,
        sha256=NIQE_PARAMS_SHA256,
        manual=f"pass --niqe-params PATH, set {ENV_PARAMS}=PATH, or put it at {cached}",
    )
    return read_niqe_params(cached)


# ----------------------------------------------------------------------------------------------
# features


def _aggd_gamma_table() -> np.ndarray:
    from scipy.special import gamma

    rec = 1.0 / _GAMMA_GRID
    return gamma(rec * 2) ** 2 / (gamma(rec) * gamma(rec * 3))


_R_GAMMA: np.ndarray | None = None


def _r_gamma() -> np.ndarray:
    global _R_GAMMA
    if _R_GAMMA is None:
        _R_GAMMA = _aggd_gamma_table()
    return _R_GAMMA


def fit_aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each row of ``x`` (N, M): returns (alpha, beta_l, beta_r), each (N,).

    BasicSR ``estimate_aggd_param`` vectorised over rows: moment matching, then the grid search
    ``argmin((r(gamma) - r_hat_norm)^2)`` over gamma = 0.2:0.001:10. A row without negative (or
    positive) values has undefined statistics: like ``np.argmin`` on NaN, alpha is then 0.2 and the
    betas are NaN.
    """
    from scipy.special import gamma

    x = np.asarray(x, dtype=np.float64)
    neg = x < 0
    pos = x > 0
    sq = x * x
    with np.errstate(divide="ignore", invalid="ignore"):
        left_std = np.sqrt((sq * neg).sum(axis=1) / neg.sum(axis=1))
        right_std = np.sqrt((sq * pos).sum(axis=1) / pos.sum(axis=1))
        gammahat = left_std / right_std
        rhat = np.abs(x).mean(axis=1) ** 2 / sq.mean(axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    r_gam = _r_gamma()
    idx = np.zeros(x.shape[0], dtype=np.int64)
    finite = ~np.isnan(rhatnorm)
    vals = rhatnorm[finite]
    found = np.empty(vals.shape[0], dtype=np.int64)
    chunk = 512
    for s in range(0, vals.shape[0], chunk):
        found[s : s + chunk] = np.argmin((r_gam[None, :] - vals[s : s + chunk, None]) ** 2, axis=1)
    idx[finite] = found
    alpha = _GAMMA_GRID[idx]
    ratio = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """18 NIQE features per block: (N, b, b) -> (N, 18) (BasicSR ``compute_feature``)."""
    from scipy.special import gamma

    n = blocks.shape[0]
    feats = np.empty((n, 18), dtype=np.float64)
    alpha, bl, br = fit_aggd(blocks.reshape(n, -1))
    feats[:, 0] = alpha
    feats[:, 1] = (bl + br) / 2
    for i, shift in enumerate(_SHIFTS):
        prod = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, bl, br = fit_aggd(prod.reshape(n, -1))
        mean = (br - bl) * (gamma(2.0 / alpha) / gamma(1.0 / alpha))
        feats[:, 2 + 4 * i : 6 + 4 * i] = np.stack([alpha, mean, bl, br], axis=1)
    return feats


def _mscn(img: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSCN coefficients and local sigma of a float32 image (BasicSR's dtypes: float32 outputs)."""
    from scipy.ndimage import convolve

    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(np.square(img), window, mode="nearest") - np.square(mu)))
    return (img - mu) / (sigma + 1), sigma


def _split_blocks(img: np.ndarray, nh: int, nw: int, bs: int) -> np.ndarray:
    """(nh*bs, nw*bs) -> (nh*nw, bs, bs), column-major block order as BasicSR's loops."""
    return img.reshape(nh, bs, nw, bs).transpose(2, 0, 1, 3).reshape(nh * nw, bs, bs)


def niqe_features(
    y: np.ndarray, window: np.ndarray, *, block_size: int = BLOCK_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Per-block NIQE features of a luma image already cropped, rounded and in [0, 255].

    Returns ``(features (N, 36), sharpness (N,))`` where N = floor(H/bs) * floor(W/bs) and
    sharpness is the mean local sigma of each block at the first scale (used by ``niqe-fit``).
    """
    h, w = y.shape
    nh, nw = h // block_size, w // block_size
    img = np.asarray(y, dtype=np.float32)[: nh * block_size, : nw * block_size]
    per_scale = []
    sharpness = np.empty(0)
    for scale in (1, 2):
        bs = block_size // scale
        mscn, sigma = _mscn(img, window)
        per_scale.append(_block_features(_split_blocks(mscn, nh, nw, bs)))
        if scale == 1:
            sharpness = _split_blocks(sigma.astype(np.float64), nh, nw, bs).mean(axis=(1, 2))
            half = imresize(img / np.float32(255.0), 0.5, antialiasing=True, dtype=np.float32)
            img = half * np.float32(255.0)
    return np.concatenate(per_scale, axis=1), sharpness


def niqe_luma(
    img: np.ndarray, *, crop_border: int = 0, channel_order: ChannelOrder = "rgb"
) -> np.ndarray:
    """The rounded float32 luma NIQE works on: BT.601 Y (or the grey channel), cropped, rounded."""
    y = luma_or_gray(img, channel_order=channel_order).astype(np.float32)  # BasicSR: float32
    if crop_border < 0:
        raise ResrganError(f"crop_border={crop_border} must be >= 0")
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return np.round(y)


def niqe(
    img: np.ndarray,
    *,
    crop_border: int = 0,
    channel_order: ChannelOrder = "rgb",
    params: NiqeParams | None = None,
    name: str = "image",
    block_size: int = BLOCK_SIZE,
) -> float:
    """NIQE of one image (lower is better), as BasicSR ``calculate_niqe(..., convert_to='y')``.

    ``img``: HxW, HxWx1 or HxWx3 (uint8, uint16 or float in [0, 255]); ``channel_order`` says
    whether 3 channels are RGB (the resrgan convention) or BGR (cv2, BasicSR). ``params``
    defaults to :func:`load_niqe_params`. ``name`` is used in error messages. Raises
    :class:`NiqeImageTooSmallError` when fewer than two whole blocks (two with defined features)
    fit after ``crop_border``.
    """
    if params is None:
        params = load_niqe_params()
    y = niqe_luma(img, crop_border=crop_border, channel_order=channel_order)
    h, w = y.shape
    nblocks = (h // block_size) * (w // block_size)
    if nblocks < 2:
        raise NiqeImageTooSmallError(
            f"{name}: {w}x{h} px (after crop_border={crop_border}) holds {nblocks} whole "
            f"{block_size}x{block_size} block(s); NIQE needs at least 2, i.e. at least "
            f"{2 * block_size}x{block_size} or {block_size}x{2 * block_size} px"
        )
    feats, _ = niqe_features(y, params.window, block_size=block_size)
    return niqe_distance(feats, params, name=name)


def fit_mvg(feats: np.ndarray, *, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Mean (NaN-mean) and covariance (rows without NaN) of feature rows, as BasicSR."""
    ok = feats[~np.isnan(feats).any(axis=1)]
    if ok.shape[0] < 2:
        raise NiqeImageTooSmallError(
            f"{name}: only {ok.shape[0]} of {feats.shape[0]} blocks have defined NIQE features "
            "(flat or constant regions give undefined statistics); NIQE needs at least 2. "
            "Use a larger or less flat image"
        )
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(feats, axis=0)
    return mu, np.cov(ok, rowvar=False)


def niqe_distance(feats: np.ndarray, params: NiqeParams, *, name: str = "image") -> float:
    """The NIQE distance between the MVG of ``feats`` (N, 36) and the pristine model."""
    mu_d, cov_d = fit_mvg(feats, name=name)
    diff = params.mu - mu_d
    inv = np.linalg.pinv((params.cov + cov_d) / 2)
    return float(np.sqrt(diff @ inv @ diff))


# ----------------------------------------------------------------------------------------------
# fitting a pristine model

SHARPNESS_THRESHOLD = 0.75


def select_sharp_blocks(
    sharpness: np.ndarray, threshold: float = SHARPNESS_THRESHOLD
) -> np.ndarray:
    """Boolean mask of the blocks kept for a pristine model.

    The NIQE paper's patch selection (Mittal et al. 2012; the release's ``estimatemodelparam``
    takes the threshold as an argument, 0.75 in its example): a block is kept when its sharpness
    (mean local sigma at the first scale) exceeds ``threshold`` times the sharpest block of the
    same image. ``threshold <= 0`` keeps every block.
    """
    s = np.asarray(sharpness, dtype=np.float64)
    if threshold <= 0 or s.size == 0:
        return np.ones(s.shape, dtype=bool)
    return s > threshold * s.max()


def image_block_features(
    img: np.ndarray,
    *,
    window: np.ndarray | None = None,
    crop_border: int = 0,
    channel_order: ChannelOrder = "rgb",
    sharpness_threshold: float = SHARPNESS_THRESHOLD,
) -> np.ndarray:
    """The 36-feature rows of the selected blocks of one image ((0, 36) when no block fits)."""
    y = niqe_luma(img, crop_border=crop_border, channel_order=channel_order)
    if y.shape[0] < BLOCK_SIZE or y.shape[1] < BLOCK_SIZE:
        return np.empty((0, 36))
    feats, sharp = niqe_features(y, gaussian_window() if window is None else window)
    return feats[select_sharp_blocks(sharp, sharpness_threshold)]


def fit_niqe_params(
    features: list[np.ndarray] | np.ndarray, *, window: np.ndarray | None = None
) -> NiqeParams:
    """A pristine model (NaN-mean, covariance of complete rows) from stacked block features."""
    feats = np.concatenate(list(features), axis=0) if isinstance(features, list) else features
    mu, cov = fit_mvg(np.asarray(feats, dtype=np.float64), name="pristine set")
    return NiqeParams(mu=mu, cov=cov, window=gaussian_window() if window is None else window)
