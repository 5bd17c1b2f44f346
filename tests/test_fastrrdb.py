"""Fast RRDBNet inference (resrgan.infer.fastrrdb): the same function as RRDBNet.forward (Winograd
and direct trunks, banded tail, batches, memory formats), the fp32-residual argument, and the
engine's explicit choice of path."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
import torch.nn.functional as F

from resrgan.infer import fastrrdb, winograd
from resrgan.infer.engine import Engine
from resrgan.nets import RRDBNet


def _scaled(net: RRDBNet, std: float, seed: int) -> RRDBNet:
    """Weights large enough that every layer changes the signal (the default init is 0.1x)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return net.eval()


def _count_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one per Winograd dense block run."""
    calls: list[int] = []
    real = winograd.dense_block

    def spy(*args: object, **kwargs: object) -> None:
        calls.append(1)
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(winograd, "dense_block", spy)
    return calls


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref).abs().max() / ref.abs().max())


def _fast(net: RRDBNet, x: torch.Tensor, *, winograd: bool = True) -> torch.Tensor:
    return fastrrdb.forward(net, x, winograd=winograd, residual_dtype=None)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
def test_winograd_and_direct_trunks_match_float64(
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
    got = _fast(net, x)
    assert len(calls) == 2 * 2 * 3  # images x RRDBs x dense blocks
    direct = _fast(net, x, winograd=False)
    assert len(calls) == 12
    assert _rel_err(got, ref) < 2e-5 and _rel_err(direct, ref) < 2e-5
    assert not torch.equal(got, direct)  # really another computation
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert got.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch", [1, 2])
def test_direct_path_with_banded_tail_equals_the_forward(
    scale: int, channels_last: bool, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concat buffers reused, activations in place, the x4 tail in row bands: the same function
    as the plain forward."""
    torch.manual_seed(scale)
    net = RRDBNet(scale=scale, num_block=2, num_feat=16, num_grow_ch=8).eval()
    x = torch.rand(batch, 3, 96, 40)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    ref = net(x).detach()
    assert ref.shape == (batch, 3, 96 * scale, 40 * scale)
    # bands of 8 LR rows (several bands plus a short last one) and one band
    for min_rows, band_bytes in ((8, 1), (32, 32 << 20)):
        monkeypatch.setattr(fastrrdb, "_TAIL_MIN_ROWS", min_rows)
        monkeypatch.setattr(fastrrdb, "_TAIL_BAND_BYTES", band_bytes)
        out = _fast(net, x, winograd=False)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        assert out.is_contiguous(memory_format=fmt)
    x_before = x.clone()
    _fast(net, x)
    assert torch.equal(x, x_before)  # the input is never written


def test_engine_runs_the_trunk_in_the_whole_image_order() -> None:
    """The engine's runner takes the whole-image order (measured faster than bands with two
    threads at 512 and 1024); band_rows cuts ~BAND_TILES tiles into whole rows when asked."""
    net = RRDBNet(num_block=1, num_feat=8, num_grow_ch=4).eval()
    engine = Engine(net, device=torch.device("cpu"), dtype=torch.float32, tile=0)
    runner = engine._nets[torch.float32].run
    assert isinstance(runner, fastrrdb.FastRRDB)
    assert runner.band_tiles is None
    assert fastrrdb.band_rows(512, fastrrdb.BAND_TILES) == fastrrdb.BAND_TILES // 128
    assert fastrrdb.band_rows(128, fastrrdb.BAND_TILES) >= 32  # 128x128 (32 tile rows): whole
    assert fastrrdb.band_rows(4096, fastrrdb.BAND_TILES) == 1  # at least a row
    assert fastrrdb.band_rows(512, None) is None


def test_trunk_in_bands_equals_the_whole_image_order_within_rounding() -> None:
    """One-row and three-row bands (and a short last band) against one band: float rounding
    only (a few 1e-7 of the range; bound 1e-5), on every output pixel."""
    net = _scaled(RRDBNet(scale=4, num_block=2, num_feat=16, num_grow_ch=8), 0.1, 11)
    x = torch.rand(2, 3, 37, 22, generator=torch.Generator().manual_seed(5))
    whole = fastrrdb.forward(net, x, winograd=True, residual_dtype=None, band_tiles=None)
    for band_tiles in (1, 18):  # 6 tiles a row: bands of 1 and 3 of the 10 tile rows
        got = fastrrdb.forward(net, x, winograd=True, residual_dtype=None, band_tiles=band_tiles)
        assert float((got - whole).abs().max()) <= 1e-5 * float(whole.abs().max())


def test_official_x4plus_in_bands_stays_within_1e4_of_the_whole_image(
    real_lr_dir: Path, ncnn_models_dir: Path
) -> None:
    """RealESRGAN_x4plus on a 32x40 photo crop in one-row bands (8 bands of 10 tiles) against
    the whole-image order: max abs diff <= 1e-4 on the [0, 1] float output. That is 1/40 of an
    8-bit step, so the saved image changes by at most one code value where a pixel sits on a
    rounding boundary; fp32 rounding through 345 convolutions is ~1e-6, so the bound is loose
    for rounding and tight for any real difference (a wrong ring or residual: >= 1e-2)."""
    from resrgan.weights.zoo import load_zoo_model

    net, _ = load_zoo_model("RealESRGAN_x4plus")
    img = cv2.imread(str(real_lr_dir / "OST_009.png"), cv2.IMREAD_COLOR)[200:232, 150:190]
    x = torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1)[None].float().div(255)
    whole = fastrrdb.forward(net.eval(), x, winograd=True, residual_dtype=None, band_tiles=None)
    banded = fastrrdb.forward(net, x, winograd=True, residual_dtype=None, band_tiles=10)
    assert fastrrdb.band_rows(40, 10) == 1
    diff = float((banded - whole).abs().max())
    assert diff <= 1e-4, f"max abs diff {diff:.2e}"


def test_new_weights_are_used_on_the_next_call() -> None:
    """Kernels are transformed per call, so nothing stale survives a weight change."""
    net = _scaled(RRDBNet(num_block=1, num_feat=8, num_grow_ch=4), 0.1, 7)
    x = torch.rand(1, 3, 10, 14)
    first = _fast(net, x)
    other = _scaled(RRDBNet(num_block=1, num_feat=8, num_grow_ch=4), 0.1, 8)
    net.load_state_dict(other.state_dict())
    second = _fast(net, x)
    with torch.no_grad():
        ref = other(x)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize(("feat", "grow"), [(8, 32), (32, 8), (12, 12)])
def test_growth_channels_wider_or_narrower_than_the_trunk(feat: int, grow: int) -> None:
    net = _scaled(RRDBNet(num_block=1, num_feat=feat, num_grow_ch=grow), 0.08, feat + grow)
    x = torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net.double()(x.double())
    got = _fast(net.float(), x)
    assert _rel_err(got, ref) < 2e-5


def test_winograd_refuses_reduced_precision() -> None:
    net = RRDBNet(num_block=1, num_feat=8, num_grow_ch=4).to(torch.bfloat16)
    with pytest.raises(ValueError, match="winograd=True needs fp32 weights and input on the CPU"):
        _fast(net, torch.rand(1, 3, 8, 8))


def _fp32_residual_reference(net: RRDBNet, x: torch.Tensor) -> torch.Tensor:
    """The rule written out on the upstream modules: every conv in bf16, the residual trunk
    (conv_first's output, each block's and RRDB's sum, conv_body's sum) in fp32."""

    def conv(m: torch.nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        return m(t.to(torch.bfloat16))

    def block(rdb: torch.nn.Module, t: torch.Tensor) -> torch.Tensor:
        cat = t.to(torch.bfloat16)
        for c in (rdb.conv1, rdb.conv2, rdb.conv3, rdb.conv4):
            cat = torch.cat((cat, F.leaky_relu(conv(c, cat), 0.2)), 1)
        return conv(rdb.conv5, cat).float() * 0.2 + t

    with torch.no_grad():
        feat = conv(net.conv_first, x).float()
        body = feat
        for rrdb in net.body:
            body = block(rrdb.rdb3, block(rrdb.rdb2, block(rrdb.rdb1, body))) * 0.2 + body
        feat = feat + conv(net.conv_body, body)
        feat = F.interpolate(feat, scale_factor=2, mode="nearest")
        feat = F.leaky_relu(conv(net.conv_up1, feat), 0.2)
        feat = F.interpolate(feat, scale_factor=2, mode="nearest")
        feat = F.leaky_relu(conv(net.conv_up2, feat), 0.2)
        return conv(net.conv_last, F.leaky_relu(conv(net.conv_hr, feat), 0.2))


def test_fp32_residual_argument_keeps_the_trunk_in_fp32_under_bf16() -> None:
    torch.manual_seed(0)
    net = _scaled(RRDBNet(num_feat=8, num_block=2, num_grow_ch=4), 0.1, 0)
    x = torch.rand(1, 3, 12, 12)
    fp32 = _fast(net, x)
    same = fastrrdb.forward(net, x, winograd=False, residual_dtype=torch.float32)
    torch.testing.assert_close(same, _fast(net, x, winograd=False), rtol=0, atol=0)  # no-op
    net.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kept = fastrrdb.forward(net, x, winograd=False, residual_dtype=torch.float32).float()
        plain = fastrrdb.forward(net, x, winograd=False, residual_dtype=None).float()
    torch.testing.assert_close(kept, _fp32_residual_reference(net, x).float(), rtol=0, atol=0)
    assert 0 < float((kept - fp32).abs().max()) < 0.05
    assert not torch.equal(kept, plain)  # without it the trunk is bf16


def test_forward_is_the_plain_computation_under_every_grad_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the engine runs the fast path, and only where it says: RRDBNet.forward never does."""
    net = RRDBNet(num_block=1, num_feat=8, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 12, 12)
    calls = _count_blocks(monkeypatch)
    net(x)
    with torch.no_grad():
        net(x)
    with torch.inference_mode():
        net(x)
    assert calls == []
    cpu = torch.device("cpu")
    fp32 = Engine(net, device=cpu, dtype=torch.float32, tile=0)
    fp32.upscale_tensor(x)
    assert len(calls) == 3 and fp32.tile_multiple == 4
    direct = Engine(net, device=cpu, dtype=torch.float32, tile=0, winograd=False)
    direct.upscale_tensor(x)
    assert len(calls) == 3 and direct.tile_multiple == 1
    bf16 = Engine(RRDBNet(num_block=1, num_feat=8, num_grow_ch=4), device=cpu, dtype=torch.bfloat16)
    bf16.upscale_tensor(x)
    assert len(calls) == 3 and bf16.tile_multiple == 1
