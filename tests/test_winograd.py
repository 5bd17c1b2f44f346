"""Winograd F(4x4, 3x3) dense blocks (resrgan.nets.winograd) against direct convolution in
float64: the transform constants, one dense block at awkward sizes, the whole RRDBNet inference
path, and where the path is (not) taken."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resrgan.nets import RRDBNet
from resrgan.nets import winograd as W
from resrgan.nets.rrdbnet import ResidualDenseBlock


def _scaled(net: torch.nn.Module, std: float, seed: int) -> torch.nn.Module:
    """Weights large enough that every layer changes the signal (the default init is 0.1x)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return net.eval()


def _count_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one per Winograd dense block run."""
    calls: list[int] = []
    real = W.dense_block

    def spy(*args: object) -> None:
        calls.append(1)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(W, "dense_block", spy)
    return calls


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


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
def test_rrdbnet_takes_the_winograd_path_and_matches_float64(
    scale: int, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _scaled(RRDBNet(scale=scale, num_block=2, num_feat=16, num_grow_ch=8), 0.1, scale)
    x = torch.rand(2, 3, 36, 20, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net.double()(x.double())
    net.float()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    calls = _count_blocks(monkeypatch)
    with torch.inference_mode():
        got = net(x)
        assert len(calls) == 2 * 2 * 3  # images x RRDBs x dense blocks
        net.winograd = False
        direct = net(x)
        assert len(calls) == 12
    assert _rel_err(got, ref) < 2e-5 and _rel_err(direct, ref) < 2e-5
    assert not torch.equal(got, direct)  # really another computation
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert got.is_contiguous(memory_format=fmt)


def test_winograd_path_only_for_fp32_cpu_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    net = RRDBNet(num_block=1, num_feat=8, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 12, 12)
    calls = _count_blocks(monkeypatch)
    net(x)  # autograd: the plain forward
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)  # reduced precision: the direct convolutions
    handle = net.body[0].register_forward_hook(lambda *a: None)
    with torch.no_grad():
        net(x)  # a hook on the blocks: modules are called
    handle.remove()
    assert calls == []
    with torch.no_grad():
        net(x)
    assert len(calls) == 3


def test_new_weights_are_used_on_the_next_call() -> None:
    """Kernels are transformed per call, so nothing stale survives a weight change."""
    net = _scaled(RRDBNet(num_block=1, num_feat=8, num_grow_ch=4), 0.1, 7)
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        first = net(x)
        other = _scaled(RRDBNet(num_block=1, num_feat=8, num_grow_ch=4), 0.1, 8)
        net.load_state_dict(other.state_dict())
        second = net(x)
        ref = other(x)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize(("feat", "grow"), [(8, 32), (32, 8), (12, 12)])
def test_growth_channels_wider_or_narrower_than_the_trunk(feat: int, grow: int) -> None:
    net = _scaled(RRDBNet(num_block=1, num_feat=feat, num_grow_ch=grow), 0.08, feat + grow)
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net.double()(x.double())
        net.float()
        got = net(x)
    assert _rel_err(got, ref) < 2e-5


def test_workspace_size_formula_counts_every_buffer() -> None:
    """``RRDBNet.winograd_bytes_per_pixel`` (what tile="auto" budgets) is what a dense block
    really allocates: P, U, the product buffers and the output buffer."""
    net = RRDBNet(num_block=1, num_feat=16, num_grow_ch=8).eval()
    h = w = 16
    ws = W.TileMaps(h, w, p_channels=24, u_channels=48, out_channels=16, device=torch.device("cpu"))
    with torch.no_grad():
        ws.load(torch.rand(16, h, w))
        W.dense_block(ws, W.rdb_weights(net.body[0].rdb1), 16, 8)
    products = [v[0] for k, v in ws._views.items() if k[0] == "out"]
    assert len(products) == 2  # widths 16 and 8
    total = sum(t.nbytes for t in (ws.P, ws.U, ws._y, *products))
    assert total == net.winograd_bytes_per_pixel() * h * w
