"""The training guard: colour drift, flat/grey collapse, false colour, a net stuck at its input,
NaN and exploding losses; a stopped run keeps its last good checkpoint and model."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from _train_data import make_hr_folder
from resrgan.cli import main
from resrgan.training.checkpoint import list_states
from resrgan.training.config import GuardConfig
from resrgan.training.guard import Guard, TrainingStopped, output_stats

REPO = Path(__file__).resolve().parents[1]


def _gt(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(4, 3, 32, 32, generator=g) * 0.8 + 0.1


def test_stats_measure_the_per_channel_shift() -> None:
    gt = _gt()
    s = output_stats(gt + torch.tensor([0.08, 0.0, -0.02]).view(1, 3, 1, 1), gt)
    assert s["val_color_shift"] == pytest.approx(0.08, abs=1e-6)
    assert (s["val_shift_r"], s["val_shift_g"], s["val_shift_b"]) == pytest.approx(
        (0.08, 0.0, -0.02), abs=1e-6
    )
    assert s["val_std_ratio"] == pytest.approx(1.0, abs=1e-6)  # an offset keeps the spread
    assert 1.0 < s["val_chroma_ratio"] < 1.1  # and adds a little colour


def test_colour_drift_stops_with_step_value_and_threshold() -> None:
    gt = _gt()
    stats = output_stats(gt + torch.tensor([0.0, -0.06, 0.0]).view(1, 3, 1, 1), gt)
    g = Guard(GuardConfig(), start=0)
    g.check_validation(500, output_stats(gt, gt))
    with pytest.raises(TrainingStopped) as e:
        g.check_validation(1000, stats)
    msg = str(e.value)
    assert msg.startswith("step 1000: colour drift")
    assert "0.060 (R +0.000, G -0.060, B +0.000) > guard.color_shift 0.04" in msg
    assert "--set guard.enabled=false" in msg
    assert e.value.last_good == 500


def test_a_constant_output_is_a_collapse() -> None:
    gt = _gt()
    flat = torch.full_like(gt, 0.5) + (
        gt.mean((2, 3), keepdim=True) - 0.5
    )  # right means, no detail
    with pytest.raises(TrainingStopped, match=r"step 7: collapse: .* \(std 0\.000 of the gt's < "):
        Guard(GuardConfig()).check_validation(7, output_stats(flat, gt))


def test_a_grey_output_is_a_collapse_to_grey() -> None:
    gt = _gt()
    grey = gt.mean(1, keepdim=True).expand_as(gt) + (gt.mean((0, 2, 3)) - gt.mean()).view(
        1, 3, 1, 1
    )
    with pytest.raises(TrainingStopped, match="collapse to grey: validation outputs keep 0.0"):
        Guard(GuardConfig()).check_validation(3, output_stats(grey, gt))


def _fringed(grey: torch.Tensor, amount: float) -> torch.Tensor:
    """Grey pictures with orange fringes: +amount red, -amount blue on every other column."""
    out = grey.clone()
    out[:, 0, :, ::2] += amount
    out[:, 2, :, ::2] -= amount
    return out


def test_false_colour_on_grey_inputs_is_measured_in_chroma_units() -> None:
    gt = _gt()
    grey = gt.mean(1, keepdim=True).expand_as(gt).clone()
    assert output_stats(gt, gt, grey_out=grey)["val_false_color"] == pytest.approx(0.0, abs=1e-7)
    # fringes +-0.06 on half the columns: |r - m| = |b - m| = 0.06, |g - m| = 0 there
    got = output_stats(gt, gt, grey_out=_fringed(grey, 0.06))["val_false_color"]
    assert got == pytest.approx(0.02, abs=1e-6)
    assert math.isnan(output_stats(gt, gt)["val_false_color"])  # not measured without grey_out


def test_false_colour_stops_when_it_grows_but_not_when_a_young_net_starts_high() -> None:
    gt = _gt()
    grey = gt.mean(1, keepdim=True).expand_as(gt).clone()
    stats = {a: output_stats(gt, gt, grey_out=_fringed(grey, a)) for a in (0.015, 0.06, 0.1)}
    g = Guard(GuardConfig(), start=0)
    g.check_validation(0, stats[0.1])  # random init: 0.033, above the threshold, never fires
    g.check_validation(200, stats[0.06])  # 0.02 < 2x 0.033
    g.check_validation(400, stats[0.015])  # 0.005: the run's least
    with pytest.raises(TrainingStopped) as e:
        g.check_validation(600, stats[0.06])
    assert str(e.value).startswith(
        "step 600: false colour: validation outputs for grey inputs carry colour 0.0200 "
        "(> guard.false_color 0.012 and > 2x this run's least, 0.0050)"
    )
    assert e.value.last_good == 400


def _near(lq: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(lq, scale_factor=4, mode="nearest")


def test_input_change_is_zero_for_the_upscaled_input_and_one_for_the_gt() -> None:
    gt = _gt()
    lq = gt[:, :, 1::4, 2::4]
    s = {w: output_stats((1 - w) * _near(lq) + w * gt, gt, lq=lq) for w in (0.0, 0.25, 1.0)}
    assert s[0.0]["val_input_change"] == pytest.approx(0.0, abs=1e-12)
    assert s[0.25]["val_input_change"] == pytest.approx(0.25, abs=1e-6)
    assert s[1.0]["val_input_change"] == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(output_stats(gt, gt)["val_input_change"])  # not measured without lq
    assert math.isnan(output_stats(_near(lq), _near(lq), lq=lq)["val_input_change"])  # 0 / 0


def test_a_net_stuck_at_its_input_stops_after_three_validations_in_a_row() -> None:
    """Measured: compact-32 at lr 5e-4 stayed at 0.006-0.012 from step 250 (stuck); compact-16
    passed 0.03 once at step 250 and was at 0.17 by step 500 (healthy)."""
    gt = _gt()
    lq = gt[:, :, 1::4, 2::4]

    def at(w: float) -> dict[str, float]:
        return output_stats((1 - w) * _near(lq) + w * gt, gt, lq=lq)

    g = Guard(GuardConfig(), start=0)
    g.check_validation(250, at(0.03))  # a young net passes through it
    assert g.last_good == 0  # a stuck output is not a good one
    g.check_validation(500, at(0.17))
    g.check_validation(750, at(0.012))
    g.check_validation(1000, at(0.006))
    assert g.last_good == 500
    with pytest.raises(TrainingStopped) as e:
        g.check_validation(1250, at(0.0055))
    assert str(e.value).startswith(
        "step 1250: stuck at the input: the outputs differ from the nearest-neighbour upscaled "
        "inputs by 0.0055 of what the gt does (< guard.min_input_change 0.05 at 3 validations "
        "in a row: 0.0120 at step 750, 0.0060 at step 1000, 0.0055 at step 1250; a compact net "
        "from scratch wants network_g.init: he, docs/training.md)"
    )
    assert e.value.last_good == 500
    # a resumed run remembers the streak: the guard's state goes into the checkpoint
    g = Guard(GuardConfig(), start=0)
    for step, w in ((250, 0.03), (500, 0.17), (750, 0.012), (1000, 0.006)):
        g.check_validation(step, at(w))
    resumed = Guard(GuardConfig(), start=1000)
    resumed.load_state_dict(g.state_dict())
    with pytest.raises(TrainingStopped, match="0.0120 at step 750, 0.0060 at step 1000") as e:
        resumed.check_validation(1250, at(0.0055))
    assert e.value.last_good == 500
    # the threshold and the patience are the config's
    g = Guard(GuardConfig(min_input_change=0.01, stuck_validations=1))
    g.check_validation(250, at(0.03))
    with pytest.raises(TrainingStopped, match="at 1 validations in a row: 0.0060 at step 500"):
        g.check_validation(500, at(0.006))


def test_validation_measures_the_input_change_of_a_real_network() -> None:
    from resrgan.nets.srvgg import SRVGGNetCompact
    from resrgan.training.config import TrainConfig
    from resrgan.training.loop import ValSet, validate_net

    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    gt = _gt()
    vs = ValSet(lq=gt[:, :, 1::4, 2::4].contiguous(), gt=gt, names=list("abcd"))
    res = validate_net(net, vs, TrainConfig(), torch.device("cpu"), save_dir=None)
    assert 0.05 < res["val_input_change"] < 10  # a random body adds its own output
    last = net.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)  # body output 0: the net hands its input through
    res = validate_net(net, vs, TrainConfig(), torch.device("cpu"), save_dir=None)
    assert res["val_input_change"] == pytest.approx(0.0, abs=1e-7)


def test_nan_outputs_and_nan_losses_stop() -> None:
    gt = _gt()
    with pytest.raises(TrainingStopped, match="step 9: validation outputs hold NaN or Inf"):
        Guard(GuardConfig()).check_validation(9, output_stats(gt * float("nan"), gt))
    with pytest.raises(TrainingStopped, match="step 12: loss l_g_gan is nan") as e:
        Guard(GuardConfig()).check_losses(12, {"l_g_pix": 0.1, "l_g_gan": math.nan})
    assert e.value.last_good == 11


def test_an_exploding_pixel_loss_stops_but_gan_swings_do_not() -> None:
    g = Guard(GuardConfig(loss_window=8))
    for step in range(1, 9):
        g.check_losses(step, {"l_g_pix": 0.1, "l_d_real": 0.01})
    g.check_losses(9, {"l_g_pix": 0.15, "l_d_real": 5.0})  # a D swing of 500x is not watched
    with pytest.raises(TrainingStopped, match=r"l_g_pix exploded to 2\.5, 25\.0x its recent"):
        g.check_losses(10, {"l_g_pix": 2.5})


def test_a_healthy_output_passes_and_the_switch_turns_the_guard_off() -> None:
    gt = _gt()
    noisy = gt + 0.02 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))
    g = Guard(GuardConfig())
    g.check_validation(100, output_stats(noisy, gt))
    assert g.last_good == 100
    off = Guard(replace(GuardConfig(), enabled=False))
    off.check_validation(200, output_stats(torch.zeros_like(gt), gt))
    off.check_losses(200, {"l_g_pix": math.inf})
    assert off.last_good == 200


def test_a_stopped_run_keeps_its_last_good_checkpoint_and_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validation passes at step 2 and fails at step 4: the checkpoint after step 2 is set aside
    and model.safetensors holds step 2's EMA generator."""
    hr = make_hr_folder(tmp_path / "hr", 4, seed=0)
    real = Guard.check_validation

    def fail_at_4(self: Guard, step: int, stats: dict[str, float]) -> None:
        if step == 4:
            stats = {**stats, "val_color_shift": 0.5, "val_shift_r": 0.5}
        real(self, step, stats)

    monkeypatch.setattr(Guard, "check_validation", fail_at_4)
    out = tmp_path / "run"
    sets = [
        "model=esrnet",
        "total_iters=6",
        "val.every=2",
        "checkpoint.every=1",
        "checkpoint.keep=9",
    ]
    args = ["train", str(REPO / "configs" / "smoke.yaml"), "--data", str(hr), "--out", str(out)]
    args += ["--val-data", str(hr), "--quiet", "--device", "cpu"]
    rc = main(args + [x for s in sets for x in ("--set", s)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("resrgan train: error: step 4: colour drift: validation outputs are off")
    assert err.endswith(
        f"the last good model is step 2: {out / 'model.safetensors'} (--resume continues from it)"
    )
    assert [s for s, _ in list_states(out)] == [1, 2]
    # step 3 is set aside; step 4 was never written (the guard runs before the checkpoint)
    assert [p.name for p in (out / "checkpoints" / "rejected").iterdir()] == ["state_00000003.pt"]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata()["step"] == "2"
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "guard_stop" and last["last_good"] == 2
