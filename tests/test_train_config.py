"""Training configs: official values, overrides, unknown keys, cross-field checks, weight init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from resrgan.cli import main
from resrgan.errors import ConfigError, WeightsError
from resrgan.nets import RRDBNet
from resrgan.training.config import TrainConfig, load_train_config, validate
from resrgan.training.loop import build_dataset, build_generator, load_init_weights

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_stage_configs_hold_the_official_values() -> None:
    net = load_train_config(CONFIGS / "realesrnet_x4plus.yaml")
    gan = load_train_config(CONFIGS / "realesrgan_x4plus.yaml")
    assert (net.model, net.optim.lr_g, net.total_iters, net.init_from) == (
        "esrnet",
        2e-4,
        1_000_000,
        "ESRGAN_SRx4_DF2KOST_official",
    )
    assert net.degradation.gt_usm and net.degradation.queue_size == 180
    assert (gan.model, gan.optim.lr_g, gan.optim.lr_d, gan.total_iters) == (
        "esrgan",
        1e-4,
        1e-4,
        400_000,
    )
    assert gan.init_from == "RealESRNet_x4plus" and gan.init_d_from is None
    assert gan.losses.layer_weights == (0.1, 0.1, 1.0, 1.0, 1.0) and gan.losses.gan_weight == 0.1
    assert (gan.losses.l1_gt_usm, gan.losses.percep_gt_usm, gan.losses.gan_gt_usm) == (
        True,
        True,
        False,
    )
    for cfg in (net, gan):
        assert cfg.optim.betas == (0.9, 0.99) and cfg.ema_decay == 0.999
        assert cfg.optim.milestones == (cfg.total_iters,) and cfg.optim.gamma == 0.5
        assert cfg.data.batch_size == 12 and cfg.network_g.num_block == 23
        assert cfg.degradation.resize_prob == (0.2, 0.7, 0.1)
        assert cfg.degradation.blur_sigma2 == (0.2, 1.5) and cfg.degradation.final_sinc_prob == 0.8


def test_x2_and_finetune_configs() -> None:
    net2 = load_train_config(CONFIGS / "realesrnet_x2plus.yaml")
    assert net2.scale == 2 and net2.init_from == "RealESRGAN_x4plus" and not net2.init_strict
    gan2 = load_train_config(CONFIGS / "realesrgan_x2plus.yaml")
    assert gan2.scale == 2 and gan2.init_strict and gan2.model == "esrgan"
    ft = load_train_config(CONFIGS / "finetune_realesrgan_x4plus.yaml")
    assert ft.init_from == "RealESRNet_x4plus" and ft.init_d_from == "RealESRGAN_x4plus_netD"
    smoke = validate(load_train_config(CONFIGS / "smoke.yaml"))
    assert smoke.losses.vgg_weights == "random" and smoke.network_g.type == "SRVGGNetCompact"


def test_defaults_equal_the_realesrgan_x4plus_config() -> None:
    assert load_train_config(CONFIGS / "realesrgan_x4plus.yaml").optim == TrainConfig().optim
    assert load_train_config(CONFIGS / "realesrgan_x4plus.yaml").degradation == (
        TrainConfig().degradation
    )


def test_overrides_are_typed() -> None:
    cfg = load_train_config(
        CONFIGS / "smoke.yaml",
        [
            "optim.lr_g=5e-5",
            "data.batch_size=4",
            "degradation.queue_size=8",
            "optim.milestones=[10, 20]",
            "init_from=null",
        ],
    )
    assert cfg.optim.lr_g == 5e-5 and isinstance(cfg.optim.lr_g, float)
    assert cfg.data.batch_size == 4 and cfg.optim.milestones == (10, 20) and cfg.init_from is None


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'optim.lr_gg' \(did you mean 'lr_g'\?\)"
    ):
        load_train_config(CONFIGS / "smoke.yaml", ["optim.lr_gg=1e-4"])


def test_cli_reports_unknown_keys_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "train",
            str(CONFIGS / "smoke.yaml"),
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "degradation.queue_sise=4",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown config key 'degradation.queue_sise' (did you mean 'queue_size'?)" in err


def test_cli_missing_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "train",
            str(CONFIGS / "smoke.yaml"),
            "--data",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 2
    assert f"data.root: folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


def test_queue_size_must_be_a_multiple_of_the_batch() -> None:
    cfg = load_train_config(CONFIGS / "smoke.yaml", ["data.batch_size=3"])
    with pytest.raises(ConfigError, match="queue_size: 4 is not a multiple of data.batch_size 3"):
        validate(cfg)


def test_network_g_init_he_reaches_the_compact_net_only() -> None:
    compact = ["network_g.type=SRVGGNetCompact", "network_g.num_conv=2", "network_g.num_feat=8"]
    cfg = validate(load_train_config(CONFIGS / "smoke.yaml", [*compact, "network_g.init=he"]))
    torch.manual_seed(0)
    net = build_generator(cfg)
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert all(float(m.bias.detach().abs().max()) == 0 for m in convs)
    assert float(convs[-1].weight.detach().abs().max()) == 0  # init_last_scale 0 by default
    scaled = [*compact, "network_g.init=he", "network_g.init_last_scale=0.1"]
    net = build_generator(validate(load_train_config(CONFIGS / "smoke.yaml", scaled)))
    assert 0 < float(net.body[-1].weight.detach().abs().max()) < 0.1
    with pytest.raises(ConfigError, match=r"network_g.init_last_scale: must be in \[0, 1\], got 2"):
        validate(
            load_train_config(CONFIGS / "smoke.yaml", [*compact, "network_g.init_last_scale=2"])
        )
    torch.manual_seed(0)
    default = build_generator(validate(load_train_config(CONFIGS / "smoke.yaml", compact)))
    assert float(default.body[0].bias.detach().abs().max()) > 0  # torch's default init, as upstream
    with pytest.raises(ConfigError, match="network_g.init: 'he' is for SRVGGNetCompact"):
        rrdb = ["network_g.type=RRDBNet", "network_g.init=he"]
        validate(load_train_config(CONFIGS / "smoke.yaml", rrdb))
    with pytest.raises(ConfigError, match="network_g.init"):
        load_train_config(CONFIGS / "smoke.yaml", ["network_g.init=xavier"])


def test_esrnet_needs_a_pixel_loss() -> None:
    msg = r"one of pixel_weight, chroma_weight must be > 0 \(got 0, 0\)"
    with pytest.raises(ConfigError, match=msg):
        esrnet = ["losses.pixel_weight=0", "model=esrnet"]
        validate(load_train_config(CONFIGS / "smoke.yaml", esrnet))
    colour = ["losses.pixel_weight=0", "losses.chroma_weight=1", "model=esrnet"]
    assert validate(load_train_config(CONFIGS / "smoke.yaml", colour)).losses.chroma_weight == 1
    cfg = load_train_config(CONFIGS / "smoke.yaml", ["losses.pixel_weight=0", "model=esrgan"])
    assert validate(cfg).losses.pixel_weight == 0  # stage 2 may drop it


def test_paired_mode_needs_the_lq_folder() -> None:
    cfg = load_train_config(CONFIGS / "smoke.yaml", ["data.mode=paired"])
    with pytest.raises(ConfigError, match="data.lq_root: paired mode needs the LQ folder"):
        validate(cfg)


def test_gray_prob_is_a_probability_for_degrade_mode(tmp_path: Path) -> None:
    assert (
        validate(load_train_config(CONFIGS / "smoke.yaml", ["data.gray_prob=0.2"])).data.gray_prob
        == 0.2
    )
    with pytest.raises(ConfigError, match=r"data.gray_prob: must be in \[0, 1\], got 1.5"):
        validate(load_train_config(CONFIGS / "smoke.yaml", ["data.gray_prob=1.5"]))
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    cfg = load_train_config(CONFIGS / "smoke.yaml", ["data.gray_prob=0.2", f"data.root={tmp_path}"])
    assert build_dataset(cfg).gray_prob == 0.2  # reaches the training data
    cfg = load_train_config(
        CONFIGS / "smoke.yaml", ["data.mode=paired", "data.lq_root=x", "data.gray_prob=0.1"]
    )
    with pytest.raises(ConfigError, match="data.gray_prob: applies to mode degrade only"):
        validate(cfg)


def _tiny_rrdb(scale: int) -> RRDBNet:
    return RRDBNet(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4)


def test_x2_from_x4_loads_non_strict_skipping_conv_first(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x4 = _tiny_rrdb(4)
    path = tmp_path / "x4.pth"
    torch.save({"params_ema": x4.state_dict()}, path)
    x2 = _tiny_rrdb(2)
    before = x2.conv_first.weight.detach().clone()
    skipped = load_init_weights(x2, str(path), strict=False, key="params_ema", field="init_from")
    assert skipped == ["conv_first.weight"]
    assert torch.equal(x2.conv_first.weight, before)  # 12 input channels: left as initialised
    for k, v in x4.state_dict().items():
        if k != "conv_first.weight":
            assert torch.equal(x2.state_dict()[k], v), k


def test_strict_init_mismatch_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "x4.pth"
    torch.save({"params": _tiny_rrdb(4).state_dict()}, path)  # params only: falls back to it
    load_init_weights(_tiny_rrdb(4), str(path), strict=True, key="params_ema", field="init_from")
    with pytest.raises(
        WeightsError,
        match=r"^init_from: .*x4\.pth: weights do not fit the configured network: size mismatch "
        r"for conv_first\.weight.*; check network_g or set init_strict: false$",
    ):
        load_init_weights(
            _tiny_rrdb(2), str(path), strict=True, key="params_ema", field="init_from"
        )


def test_missing_init_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"init_from: weights file .*missing.pth does not exist"):
        load_init_weights(
            _tiny_rrdb(4), str(tmp_path / "missing.pth"), strict=True, key=None, field="init_from"
        )


def test_cli_module_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, resrgan.cli.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_requested_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "train",
            str(CONFIGS / "smoke.yaml"),
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "run"),
            "--device",
            "cuda",
        ]
    )
    assert rc == 2
    assert "--device cuda: CUDA is not available here; use --device cpu" in capsys.readouterr().err


def test_resrgan_train_is_the_function_whatever_the_import_order() -> None:
    """The package is ``resrgan.training``: importing it never rebinds ``resrgan.train``."""
    import inspect

    import resrgan
    import resrgan.training.config  # noqa: F401
    from resrgan.training.loop import train

    assert resrgan.train is train and inspect.isfunction(resrgan.train)
    assert inspect.ismodule(resrgan.training) and not callable(resrgan.training)
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        resrgan.train({"nope": 1}, run_dir="unused")  # type: ignore[arg-type]


def test_cli_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", str(CONFIGS / "smoke.yaml"), "--data", "x"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "resrgan train: error: the following arguments are required: --out "
        "(see: resrgan train --help)"
    )


def test_the_stuck_guard_needs_at_least_one_validation() -> None:
    cfg = load_train_config(CONFIGS / "smoke.yaml", ["guard.stuck_validations=2"])
    assert validate(cfg).guard.stuck_validations == 2
    with pytest.raises(ConfigError, match="guard.stuck_validations: must be >= 1, got 0"):
        validate(load_train_config(CONFIGS / "smoke.yaml", ["guard.stuck_validations=0"]))
