"""Safe weight loading: refused pickles, official key layouts, round trips, DNI interpolation."""

from __future__ import annotations

import pathlib
import sys
import types
from pathlib import Path

import pytest
import torch

from resrgan.errors import WeightsError
from resrgan.nets import RRDBNet, SRVGGNetCompact
from resrgan.weights.load import (
    interpolate_state_dicts,
    load_model,
    load_state_dict,
    save_weights,
    select_state_dict,
)


def _rrdb(seed: int = 0, grow: int = 4) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=1, num_grow_ch=grow)


def _rrdb_g32() -> RRDBNet:  # spandrel assumes the official growth channels (32)
    return _rrdb(grow=32)


def _srvgg(seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Evil:
    """Unpickling this would create a file: the classic code-carrying pickle."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (self.target,))


def test_pickle_with_code_is_refused_and_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "x": _Evil(marker)}, bad)
    assert not marker.exists()
    with pytest.raises(WeightsError) as e:
        load_state_dict(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: refused to load: the file needs arbitrary code to unpickle")
    assert "convert it once to .safetensors" in msg
    assert "\n" not in msg
    assert not marker.exists()


def test_official_layout_prefers_params_ema(tmp_path: Path) -> None:
    ema, raw = _rrdb(1).state_dict(), _rrdb(2).state_dict()
    p = tmp_path / "official.pth"
    torch.save({"params_ema": ema, "params": raw}, p)
    assert _same(load_state_dict(p), dict(ema))
    assert _same(load_state_dict(p, key="params"), dict(raw))
    net, arch, kwargs = load_model(p)
    assert arch == "RRDBNet" and kwargs["num_block"] == 1 and kwargs["num_grow_ch"] == 4
    assert _same(net.state_dict(), dict(ema))
    assert not net.training


def test_params_only_and_bare_state_dict_load(tmp_path: Path) -> None:
    sd = _srvgg().state_dict()
    for name, obj in (("params.pth", {"params": sd}), ("bare.pth", sd)):
        torch.save(obj, tmp_path / name)
        net, arch, kwargs = load_model(tmp_path / name)
        assert arch == "SRVGGNetCompact" and kwargs["upscale"] == 2 and kwargs["num_conv"] == 2
        assert _same(net.state_dict(), dict(sd))


def test_module_prefix_is_stripped(tmp_path: Path) -> None:
    sd = _rrdb().state_dict()
    p = tmp_path / "ddp.pth"
    torch.save({"params": {f"module.{k}": v for k, v in sd.items()}}, p)
    assert _same(load_state_dict(p), dict(sd))


def test_missing_key_is_named(tmp_path: Path) -> None:
    p = tmp_path / "w.pth"
    torch.save({"params": _srvgg().state_dict()}, p)
    with pytest.raises(WeightsError, match=r"no 'params_ema' entry \(has: params\)"):
        load_state_dict(p, key="params_ema")


def test_safetensors_round_trip_keeps_values_and_metadata(tmp_path: Path) -> None:
    from safetensors import safe_open

    sd = _rrdb().state_dict()
    p = save_weights(tmp_path / "w.safetensors", sd, metadata={"arch": "RRDBNet"})
    assert _same(load_state_dict(p), dict(sd))
    with safe_open(str(p), framework="pt") as f:
        assert f.metadata() == {"arch": "RRDBNet"}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_saved_pth_loads_in_plain_torch_strictly(tmp_path: Path) -> None:
    sd = _rrdb(3).state_dict()
    p = save_weights(tmp_path / "w.pth", sd)
    raw = torch.load(p, map_location="cpu", weights_only=True)
    assert list(raw) == ["params_ema"]
    fresh = RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    fresh.load_state_dict(raw["params_ema"], strict=True)
    assert _same(fresh.state_dict(), dict(sd))


@pytest.mark.parametrize("name", ["bad.pth", "bad.safetensors"])
def test_corrupt_file_names_it(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"\x80\x02this is not a weights file" * 10)
    with pytest.raises(WeightsError) as e:
        load_state_dict(p)
    assert str(e.value).startswith(f"{p}: not a")
    assert "\n" not in str(e.value)


def test_missing_file_names_it(tmp_path: Path) -> None:
    p = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth: no such weights file"):
        load_state_dict(p)


def test_non_tensor_entry_is_refused() -> None:
    with pytest.raises(WeightsError, match="x.pth: entry 'a' is not a tensor"):
        select_state_dict({"a": 1}, source="x.pth")


def test_unknown_architecture_names_file_and_keys(tmp_path: Path) -> None:
    p = save_weights(tmp_path / "odd.safetensors", {"foo.weight": torch.zeros(2, 2)})
    with pytest.raises(WeightsError) as e:
        load_model(p)
    assert str(p) in str(e.value) and "matches no known architecture" in str(e.value)
    assert "foo.weight" in str(e.value)


def test_interpolate_is_the_weighted_sum() -> None:
    a, b = _srvgg(1).state_dict(), _srvgg(2).state_dict()
    mixed = interpolate_state_dicts(a, b, 0.3, 0.7)
    for k in a:
        assert torch.allclose(mixed[k], 0.3 * a[k] + 0.7 * b[k], atol=1e-7), k
    assert _same(interpolate_state_dicts(a, b, 1.0, 0.0), dict(a))
    assert _same(interpolate_state_dicts(a, b, 0.0, 1.0), dict(b))


def test_interpolate_keeps_half_dtype() -> None:
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.float16)}
    b = {"w": torch.tensor([3.0, 4.0], dtype=torch.float16)}
    out = interpolate_state_dicts(a, b, 0.5, 0.5)
    assert out["w"].dtype == torch.float16 and out["w"].tolist() == [2.0, 3.0]


def test_interpolate_refuses_different_architectures() -> None:
    a, b = _srvgg().state_dict(), _rrdb().state_dict()
    with pytest.raises(WeightsError, match="cannot interpolate x and y: key '.*' is only in"):
        interpolate_state_dicts(a, b, 0.5, 0.5, names=("x", "y"))
    c = dict(a)
    c["body.0.bias"] = torch.zeros(9)
    with pytest.raises(WeightsError, match=r"'body.0.bias' has shape \(8,\) vs \(9,\)"):
        interpolate_state_dicts(a, c, 0.5, 0.5)


@pytest.fixture
def spandrel_module(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """spandrel without torchvision: importing spandrel pulls torchvision for unrelated archs
    (LaMa, RestoreFormer), so stub those names; ESRGAN and Compact never use them."""
    pytest.importorskip("einops")
    import importlib.util

    if importlib.util.find_spec("spandrel") is None:
        pytest.skip("spandrel is not installed")
    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    fn.InterpolationMode = object  # type: ignore[attr-defined]
    fn.rotate = fn.normalize = None  # type: ignore[attr-defined]
    tv.transforms, tr.functional = tr, fn  # type: ignore[attr-defined]
    for name, mod in (("torchvision", tv), ("torchvision.transforms", tr),
                      ("torchvision.transforms.functional", fn)):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, mod)
    import spandrel

    yield spandrel
    for name in [m for m in sys.modules if m == "spandrel" or m.startswith("spandrel.")]:
        del sys.modules[name]


@pytest.mark.parametrize("make", [_rrdb_g32, _srvgg])
def test_saved_files_load_in_spandrel(spandrel_module, tmp_path: Path, make) -> None:  # type: ignore
    net = make().eval()
    p = save_weights(tmp_path / "w.safetensors", net.state_dict())
    desc = spandrel_module.ModelLoader().load_from_file(str(p))
    assert desc.architecture.id == ("ESRGAN" if isinstance(net, RRDBNet) else "Compact")
    assert desc.scale == (4 if isinstance(net, RRDBNet) else 2)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = desc.model.eval()(x)
        if isinstance(net, RRDBNet):  # ours runs Winograd dense blocks on the CPU by default
            torch.testing.assert_close(net(x), theirs, rtol=0, atol=1e-5)
            net.winograd = False
        assert torch.equal(theirs, net(x))


def test_saved_weights_get_normal_file_permissions(tmp_path: Path) -> None:
    """Written via a temp file, but not left 0600 like a bare mkstemp: readable as any file."""
    import os

    from resrgan.nets import SRVGGNetCompact
    from resrgan.weights.load import save_weights

    umask = os.umask(0o022)
    try:
        p = save_weights(
            tmp_path / "w.safetensors", SRVGGNetCompact(num_feat=4, num_conv=1).state_dict()
        )
    finally:
        os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o644
