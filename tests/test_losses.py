"""Losses: L1, vanilla GAN (closed forms), VGG19 perceptual loss, VGG weights loading."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resrgan.errors import ModelNotFoundError, WeightsError
from resrgan.losses import DEFAULT_LAYER_WEIGHTS, PerceptualLoss, gan_loss, l1_loss
from resrgan.nets.vgg import VGG19_LAYERS, VGG19Features
from resrgan.weights import vgg19
from resrgan.weights.vgg19 import build_vgg19_features, resolve_vgg19_weights, vgg19_if_present

# torchvision vgg19 "features" conv indices and channels (spec §2.4)
TV_CONVS = {
    0: (3, 64),
    2: (64, 64),
    5: (64, 128),
    7: (128, 128),
    10: (128, 256),
    12: (256, 256),
    14: (256, 256),
    16: (256, 256),
    19: (256, 512),
    21: (512, 512),
    23: (512, 512),
    25: (512, 512),
    28: (512, 512),
    30: (512, 512),
    32: (512, 512),
    34: (512, 512),
}


def test_l1_is_the_mean_absolute_difference_times_the_weight() -> None:
    a = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 7.0]])
    assert float(l1_loss(a, b)) == pytest.approx((1 + 0 + 2 + 4) / 4)
    assert float(l1_loss(a, b, weight=0.5)) == pytest.approx(7 / 8)


def test_gan_loss_closed_form() -> None:
    x = torch.tensor([-2.0, 0.0, 3.0])
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    real = sum(softplus(-v) for v in x.tolist()) / 3
    fake = sum(softplus(v) for v in x.tolist()) / 3
    assert float(gan_loss(x, True)) == pytest.approx(real, rel=1e-6)
    assert float(gan_loss(x, False)) == pytest.approx(fake, rel=1e-6)
    assert float(gan_loss(x, True, weight=0.1)) == pytest.approx(0.1 * real, rel=1e-6)
    assert float(gan_loss(torch.zeros(4, 1, 8, 8), True)) == pytest.approx(math.log(2), rel=1e-6)


def _random_torchvision_vgg19(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for i, (cin, cout) in TV_CONVS.items():
        sd[f"features.{i}.weight"] = (
            torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        )
        sd[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    sd["classifier.0.weight"] = torch.zeros(8, 8)  # ignored
    sd["classifier.0.bias"] = torch.zeros(8)
    return sd


def _reference_features(sd: dict[str, torch.Tensor], x: torch.Tensor) -> dict[int, torch.Tensor]:
    """An independent VGG19 forward written from the torchvision layout (conv, relu, pools)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = (x - mean) / std
    out = {}
    pools_after = {2, 7, 16, 25}
    for i in sorted(TV_CONVS):
        h = F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1)
        out[i] = h
        h = F.relu(h)
        if i in pools_after:
            h = F.max_pool2d(h, 2, 2)
    return out


def test_vgg_loads_torchvision_file_and_matches_an_independent_forward(tmp_path: Path) -> None:
    sd = _random_torchvision_vgg19()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(sd, path)
    vgg = build_vgg19_features(str(path))
    assert all(not p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    feats = vgg(x)
    ref = _reference_features(sd, x)
    for name, idx in (
        ("conv1_2", 2),
        ("conv2_2", 7),
        ("conv3_4", 16),
        ("conv4_4", 25),
        ("conv5_4", 34),
    ):
        torch.testing.assert_close(feats[name], ref[idx], rtol=1e-4, atol=1e-5)
    assert float(feats["conv1_2"].min()) < 0  # pre-ReLU features


def test_vgg_layer_names_follow_torchvision_indices() -> None:
    assert VGG19_LAYERS[2] == "conv1_2" and VGG19_LAYERS[34] == "conv5_4"
    assert VGG19_LAYERS[4] == "pool1" and VGG19_LAYERS[16] == "conv3_4"


def test_vgg_rejects_a_state_dict_without_features(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    torch.save({"classifier.0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="not a torchvision vgg19 state dict"):
        build_vgg19_features(str(path))


def test_perceptual_loss_is_zero_for_identical_inputs() -> None:
    loss = PerceptualLoss(build_vgg19_features("random"))
    x = torch.rand(2, 3, 32, 32)
    assert float(loss(x, x.clone())) == 0.0


def test_perceptual_loss_applies_the_layer_weights() -> None:
    vgg = build_vgg19_features("random")
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    fa, fb = vgg(a), vgg(b)
    per_layer = {k: float((fa[k] - fb[k]).abs().mean()) for k in DEFAULT_LAYER_WEIGHTS}
    expected = sum(DEFAULT_LAYER_WEIGHTS[k] * v for k, v in per_layer.items())
    assert DEFAULT_LAYER_WEIGHTS == {
        "conv1_2": 0.1,
        "conv2_2": 0.1,
        "conv3_4": 1.0,
        "conv4_4": 1.0,
        "conv5_4": 1.0,
    }
    assert float(PerceptualLoss(vgg)(a, b)) == pytest.approx(expected, rel=1e-5)
    only = PerceptualLoss(vgg, layer_weights={"conv2_2": 0.1}, perceptual_weight=2.0)
    assert float(only(a, b)) == pytest.approx(0.2 * per_layer["conv2_2"], rel=1e-5)


def test_perceptual_gradient_flows_to_output_only() -> None:
    loss = PerceptualLoss(build_vgg19_features("random"))
    out = torch.rand(1, 3, 32, 32, requires_grad=True)
    gt = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(out, gt).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert gt.grad is None


def test_input_normalisation_is_imagenet() -> None:
    normed = VGG19Features(layers=("conv1_1",), use_input_norm=True)
    raw = VGG19Features(layers=("conv1_1",), use_input_norm=False)
    raw.load_state_dict(normed.state_dict())
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(normed(x)["conv1_1"], raw((x - mean) / std)["conv1_1"])


def test_missing_vgg_weights_offline_lists_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RESRGAN_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_vgg19_weights("auto")
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(tmp_path / "torch") in msg
    assert "losses.vgg_weights=random" in msg and "RESRGAN_OFFLINE" in msg


def test_vgg_found_in_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    p = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    p.parent.mkdir(parents=True)
    torch.save(_random_torchvision_vgg19(), p)
    assert resolve_vgg19_weights("auto", download=False) == p
    assert resolve_vgg19_weights("random") is None


def test_vgg_if_present_finds_the_hub_file_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(
        "resrgan.weights.vgg19.fetch", lambda *a, **k: pytest.fail("if-present downloaded")
    )
    assert vgg19_if_present() is None
    p = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"x")
    assert vgg19_if_present() == p


def test_missing_explicit_vgg_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"losses.vgg_weights: .*nope.pth does not exist"):
        resolve_vgg19_weights(str(tmp_path / "nope.pth"))


def test_vgg_download_goes_through_the_checked_downloader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'auto' with no cached file downloads into the hub cache, and a file whose sha256 does not
    start with dcbb9e9d is refused and deleted."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("RESRGAN_OFFLINE", raising=False)
    src = tmp_path / "impostor.pth"
    torch.save(_random_torchvision_vgg19(), src)
    assert not hashlib.sha256(src.read_bytes()).hexdigest().startswith("dcbb9e9d")
    monkeypatch.setattr(vgg19, "VGG19_URL", src.as_uri())
    with pytest.raises(WeightsError) as err:
        resolve_vgg19_weights("auto")
    assert str(err.value).startswith("vgg19-dcbb9e9d.pth: SHA-256 mismatch for file:")
    assert "expected dcbb9e9d..." in str(err.value)
    assert list((tmp_path / "torch" / "hub" / "checkpoints").iterdir()) == []


def test_chroma_l1_is_the_colour_part_of_the_l1() -> None:
    from resrgan.losses import chroma_l1_loss

    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(2, 3, 8, 8, generator=g) * 0.5 + 0.25
    assert float(chroma_l1_loss(rgb + 0.1, rgb)) == pytest.approx(0.0, abs=1e-7)  # brightness
    grey = rgb.mean(1, keepdim=True).expand_as(rgb)
    tint = torch.tensor([0.06, 0.0, -0.06]).view(1, 3, 1, 1)
    # chroma of grey + tint: (+0.06, 0, -0.06) at every pixel -> mean |.| 0.04, times the weight
    assert float(chroma_l1_loss(grey + tint, grey, weight=2.0)) == pytest.approx(0.08, abs=1e-6)
    assert float(chroma_l1_loss(grey, grey + tint)) == pytest.approx(0.04, abs=1e-6)


def test_chroma_weight_reaches_both_training_stages(tmp_path: Path) -> None:
    import json

    from _train_data import make_hr_folder
    from resrgan.cli import main

    hr = make_hr_folder(tmp_path / "hr", 4, seed=0)
    smoke = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
    for model in ("esrnet", "esrgan"):
        out = tmp_path / model
        rc = main(
            ["train", smoke, "--data", str(hr), "--out", str(out), "--quiet", "--device", "cpu"]
            + ["--iters", "5", "--set", f"model={model}", "--set", "losses.chroma_weight=2"]
        )
        assert rc == 0
        recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        logged = [r["l_g_chroma"] for r in recs if "l_g_chroma" in r]
        assert logged and all(0 < v < 2 for v in logged), (model, recs)
    with pytest.raises(Exception, match="losses.chroma_weight: must be >= 0, got -1"):
        from resrgan.training.config import load_train_config, validate

        validate(load_train_config(smoke, ["losses.chroma_weight=-1"]))
    with pytest.raises(Exception, match="losses.usm_weight: must be >= 0, got -0.5"):
        validate(load_train_config(smoke, ["losses.usm_weight=-0.5"]))
