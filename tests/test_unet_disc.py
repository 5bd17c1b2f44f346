"""UNetDiscriminatorSN: upstream keys and parameter count, shapes, gradients, spectral norm."""

from __future__ import annotations

import pytest
import torch

from resrgan.nets import ARCHS, build_arch
from resrgan.nets.unet_disc import UNetDiscriminatorSN

# The upstream state-dict layout (spec §2.3): conv0/conv9 plain, conv1..conv8 spectral-normed.
UPSTREAM_KEYS = (
    ["conv0.weight", "conv0.bias"]
    + [f"conv{i}.{s}" for i in range(1, 9) for s in ("weight_orig", "weight_u", "weight_v")]
    + ["conv9.weight", "conv9.bias"]
)


def test_state_dict_keys_match_upstream() -> None:
    assert list(UNetDiscriminatorSN().state_dict().keys()) == UPSTREAM_KEYS


def test_parameter_count_is_the_official_4376897() -> None:
    d = UNetDiscriminatorSN()
    assert sum(p.numel() for p in d.parameters()) == 4_376_897


def test_shapes_of_weights_and_power_iteration_vectors() -> None:
    sd = UNetDiscriminatorSN(num_feat=64).state_dict()
    assert tuple(sd["conv0.weight"].shape) == (64, 3, 3, 3)
    assert tuple(sd["conv1.weight_orig"].shape) == (128, 64, 4, 4)
    assert tuple(sd["conv1.weight_u"].shape) == (128,)
    assert tuple(sd["conv1.weight_v"].shape) == (64 * 4 * 4,)
    assert tuple(sd["conv3.weight_orig"].shape) == (512, 256, 4, 4)
    assert tuple(sd["conv4.weight_orig"].shape) == (256, 512, 3, 3)
    assert tuple(sd["conv9.weight"].shape) == (1, 64, 3, 3)
    assert "conv1.bias" not in sd and "conv8.bias" not in sd


def test_output_is_a_full_resolution_logit_map() -> None:
    d = UNetDiscriminatorSN(num_feat=8)
    out = d(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, 1, 64, 48)


def test_input_not_divisible_by_8_is_refused_with_its_size() -> None:
    with pytest.raises(ValueError, match=r"divisible by 8, got \(60, 64\)"):
        UNetDiscriminatorSN(num_feat=8)(torch.rand(1, 3, 60, 64))


def test_gradients_reach_every_parameter() -> None:
    d = UNetDiscriminatorSN(num_feat=8)
    d(torch.rand(2, 3, 32, 32)).mean().backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_skip_connection_changes_the_output() -> None:
    torch.manual_seed(0)
    a = UNetDiscriminatorSN(num_feat=8, skip_connection=True)
    b = UNetDiscriminatorSN(num_feat=8, skip_connection=False)
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 32, 32)
    a.eval(), b.eval()
    assert not torch.allclose(a(x), b(x))


def test_spectral_norm_converges_to_unit_largest_singular_value() -> None:
    torch.manual_seed(0)
    d = UNetDiscriminatorSN(num_feat=8)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for _ in range(200):  # each training-mode forward is one power iteration
            d(x)
    d.eval()
    with torch.no_grad():
        d(x)  # recompute the normalised weights from the converged u, v
    for i in range(1, 9):
        w = getattr(d, f"conv{i}").weight
        sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
        assert abs(float(sigma) - 1.0) < 1e-3, (i, float(sigma))


def test_registered_in_archs() -> None:
    assert ARCHS["UNetDiscriminatorSN"] is UNetDiscriminatorSN
    d = build_arch("UNetDiscriminatorSN", num_feat=16)
    assert d.conv0.out_channels == 16
