"""OnnxNetwork: exported .onnx files on onnxruntime, against the torch network they came from; the
checks that refuse files which are not image models; the Upscaler running one.

The Upscaler takes any ``nn.Module``, so ``Upscaler(OnnxNetwork(path))`` runs the same tiling,
padding, alpha and 16-bit code as the torch path. ``Upscaler("x.onnx")`` and ``resrgan upscale
--model_path x.onnx`` go through the hook-up in infer/upscaler.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from resrgan.cli import main  # noqa: E402
from resrgan.errors import UsageError, WeightsError  # noqa: E402
from resrgan.export import export_onnx  # noqa: E402
from resrgan.infer.onnxrt import OnnxModelError, OnnxNetwork, providers_for  # noqa: E402
from resrgan.infer.upscaler import Upscaler  # noqa: E402
from resrgan.nets import RRDBNet  # noqa: E402

CPU = "CPUExecutionProvider"


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def tiny_x2() -> RRDBNet:
    torch.manual_seed(2)
    return RRDBNet(scale=2, num_feat=16, num_block=2, num_grow_ch=8).eval()


@pytest.fixture(scope="module")
def av3() -> torch.nn.Module:
    from resrgan.weights.zoo import load_zoo_model

    return load_zoo_model("realesr-animevideov3")[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, av3: torch.nn.Module) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("onnxrt")
    return {
        "av3": export_onnx(av3, d / "av3.onnx"),
        "av3_fp16": export_onnx(av3, d / "av3_fp16.onnx", fp16=True),
        "av3_static": export_onnx(av3, d / "av3_static.onnx", static=(16, 24)),
        "x2": export_onnx(tiny_x2(), d / "x2.onnx"),
    }


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _graph(path: Path, node: onnx.NodeProto, inp: list, out: list) -> Path:
    """A one-node ONNX model; ``inp``/``out``: (name, elem type, shape)."""
    g = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inp],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in out],
    )  # fmt: skip
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


# ---- agreement with torch


def test_matches_the_torch_network(files: dict[str, Path], av3: torch.nn.Module) -> None:
    net = OnnxNetwork(files["av3"], device="cpu")
    assert (net.scale, net.providers, net.arch) == (4, [CPU], "SRVGGNetCompact")
    x = torch.rand(2, 3, 23, 31, generator=torch.Generator().manual_seed(0))
    y = net(x)
    with torch.no_grad():
        want = av3(x)
    assert y.dtype == torch.float32 and y.shape == want.shape
    assert psnr(y.numpy(), want.numpy()) >= 60.0


def test_fp16_file_takes_and_gives_float32(files: dict[str, Path], av3: torch.nn.Module) -> None:
    net = OnnxNetwork(files["av3_fp16"], device="cpu")
    assert net.input_dtype is np.float16
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    y = net(x)
    with torch.no_grad():
        want = av3(x)
    assert y.dtype == torch.float32
    assert psnr(y.numpy(), want.numpy()) >= 45.0


def test_scale_is_probed_without_metadata(files: dict[str, Path], tmp_path: Path) -> None:
    model = onnx.load(str(files["x2"]))
    del model.metadata_props[:]
    net = OnnxNetwork(_save(model, tmp_path / "bare.onnx"), device="cpu")
    assert net.scale == 2 and net.metadata == {}


def test_static_file_refuses_other_sizes(files: dict[str, Path]) -> None:
    net = OnnxNetwork(files["av3_static"], device="cpu")
    assert (net.scale, net.static_size) == (4, (16, 24))
    assert net(torch.rand(1, 3, 16, 24)).shape == (1, 3, 64, 96)
    with pytest.raises(UsageError, match=r"exported for 16x24 inputs only \(--static\), got 8x8"):
        net(torch.rand(1, 3, 8, 8))


# ---- the Upscaler with an OnnxNetwork: one code path for tiles, planes, alpha, 16-bit


@pytest.fixture(scope="module")
def tree_crop(real_lr_dir: Path) -> np.ndarray:
    """An odd-sized 16-bit RGBA crop of a real image."""
    from resrgan.io.images import read_image

    img = np.asarray(read_image(real_lr_dir / "tree_alpha_16bit.png").pixels)
    assert img.dtype == np.uint16 and img.shape[2] == 4
    return np.ascontiguousarray(img[90:151, 120:203])


@pytest.mark.parametrize("tile", [0, 48])
def test_upscaler_on_onnx_gives_the_torch_result(
    files: dict[str, Path], av3: torch.nn.Module, tree_crop: np.ndarray, tile: int
) -> None:
    onnx_up = Upscaler(OnnxNetwork(files["av3"], device="cpu"), device="cpu", tile=tile)
    torch_up = Upscaler(av3, device="cpu", tile=tile)
    got, want = onnx_up.upscale(tree_crop), torch_up.upscale(tree_crop)
    assert got.dtype == np.uint16 and got.shape == (61 * 4, 83 * 4, 4)
    assert psnr(got, want, peak=65535.0) >= 50.0
    assert psnr(got[..., 3], want[..., 3], peak=65535.0) >= 50.0  # the alpha plane's own pass


def test_upscaler_pads_odd_sizes_for_x2(files: dict[str, Path], tree_crop: np.ndarray) -> None:
    img8 = (tree_crop[..., :3] >> 8).astype(np.uint8)
    got = Upscaler(OnnxNetwork(files["x2"], device="cpu"), device="cpu", tile=0).upscale(img8)
    want = Upscaler(tiny_x2(), device="cpu", tile=0).upscale(img8)
    assert got.shape == (122, 166, 3)
    assert psnr(got, want, peak=255.0) >= 50.0


# ---- files that are not image models: one line naming the file, exit code 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match=r"nope\.onnx: no such ONNX file$"):
        OnnxNetwork(tmp_path / "nope.onnx")


def test_truncated_file(files: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(files["x2"].read_bytes()[:5000])
    with pytest.raises(OnnxModelError) as e:
        OnnxNetwork(bad, device="cpu")
    msg = str(e.value)
    assert msg.startswith(f"{bad}: not a readable ONNX model (")
    assert msg.endswith("the file may be truncated or not ONNX")
    assert "\n" not in msg
    assert e.value.exit_code == 2
    assert isinstance(e.value, WeightsError) and isinstance(e.value, UsageError)


def test_non_image_graph(tmp_path: Path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    path = _graph(tmp_path / "vec.onnx", node, [("x", TensorProto.FLOAT, [4])],
                  [("y", TensorProto.FLOAT, [4])])  # fmt: skip
    with pytest.raises(OnnxModelError) as e:
        OnnxNetwork(path, device="cpu")
    assert str(e.value) == (
        f"{path}: input 'x' has shape [4], not 4-D NCHW; not an image upscaling model"
    )


def test_graph_with_one_channel_input(tmp_path: Path) -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    shape = ["n", 1, "h", "w"]
    path = _graph(tmp_path / "gray.onnx", node, [("x", TensorProto.FLOAT, shape)],
                  [("y", TensorProto.FLOAT, shape)])  # fmt: skip
    with pytest.raises(OnnxModelError, match=r"input 'x' has 1 channels, not 3 \(NCHW RGB\)"):
        OnnxNetwork(path, device="cpu")


def test_graph_that_shrinks_the_image(tmp_path: Path) -> None:
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    path = _graph(tmp_path / "down.onnx", node, [("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                  [("y", TensorProto.FLOAT, ["n", 3, "h2", "w2"])])  # fmt: skip
    with pytest.raises(OnnxModelError, match=r"maps a 3x16x16 input to 3x8x8, not 3 channels"):
        OnnxNetwork(path, device="cpu")


def test_metadata_scale_must_match_the_graph(files: dict[str, Path], tmp_path: Path) -> None:
    model = onnx.load(str(files["x2"]))
    next(p for p in model.metadata_props if p.key == "scale").value = "4"
    with pytest.raises(OnnxModelError, match="metadata says scale 4 but the graph upscales x2"):
        OnnxNetwork(_save(model, tmp_path / "liar.onnx"), device="cpu")


# ---- providers


def test_auto_uses_every_installed_accelerator_then_cpu() -> None:
    have = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider", CPU]
    assert providers_for(None, have) == ["CUDAExecutionProvider", "DmlExecutionProvider", CPU]
    assert providers_for("auto", [CPU]) == [CPU]
    assert providers_for("cpu", have) == [CPU]


def test_device_index_becomes_a_provider_option() -> None:
    have = ["CUDAExecutionProvider", "DmlExecutionProvider", CPU]
    assert providers_for("cuda:1", have) == [("CUDAExecutionProvider", {"device_id": 1}), CPU]
    assert providers_for("directml", have) == ["DmlExecutionProvider", CPU]


def test_missing_provider_names_the_package() -> None:
    with pytest.raises(UsageError, match=r"device: 'cuda' needs onnxruntime's CUDAExecution"
                       r"Provider, .* install onnxruntime-gpu or use device cpu"):  # fmt: skip
        providers_for("cuda", [CPU])


def test_unknown_device_is_refused() -> None:
    with pytest.raises(UsageError, match=r"device: 'tpu' is not an onnxruntime device"):
        providers_for("tpu", [CPU])


# ---- through Upscaler("x.onnx") and the CLI: after the hook-up in infer/upscaler.py


@pytest.fixture(scope="module")
def hooked(files: dict[str, Path]) -> None:
    """Upscaler routes .onnx files to OnnxNetwork (the hook-up is in, so this must not fail)."""
    up = Upscaler(str(files["x2"]), device="cpu", tile=0)
    assert type(up.engine.model).__name__ == "OnnxNetwork" and up.scale == 2


def test_cli_upscale_runs_an_onnx_file_like_torch(
    hooked: None, files: dict[str, Path], tmp_path: Path, real_lr_dir: Path
) -> None:
    import cv2

    from resrgan.weights.zoo import resolve_weights

    src = real_lr_dir / "0014.jpg"
    outs = {}
    for kind, model in (("onnx", files["av3"]), ("torch", resolve_weights("realesr-animevideov3"))):
        out = tmp_path / kind
        assert main(["upscale", "-i", str(src), "-o", str(out), "--model_path", str(model)]) == 0
        outs[kind] = cv2.imread(str(next(out.iterdir())), cv2.IMREAD_UNCHANGED)
    assert outs["onnx"].shape == (179 * 4, 179 * 4, 3)
    assert psnr(outs["onnx"], outs["torch"], peak=255.0) >= 50.0


@pytest.mark.parametrize("kind", ["truncated", "not_an_image_model"])
def test_cli_upscale_bad_onnx_is_one_line_and_exit_2(
    hooked: None, files: dict[str, Path], tmp_path: Path, real_lr_dir: Path, kind: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    bad = tmp_path / "bad.onnx"
    if kind == "truncated":
        bad.write_bytes(files["x2"].read_bytes()[:5000])
    else:
        node = helper.make_node("Relu", ["x"], ["y"])
        _graph(bad, node, [("x", TensorProto.FLOAT, [4])], [("y", TensorProto.FLOAT, [4])])
    args = ["upscale", "-i", str(real_lr_dir / "0014.jpg"), "-o", str(tmp_path / "o")]
    assert main([*args, "--model_path", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"resrgan upscale: error: {bad}: ")


def test_engine_hints_come_from_the_metadata(files: dict[str, Path]) -> None:
    x2 = OnnxNetwork(files["x2"], device="cpu")
    assert (x2.tile_multiple, x2.num_feat, x2.name) == (2, 16, "RRDBNet")
    av3 = OnnxNetwork(files["av3"], device="cpu")
    assert (av3.tile_multiple, av3.num_feat, av3.name) == (1, 64, "SRVGGNetCompact")
