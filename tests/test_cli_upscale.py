"""``resrgan upscale``: flags, exit codes and messages, mixed folders, resume after SIGKILL, Ctrl-C.

Runs in-process through ``resrgan.cli.main`` with tiny random networks saved by ``save_weights`` and
passed with ``--model_path``; the resume and Ctrl-C tests run ``python -m resrgan`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from resrgan.cli import build_parser, main
from resrgan.nets import SRVGGNetCompact
from resrgan.weights.load import save_weights

pytest.importorskip("resrgan.io.images")
pytest.importorskip("resrgan.infer.upscaler")

REPO = Path(__file__).resolve().parents[1]


def _net(num_feat: int, num_conv: int, seed: int) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    net = SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=4, act_type="prelu")
    return net.eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SRVGGNetCompact]:
    net = _net(4, 1, seed=0)
    path = tmp_path_factory.mktemp("weights") / "tiny x4.safetensors"
    save_weights(path, net.state_dict())
    return path, net


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bigger net (~0.05-0.3 s per 96x96 image on one core): slow enough to kill mid-batch (the
    tests poll for the first output every 5 ms)."""
    path = tmp_path_factory.mktemp("weights") / "slow.safetensors"
    save_weights(path, _net(32, 8, seed=1).state_dict())
    return path


def _rgb(seed: int, h: int = 12, w: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _png(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _reference(net: SRVGGNetCompact, a: np.ndarray) -> np.ndarray:
    """The net applied directly (an independent path: no tiling, padding or precision logic)."""
    x = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return np.round(y * 255).astype(np.uint8)


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------------------- defaults


def _parse(*argv: str) -> Any:
    return build_parser("upscale").parse_args(["upscale", *argv])


def test_module_import_is_light() -> None:
    code = (
        "import sys, resrgan.cli.upscale, resrgan.infer.batch; "
        "print(sorted(m for m in ('torch', 'numpy', 'cv2', 'PIL') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_defaults_are_the_originals() -> None:
    a = _parse("-i", "x")
    got = (a.output, a.model_name, a.outscale, a.tile_pad, a.pre_pad, a.suffix, a.ext)
    assert got == ("results", "RealESRGAN_x4plus", 4.0, 10, 0, "out", "auto")
    assert (a.denoise_strength, a.alpha_upsampler, a.gpu_id, a.model_path) == (
        0.5,
        "realesrgan",
        None,
        None,
    )
    assert a.tile == "auto" and not (a.fp32 or a.bf16 or a.overwrite or a.recursive or a.json)


def test_snake_and_kebab_spellings_are_the_same_flags() -> None:
    snake = _parse(
        "-i", "x", "--model_name", "m", "--model_path", "p", "--tile_pad", "3", "--pre_pad", "2",
        "--denoise_strength", "0.2", "--gpu_id", "1", "--alpha_upsampler", "bicubic",
        "--max_pixels", "9",
    )  # fmt: skip
    kebab = _parse(
        "-i", "x", "--model-name", "m", "--model-path", "p", "--tile-pad", "3", "--pre-pad", "2",
        "--denoise-strength", "0.2", "--gpu-id", "1", "--alpha-upsampler", "bicubic",
        "--max-pixels", "9",
    )  # fmt: skip
    short = _parse("-i", "x", "-n", "m", "-dn", "0.2", "-g", "1", "-t", "64", "-s", "2.5")
    assert vars(snake) == vars(kebab)
    assert (short.model_name, short.denoise_strength, short.gpu_id, short.tile, short.outscale) == (
        "m",
        0.2,
        1,
        64,
        2.5,
    )


def test_flags_reach_the_upscaler(tmp_path: Path, tiny: tuple[Path, Any], monkeypatch: Any) -> None:
    import resrgan.infer.upscaler as up_mod

    seen: dict[str, Any] = {}
    real = up_mod.Upscaler

    def spy(model: Any, **kwargs: Any) -> Any:
        seen.update(kwargs, model=model)
        return real(model, **kwargs)

    monkeypatch.setattr(up_mod, "Upscaler", spy)
    src = _png(tmp_path / "a.png", _rgb(0))
    rc = main([
        "upscale", "-i", str(src), "-o", str(tmp_path / "o"), "--model_path", str(tiny[0]),
        "-t", "0", "--tile-pad", "3", "--pre_pad", "2", "--fp32", "-dn", "0.3",
        "--alpha_upsampler", "bicubic", "-n", "RealESRGAN_x4plus.pth", "--tile-overlap", "4",
    ])  # fmt: skip
    assert rc == 0
    assert seen == dict(
        model="RealESRGAN_x4plus",
        model_path=str(tiny[0]),
        device=None,
        gpu_id=None,
        tile=0,
        tile_pad=3,
        pre_pad=2,
        precision="fp32",
        alpha_upsampler="bicubic",
        denoise_strength=0.3,
        tile_overlap=4,
    )


# ------------------------------------------------------------------------------- usage errors (2)

BAD_FLAGS = [
    (["-s", "0"], "-s/--outscale: 0.0 is not a positive number"),
    (["-s", "-2"], "-s/--outscale: -2.0 is not a positive number"),
    (["-s", "nan"], "-s/--outscale: nan is not a positive number"),
    (["-t", "-5"], "invalid tile -5: must be >= 0"),
    (["-t", "big"], "invalid tile 'big': use 'auto' or a whole number"),
    (["--tile_pad", "-1"], "--tile_pad: -1 is negative"),
    (["--pre_pad", "-1"], "--pre_pad: -1 is negative"),
    (["--tile-overlap", "-1"], "--tile_overlap: -1 is negative"),
    (["-dn", "1.5"], "-dn/--denoise_strength: 1.5 is outside [0, 1]"),
    (["--ext", "gif"], "invalid choice: 'gif'"),
    (["--fp32", "--bf16"], "not allowed with argument"),
    (["--max-pixels", "0"], "--max-pixels: 0 must be a positive number"),
    (["--quality", "0"], "--quality: 0 is outside 1-100"),
    (["--face_enhance"], "--face_enhance: GFPGAN face enhancement is not part of resrgan"),
    (["--suffix", "a/b"], "--suffix: 'a/b' contains a path separator"),
    (["--device", "bogus"], "--device: 'bogus' is not a torch device"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_FLAGS, ids=[" ".join(e) for e, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_exit_2_before_the_model(
    extra: list[str], message: str, tmp_path: Path, tiny: tuple[Path, Any], capsys: Any,
    monkeypatch: Any,
) -> None:  # fmt: skip
    import resrgan.cli.upscale as cli

    def no_model(args: Any) -> Any:
        raise AssertionError("the model must not be loaded for a usage error")

    monkeypatch.setattr(cli, "_make_upscaler", no_model)
    src = _png(tmp_path / "a.png", _rgb(0))
    out = tmp_path / "o"
    rc = main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0]), *extra])
    assert rc == 2
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith("resrgan upscale: error: ")
    assert message in line
    assert not out.exists() or _files(out) == set()


def test_missing_input(tmp_path: Path, capsys: Any) -> None:
    rc = main(["upscale", "-i", str(tmp_path / "no such.png"), "-o", str(tmp_path / "o")])
    assert rc == 2
    line = _one_line_error(capsys.readouterr().err)
    assert (
        line
        == f"resrgan upscale: error: -i/--input: {tmp_path / 'no such.png'}: no such file or folder"
    )


def test_input_flag_is_required(capsys: Any) -> None:
    assert main(["upscale"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "the following arguments are required: -i/--input" in line


def test_unknown_model(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("resrgan.weights.zoo")
    src = _png(tmp_path / "a.png", _rgb(0))
    rc = main(["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "-n", "RealESRGAN_x5plus"])
    assert rc == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "-n/--model_name: unknown model 'RealESRGAN_x5plus'" in line
    assert "RealESRGAN_x4plus" in line


def test_discriminator_is_not_an_upscaler(tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("resrgan.weights.zoo")
    src = _png(tmp_path / "a.png", _rgb(0))
    rc = main(
        ["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "-n", "RealESRGAN_x4plus_netD"]
    )
    assert rc == 2
    assert "is a UNetDiscriminatorSN" in _one_line_error(capsys.readouterr().err)


def test_missing_model_path(tmp_path: Path, capsys: Any) -> None:
    src = _png(tmp_path / "a.png", _rgb(0))
    rc = main(["upscale", "-i", str(src), "--model_path", str(tmp_path / "w.pth")])
    assert rc == 2
    line = _one_line_error(capsys.readouterr().err)
    assert line.endswith(f"--model_path: {tmp_path / 'w.pth'}: no such file")


def test_cuda_device_without_cuda(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    src = _png(tmp_path / "a.png", _rgb(0))
    rc = main(["upscale", "-i", str(src), "--model_path", str(tiny[0]), "--device", "cuda"])
    assert rc == 2
    assert "CUDA is not available; use --device cpu" in _one_line_error(capsys.readouterr().err)


def test_uncreatable_output_folder(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    src = _png(tmp_path / "a.png", _rgb(0))
    (tmp_path / "f").write_text("a file")
    rc = main(
        ["upscale", "-i", str(src), "-o", str(tmp_path / "f" / "o"), "--model_path", str(tiny[0])]
    )
    assert rc == 2
    assert "-o/--output: cannot create" in _one_line_error(capsys.readouterr().err)


def test_read_only_output_folder(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    from test_batch import _read_only

    src = _png(tmp_path / "a.png", _rgb(0))
    out = tmp_path / "ro"
    with _read_only(out):
        rc = main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0])])
    assert rc == 2
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith(f"resrgan upscale: error: -o/--output: {out} is not writable (")
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------ processing


def test_single_file_default_folder_and_pixels(
    tmp_path: Path, tiny: tuple[Path, Any], capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    a = _rgb(3, 12, 10)
    _png(tmp_path / "photo.png", a)
    assert main(["upscale", "-i", "photo.png", "--model_path", str(tiny[0])]) == 0
    out = tmp_path / "results" / "photo_out.png"
    got = np.asarray(Image.open(out))
    assert got.shape == (48, 40, 3)
    diff = np.abs(got.astype(int) - _reference(tiny[1], a).astype(int))
    assert diff.max() <= 1
    stdout = capsys.readouterr().out
    assert "done 1, skipped 0, failed 0, non-image files 0" in stdout


@pytest.mark.parametrize("outscale", [1.5, 2.0, 3.3])
def test_outscale_sizes(tmp_path: Path, tiny: tuple[Path, Any], outscale: float) -> None:
    src = _png(tmp_path / "a.png", _rgb(1, 12, 10))
    rc = main(["upscale", "-i", str(src), "-o", str(tmp_path), "-s", str(outscale),
               "--model_path", str(tiny[0])])  # fmt: skip
    assert rc == 0
    w, h = Image.open(tmp_path / "a_out.png").size
    assert (w, h) == (int(10 * outscale), int(12 * outscale))


def _bad_files(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    good = _png(folder / "_t.png", _rgb(5, 20, 20)).read_bytes()
    (folder / "_t.png").unlink()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    return ["text.png", "truncated.png", "zero.png"]


def test_mixed_folder(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    src = tmp_path / "in"
    for i in range(2):
        _png(src / f"good{i}.png", _rgb(i))
    Image.fromarray(_rgb(7)).save(src / "good2.jpg", quality=90)
    bad = _bad_files(src)
    (src / "readme.txt").write_text("x")
    out = tmp_path / "out"
    rc = main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0])])
    assert rc == 1
    cap = capsys.readouterr()
    assert "done 3, skipped 0, failed 3, non-image files 1" in cap.out
    for name in bad:
        lines = [ln for ln in cap.err.splitlines() if ln.startswith(f"failed   {src / name}: ")]
        assert len(lines) == 1, cap.err
        summary = [ln for ln in cap.err.splitlines() if ln.startswith(f"  failed: {src / name}: ")]
        assert len(summary) == 1
    assert _files(out) == {"good0_out.png", "good1_out.png", "good2_out.jpg"}


def test_corpus_folder_json(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    """tests/_corpus.py through the real net: good files written, bad ones one line each."""
    corpus = pytest.importorskip("_corpus")
    made = corpus.write_corpus(tmp_path / "corpus")
    out = tmp_path / "c"
    rc = main(["upscale", "-i", str(tmp_path / "corpus"), "-o", str(out), "--json", "-s", "1",
               "--model_path", str(tiny[0])])  # fmt: skip
    assert rc == 1
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    events, summary = lines[:-1], lines[-1]
    bad = set(corpus.BAD) | {"animated_gif"}  # animated.gif and animated.png share an output name
    status = {e["input"]: e["status"] for e in events}
    assert status == {str(p): ("failed" if n in bad else "done") for n, p in made.items()}
    failed = [e for e in events if e["status"] == "failed"]
    assert all(e["error"] and "\n" not in e["error"] for e in failed)
    done_outputs = {Path(e["output"]).name for e in events if e["status"] == "done"}
    assert done_outputs == _files(out) and len(done_outputs) == len(made) - len(bad)
    assert summary["done"] == len(done_outputs) and len(summary["failed"]) == len(bad)


def test_output_equal_to_input_refused(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    src = tmp_path / "in"
    _png(src / "a.png", _rgb(0))
    before = (src / "a.png").read_bytes()
    rc = main(["upscale", "-i", str(src), "-o", str(src), "--suffix", "", "--overwrite",
               "--model_path", str(tiny[0])])  # fmt: skip
    assert rc == 1
    assert (src / "a.png").read_bytes() == before
    assert "is the input file itself; refusing to overwrite it" in capsys.readouterr().err
    assert _files(src) == {"a.png"}


def test_output_named_like_a_file_is_a_folder(
    tmp_path: Path, tiny: tuple[Path, Any], capsys: Any
) -> None:
    src = _png(tmp_path / "a.png", _rgb(0))
    out = tmp_path / "big.png"
    assert main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0])]) == 0
    assert out.is_dir() and _files(out) == {"a_out.png"}
    assert f"-o/--output names a folder (as in the original); outputs go inside {out}/" in (
        capsys.readouterr().err
    )


def test_spaces_and_unicode(tmp_path: Path, tiny: tuple[Path, Any]) -> None:
    src = tmp_path / "my photos"
    _png(src / "été à Paris 写真.png", _rgb(2))
    out = tmp_path / "résultats finaux"
    assert main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0])]) == 0
    assert _files(out) == {"été à Paris 写真_out.png"}


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs byte file names")
def test_undecodable_name_prints_escaped(
    tmp_path: Path, tiny: tuple[Path, Any], capsys: Any
) -> None:
    src = tmp_path / "in"
    _png(src / "ok.png", _rgb(0))
    with open(os.fsencode(src) + b"/caf\xe9.png", "wb") as fh:
        fh.write((src / "ok.png").read_bytes())
    base = ["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "--model_path", str(tiny[0])]
    assert main(base) == 0
    cap = capsys.readouterr()
    assert "done 2, skipped 0, failed 0" in cap.out
    assert f"done     {src}/caf\\udce9.png -> {tmp_path}/o/caf\\udce9_out.png" in cap.out
    assert b"caf\xe9_out.png" in os.listdir(os.fsencode(tmp_path / "o"))
    assert main([*base, "--json", "--overwrite"]) == 0
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert lines[0]["input"] == str(src / os.fsdecode(b"caf\xe9.png"))
    assert lines[0]["status"] == "done"


def test_json_lines(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    src = tmp_path / "in"
    _png(src / "a.png", _rgb(0))
    (src / "b.png").write_text("no")
    (src / "c.txt").write_text("no")
    rc = main(["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "--json",
               "--model_path", str(tiny[0])])  # fmt: skip
    assert rc == 1
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    for ev in lines[:2]:
        assert set(ev) == {"input", "output", "status", "seconds", "error"}
        assert isinstance(ev["seconds"], float) and ev["seconds"] >= 0
    assert (lines[0]["status"], lines[0]["error"]) == ("done", None)
    assert lines[0]["output"] == str(tmp_path / "o" / "a_out.png")
    assert lines[1]["status"] == "failed" and lines[1]["input"] == str(src / "b.png")
    s = lines[2]
    assert (s["summary"], s["done"], s["skipped"], s["non_images"]) == (True, 1, 0, 1)
    assert s["failed"] == [{"input": str(src / "b.png"), "error": lines[1]["error"]}]


def test_skip_existing_then_overwrite(tmp_path: Path, tiny: tuple[Path, Any], capsys: Any) -> None:
    src = tmp_path / "in"
    for i in range(2):
        _png(src / f"a{i}.png", _rgb(i))
    out = tmp_path / "o"
    out.mkdir()
    (out / "a1_out.png").write_bytes(b"mine")
    base = ["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0])]
    assert main(base) == 0
    assert "done 1, skipped 1, failed 0" in capsys.readouterr().out
    assert (out / "a1_out.png").read_bytes() == b"mine"
    assert main([*base, "--overwrite"]) == 0
    assert "done 2, skipped 0, failed 0" in capsys.readouterr().out
    assert np.asarray(Image.open(out / "a1_out.png")).shape == (48, 40, 3)


def test_recursive_mirrors_folders(tmp_path: Path, tiny: tuple[Path, Any]) -> None:
    src = tmp_path / "in"
    _png(src / "a.png", _rgb(0))
    _png(src / "x" / "b.png", _rgb(1))
    _png(src / "x" / "y z" / "c.png", _rgb(2))
    out = src / "results"  # inside the input: never re-processed
    base = ["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0])]
    assert main([*base, "--recursive", "-s", "1"]) == 0
    assert _files(out) == {"a_out.png", "x/b_out.png", "x/y z/c_out.png"}
    assert main([*base, "--recursive", "-s", "1"]) == 0
    assert _files(out) == {"a_out.png", "x/b_out.png", "x/y z/c_out.png"}
    flat = tmp_path / "flat"
    assert main(["upscale", "-i", str(src), "-o", str(flat), "--model_path", str(tiny[0])]) == 0
    assert _files(flat) == {"a_out.png"}


def test_alpha_and_16_bit_and_icc_kept(tmp_path: Path, tiny: tuple[Path, Any]) -> None:
    import cv2
    from PIL import ImageCms

    src = tmp_path / "in"
    src.mkdir()
    rgba = np.dstack([_rgb(0), np.full((12, 10), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    deep = _rgb(1).astype(np.uint16) * 257
    cv2.imwrite(str(src / "deep.png"), deep[..., ::-1])
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_rgb(2)).save(src / "icc.jpg", quality=95, icc_profile=icc)
    out = tmp_path / "o"
    rc = main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(tiny[0]),
               "--alpha_upsampler", "bicubic", "--ext", "jpg"])  # fmt: skip
    assert rc == 0
    assert _files(out) == {"alpha_out.png", "deep_out.png", "icc_out.jpg"}
    a = np.asarray(Image.open(out / "alpha_out.png"))
    assert a.shape == (48, 40, 4) and abs(int(a[..., 3].mean()) - 128) <= 1
    d = cv2.imread(str(out / "deep_out.png"), cv2.IMREAD_UNCHANGED)
    assert d.dtype == np.uint16 and d.shape == (48, 40, 3)
    with Image.open(out / "icc_out.jpg") as im:
        assert im.info.get("icc_profile") == icc


def test_library_warnings_are_cli_lines(
    tmp_path: Path, tiny: tuple[Path, Any], capsys: Any
) -> None:
    frames = [Image.fromarray(_rgb(i)) for i in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    rc = main(["upscale", "-i", str(tmp_path / "anim.gif"), "-o", str(tmp_path / "o"),
               "--model_path", str(tiny[0])])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err.splitlines()
    warn = [
        ln for ln in err if ln.startswith(f"resrgan upscale: warning: {tmp_path / 'anim.gif'}: ")
    ]
    assert len(warn) == 1 and "first" in warn[0]
    assert _files(tmp_path / "o") == {"anim_out.png"}


def test_model_not_loaded_when_every_output_exists(
    tmp_path: Path, tiny: tuple[Path, Any], capsys: Any, monkeypatch: Any
) -> None:
    import resrgan.cli.upscale as cli

    src = tmp_path / "in"
    for i in range(2):
        _png(src / f"a{i}.png", _rgb(i))
    base = ["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "--model_path", str(tiny[0])]
    assert main(base) == 0
    capsys.readouterr()

    def no_model(args: Any) -> Any:
        raise AssertionError("every output exists: the model must not be loaded")

    monkeypatch.setattr(cli, "_make_upscaler", no_model)
    assert main(base) == 0
    assert "done 0, skipped 2, failed 0" in capsys.readouterr().out


def test_progress_bar_on_a_terminal(
    tmp_path: Path, tiny: tuple[Path, Any], monkeypatch: Any, capsys: Any
) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    src = tmp_path / "in"
    for i in range(3):
        _png(src / f"a{i}.png", _rgb(i))
    rc = main(["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "--model_path", str(tiny[0])])
    assert rc == 0
    assert "3/3" in err.getvalue() and "img" in err.getvalue()
    out = capsys.readouterr().out
    assert out.count("done     ") == 3 and "done 3, skipped 0, failed 0" in out
    err2 = Tty()
    monkeypatch.setattr(sys, "stderr", err2)
    assert main(["upscale", "-i", str(src), "-o", str(tmp_path / "j"), "--json",
                 "--model_path", str(tiny[0])]) == 0  # fmt: skip
    assert "3/3" not in err2.getvalue()  # no bar with --json


def test_ctrl_c_in_process(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import resrgan.cli.upscale as cli

    class Interrupting:
        n = 0

        def output_shape(self, h: int, w: int, *, outscale: float | None = None) -> tuple[int, int]:
            return int(h * (outscale or 2)), int(w * (outscale or 2))

        def upscale(self, a: np.ndarray, *, outscale: float | None = None) -> np.ndarray:
            self.n += 1
            if self.n == 2:
                raise KeyboardInterrupt
            return np.repeat(np.repeat(a, 2, 0), 2, 1)

    monkeypatch.setattr(cli, "_make_upscaler", lambda args: Interrupting())
    src = tmp_path / "in"
    for i in range(3):
        _png(src / f"a{i}.png", _rgb(i))
    out = tmp_path / "o"
    pth = tmp_path / "w.safetensors"
    save_weights(pth, _net(4, 1, 0).state_dict())
    rc = main(["upscale", "-i", str(src), "-o", str(out), "-s", "2", "--model_path", str(pth)])
    assert rc == 130
    text = capsys.readouterr().out
    assert (
        "done 1, skipped 0, failed 0" in text and "interrupted: run the same command again" in text
    )
    assert _files(out) == {"a0_out.png"}


# ------------------------------------------------------------------------ subprocess: kill, resume


def _cli(src: Path, out: Path, model: Path) -> list[str]:
    return [sys.executable, "-m", "resrgan", "upscale", "-i", str(src), "-o", str(out),
            "--model_path", str(model), "-t", "0", "--json"]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


N_RESUME = 8


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, slow: Path) -> tuple[Path, Path]:
    """Eight 96x96 inputs and their outputs from one clean, uninterrupted run."""
    root = tmp_path_factory.mktemp("resume")
    src = root / "in"
    for i in range(N_RESUME):
        _png(src / f"img{i}.png", _rgb(100 + i, 96, 96))
    clean = root / "clean"
    r = subprocess.run(
        _cli(src, clean, slow), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert len(_files(clean)) == N_RESUME
    return src, clean


def _start_and_wait_first_output(cmd: list[str], out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if out.is_dir() and any(p.name.endswith("_out.png") for p in out.iterdir()):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.kill()
    out_, err = proc.communicate()
    pytest.fail(f"no output appeared (rc={proc.returncode}): {err[-2000:]}")


def test_sigkill_midway_then_rerun_resumes_byte_identical(
    tmp_path: Path, batch: tuple[Path, Path], slow: Path
) -> None:
    src, clean = batch
    out = tmp_path / "out"
    proc = _start_and_wait_first_output(_cli(src, out, slow), out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    written = {n for n in _files(out) if n.endswith("_out.png") and not n.startswith(".")}
    assert 1 <= len(written) < N_RESUME, "the kill was meant to land mid-batch"
    r = subprocess.run(
        _cli(src, out, slow), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["skipped"] == len(written)
    assert summary["done"] == N_RESUME - len(written)
    assert _files(out) == _files(clean)  # no temp file, no duplicate
    for name in _files(clean):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_exits_130_without_temp_files(
    tmp_path: Path, batch: tuple[Path, Path], slow: Path, sig: signal.Signals
) -> None:
    src, clean = batch
    out = tmp_path / "out"
    proc = _start_and_wait_first_output(_cli(src, out, slow), out)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = [json.loads(ln) for ln in stdout.splitlines()]
    assert lines[-1]["summary"] and lines[-1]["interrupted"]
    names = _files(out)
    assert all(n.endswith("_out.png") and not n.startswith(".") for n in names), names
    assert len(names) == lines[-1]["done"] < N_RESUME
    for name in names:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


def test_json_lines_are_written_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record and its newline go out in one write: a Ctrl-C between two writes once glued the
    summary onto the last record's line."""
    import io

    from resrgan.cli import write_json_line

    writes: list[str] = []

    class Out(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return super().write(s)

    out = Out()
    monkeypatch.setattr("sys.stdout", out)
    write_json_line({"input": "a.png", "status": "done"})
    write_json_line({"summary": True})
    assert writes == ['{"input": "a.png", "status": "done"}\n', '{"summary": true}\n']
