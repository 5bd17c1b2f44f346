"""metrics.jsonl: one JSON object per record, robust to a run killed mid-line."""

from __future__ import annotations

import json
from pathlib import Path

from resrgan.training.logging import MetricsLogger, read_metrics


def test_records_are_json_lines_with_a_time(tmp_path: Path) -> None:
    m = MetricsLogger(tmp_path, tensorboard=False)
    m.log({"step": 1, "l_g_pix": 0.5})
    m.log({"step": 2, "val_psnr": float("inf")})
    m.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["step"] == 1 and first["l_g_pix"] == 0.5 and first["time"] > 0
    assert json.loads(lines[1])["val_psnr"] == "inf"  # strict JSON: no Infinity literal


def test_appending_after_a_torn_line_keeps_new_records_readable(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "l_g')
    m = MetricsLogger(tmp_path, tensorboard=False)
    m.log({"step": 3})
    m.close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 3]
