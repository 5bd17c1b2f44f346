"""``resrgan degrade`` end to end, in-process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resrgan.cli import main


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(420, 450), (300, 410), (410, 410)]):
        small = rng.integers(0, 256, (h // 10 + 1, w // 10 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        img.save(d / f"img{i}.png")
    return d


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_writes_pairs_params_and_grid(hr_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            "degrade",
            "-i",
            str(hr_dir),
            "-o",
            str(out),
            "--seed",
            "3",
            "--num",
            "5",
            "--batch-size",
            "3",
            "--grid",
        ]
    )
    assert rc == 0
    assert "wrote 5 pairs" in capsys.readouterr().out
    gts = sorted((out / "gt").iterdir())
    assert [p.name for p in gts] == [f"{i:04d}.png" for i in range(5)]
    assert [p.name for p in sorted((out / "lq").iterdir())] == [p.name for p in gts]
    assert Image.open(gts[0]).size == (256, 256)
    assert Image.open(out / "lq" / "0000.png").size == (64, 64)
    lines = (out / "params.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    rec = json.loads(lines[4])
    assert rec["name"] == "0004.png" and rec["batch"] == 1 and rec["sample"] == 1
    assert rec["final_order"] in ("resize_first", "jpeg_first")
    assert 30 <= rec["stage1"]["jpeg_quality"] <= 95
    assert Path(rec["gt_path"]).parent == hr_dir
    # 2 rows of 4 cells (gt | lq), 4 px gaps: (4 * (2 * 256 + 8) + 4) x (2 * (256 + 4) + 4)
    assert Image.open(out / "grid.png").size == (2084, 524)


def test_same_seed_gives_the_same_bytes(hr_dir: Path, tmp_path: Path) -> None:
    args = ["-i", str(hr_dir), "--seed", "11", "--num", "3", "--batch-size", "3"]
    assert main(["degrade", *args, "-o", str(tmp_path / "a")]) == 0
    assert main(["degrade", *args, "-o", str(tmp_path / "b")]) == 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert main(["degrade", *args[:3], "12", *args[4:], "-o", str(tmp_path / "c")]) == 0
    assert digest(tmp_path / "c")["lq/0000.png"] != digest(tmp_path / "a")["lq/0000.png"]


def test_x2_single_file_and_overrides(hr_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x2"
    rc = main(
        [
            "degrade",
            "-i",
            str(hr_dir / "img2.png"),
            "-o",
            str(out),
            "--num",
            "2",
            "--batch-size",
            "2",
            "--scale",
            "2",
            "--set",
            "second_blur_prob=0",
            "--write-usm",
        ]
    )
    assert rc == 0
    assert Image.open(out / "lq" / "0001.png").size == (128, 128)
    assert Image.open(out / "gt_usm" / "0001.png").size == (256, 256)
    recs = [json.loads(x) for x in (out / "params.jsonl").read_text().splitlines()]
    assert all(r["second_blur"] is False and r["scale"] == 2 for r in recs)


def test_refuses_to_overwrite_and_reports_bad_options(hr_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    base = ["degrade", "-i", str(hr_dir), "-o", str(out), "--num", "1", "--batch-size", "1"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "0000.png: already exists; use --overwrite" in err and err[-1] == "\n"
    assert main([*base, "--overwrite"]) == 0
    assert main([*base, "--overwrite", "--set", "noise_rang=[1,2]"]) == 2
    assert "unknown config key 'degradation.noise_rang'" in capsys.readouterr().err
    assert main(["degrade", "-i", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert "no such folder or image" in capsys.readouterr().err


def test_unreadable_image_is_skipped_with_a_message(hr_dir: Path, tmp_path: Path, capsys) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "a_bad.png").write_bytes(b"not an image")
    Image.open(hr_dir / "img0.png").save(d / "b_good.png")
    assert (
        main(
            ["degrade", "-i", str(d), "-o", str(tmp_path / "m"), "--num", "2", "--batch-size", "2"]
        )
        == 0
    )
    assert "a_bad.png" in capsys.readouterr().err
