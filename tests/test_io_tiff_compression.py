"""TIFFs as Photoshop, Lightroom and GIMP save them: 8/16-bit, gray/RGB/RGBA, every common
compression. They read back exactly (JPEG: close), and a folder of them upscales with depth and
alpha kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from resrgan.cli import main
from resrgan.errors import ImageReadError
from resrgan.io.images import read_image
from resrgan.nets import SRVGGNetCompact
from resrgan.weights.load import save_weights

LOSSLESS = ("none", "lzw", "zlib", "zstd", "packbits", "lzma")


def _pixels(dtype: type, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:24, 0:20]
    base = (np.sin(0.3 * x)[..., None] * np.cos(0.2 * y)[..., None] + 1) / 2
    img = base * np.linspace(0.3, 1.0, channels) + 0.05 * rng.random((24, 20, channels))
    img = (np.clip(img, 0, 1) * top).astype(dtype)
    return img[..., 0] if channels == 1 else img


def _save(path: Path, img: np.ndarray, compression: str) -> Path:
    photometric = "minisblack" if img.ndim == 2 else "rgb"
    extra = ["unassalpha"] if img.ndim == 3 and img.shape[2] == 4 else None
    comp = None if compression == "none" else compression
    tifffile.imwrite(path, img, compression=comp, photometric=photometric, extrasamples=extra)
    return path


@pytest.mark.parametrize("compression", LOSSLESS)
@pytest.mark.parametrize(
    ("dtype", "channels"),
    [(np.uint8, 1), (np.uint8, 3), (np.uint8, 4), (np.uint16, 3), (np.uint16, 4), (np.uint16, 1)],
)
def test_a_lossless_tiff_reads_back_exactly(
    tmp_path: Path, compression: str, dtype: type, channels: int
) -> None:
    img = _pixels(dtype, channels)
    data = read_image(_save(tmp_path / "x.tif", img, compression))
    assert data.format == "TIFF"
    assert data.pixels.dtype == dtype
    np.testing.assert_array_equal(data.pixels, img)


def test_a_jpeg_compressed_tiff_reads_close(tmp_path: Path) -> None:
    img = _pixels(np.uint8, 3)
    data = read_image(_save(tmp_path / "j.tif", img, "jpeg"))
    assert data.pixels.shape == img.shape and data.pixels.dtype == np.uint8
    assert np.abs(data.pixels.astype(int) - img).mean() < 4


def test_a_missing_codec_is_named_not_called_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "lzw16.tif", _pixels(np.uint16, 3), "lzw")

    def no_codec(self: object, *a: object, **k: object) -> np.ndarray:
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_codec)
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert str(e.value) == (
        f"{path}: this TIFF is LZW-compressed, which needs the imagecodecs package "
        "(pip install imagecodecs)"
    )


def test_a_folder_of_compressed_tiffs_upscales_keeping_depth_and_alpha(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4, act_type="prelu").eval()
    weights = save_weights(tmp_path / "tiny.safetensors", net.state_dict())
    src = tmp_path / "in"
    src.mkdir()
    cases = {}
    for comp in ("lzw", "zlib", "zstd", "jpeg"):
        for dtype, ch in ((np.uint8, 3), (np.uint16, 3), (np.uint16, 4), (np.uint8, 4)):
            if comp == "jpeg" and (dtype is np.uint16 or ch == 4):
                continue
            name = f"{comp}_{np.dtype(dtype).itemsize * 8}_{ch}.tif"
            cases[name] = (dtype, ch)
            _save(src / name, _pixels(dtype, ch), comp)
    rc = main(
        ["upscale", "-i", str(src), "-o", str(tmp_path / "out"), "--model_path", str(weights)]
    )
    assert rc == 0
    for name, (dtype, ch) in cases.items():
        out = read_image(tmp_path / "out" / name.replace(".tif", "_out.tif")).pixels
        assert out.shape == (96, 80, ch) and out.dtype == dtype, name
        if ch == 4:  # the alpha plane went through the network and kept its detail
            assert out[..., 3].std() > 0, name
