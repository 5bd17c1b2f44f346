"""ncnn importer: format parsing, structural mapping, and agreement with the ncnn runtime.

The reference implementation is the ``ncnn`` Python runtime (CPU, fp32) running the same .param/.bin
files. A small independent writer of the ncnn format (below) builds tiny graphs for the error paths
and storage formats; the runtime also runs those, which checks the writer itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

TAGS = {"fp16": 0x01306B47, "int8": 0x000D4B38}


@dataclass
class Node:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: str = ""
    weights: list[bytes] = field(default_factory=list)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def conv_blob(weight: torch.Tensor, bias: torch.Tensor, storage: str = "fp16") -> list[bytes]:
    w = weight.detach().float().numpy().reshape(-1)
    out: list[bytes] = []
    if storage == "fp16":
        out.append(struct.pack("<I", TAGS["fp16"]) + _pad4(w.astype("<f2").tobytes()))
    elif storage == "fp32":
        out.append(struct.pack("<I", 0) + w.astype("<f4").tobytes())
    elif storage == "table":  # any other non-zero tag: 256 fp32 values, then uint8 indices
        table = np.linspace(w.min(), w.max(), 256).astype("<f4")
        idx = np.abs(w[:, None] - table[None, :]).argmin(axis=1).astype(np.uint8)
        out.append(struct.pack("<I", 1) + table.tobytes() + _pad4(idx.tobytes()))
    elif storage == "int8":
        per = weight.detach().float().numpy().reshape(weight.shape[0], -1)
        scale = 127.0 / np.maximum(np.abs(per).max(axis=1), 1e-8)
        q = np.clip(np.round(per * scale[:, None]), -127, 127).astype(np.int8)
        out.append(struct.pack("<I", TAGS["int8"]) + _pad4(q.tobytes()))
        out.append(bias.detach().float().numpy().astype("<f4").tobytes())
        out.append(scale.astype("<f4").tobytes() + struct.pack("<f", 1.0))
        return out
    else:
        raise ValueError(storage)
    out.append(bias.detach().float().numpy().astype("<f4").tobytes())
    return out


def conv_node(
    name: str, src: str, top: str, weight: torch.Tensor, bias: torch.Tensor, *,
    act: str = "", storage: str = "fp16",
) -> Node:  # fmt: skip
    o, i = weight.shape[:2]
    params = f"0={o} 1=3 4=1 5=1 6={o * i * 9}"
    if storage == "int8":
        params += " 8=1"
    params += act
    return Node("Convolution", name, [src], [top], params, conv_blob(weight, bias, storage))


def write(nodes: list[Node], param: Path, binf: Path) -> None:
    """Insert Splits for multi-consumer blobs, then write the two files."""
    uses: dict[str, int] = {}
    for n in nodes:
        for b in n.bottoms:
            uses[b] = uses.get(b, 0) + 1
    seen: dict[str, int] = {}
    out: list[Node] = []
    for n in nodes:
        bottoms = []
        for b in n.bottoms:
            if uses[b] > 1:
                k = seen.get(b, 0)
                seen[b] = k + 1
                bottoms.append(f"{b}_splitncnn_{k}")
            else:
                bottoms.append(b)
        out.append(Node(n.type, n.name, bottoms, n.tops, n.params, n.weights))
        for t in n.tops:
            if uses.get(t, 0) > 1:
                tops = [f"{t}_splitncnn_{k}" for k in range(uses[t])]
                out.append(Node("Split", f"split_{t}", [t], tops))
    blobs = {b for n in out for b in (*n.bottoms, *n.tops)}
    lines = ["7767517", f"{len(out)} {len(blobs)}"]
    for n in out:
        cols = [n.type.ljust(24), n.name.ljust(24), str(len(n.bottoms)), str(len(n.tops))]
        lines.append(" ".join([*cols, *n.bottoms, *n.tops, n.params]).rstrip())
    param.write_text("\n".join(lines) + "\n")
    binf.write_bytes(b"".join(b for n in out for b in n.weights))


def srvgg_nodes(sd: dict[str, torch.Tensor], num_conv: int, upscale: int, *, act: str = "prelu",
                storage: str = "fp16", outscale: float | None = None) -> list[Node]:  # fmt: skip
    nodes = [Node("Input", "in0", [], ["data"])]
    h = "data"
    for i in range(num_conv + 2):
        k = 2 * i
        last = i == num_conv + 1
        fused = ""
        if not last and act == "relu":
            fused = " 9=1"
        elif not last and act == "lrelu":
            fused = " 9=2 -23310=1,1.000000e-01"
        nodes.append(
            conv_node(f"conv{k}", h, f"c{k}", sd[f"body.{k}.weight"], sd[f"body.{k}.bias"],
                      act=fused, storage=storage)
        )  # fmt: skip
        h = f"c{k}"
        if not last and act == "prelu":
            slope = sd[f"body.{k + 1}.weight"]
            nodes.append(
                Node("PReLU", f"prelu{k + 1}", [h], [f"a{k + 1}"], f"0={slope.numel()}",
                     [slope.float().numpy().astype("<f4").tobytes()])
            )  # fmt: skip
            h = f"a{k + 1}"
    nodes.append(Node("PixelShuffle", "ps", [h], ["ps"], f"0={upscale}"))
    nodes.append(Node("Interp", "up", ["data"], ["up"], f"0=1 1={upscale:.6e} 2={upscale:.6e}"))
    end = "output" if outscale is None else "sum"
    nodes.append(Node("BinaryOp", "add", ["ps", "up"], [end], "0=0"))
    if outscale is not None:
        r = outscale / upscale
        nodes.append(Node("Interp", "resize", ["sum"], ["output"], f"0=3 1={r:.6e} 2={r:.6e}"))
    return nodes


LRELU = " 9=2 -23310=1,2.000000e-01"
ELT = "0=1 -23301=2,2.000000e-01,1.000000e+00"


def rrdb_nodes(sd: dict[str, torch.Tensor], num_block: int, *, storage: str = "fp16",
               separate_relu: bool = False, eltwise: str = ELT) -> list[Node]:  # fmt: skip
    nodes = [Node("Input", "in0", [], ["data"])]
    counter = [0]

    def conv(key: str, src: str, act: bool) -> str:
        counter[0] += 1
        top = f"b{counter[0]}"
        if act and separate_relu:
            nodes.append(conv_node(key, src, top + "c", sd[f"{key}.weight"], sd[f"{key}.bias"],
                                   storage=storage))  # fmt: skip
            nodes.append(Node("ReLU", key + "_relu", [top + "c"], [top], "0=2.000000e-01"))
        else:
            nodes.append(conv_node(key, src, top, sd[f"{key}.weight"], sd[f"{key}.bias"],
                                   act=LRELU if act else "", storage=storage))  # fmt: skip
        return top

    feat = conv("conv_first", "data", False)
    h = feat
    for b in range(num_block):
        block_in = h
        for r in (1, 2, 3):
            feats = [h]
            for c in (1, 2, 3, 4, 5):
                if c == 1:
                    src = h
                else:
                    counter[0] += 1
                    src = f"cat{counter[0]}"
                    nodes.append(Node("Concat", f"concat{counter[0]}", list(feats), [src], "0=0"))
                feats.append(conv(f"body.{b}.rdb{r}.conv{c}", src, c < 5))
            counter[0] += 1
            nodes.append(Node("Eltwise", f"rdb_add{counter[0]}", [feats[-1], feats[0]],
                              [f"e{counter[0]}"], eltwise))  # fmt: skip
            h = f"e{counter[0]}"
        counter[0] += 1
        nodes.append(Node("Eltwise", f"rrdb_add{counter[0]}", [h, block_in], [f"e{counter[0]}"],
                          ELT))  # fmt: skip
        h = f"e{counter[0]}"
    body = conv("conv_body", h, False)
    nodes.append(Node("BinaryOp", "add_body", [feat, body], ["s"], ""))
    nodes.append(Node("Interp", "up1", ["s"], ["u1"], "0=1 1=2.000000e+00 2=2.000000e+00"))
    h = conv("conv_up1", "u1", True)
    nodes.append(Node("Interp", "up2", [h], ["u2"], "0=1 1=2.000000e+00 2=2.000000e+00"))
    h = conv("conv_up2", "u2", True)
    h = conv("conv_hr", h, True)
    counter[0] += 1
    nodes.append(conv_node("conv_last", h, "output", sd["conv_last.weight"], sd["conv_last.bias"],
                           storage=storage))  # fmt: skip
    return nodes


# --------------------------------------------------------------------------------------------------
# tests

import re  # noqa: E402
import shutil  # noqa: E402

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from resrgan.cli import main  # noqa: E402
from resrgan.errors import WeightsError  # noqa: E402
from resrgan.nets import RRDBNet, SRVGGNetCompact, build_arch  # noqa: E402
from resrgan.weights.load import load_model  # noqa: E402
from resrgan.weights.ncnn import ncnn_to_state_dict, read_ncnn  # noqa: E402

OFFICIAL = {
    "realesrgan-x4plus": ("RRDBNet", 23, 16_697_987),
    "realesrgan-x4plus-anime": ("RRDBNet", 6, 4_467_779),
    "realesr-animevideov3-x4": ("SRVGGNetCompact", 16, 621_424),
    "realesr-animevideov3-x2": ("SRVGGNetCompact", 16, 621_424),
    "realesr-animevideov3-x3": ("SRVGGNetCompact", 16, 621_424),
}


def _files(d: Path, stem: str) -> tuple[Path, Path]:
    return d / f"{stem}.param", d / f"{stem}.bin"


def _tiny_srvgg(act: str = "prelu", num_conv: int = 2, upscale: int = 2) -> SRVGGNetCompact:
    g = torch.Generator().manual_seed(1)
    net = SRVGGNetCompact(num_feat=8, num_conv=num_conv, upscale=upscale, act_type=act)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return net.eval()


def _tiny_rrdb() -> RRDBNet:
    g = torch.Generator().manual_seed(2)
    net = RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2, num_grow_ch=4)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def _table(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What table storage keeps: each conv weight snapped to 256 evenly spaced values."""
    out = {}
    for k, v in sd.items():
        if v.ndim == 4:
            w = v.reshape(-1).numpy()
            table = np.linspace(w.min(), w.max(), 256).astype(np.float32)
            idx = np.abs(w[:, None] - table[None, :]).argmin(axis=1)
            out[k] = torch.from_numpy(table[idx].reshape(v.shape))
        else:
            out[k] = v.clone()
    return out


def _fp16(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What an fp16 ncnn file stores: conv weights rounded to fp16, biases and slopes in fp32."""
    return {k: v.half().float() if v.ndim == 4 else v.clone() for k, v in sd.items()}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.clip(a, 0, 1).astype(np.float64), np.clip(b, 0, 1).astype(np.float64)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _run_ncnn(param: Path, binf: Path, x: np.ndarray) -> np.ndarray:
    """The ncnn runtime on CPU in fp32: CHW float input blob 'data', output blob 'output'."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    for name in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                 "use_bf16_storage", "use_bf16_packed", "use_int8_inference"):  # fmt: skip
        setattr(opt, name, False)
    opt.num_threads = 1
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(binf)) == 0
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(np.ascontiguousarray(x, dtype=np.float32)))
    ret, out = ex.extract("output")
    assert ret == 0, f"ncnn extract failed with {ret}"
    result = np.array(out).copy()
    ex = None
    net.clear()
    return result


def _ours(arch: str, kwargs: dict, sd: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    net = build_arch(arch, **kwargs).eval()
    net.load_state_dict(sd, strict=True)
    with torch.no_grad():
        return net(torch.from_numpy(x)[None])[0].numpy()


@pytest.fixture(scope="module")
def photo_crop(real_lr_dir: Path) -> np.ndarray:
    """A 48x48 crop of a real photo (ADE20K, JPEG) as CHW float RGB in [0, 1]."""
    import cv2

    img = cv2.imread(str(real_lr_dir / "ADE_val_00000114.jpg"), cv2.IMREAD_COLOR)[:, :, ::-1]
    crop = img[100:148, 100:148].astype(np.float32) / 255.0
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


# ---- official files: structure


@pytest.mark.parametrize("stem", sorted(OFFICIAL))
def test_official_file_maps_onto_expected_network(ncnn_models_dir: Path, stem: str) -> None:
    arch, depth, n_params = OFFICIAL[stem]
    sd, info = ncnn_to_state_dict(*_files(ncnn_models_dir, stem))
    assert info["arch"] == arch
    assert info["storage"] == ["fp16"]
    if arch == "RRDBNet":
        assert info["kwargs"] == dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64,
                                      num_block=depth, num_grow_ch=32)  # fmt: skip
        assert len(sd) == 15 * 2 * depth + 12
    else:
        assert info["kwargs"] == dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=depth,
                                      upscale=4, act_type="prelu")  # fmt: skip
        assert sorted(sd, key=lambda k: int(k.split(".")[1]))[-1] == "body.34.bias"
    # parameter counts of spec §2.1/§2.2
    assert sum(v.numel() for v in sd.values()) == n_params
    # conv weights are exactly fp16 values (stored as fp16), and not all zero
    for k, v in sd.items():
        if v.ndim == 4:
            assert torch.equal(v, v.half().float()), k
    assert float(sd[next(iter(sd))].abs().sum()) > 0


def test_animevideov3_x2_x3_graphs_are_the_x4_net_plus_a_resize(ncnn_models_dir: Path) -> None:
    sd4, info4 = ncnn_to_state_dict(*_files(ncnn_models_dir, "realesr-animevideov3-x4"))
    assert "outscale" not in info4
    for stem, outscale, factor in (("realesr-animevideov3-x2", 2.0, 0.5),
                                   ("realesr-animevideov3-x3", 3.0, 0.75)):  # fmt: skip
        sd, info = ncnn_to_state_dict(*_files(ncnn_models_dir, stem))
        assert info["outscale"] == outscale
        assert (info["resize_mode"], info["resize_scale"]) == ("bicubic", factor)
        assert sd.keys() == sd4.keys()
        assert all(torch.equal(sd[k], sd4[k]) for k in sd)


def test_read_ncnn_parses_param_values_and_arrays(ncnn_models_dir: Path) -> None:
    model = read_ncnn(*_files(ncnn_models_dir, "realesrgan-x4plus-anime"))
    assert len(model.layers) == 268
    conv1 = model.layers[3]
    assert (conv1.type, conv1.name) == ("Convolution", "Conv_1")
    assert conv1.params[0] == 32 and isinstance(conv1.params[0], int)
    assert conv1.params[9] == 2
    assert conv1.params[10] == (pytest.approx(0.2),)  # -23310=1,2.0e-01
    assert conv1.weights["weight"].shape == (32, 64, 3, 3)
    elt = next(la for la in model.layers if la.type == "Eltwise")
    assert elt.params[0] == 1 and elt.params[1] == (pytest.approx(0.2), pytest.approx(1.0))
    interp = next(la for la in model.layers if la.type == "Interp")
    assert isinstance(interp.params[1], float) and interp.params[1] == 2.0


# ---- official files: agreement with the ncnn runtime


RUNTIME_STEMS = ["realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3-x4",
                 "realesr-animevideov3-x2"]  # fmt: skip


@pytest.mark.parametrize("stem", RUNTIME_STEMS)
def test_official_model_matches_ncnn_runtime(
    ncnn_models_dir: Path, photo_crop: np.ndarray, stem: str
) -> None:
    param, binf = _files(ncnn_models_dir, stem)
    sd, info = ncnn_to_state_dict(param, binf)
    expected = _run_ncnn(param, binf, photo_crop)
    ours = _ours(info["arch"], info["kwargs"], sd, photo_crop)
    if "resize_scale" in info:  # x2 graph: our x4 net, then the same bicubic resize
        t = torch.from_numpy(ours)[None]
        ours = F.interpolate(t, scale_factor=info["resize_scale"], mode="bicubic",
                             align_corners=False)[0].numpy()  # fmt: skip
    side = int(48 * info.get("outscale", 4))
    assert expected.shape == ours.shape == (3, side, side)
    # a real restoration of this input, not a degenerate output: downscaled back it is the input
    down = F.interpolate(torch.from_numpy(expected)[None], size=(48, 48), mode="area")[0].numpy()
    assert _psnr(down, photo_crop) > 25.0
    assert _psnr(ours, expected) >= 60.0


# ---- synthetic graphs: storage formats, activations, runtime


@pytest.mark.parametrize("storage", ["fp16", "fp32", "table"])
@pytest.mark.parametrize("act", ["prelu", "relu", "lrelu"])
def test_srvgg_round_trip_through_ncnn_format(tmp_path: Path, storage: str, act: str) -> None:
    net = _tiny_srvgg(act)
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    write(srvgg_nodes(sd, 2, 2, act=act, storage=storage), param, binf)
    got, info = ncnn_to_state_dict(param, binf)
    assert info["arch"] == "SRVGGNetCompact"
    assert info["kwargs"] == dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2,
                                  act_type=act)  # fmt: skip
    want = {"fp16": _fp16, "table": _table}.get(storage, dict)(sd)
    assert info["storage"] == [storage]
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    x = np.random.default_rng(0).random((3, 9, 7), dtype=np.float32)
    assert _psnr(_ours(info["arch"], info["kwargs"], got, x), _run_ncnn(param, binf, x)) > 100


@pytest.mark.parametrize("separate_relu", [False, True])
def test_rrdbnet_round_trip_through_ncnn_format(tmp_path: Path, separate_relu: bool) -> None:
    net = _tiny_rrdb()
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    write(rrdb_nodes(sd, 2, separate_relu=separate_relu), param, binf)
    got, info = ncnn_to_state_dict(param, binf)
    assert info["kwargs"] == dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2,
                                  num_grow_ch=4)  # fmt: skip
    want = _fp16(sd)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    x = np.random.default_rng(1).random((3, 6, 5), dtype=np.float32)
    assert _psnr(_ours(info["arch"], info["kwargs"], got, x), _run_ncnn(param, binf, x)) > 100


def test_int8_weights_are_dequantized_with_per_channel_scales(tmp_path: Path) -> None:
    net = _tiny_srvgg("prelu")
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    write(srvgg_nodes(sd, 2, 2, storage="int8"), param, binf)
    got, info = ncnn_to_state_dict(param, binf)
    assert info["storage"] == ["int8"]
    for k, v in sd.items():
        if v.ndim == 4:
            per = v.reshape(v.shape[0], -1)
            step = per.abs().amax(dim=1) / 127.0  # one quantization step per output channel
            err = (got[k] - v).reshape(v.shape[0], -1).abs().amax(dim=1)
            assert bool((err <= step * 0.5 + 1e-7).all()), k
            assert not torch.equal(got[k], v)  # really quantized
        else:
            assert torch.equal(got[k], v), k


def test_final_resize_reports_outscale(tmp_path: Path) -> None:
    sd = _tiny_srvgg(upscale=4).state_dict()
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    write(srvgg_nodes(dict(sd), 2, 4, outscale=3.0), param, binf)
    _, info = ncnn_to_state_dict(param, binf)
    assert info["outscale"] == pytest.approx(3.0)
    assert info["resize_mode"] == "bicubic"


# ---- errors


def _copy_official(d: Path, stem: str, tmp: Path) -> tuple[Path, Path]:
    p, b = _files(d, stem)
    shutil.copy(p, tmp / p.name)
    shutil.copy(b, tmp / b.name)
    return tmp / p.name, tmp / b.name


def test_wrong_eltwise_coefficient_names_the_layer(tmp_path: Path) -> None:
    sd = dict(_tiny_rrdb().state_dict())
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    write(rrdb_nodes(sd, 2, eltwise="0=1 -23301=2,3.000000e-01,1.000000e+00"), param, binf)
    with pytest.raises(WeightsError) as e:
        ncnn_to_state_dict(param, binf)
    msg = str(e.value)
    assert str(param) in msg
    assert "'rdb_add" in msg and "(Eltwise, line " in msg
    assert "expected sum 0.2, 1.0" in msg


def test_param_edited_without_its_bin_is_refused(ncnn_models_dir: Path, tmp_path: Path) -> None:
    param, binf = _copy_official(ncnn_models_dir, "realesr-animevideov3-x4", tmp_path)
    text = param.read_text()
    # turn the 2nd PReLU into a weightless ReLU: the .bin no longer lines up with the .param
    new = re.sub(
        r"PReLU(\s+)PRelu_3(\s+)1 1 57 59 0=64", r"ReLU\1PRelu_3\g<2>1 1 57 59 0=0.1", text
    )
    assert new != text
    param.write_text(new)
    with pytest.raises(WeightsError) as e:
        ncnn_to_state_dict(param, binf)
    msg = str(e.value)
    assert msg.startswith(f"{binf}: ") and "bytes left over after the last layer" in msg


def test_activation_mismatch_names_layer(tmp_path: Path) -> None:
    sd = dict(_tiny_srvgg("prelu").state_dict())
    nodes = srvgg_nodes(sd, 2, 2)
    # replace the second PReLU's slopes by a ReLU layer and drop its weights
    i = next(i for i, n in enumerate(nodes) if n.name == "prelu3")
    nodes[i] = Node("ReLU", "relu3", nodes[i].bottoms, nodes[i].tops, "0=1.000000e-01")
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    write(nodes, param, binf)
    with pytest.raises(WeightsError) as e:
        ncnn_to_state_dict(param, binf)
    msg = str(e.value)
    assert "layer 'conv2' (Convolution, line" in msg
    assert "activation lrelu differs from the first one (prelu)" in msg


def test_truncated_bin_names_file(ncnn_models_dir: Path, tmp_path: Path) -> None:
    param, binf = _copy_official(ncnn_models_dir, "realesr-animevideov3-x4", tmp_path)
    binf.write_bytes(binf.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="truncated") as e:
        read_ncnn(param, binf)
    assert str(binf) in str(e.value) and "file ends at byte 100000" in str(e.value)


def test_bin_from_another_model_is_refused(ncnn_models_dir: Path) -> None:
    param, _ = _files(ncnn_models_dir, "realesr-animevideov3-x4")
    _, other = _files(ncnn_models_dir, "realesrgan-x4plus-anime")
    with pytest.raises(WeightsError) as e:
        read_ncnn(param, other)
    assert "bytes left over after the last layer" in str(e.value)
    assert "does not belong to this .param" in str(e.value)


def test_bad_magic_is_refused(tmp_path: Path) -> None:
    param, binf = tmp_path / "x.param", tmp_path / "x.bin"
    param.write_text("1234\n1 1\nInput in0 0 1 data\n")
    binf.write_bytes(b"")
    with pytest.raises(WeightsError) as e:
        read_ncnn(param, binf)
    assert f"{param}: not an ncnn .param file" in str(e.value) and "'1234'" in str(e.value)


def test_unsupported_layer_type_is_refused(tmp_path: Path) -> None:
    param, binf = tmp_path / "x.param", tmp_path / "x.bin"
    param.write_text("7767517\n2 2\nInput in0 0 1 data\nDeconvolution d0 1 1 data out 0=3\n")
    binf.write_bytes(b"\0" * 64)
    with pytest.raises(WeightsError) as e:
        read_ncnn(param, binf)
    assert "layer type 'Deconvolution' is not supported" in str(e.value)
    assert f"{param}:4" in str(e.value)


def test_graph_of_neither_arch_is_refused(tmp_path: Path) -> None:
    param, binf = tmp_path / "x.param", tmp_path / "x.bin"
    param.write_text("7767517\n2 2\nInput in0 0 1 data\nReLU r0 1 1 data output\n")
    binf.write_bytes(b"")
    with pytest.raises(WeightsError) as e:
        ncnn_to_state_dict(param, binf)
    assert "neither an RRDBNet" in str(e.value) and "layer 'r0' (ReLU, line 4)" in str(e.value)


# ---- CLI


def test_cli_convert_ncnn_writes_safetensors_and_pth(
    ncnn_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    param, binf = _files(ncnn_models_dir, "realesr-animevideov3-x2")
    sd, _ = ncnn_to_state_dict(param, binf)
    for name in ("m.safetensors", "m.pth"):
        out = tmp_path / name
        assert main(["convert-ncnn", str(param), str(binf), "-o", str(out)]) == 0
        text = capsys.readouterr().out
        assert "SRVGGNetCompact" in text and "621,424 parameters" in text
        assert "--outscale 2" in text
        net, arch, kwargs = load_model(out)
        assert arch == "SRVGGNetCompact" and kwargs["num_conv"] == 16
        loaded = net.state_dict()
        assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    raw = torch.load(tmp_path / "m.pth", map_location="cpu", weights_only=True)
    fresh = SRVGGNetCompact(num_conv=16)
    fresh.load_state_dict(raw["params_ema"], strict=True)


def test_cli_convert_ncnn_refuses_to_overwrite(
    ncnn_models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exists.safetensors"
    out.write_bytes(b"mine")
    param = ncnn_models_dir / "realesr-animevideov3-x4.param"
    assert main(["convert-ncnn", str(param), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--output {out}: file exists; pass --force" in err
    assert out.read_bytes() == b"mine"


def test_cli_convert_ncnn_bad_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    param, binf = tmp_path / "x.param", tmp_path / "x.bin"
    param.write_text("not ncnn\n")
    binf.write_bytes(b"")
    rc = main(["convert-ncnn", str(param), str(binf), "-o", str(tmp_path / "o.safetensors")])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an ncnn .param file" in err[0]
    assert not (tmp_path / "o.safetensors").exists()
