"""`resrgan evaluate` and `resrgan niqe-fit` in-process: table, --json, pairing, exit codes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from resrgan.cli import main
from resrgan.cli.evaluate import candidate_stems, plan_pairs

BASICSR_BABOON = 5.7295763


@pytest.fixture
def params_path(niqe_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RESRGAN_NIQE_PARAMS", raising=False)
    return niqe_dir / "niqe_pris_params.npz"


@pytest.fixture
def sr_dir(tmp_path: Path, niqe_dir: Path) -> Path:
    """baboon.png (NIQE 5.7296) and a 150x150 crop of it (too small for NIQE)."""
    d = tmp_path / "sr"
    d.mkdir()
    shutil.copy(niqe_dir / "baboon.png", d / "baboon.png")
    img = cv2.imread(str(niqe_dir / "baboon.png"))
    cv2.imwrite(str(d / "small.png"), img[:150, :150])
    (d / "notes.txt").write_text("not an image")
    return d


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.strip().splitlines()]


def test_niqe_table_and_exit_code(
    sr_dir: Path, params_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["evaluate", "-i", str(sr_dir), "--niqe-params", str(params_path)])
    out = capsys.readouterr().out
    assert rc == 1  # small.png cannot be scored
    lines = out.splitlines()
    assert lines[0] == "# crop_border=0"
    assert lines[1].split() == ["image", "NIQE", "note"]
    row = next(ln for ln in lines if ln.startswith("baboon.png"))
    assert f"{BASICSR_BABOON:.4f}"[:-1] in row  # 5.729x
    small = next(ln for ln in lines if ln.startswith("small.png"))
    assert "150x150 px" in small and "NIQE needs at least 2" in small
    mean = next(ln for ln in lines if ln.startswith("mean"))
    assert float(mean.split()[1]) == pytest.approx(BASICSR_BABOON, abs=1e-3)
    assert "niqe over 1" in mean
    assert "notes.txt" not in out
    assert "1 of 2 image(s) could not be fully scored" in out


def test_niqe_json_lines(
    sr_dir: Path, params_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["evaluate", "-i", str(sr_dir), "--json", "--niqe-params", str(params_path)])
    recs = _json_lines(capsys.readouterr().out)
    assert rc == 1
    assert len(recs) == 3
    by_name = {Path(r["path"]).name: r for r in recs[:2]}
    assert by_name["baboon.png"]["niqe"] == pytest.approx(BASICSR_BABOON, abs=1e-3)
    assert by_name["baboon.png"]["error"] is None
    assert by_name["small.png"]["niqe"] is None and "150x150" in by_name["small.png"]["error"]
    s = recs[-1]
    assert s["summary"] is True and s["count"] == 2 and s["failed"] == 1
    assert s["niqe"] == pytest.approx(BASICSR_BABOON, abs=1e-3) and s["niqe_count"] == 1


def test_psnr_without_gt_is_a_usage_error(sr_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "-i", str(sr_dir), "--metrics", "psnr,ssim"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--metrics psnr,ssim needs ground truth: pass --gt GT_DIR" in err
    assert "Traceback" not in err


def test_unknown_metric_is_a_usage_error(sr_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "-i", str(sr_dir), "--metrics", "niqe,lpips"])
    assert rc == 2
    assert "unknown metric(s) lpips; choose from niqe,psnr,ssim" in capsys.readouterr().err


def test_missing_params_offline_is_a_usage_error(
    sr_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RESRGAN_HOME", str(tmp_path / "empty_home"))
    monkeypatch.delenv("RESRGAN_NIQE_PARAMS", raising=False)
    monkeypatch.setenv("RESRGAN_OFFLINE", "1")
    rc = main(["evaluate", "-i", str(sr_dir)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(
        "resrgan evaluate: error: NIQE parameters not found and RESRGAN_OFFLINE=1"
    )
    assert "--niqe-params" in err and "RESRGAN_NIQE_PARAMS" in err


@pytest.fixture
def pair_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """SR: foo_out.png (GT + 4 everywhere), bar.png (= GT), extra_out.png (no GT);
    GT: foo.png, bar.png, lonely.png (no SR)."""
    rng = np.random.default_rng(0)
    sr, gt = tmp_path / "sr", tmp_path / "gt"
    sr.mkdir()
    gt.mkdir()
    foo = rng.integers(0, 250, (40, 48, 3)).astype(np.uint8)
    bar = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
    cv2.imwrite(str(gt / "foo.png"), foo)
    cv2.imwrite(str(sr / "foo_out.png"), foo + 4)
    cv2.imwrite(str(gt / "bar.png"), bar)
    cv2.imwrite(str(sr / "bar.png"), bar)
    cv2.imwrite(str(sr / "extra_out.png"), bar)
    cv2.imwrite(str(gt / "lonely.png"), bar)
    return sr, gt


def test_pairing_by_stem_with_out_suffix(
    pair_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sr, gt = pair_dirs
    rc = main(["evaluate", "-i", str(sr), "--gt", str(gt), "--metrics", "psnr,ssim", "--json"])
    recs = _json_lines(capsys.readouterr().out)
    assert rc == 1  # extra_out.png has no ground truth
    by_name = {Path(r["path"]).name: r for r in recs[:-1]}
    assert set(by_name) == {"foo_out.png", "bar.png", "extra_out.png"}
    assert Path(by_name["foo_out.png"]["gt"]).name == "foo.png"
    assert by_name["foo_out.png"]["psnr"] == pytest.approx(10 * math.log10(255**2 / 16), abs=1e-9)
    assert by_name["bar.png"]["psnr"] == "inf" and by_name["bar.png"]["ssim"] == 1.0
    assert by_name["extra_out.png"]["psnr"] is None
    assert by_name["extra_out.png"]["error"].startswith(
        "no ground truth: looked for extra_out.* or extra.* in"
    )
    s = recs[-1]
    assert s["count"] == 3 and s["failed"] == 1 and s["psnr"] == "inf"
    assert s["psnr_count"] == 2 and s["ssim_count"] == 2
    assert [Path(p).name for p in s["unmatched_gt"]] == ["lonely.png"]


def test_pairing_table_lists_unmatched(
    pair_dirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sr, gt = pair_dirs
    rc = main(
        ["evaluate", "-i", str(sr), "--gt", str(gt), "--metrics", "psnr", "--crop-border", "2"]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert out.splitlines()[0] == "# crop_border=2, rgb"
    foo = next(ln for ln in out.splitlines() if ln.startswith("foo_out.png"))
    assert f"{10 * math.log10(255**2 / 16):.4f}" in foo
    assert "ground-truth files with no matching input (1):" in out and "lonely.png" in out


def test_size_mismatch_row_fails_rest_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sr, gt = tmp_path / "sr", tmp_path / "gt"
    sr.mkdir()
    gt.mkdir()
    a = np.full((20, 20, 3), 9, np.uint8)
    cv2.imwrite(str(sr / "a.png"), a)
    cv2.imwrite(str(gt / "a.png"), np.full((20, 24, 3), 9, np.uint8))
    cv2.imwrite(str(sr / "b.png"), a)
    cv2.imwrite(str(gt / "b.png"), a)
    rc = main(["evaluate", "-i", str(sr), "--gt", str(gt), "--metrics", "psnr", "--json"])
    recs = _json_lines(capsys.readouterr().out)
    assert rc == 1
    assert "image shapes differ: (20, 20, 3) vs (20, 24, 3)" in recs[0]["error"]
    assert recs[1]["psnr"] == "inf" and recs[1]["error"] is None


def test_gray_file_scores_like_rgb_copy(
    tmp_path: Path, niqe_dir: Path, params_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = cv2.imread(str(niqe_dir / "baboon.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "g1.png"), g)
    cv2.imwrite(str(tmp_path / "g3.png"), cv2.merge([g, g, g]))
    cv2.imwrite(str(tmp_path / "g4.png"), cv2.merge([g, g, g, np.full_like(g, 77)]))
    rc = main(["evaluate", "-i", str(tmp_path), "--json", "--niqe-params", str(params_path)])
    recs = _json_lines(capsys.readouterr().out)
    assert rc == 0
    scores = [r["niqe"] for r in recs[:-1]]
    assert len(scores) == 3 and scores[0] == scores[1] == scores[2]


def test_plan_pairs_single_files_and_candidates(tmp_path: Path) -> None:
    assert candidate_stems("foo_out", "out") == ["foo_out", "foo"]
    assert candidate_stems("_out", "out") == ["_out"]
    assert candidate_stems("foo_x4", "x4") == ["foo_x4", "foo"]
    assert candidate_stems("foo", "") == ["foo"]
    a, b = tmp_path / "a_out.png", tmp_path / "b.png"
    a.write_bytes(b"")
    b.write_bytes(b"")
    plan = plan_pairs(a, b)
    assert plan.pairs[0].path == a and plan.pairs[0].gt == b


def test_ambiguous_ground_truth_is_reported(tmp_path: Path) -> None:
    sr, gt = tmp_path / "sr", tmp_path / "gt"
    sr.mkdir()
    gt.mkdir()
    for p in (sr / "x_out.png", gt / "x.png", gt / "x.jpg"):
        p.write_bytes(b"")
    plan = plan_pairs(sr, gt)
    assert plan.pairs[0].gt is None
    assert plan.pairs[0].note == "ambiguous ground truth: x.jpg, x.png; keep one"


# ------------------------------------------------------------------------------------------------
# niqe-fit


def test_niqe_fit_writes_a_usable_model(
    tmp_path: Path, niqe_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(niqe_dir / "baboon.png", clean / "baboon.png")
    out = tmp_path / "model.npz"
    rc = main(["niqe-fit", "-i", str(clean), "-o", str(out), "--sharpness-threshold", "0"])
    captured = capsys.readouterr()
    assert rc == 0
    assert f"wrote {out}: 25 blocks from 1 of 1 image(s)" in captured.out
    assert "poorly determined" in captured.err  # 25 blocks for a 36x36 covariance
    # the model of baboon's own blocks scores baboon at 0
    rc = main(["evaluate", "-i", str(clean), "--json", "--niqe-params", str(out)])
    recs = _json_lines(capsys.readouterr().out)
    assert rc == 0 and recs[0]["niqe"] == pytest.approx(0.0, abs=1e-6)


def test_niqe_fit_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.npz"
    out.write_bytes(b"mine")
    rc = main(["niqe-fit", "-i", str(tmp_path), "-o", str(out)])
    assert rc == 2
    assert f"--output {out} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"mine"


def test_recursive_pairs_keep_sub_folders_apart(tmp_path: Path) -> None:
    sr, gt = tmp_path / "sr", tmp_path / "gt"
    for d in (sr / "a", sr / "b", gt / "a", gt / "b"):
        d.mkdir(parents=True)
    for p in (sr / "a" / "x_out.png", sr / "b" / "x.png", gt / "a" / "x.png", gt / "b" / "x.jpg"):
        p.write_bytes(b"")
    plan = plan_pairs(sr, gt, recursive=True)
    got = {p.path.relative_to(sr).as_posix(): p.gt.relative_to(gt).as_posix() for p in plan.pairs}
    assert got == {"a/x_out.png": "a/x.png", "b/x.png": "b/x.jpg"}
    assert plan.unmatched_gt == []
    assert plan_pairs(sr, gt).pairs == []  # not recursive: no files at the top level


def test_single_file_against_gt_folder(pair_dirs: tuple[Path, Path]) -> None:
    sr, gt = pair_dirs
    plan = plan_pairs(sr / "foo_out.png", gt)
    assert [(p.path.name, p.gt.name if p.gt else None) for p in plan.pairs] == [
        ("foo_out.png", "foo.png")
    ]
