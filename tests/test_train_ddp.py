"""DDP via torchrun, 2 gloo processes on CPU: it runs and both ranks end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _train_data import make_hr_folder

REPO = Path(__file__).resolve().parents[1]


def test_two_process_gloo_training_keeps_ranks_identical(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed.run")
    hr = make_hr_folder(tmp_path / "hr", 4, seed=5)
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "resrgan",
        "train",
        str(REPO / "configs" / "smoke.yaml"),
        "--data",
        str(hr),
        "--out",
        str(out),
        "--iters",
        "3",
        "--device",
        "cpu",
        "--quiet",
        "--set",
        "losses.layer_weights=[0.1, 0.1, 0, 0, 0]",
        "--set",
        "log_every=1",
        "--set",
        "data.num_workers=0",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("step 3: model") == 1  # only rank 0 prints
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    check = [r for r in records if r.get("event") == "ddp_check"]
    assert len(check) == 1 and check[0]["world_size"] == 2
    assert check[0]["identical"] is True and len(set(check[0]["hashes"])) == 1
    assert [r["step"] for r in records if "l_g_pix" in r] == [1, 2, 3]  # one writer, rank 0
    assert (out / "model.safetensors").is_file()
