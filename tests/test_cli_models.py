"""``resrgan models``: the table and --json list every zoo model with its availability."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resrgan.cli import main
from resrgan.weights.zoo import MODELS


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESRGAN_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


def test_table_lists_every_model(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "SCALE", "ARCH", "STATUS", "DESCRIPTION"]
    rows = {line.split()[0]: line.split() for line in out[1 : 1 + len(MODELS)]}
    assert set(rows) == set(MODELS)
    assert rows["RealESRGAN_x2plus"][1:4] == ["x2", "RRDBNet", "download"]
    assert rows["RealESRGAN_x4plus_netD"][2] == "UNetDiscriminatorSN"
    assert f"cache: {home}" in out


def test_json_has_status_and_sources(
    home: Path, ncnn_models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(MODELS)
    x4 = rows["RealESRGAN_x4plus"]
    assert x4["status"] == "offline" and x4["ncnn"] == "realesrgan-x4plus"
    assert x4["sha256"] == MODELS["RealESRGAN_x4plus"].sha256
    assert x4["kwargs"]["num_block"] == 23
    assert rows["realesr-general-x4v3"]["dni_twin"] == "realesr-general-wdn-x4v3"
    assert rows["realesr-general-x4v3"]["status"] == "download"


def test_cached_file_shows_as_cached(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "RealESRGAN_x2plus.pth").write_bytes(b"placeholder")
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["RealESRGAN_x2plus"]["status"] == "cached"
    assert rows["RealESRNet_x4plus"]["status"] == "download"


def test_listing_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "fresh"
    monkeypatch.setenv("RESRGAN_HOME", str(home))
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert not home.exists()


def test_module_import_is_cheap() -> None:
    code = "import sys, resrgan.cli.models, resrgan.cli.convert_ncnn; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_help_mentions_status_meanings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--help"]) == 0
    out = capsys.readouterr().out
    text = " ".join(out.split())
    assert "cached = in the cache; offline = converted from the installed" in text
    assert "download = fetched from the official release on first use" in text
