"""Networks: official state-dict keys and parameter counts, shapes, detect_arch round trips."""

from __future__ import annotations

import pytest
import torch

from resrgan.nets import RRDBNet, SRVGGNetCompact, build_arch, detect_arch


def _rrdb_keys(num_block: int) -> list[str]:
    keys = ["conv_first.weight", "conv_first.bias"]
    for i in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                keys += [f"body.{i}.rdb{r}.conv{c}.weight", f"body.{i}.rdb{r}.conv{c}.bias"]
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"):
        keys += [f"{name}.weight", f"{name}.bias"]
    return keys


def _srvgg_keys(num_conv: int) -> list[str]:
    keys = ["body.0.weight", "body.0.bias", "body.1.weight"]
    for k in range(1, num_conv + 1):
        keys += [f"body.{2 * k}.weight", f"body.{2 * k}.bias", f"body.{2 * k + 1}.weight"]
    last = 2 * num_conv + 2
    return keys + [f"body.{last}.weight", f"body.{last}.bias"]


@pytest.mark.parametrize(
    ("kwargs", "num_params"),
    [
        (dict(scale=4, num_block=23), 16_697_987),
        (dict(scale=2, num_block=23), 16_703_171),
        (dict(scale=1, num_block=23), 16_723_907),
        (dict(scale=4, num_block=6), 4_467_779),
    ],
)
def test_rrdbnet_keys_and_parameter_count_match_official(kwargs: dict, num_params: int) -> None:
    net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_grow_ch=32, **kwargs)
    assert list(net.state_dict().keys()) == _rrdb_keys(kwargs["num_block"])
    assert sum(p.numel() for p in net.parameters()) == num_params


def test_rrdbnet_23_blocks_has_702_tensors() -> None:
    assert len(RRDBNet(num_block=23).state_dict()) == 702


@pytest.mark.parametrize(("num_conv", "num_params"), [(16, 621_424), (32, 1_213_296)])
def test_srvgg_keys_and_parameter_count_match_official(num_conv: int, num_params: int) -> None:
    net = SRVGGNetCompact(num_conv=num_conv)
    assert list(net.state_dict().keys()) == _srvgg_keys(num_conv)
    assert sum(p.numel() for p in net.parameters()) == num_params


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_output_shape(scale: int) -> None:
    net = RRDBNet(scale=scale, num_block=1, num_feat=8, num_grow_ch=4).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, 8, 12))
    assert y.shape == (2, 3, 8 * scale, 12 * scale)


def test_rrdbnet_x2_unshuffle_matches_torch_pixel_unshuffle_order() -> None:
    torch.manual_seed(0)
    x = torch.arange(2 * 2 * 2 * 3, dtype=torch.float32).reshape(1, 3, 2, 4)
    y = torch.nn.functional.pixel_unshuffle(x, 2)
    # channel c*4 + i*2 + j holds pixel (i, j) of each 2x2 cell
    assert y[0, 1, 0, 1] == x[0, 0, 0, 3]
    assert y[0, 4 + 2, 0, 0] == x[0, 1, 1, 0]


def test_srvgg_is_residual_over_nearest_upsampling() -> None:
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2).eval()
    last = net.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        y = net(x)
    assert torch.equal(y, x.repeat_interleave(2, 2).repeat_interleave(2, 3))


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        (
            "RRDBNet",
            dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=16, num_block=3, num_grow_ch=8),
        ),
        (
            "RRDBNet",
            dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=16, num_block=2, num_grow_ch=8),
        ),
        (
            "RRDBNet",
            dict(num_in_ch=1, num_out_ch=1, scale=1, num_feat=8, num_block=1, num_grow_ch=4),
        ),
        (
            "SRVGGNetCompact",
            dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=5, upscale=4, act_type="prelu"),
        ),
        (
            "SRVGGNetCompact",
            dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2, act_type="relu"),
        ),
    ],
)
def test_detect_arch_round_trip(arch: str, kwargs: dict) -> None:
    sd = build_arch(arch, **kwargs).state_dict()
    assert detect_arch(sd) == (arch, kwargs)


def test_detect_arch_unknown_keys_error_names_keys() -> None:
    from resrgan.errors import WeightsError

    with pytest.raises(WeightsError, match="matches no known architecture.*foo.weight"):
        detect_arch({"foo.weight": torch.zeros(1)})


def test_gradients_reach_every_parameter() -> None:
    for net in (
        RRDBNet(num_block=1, num_feat=8, num_grow_ch=4),
        SRVGGNetCompact(num_feat=8, num_conv=2),
    ):
        net(torch.rand(1, 3, 8, 8)).mean().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_rrdbnet_forward_is_the_same_under_every_grad_mode() -> None:
    """One network per class: no inference-only branch (the fast path is resrgan.infer.fastrrdb,
    called by the engine)."""
    torch.manual_seed(0)
    net = RRDBNet(scale=2, num_block=1, num_feat=8, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 16, 12)
    ref = net(x).detach()
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref, rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), ref, rtol=0, atol=0)
    assert not hasattr(net, "winograd")


def _first_conv_grad(net: SRVGGNetCompact) -> float:
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    target = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    (net(x) - target).abs().mean().backward()
    return float(net.body[0].weight.grad.abs().mean().detach())


def test_he_init_lets_the_gradient_reach_the_first_layer_of_a_deep_compact_net() -> None:
    torch.manual_seed(0)
    default = _first_conv_grad(SRVGGNetCompact(num_conv=32))
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_conv=32).he_init_(last_scale=0.1)
    he = _first_conv_grad(net)
    # measured: ~1e-16 under torch's default init (below Adam's eps 1e-8), ~1e-3 under He
    assert default < 1e-12
    assert he > 1e-5
    assert all(
        float(c.bias.detach().abs().max()) == 0 for c in net.body if isinstance(c, torch.nn.Conv2d)
    )


def test_he_init_starts_the_net_at_its_nearest_upsampled_input() -> None:
    net = SRVGGNetCompact(num_conv=4).he_init_()
    assert float(net.body[0].weight.detach().std()) == pytest.approx(
        (2 / (1.0625 * 27)) ** 0.5, rel=0.15
    )
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), x.repeat_interleave(4, 2).repeat_interleave(4, 3))
