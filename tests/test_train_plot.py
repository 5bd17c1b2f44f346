"""``resrgan plot``: a run's metrics.jsonl drawn to a PNG, one panel per kind of value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from resrgan.cli import main
from resrgan.cli.plot import series


def _write_run(run: Path) -> None:
    run.mkdir()
    recs = [{"step": s, "l_g_pix": 0.1 - s / 1e4, "l_g_gan": 0.5} for s in range(1, 41)]
    recs += [
        {"step": s, "val_psnr": 18 + s / 40, "val_ssim": 0.4, "val_input_change": 0.3}
        for s in (10, 20, 30, 40)
    ]
    recs.append({"step": 30, "val_psnr": 30.0})  # a resumed run logs step 30 again: last wins
    recs.append({"event": "guard_stop", "message": "x"})  # not a step record: skipped
    lines = [json.dumps(r) for r in recs] + ['{"step": 41, "l_g_p']  # a torn last line
    (run / "metrics.jsonl").write_text("\n".join(lines))


def test_plot_draws_losses_validation_and_guard_panels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    _write_run(run)
    assert main(["plot", str(run)]) == 0
    out = run / "curves.png"
    assert capsys.readouterr().out.strip() == (
        f"{out}: 5 curves (l_g_gan, l_g_pix, val_psnr, val_ssim, val_input_change)"
    )
    with Image.open(out) as im:
        assert im.format == "PNG"
        assert im.size == (800, 1040)  # 8 x 2.6 inches per panel, 4 panels, 100 dpi
        assert len(im.convert("RGB").getcolors(1 << 16) or []) > 20  # lines, not a blank page
    other = tmp_path / "elsewhere" / "c.png"
    assert main(["plot", str(run / "metrics.jsonl"), "-o", str(other)]) == 0
    assert other.is_file()


def test_series_keeps_finite_numbers_and_the_last_value_per_step() -> None:
    recs = [
        {"step": 1, "v": 1.0},
        {"step": 2, "v": "nan"},
        {"step": 3, "v": True},
        {"step": 1, "v": 5.0},
        {"step": 4, "v": float("inf")},
    ]
    assert series(recs, "v") == ([1], [5.0])


def test_plot_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path)]) == 2
    assert f"{tmp_path / 'metrics.jsonl'}: no such metrics file" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "lr_g": 0.1}\n')
    assert main(["plot", str(tmp_path)]) == 2
    assert "no losses or validation values to plot" in capsys.readouterr().err
