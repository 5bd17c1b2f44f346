"""Blur kernels of the degradation (spec §1.3), built batched on the image's device.

Upstream draws and builds each kernel on the CPU with NumPy (``basicsr/data/degradations.py``:
``random_mixed_kernels``, ``circular_lowpass_kernel``) at its own odd size ``k`` and zero-pads it to
21x21. Here every kernel is built directly on the padded ``pad_to`` x ``pad_to`` grid, with
the entries outside the central ``k`` x ``k`` square set to zero before normalising: the same
numbers, one batched call for a whole batch of mixed types and sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

# kernel type -> integer code used in the batched builder
KIND_CODES: dict[str, int] = {
    "iso": 0,
    "aniso": 0,
    "generalized_iso": 1,
    "generalized_aniso": 1,
    "plateau_iso": 2,
    "plateau_aniso": 2,
    "sinc": 3,
    "pulse": 4,
}


def _grid(pad_to: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    r = (pad_to - 1) / 2
    ax = torch.arange(pad_to, device=device, dtype=dtype) - r
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")  # row index = y, column index = x
    return xx, yy


def _as_tensor(
    v: Tensor | Sequence[float] | float, n: int, device: torch.device, dtype: torch.dtype
):
    t = torch.as_tensor(v, device=device, dtype=dtype)
    return t.expand(n) if t.ndim == 0 else t


def make_kernels(
    kinds: Sequence[str],
    sizes: Sequence[int],
    *,
    sigma_x: Sequence[float] | Tensor,
    sigma_y: Sequence[float] | Tensor,
    theta: Sequence[float] | Tensor,
    beta: Sequence[float] | Tensor,
    omega_c: Sequence[float] | Tensor,
    pad_to: int = 21,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Build B kernels of mixed types and sizes, each normalised to sum 1 -> ``(B, P, P)``, P =
    pad_to.

    Per sample ``b``: ``kinds[b]`` is one of :data:`KIND_CODES`; ``sizes[b]`` is odd and
    ``<= pad_to``; the other parameters are ignored where a type does not use them. Formulas, with
    ``Q = pᵀ Σ⁻¹ p`` and ``Σ = R(θ) diag(σx², σy²) R(θ)ᵀ`` (upstream ``sigma_matrix2``):

    * Gaussian (iso/aniso): ``exp(-Q/2)``; generalized: ``exp(-Q^β / 2)``; plateau: ``1/(1 + Q^β)``.
    * sinc (``circular_lowpass_kernel``): ``ω J1(ω r) / (2π r)``, centre value ``ω²/(4π)``.
    * pulse: 1 at the centre (identity under :func:`~resrgan.degradation.filter.filter2d`).

    The grid is centred, column = x, row = y, as upstream's ``mesh_grid``. Computed in float64 on
    ``device`` (float32 where float64 is unavailable), returned in ``dtype``. No clamping.
    """
    device = torch.device(device)
    n = len(kinds)
    if len(sizes) != n:
        raise ValueError(f"make_kernels: {len(sizes)} sizes for {n} kinds; give one per kernel")
    for k in sizes:
        if k % 2 == 0 or k < 1 or k > pad_to:
            raise ValueError(f"make_kernels: kernel size {k} must be odd and in [1, {pad_to}]")
    try:
        codes = torch.tensor([KIND_CODES[k] for k in kinds], device=device)
    except KeyError as e:
        raise ValueError(
            f"make_kernels: unknown kernel type {e.args[0]!r}; choose from {list(KIND_CODES)}"
        ) from None
    work = torch.float64 if device.type != "mps" else torch.float32
    sx = _as_tensor(sigma_x, n, device, work).view(n, 1, 1)
    sy = _as_tensor(sigma_y, n, device, work).view(n, 1, 1)
    th = _as_tensor(theta, n, device, work).view(n, 1, 1)
    be = _as_tensor(beta, n, device, work).view(n, 1, 1)
    om = _as_tensor(omega_c, n, device, work).view(n, 1, 1)
    half = (torch.tensor(list(sizes), device=device, dtype=work).view(n, 1, 1) - 1) / 2

    xx, yy = _grid(pad_to, device, work)
    xx, yy = xx[None], yy[None]
    # Q = p^T Σ^-1 p with Σ^-1 = R diag(1/σx², 1/σy²) R^T: rotate p into the kernel axes.
    c, s = torch.cos(th), torch.sin(th)
    u = c * xx + s * yy
    v = -s * xx + c * yy
    q = (u / sx) ** 2 + (v / sy) ** 2
    safe_beta = torch.where(codes.view(n, 1, 1) == 1, be, torch.ones_like(be))
    gauss = torch.exp(-0.5 * q.pow(safe_beta))
    plateau = 1.0 / (1.0 + q.pow(be))
    r = torch.sqrt(xx**2 + yy**2)
    r_safe = torch.where(r == 0, torch.ones_like(r), r)
    sinc = om * torch.special.bessel_j1(om * r_safe) / (2 * math.pi * r_safe)
    sinc = torch.where(r == 0, om**2 / (4 * math.pi), sinc)
    pulse = ((xx == 0) & (yy == 0)).to(work).expand(n, -1, -1)

    cc = codes.view(n, 1, 1)
    k = torch.where(
        cc <= 1, gauss, torch.where(cc == 2, plateau, torch.where(cc == 3, sinc, pulse))
    )
    inside = (xx.abs() <= half) & (yy.abs() <= half)
    k = torch.where(inside, k, torch.zeros_like(k))
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    return k.to(dtype)


def gaussian_kernel(
    size: int,
    sigma: float,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """One isotropic Gaussian ``(size, size)`` kernel (sum 1); a convenience over make_kernels."""
    return make_kernels(
        ["iso"],
        [size],
        sigma_x=[sigma],
        sigma_y=[sigma],
        theta=[0.0],
        beta=[1.0],
        omega_c=[0.0],
        pad_to=size,
        device=device,
        dtype=dtype,
    )[0]


def pulse_kernel(
    pad_to: int = 21, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """The identity filter upstream uses when no final sinc is drawn: zeros with 1 at the centre."""
    k = torch.zeros(pad_to, pad_to, device=device, dtype=dtype)
    k[pad_to // 2, pad_to // 2] = 1
    return k
