"""End to end: the smoke config through `resrgan train`, its outputs, and the trained model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from _train_data import make_hr_folder
from resrgan.cli import main
from resrgan.nets.unet_disc import UNetDiscriminatorSN
from resrgan.training.checkpoint import list_states, load_state
from resrgan.weights.load import load_model, load_state_dict

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train_data")
    return make_hr_folder(root / "hr", 6, seed=0), make_hr_folder(root / "val", 3, seed=1)


@pytest.fixture(scope="module")
def smoke_run(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    hr, val = data
    out = tmp_path_factory.mktemp("smoke") / "run"
    rc = main(
        [
            "train",
            SMOKE,
            "--data",
            str(hr),
            "--out",
            str(out),
            "--val-data",
            str(val),
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert rc == 0
    return out


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_smoke_training_lowers_the_validation_l1(smoke_run: Path) -> None:
    val = [r for r in _records(smoke_run) if "val_l1" in r]
    assert [r["step"] for r in val] == [0, 10, 20]
    assert val[-1]["val_l1"] < val[0]["val_l1"] - 1e-3, val
    assert val[-1]["val_psnr"] > val[0]["val_psnr"]


def test_smoke_run_logs_every_loss_and_writes_its_files(smoke_run: Path) -> None:
    steps = [r for r in _records(smoke_run) if "l_g_pix" in r]
    assert [r["step"] for r in steps] == [5, 10, 15, 20]
    keys = {"l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "out_d_real", "l_d_fake", "out_d_fake"}
    for r in steps:
        assert keys <= set(r) and all(np.isfinite(r[k]) for k in keys)
    assert [s for s, _ in list_states(smoke_run)] == [10, 20]  # keep: 2
    st = load_state(smoke_run / "checkpoints" / "state_00000020.pt")
    assert st["config"]["network_g"]["num_feat"] == 16 and st["config"]["total_iters"] == 20
    assert (smoke_run / "config.yaml").is_file()
    saved = sorted(p.name for p in (smoke_run / "val" / "00000020").glob("*.png"))
    assert len(saved) == 3 and "preview.png" in saved  # 2 outputs + the lq | output | gt grid


def test_each_validation_writes_a_preview_grid_of_lq_output_gt(smoke_run: Path) -> None:
    val20 = smoke_run / "val" / "00000020"
    grid = cv2.imread(str(val20 / "preview.png"))
    gts = {p.name[:-7]: cv2.imread(str(p)) for p in (smoke_run / "val" / "inputs").glob("*_gt.png")}
    h, w = next(iter(gts.values())).shape[:2]
    # save_images 2: two rows and three columns with 4-pixel white gaps
    assert grid.shape == (2 * h + 4, 3 * w + 8, 3)
    name = next(n for n, g in gts.items() if np.array_equal(grid[:h, 2 * w + 8 :], g))
    np.testing.assert_array_equal(
        grid[:h, w + 4 : 2 * w + 4], cv2.imread(str(val20 / f"{name}.png"))
    )
    assert (grid[:h, w : w + 4] == 255).all() and (grid[h : h + 4] == 255).all()


def test_the_checkpoint_holds_the_guard_memory(smoke_run: Path) -> None:
    st = load_state(smoke_run / "checkpoints" / "state_00000020.pt")["guard"]
    val = {r["step"]: r for r in _records(smoke_run) if "val_false_color" in r}
    assert st["last_good"] == 20 and st["stuck"] == []
    assert st["false_least"] == min(val[s]["val_false_color"] for s in (0, 10, 20))
    logged = [r["l_g_pix"] for r in _records(smoke_run) if "l_g_pix" in r]
    assert st["recent"]["l_g_pix"] == pytest.approx(logged)


def test_the_guard_stays_silent_on_a_healthy_smoke_run(smoke_run: Path) -> None:
    recs = _records(smoke_run)
    assert not [r for r in recs if r.get("event") == "guard_stop"]
    val = [r for r in recs if "val_color_shift" in r]
    assert [r["step"] for r in val] == [0, 10, 20]
    for r in val:
        assert 0 <= r["val_color_shift"] < 0.04 and r["val_std_ratio"] > 0.25, r
        assert 0 < r["val_false_color"] < 0.5, r  # measured on grey copies of the inputs


def test_vgg_if_present_without_the_file_trains_l1_and_gan_only(
    data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no hub file, and never a download
    monkeypatch.setenv("RESRGAN_OFFLINE", "1")
    out = tmp_path / "run"
    args = ["train", SMOKE, "--data", str(data[0]), "--out", str(out), "--device", "cpu"]
    rc = main([*args, "--quiet", "--iters", "5", "--set", "losses.vgg_weights=if-present"])
    assert rc == 0
    steps = [r for r in _records(out) if "l_g_pix" in r]
    assert [r["step"] for r in steps] == [5]
    assert "l_g_gan" in steps[0] and "l_g_percep" not in steps[0]
    # --resume continues from step 5 (it restarted from step 1 while the VGG lookup reused the
    # name of the checkpoint found for resuming)
    rc = main(
        [*args, "--quiet", "--iters", "10", "--resume", "--set", "losses.vgg_weights=if-present"]
    )
    assert rc == 0
    assert [r["step"] for r in _records(out) if "l_g_pix" in r] == [5, 10]


def test_net_d_init_iters_trains_the_discriminator_alone_first(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    """BasicSR's D warm-up: for steps <= net_d_init_iters only D learns; G stays as it was."""
    out = tmp_path / "run"
    args = ["train", SMOKE, "--data", str(data[0]), "--out", str(out), "--device", "cpu"]
    flags = ["--set", "net_d_init_iters=2", "--set", "log_every=1", "--set", "checkpoint.every=1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--quiet", "--iters", "3", "--set", "checkpoint.keep=3", *flags]) == 0
    # G's schedule advances before G's first step by design: no torch warning about it
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    logs = {r["step"]: r for r in _records(out) if "l_d_real" in r}
    assert sorted(logs) == [1, 2, 3]
    assert "l_g_pix" not in logs[1] and "l_g_pix" not in logs[2] and "l_g_pix" in logs[3]
    s1, s2, s3 = (load_state(out / "checkpoints" / f"state_0000000{i}.pt") for i in (1, 2, 3))
    for k, v in s1["net_g"].items():
        assert torch.equal(v, s2["net_g"][k]), k  # G untouched during the warm-up
    assert any(not torch.equal(v, s3["net_g"][k]) for k, v in s2["net_g"].items())
    assert any(not torch.equal(v, s2["net_d"][k]) for k, v in s1["net_d"].items())


def test_model_files_hold_the_ema_generator(smoke_run: Path) -> None:
    st = load_state(smoke_run / "checkpoints" / "state_00000020.pt")
    sd = load_state_dict(smoke_run / "model.safetensors")
    pth = torch.load(smoke_run / "model.pth", weights_only=True)
    assert set(pth) == {"params_ema"}
    for k, v in st["net_g_ema"].items():
        assert torch.equal(sd[k], v) and torch.equal(pth["params_ema"][k], v)
    net, arch, kwargs = load_model(smoke_run / "model.safetensors")
    assert arch == "SRVGGNetCompact" and kwargs["num_feat"] == 16 and kwargs["upscale"] == 4
    d = UNetDiscriminatorSN(num_feat=16)
    d.load_state_dict(torch.load(smoke_run / "net_d.pth", weights_only=True)["params"])


def test_upscale_cli_uses_the_trained_model(smoke_run: Path, tmp_path: Path) -> None:
    img = (np.random.default_rng(0).uniform(0, 255, (12, 10, 3))).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "small.png"), img)
    out = tmp_path / "out"
    rc = main(
        [
            "upscale",
            "--model_path",
            str(smoke_run / "model.safetensors"),
            "-i",
            str(tmp_path / "small.png"),
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    files = list(out.glob("*.png"))
    assert len(files) == 1
    res = cv2.imread(str(files[0]))
    assert res.shape == (48, 40, 3)


def test_existing_run_is_not_overwritten_without_resume(
    smoke_run: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["train", SMOKE, "--data", str(data[0]), "--out", str(smoke_run), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints; pass --resume" in err and str(smoke_run) in err


def test_resume_of_a_finished_run_does_nothing_and_keeps_the_model(
    smoke_run: Path, data: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = (smoke_run / "model.safetensors").read_bytes()
    rc = main(
        ["train", SMOKE, "--data", str(data[0]), "--out", str(smoke_run), "--resume", "--quiet"]
    )
    assert rc == 0
    assert "step 20" in capsys.readouterr().out
    assert (smoke_run / "model.safetensors").read_bytes() == before


def test_esrnet_stage_and_paired_mode_train(data: tuple[Path, Path], tmp_path: Path) -> None:
    hr, _ = data
    lq = tmp_path / "lq"
    gt = tmp_path / "gt"
    lq.mkdir(), gt.mkdir()
    for p in sorted(hr.glob("*.png")):
        img = cv2.imread(str(p))[:96, :96]
        cv2.imwrite(str(gt / p.name), img)
        cv2.imwrite(str(lq / p.name), cv2.resize(img, (24, 24), interpolation=cv2.INTER_AREA))
    out = tmp_path / "esrnet_paired"
    rc = main(
        [
            "train",
            SMOKE,
            "--data",
            str(gt),
            "--out",
            str(out),
            "--iters",
            "2",
            "--quiet",
            "--set",
            "model=esrnet",
            "--set",
            "data.mode=paired",
            "--set",
            f"data.lq_root={lq}",
            "--set",
            "data.num_workers=0",
        ]
    )
    assert rc == 0
    st = load_state(out / "checkpoints" / "state_00000002.pt")
    assert "net_d" not in st and st["pool"] is None
    assert not (out / "net_d.pth").exists()
    assert all(np.isfinite(r["l_g_pix"]) for r in _records(out) if "l_g_pix" in r)


def test_x2_esrnet_with_degradation_trains(data: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "x2"
    args = [
        "train",
        SMOKE,
        "--data",
        str(data[0]),
        "--out",
        str(out),
        "--iters",
        "2",
        "--quiet",
        "--set",
        "model=esrnet",
        "--set",
        "degradation.scale=2",
        "--set",
        "data.num_workers=0",
    ]
    assert main(args) == 0
    _, arch, kwargs = load_model(out / "model.safetensors")
    assert arch == "SRVGGNetCompact" and kwargs["upscale"] == 2
    st = load_state(out / "checkpoints" / "state_00000002.pt")
    assert tuple(st["pool"]["gt"].shape) == (4, 3, 64, 64)  # the pool holds gt 64 / lq 32 pairs
    assert tuple(st["pool"]["lq"].shape) == (4, 3, 32, 32)
