"""Winograd F(4x4, 3x3) dense blocks (resrgan.infer.winograd) against direct convolution in
float64: the transform constants, one dense block at awkward sizes, the workspace size. The whole
RRDBNet inference path is tested in test_fastrrdb.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resrgan.infer import winograd as W
from resrgan.infer.fastrrdb import FastRRDB
from resrgan.nets import RRDBNet
from resrgan.nets.rrdbnet import ResidualDenseBlock


def _scaled(net: torch.nn.Module, std: float, seed: int) -> torch.nn.Module:
    """Weights large enough that every layer changes the signal (the default init is 0.1x)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return net.eval()


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref).abs().max() / ref.abs().max())


def test_transforms_compute_a_3x3_correlation_exactly_in_float64() -> None:
    """A^T [(G g G^T) * (B^T d B)] A is the 4x4 valid correlation of a 6x6 tile with a 3x3
    kernel (the constants, independent of the workspace)."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(6, 6, generator=g, dtype=torch.float64)
    k = torch.randn(3, 3, generator=g, dtype=torch.float64)
    bt, at, gm = W._f64(W._BT), W._f64(W._AT), W._f64(W._G)
    y = at @ ((gm @ k @ gm.T) * (bt @ d @ bt.T)) @ at.T
    ref = F.conv2d(d[None, None], k[None, None])[0, 0]
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    # the float32 kernel transform is that transform, one matrix product
    w = torch.randn(5, 7, 3, 3, generator=g)
    got = W.transform_weight(w)
    want = torch.einsum("ai,ocij,bj->aboc", gm, w.double(), gm).reshape(36, 5, 7)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)
    # A^T's column 1 is all ones: the bias slot reaches all 16 outputs of a tile
    assert torch.equal(at[:, W._BIAS_SLOT // 6], torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (4, 4), (8, 12), (13, 21), (33, 6)])
def test_dense_block_matches_direct_convolution(hw: tuple[int, int]) -> None:
    h, w = hw
    rdb = _scaled(ResidualDenseBlock(num_feat=16, num_grow_ch=8), 0.15, seed=h * 100 + w)
    x = torch.randn(16, h, w, generator=torch.Generator().manual_seed(w))
    with torch.no_grad():
        ref = rdb.double()(x.double()[None])[0]
    rdb.float()
    ws = W.TileMaps(h, w, p_channels=24, u_channels=48, out_channels=16, device=x.device)
    with torch.inference_mode():
        ws.load(x)
        W.dense_block(ws, W.rdb_weights(rdb), 16, 8)
        got = ws.store(16)
        direct = rdb(x[None])[0]
    assert got.shape == (16, h, w)
    # float rounding only: a few 1e-6 of the range, the direct convolution's order of error
    assert _rel_err(got, ref) < 2e-5
    assert _rel_err(direct, ref) < 2e-5
    # the zero border is intact: a second block on the result still matches
    with torch.inference_mode():
        ref2 = rdb.double()(ref[None])[0]
        rdb.float()
        W.dense_block(ws, W.rdb_weights(rdb), 16, 8)
    assert _rel_err(ws.store(16), ref2) < 4e-5


def test_workspace_size_formula_counts_every_buffer() -> None:
    """``FastRRDB.workspace_bytes_per_pixel`` (what tile="auto" budgets) is what a dense block
    really allocates: P, U, the product buffers and the output buffer."""
    net = RRDBNet(num_block=1, num_feat=16, num_grow_ch=8).eval()
    h = w = 16
    ws = W.TileMaps(h, w, p_channels=24, u_channels=48, out_channels=16, device=torch.device("cpu"))
    with torch.no_grad():
        ws.load(torch.rand(16, h, w))
        W.dense_block(ws, W.rdb_weights(net.body[0].rdb1), 16, 8)
    products = list(ws._m.values())
    assert len(products) == 2  # widths 16 and 8
    total = sum(t.nbytes for t in (ws.P, ws.U, ws._y, *products))
    assert total == FastRRDB(net, winograd=True).workspace_bytes_per_pixel() * h * w


@pytest.mark.parametrize("band_rows", [1, 2, 3])
@pytest.mark.parametrize("hw", [(13, 21), (33, 6), (4, 9)])
def test_dense_blocks_in_bands_match_one_band(hw: tuple[int, int], band_rows: int) -> None:
    """Bands of tile rows (several, and a short last one) give each tile the arithmetic of the
    whole-image order: an RRDB's three blocks with its residual agree with one band to float
    rounding, and both with float64."""
    h, w = hw
    net = _scaled(RRDBNet(num_block=1, num_feat=16, num_grow_ch=8), 0.15, seed=h + band_rows)
    rrdb = net.body[0]
    x = torch.randn(16, h, w, generator=torch.Generator().manual_seed(h * w))
    with torch.no_grad():
        ref = rrdb.double()(x.double()[None])[0]
    rrdb.float()
    outs = []
    for rows in (None, band_rows):
        ws = W.TileMaps(
            h, w, p_channels=24, u_channels=48, out_channels=16, device=x.device, band_rows=rows
        )
        with torch.inference_mode():
            ws.load(x)
            body = ws.core(0, 16).clone()
            for k, rdb in enumerate((rrdb.rdb1, rrdb.rdb2, rrdb.rdb3)):
                W.dense_block(ws, W.rdb_weights(rdb), 16, 8, residual=body if k == 2 else None)
            outs.append(ws.store(16))
        assert len(ws.bands) == (1 if rows is None else -(-ws.th // rows))
    whole, banded = outs
    assert float((banded - whole).abs().max()) <= 1e-5 * float(whole.abs().max())
    assert _rel_err(banded, ref) < 4e-5 and _rel_err(whole, ref) < 4e-5
