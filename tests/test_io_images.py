"""resrgan.io.images: reading every awkward case of tests/_corpus.py, writing, atomicity, limits."""

from __future__ import annotations

import errno
import io
import logging
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps

import _corpus as corpus
from resrgan.errors import ImageReadError, ImageWriteError, UsageError
from resrgan.io import images
from resrgan.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageData,
    apply_orientation,
    check_writable,
    is_image_path,
    output_extension,
    read_image,
    write_image,
)

LAYOUTS = [(), (2,), (3,), (4,)]  # trailing shape: gray, gray+alpha, RGB, RGBA


def _random(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(0, int(info.max) + 1, shape, dtype=dtype)


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if images._TMP_MARK in p.name)


# --- reading: good files --------------------------------------------------------------------------


def test_gray16_png_stays_uint16_even_with_small_values(tmp_path: Path) -> None:
    p = corpus.make_gray16_png(tmp_path)
    img = read_image(p)
    assert img.pixels.dtype == np.uint16 and img.mode == "L" and img.format == "PNG"
    np.testing.assert_array_equal(img.pixels, corpus.gray16_pixels())
    assert int(img.pixels[0].max()) <= 256  # would be "8-bit" by the original's max>256 rule


def test_rgba16_png_is_rgb_order_and_exact(tmp_path: Path) -> None:
    img = read_image(corpus.make_rgba16_png(tmp_path))
    assert img.mode == "RGBA" and img.has_alpha and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, corpus.rgba16_pixels())


def test_gray_alpha16_png_keeps_two_channels(tmp_path: Path) -> None:
    # PNG colour type 4 at 16 bits, built by hand (neither Pillow nor OpenCV writes it)
    ga = _random((7, 5, 2), np.uint16, seed=9)
    raw = b"".join(b"\x00" + ga[i].astype(">u2").tobytes() for i in range(ga.shape[0]))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + corpus._png_chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 7, 16, 4, 0, 0, 0))
        + corpus._png_chunk(b"IDAT", zlib.compress(raw))
        + corpus._png_chunk(b"IEND", b"")
    )
    p = tmp_path / "ga16.png"
    p.write_bytes(data)
    img = read_image(p)
    assert img.mode == "LA" and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, ga)


def test_palette_png_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    img = read_image(corpus.make_palette_png_transparent(tmp_path))
    assert img.mode == "RGBA" and img.pixels.dtype == np.uint8
    idx = np.arange(12 * 16).reshape(12, 16) % 4
    np.testing.assert_array_equal(img.pixels[..., 3], np.where(idx == 0, 0, 255))
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    np.testing.assert_array_equal(img.pixels[..., :3], palette[idx])


def test_palette_png_without_transparency_becomes_rgb(tmp_path: Path) -> None:
    img = read_image(corpus.make_palette_png_opaque(tmp_path))
    assert img.mode == "RGB"
    np.testing.assert_array_equal(img.pixels[0, 1], [255, 0, 0])


@pytest.mark.parametrize("case", ["cmyk_jpeg", "ycck_jpeg"])
def test_cmyk_and_ycck_jpeg_give_the_right_rgb(tmp_path: Path, case: str) -> None:
    p = corpus.write_corpus(tmp_path, {case})[case]
    img = read_image(p)
    _, expected = corpus.cmyk_patches()
    assert img.mode == "RGB" and img.format == "JPEG"
    # white stays white (an ignored Adobe inversion would make it black), cyan is (0, 255, 255)
    assert np.abs(img.pixels.astype(int) - expected).max() <= 2
    assert img.icc_profile is None  # no CMYK profile is carried onto RGB pixels


def test_cmyk_jpeg_with_an_unusable_profile_falls_back_to_the_formula(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:

    # a CMYK profile is not shipped with Pillow; an sRGB profile is refused for CMYK input, which
    # must fall back to the formula with a warning rather than fail
    cmyk, expected = corpus.cmyk_patches()
    p = tmp_path / "cmyk_badprofile.jpg"
    Image.fromarray(cmyk, mode="CMYK").save(p, quality=100, icc_profile=corpus.srgb_icc())
    with caplog.at_level(logging.WARNING, logger="resrgan.io.images"):
        img = read_image(p)
    assert np.abs(img.pixels.astype(int) - expected).max() <= 2
    assert img.icc_profile is None
    assert any(
        m.startswith(f"{p}: CMYK profile unusable (") and m.endswith("with the plain formula")
        for m in caplog.messages
    )


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg_is_upright(tmp_path: Path, orientation: int) -> None:
    img = read_image(corpus.make_exif_jpeg(tmp_path, orientation))
    want = corpus.quadrants()
    assert img.pixels.shape == want.shape  # 48x32 upright, stored as 32x48
    # compare quadrant centres (JPEG is lossy)
    for y, x in [(12, 8), (12, 24), (36, 8), (36, 24)]:
        assert np.abs(img.pixels[y, x].astype(int) - want[y, x]).max() <= 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_orientations_match_pillow_exif_transpose(
    tmp_path: Path, orientation: int
) -> None:
    p = corpus.make_exif_png(tmp_path, orientation)
    img = read_image(p)
    with Image.open(p) as im:
        want = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(img.pixels, want)
    assert img.pixels.flags.c_contiguous


@pytest.mark.parametrize("orientation", [3, 6])
def test_returned_exif_has_orientation_1_and_everything_else_kept(
    tmp_path: Path, orientation: int
) -> None:
    p = corpus.make_exif_jpeg(tmp_path, orientation)
    with Image.open(p) as im:
        original = im.info["exif"]
    img = read_image(p)
    assert img.exif is not None and len(img.exif) == len(original)
    assert sum(a != b for a, b in zip(img.exif, original, strict=True)) == 1  # one byte: 3/6 -> 1
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[0x0112] == 1
    assert exif[0x010F] == "resrgan-test-camera"
    assert exif.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"


@pytest.mark.parametrize("endian", ["<", ">"])
def test_orientation_reset_in_little_and_big_endian_exif(endian: str) -> None:
    """Hand-made IFD0, three entries, Orientation in the middle; cameras write both byte orders."""
    order = b"II" if endian == "<" else b"MM"
    entries = [
        (0x010F, 2, 4, b"Cam\x00"),
        (0x0112, 3, 1, struct.pack(endian + "HH", 8, 0)),
        (0x0131, 2, 4, b"SW1\x00"),
    ]
    ifd = struct.pack(endian + "H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack(endian + "HHI", tag, typ, count) + value
    tiff = order + struct.pack(endian + "HI", 42, 8) + ifd + struct.pack(endian + "I", 0)
    exif = b"Exif\x00\x00" + tiff
    patched, orientation = images._exif_orientation_reset(exif)
    assert orientation == 8
    assert len(patched) == len(exif)
    diff = [i for i in range(len(exif)) if patched[i] != exif[i]]
    assert diff == [6 + 8 + 2 + 12 + 8 + (0 if endian == "<" else 1)]
    reread = Image.Exif()
    reread.load(patched)
    assert reread[0x0112] == 1 and reread[0x010F] == "Cam" and reread[0x0131] == "SW1"
    assert images._exif_orientation_reset(b"Exif\x00\x00garbage") == (b"Exif\x00\x00garbage", 1)


def test_jpeg_icc_profile_is_returned_byte_exact(tmp_path: Path) -> None:
    img = read_image(corpus.make_jpeg_icc(tmp_path))
    assert img.icc_profile == corpus.srgb_icc()


@pytest.mark.parametrize("case", ["animated_gif", "animated_webp", "animated_png"])
def test_animated_files_give_the_first_frame_and_warn(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = corpus.write_corpus(tmp_path, {case})[case]
    with caplog.at_level(logging.WARNING, logger="resrgan.io.images"):
        img = read_image(p)
    assert img.pixels.shape == (12, 20, 3)
    assert np.abs(img.pixels.astype(int) - [200, 10, 10]).max() <= 3  # frame 0 is red
    fmt = {"animated_gif": "GIF", "animated_webp": "WEBP", "animated_png": "PNG"}[case]
    assert f"{p}: {fmt} with several frames; only the first one is used" in caplog.messages


def test_unicode_and_spaces_in_the_name(tmp_path: Path) -> None:
    p = corpus.make_unicode_name(tmp_path)
    assert " " in p.name and not p.name.isascii()
    img = read_image(p)
    np.testing.assert_array_equal(img.pixels, corpus.gray16_pixels())
    out = write_image(tmp_path / "sortie – été.png", img.pixels)
    np.testing.assert_array_equal(read_image(out).pixels, img.pixels)


def test_one_pixel_image(tmp_path: Path) -> None:
    img = read_image(corpus.make_1x1(tmp_path))
    np.testing.assert_array_equal(img.pixels, [[[10, 20, 30]]])


@pytest.mark.parametrize(
    ("case", "fmt", "mode", "dtype"),
    [
        ("progressive_jpeg", "JPEG", "RGB", np.uint8),
        ("webp_alpha", "WEBP", "RGBA", np.uint8),
        ("tiff16_rgb", "TIFF", "RGB", np.uint16),
        ("bmp", "BMP", "RGB", np.uint8),
        ("jpeg_named_png", "JPEG", "RGB", np.uint8),
    ],
)
def test_other_good_files(tmp_path: Path, case: str, fmt: str, mode: str, dtype: type) -> None:
    img = read_image(corpus.write_corpus(tmp_path, {case})[case])
    assert (img.format, img.mode, img.pixels.dtype) == (fmt, mode, np.dtype(dtype))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_banded_conversion_from_pillow_is_exact(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _random((37, 11, *{"L": (), "LA": (2,), "RGB": (3,), "RGBA": (4,)}[mode]), np.uint8)
    Image.fromarray(a).save(tmp_path / "x.png")
    # a budget of 2 rows forces 19 bands (the last one 1 row) instead of one
    monkeypatch.setattr(images, "_TO_ARRAY_BAND_BYTES", 2 * a[0].size)
    img = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(img.pixels, a)
    assert img.pixels.flags.writeable


def test_png_transparency_keys_become_alpha(tmp_path: Path) -> None:
    gray = np.array([[0, 100], [200, 50]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "l.png", transparency=100)
    img = read_image(tmp_path / "l.png")
    assert img.mode == "LA"
    np.testing.assert_array_equal(img.pixels[..., 0], gray)
    np.testing.assert_array_equal(img.pixels[..., 1], [[255, 0], [255, 255]])
    rgb = np.array([[[0, 1, 2], [3, 4, 5]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(3, 4, 5))
    img = read_image(tmp_path / "rgb.png")
    assert img.mode == "RGBA"
    np.testing.assert_array_equal(img.pixels[..., 3], [[255, 0]])


def test_one_bit_png_and_8bit_gray_alpha(tmp_path: Path) -> None:
    bits = np.array([[0, 255, 255], [255, 0, 0]], np.uint8)
    Image.fromarray(bits).convert("1").save(tmp_path / "bits.png")
    img = read_image(tmp_path / "bits.png")
    assert img.mode == "L" and img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(img.pixels, bits)
    # 2-bit gray by hand (IHDR bit depth 2): values 0..3 scale to 0, 85, 170, 255
    two = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    packed = [bytes([0, int(r[0] << 6 | r[1] << 4 | r[2] << 2 | r[3])]) for r in two]
    (tmp_path / "two.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + corpus._png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 2, 0, 0, 0, 0))
        + corpus._png_chunk(b"IDAT", zlib.compress(b"".join(packed)))
        + corpus._png_chunk(b"IEND", b"")
    )
    np.testing.assert_array_equal(read_image(tmp_path / "two.png").pixels, two * 85)
    la = _random((3, 4, 2), np.uint8)
    Image.fromarray(la).save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png").pixels, la)


@pytest.mark.parametrize(
    "case",
    [
        "one_pixel",
        "gray16",
        "rgba16",
        "palette_trns",
        "cmyk_jpeg",
        "exif6_jpeg",
        "webp_alpha",
        "tiff16_rgb",
        "bmp",
        "animated_gif",
    ],
)
def test_returned_pixels_are_writable_and_contiguous(tmp_path: Path, case: str) -> None:
    img = read_image(corpus.write_corpus(tmp_path, {case})[case])
    assert img.pixels.flags.writeable and img.pixels.flags.c_contiguous
    img.pixels[0, 0] = 0  # callers may work in place


@pytest.mark.parametrize(
    ("trailing", "dtype"), [((3,), np.uint8), ((3,), np.uint16), ((2,), np.uint16)]
)
def test_tiff_orientation_tag_is_applied(
    tmp_path: Path, trailing: tuple[int, ...], dtype: type
) -> None:
    """8-bit (Pillow), 16-bit RGB (tifffile) and 16-bit gray+alpha (Pillow cannot open it)."""
    upright = _random((5, 8, *trailing), dtype, seed=12)
    stored = np.rot90(upright, 1)  # orientation 6 means: rotate 90 degrees clockwise to view
    p = tmp_path / "o.tif"
    extra = {"extrasamples": ("unassalpha",)} if trailing == (2,) else {}
    tifffile.imwrite(
        p,
        stored,
        photometric="rgb" if trailing == (3,) else "minisblack",
        extratags=[(274, "H", 1, 6, True)],
        **extra,
    )
    np.testing.assert_array_equal(read_image(p).pixels, upright)


def test_multipage_tiff_gives_the_first_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pages = _random((3, 4, 5), np.uint8)
    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as tw:
        for page in pages:
            tw.write(page, photometric="minisblack")
    with caplog.at_level(logging.WARNING, logger="resrgan.io.images"):
        img = read_image(p)
    np.testing.assert_array_equal(img.pixels, pages[0])
    assert f"{p}: TIFF with several frames; only the first one is used" in caplog.messages


def test_whole_good_corpus_reads(tmp_path: Path) -> None:
    for name, p in corpus.write_corpus(tmp_path, corpus.GOOD).items():
        img = read_image(p)
        assert img.pixels.dtype in (np.uint8, np.uint16), name
        assert img.path == p


def test_real_16bit_rgba_input_matches_opencv(real_lr_dir: Path) -> None:
    p = real_lr_dir / "tree_alpha_16bit.png"
    img = read_image(p)
    ref = cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert img.mode == "RGBA" and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, ref)


def test_real_gray_progressive_jpeg(real_lr_dir: Path) -> None:
    img = read_image(real_lr_dir / "wolf_gray.jpg")
    assert img.mode == "L" and img.pixels.shape == (236, 236)


# --- reading: refusals ----------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    p = corpus.make_zero_byte(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert _one_line(e) == f"{p}: empty file (0 bytes)"


def test_text_file_named_png(tmp_path: Path) -> None:
    p = corpus.make_text_as_png(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert _one_line(e) == f"{p}: not an image: the file starts with text 'Hello, this is n'"


def test_unknown_binary(tmp_path: Path) -> None:
    p = corpus.make_unknown_binary(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert _one_line(e) == (
        f"{p}: unknown image format (first bytes c8 c9 ca cb cc cd ce cf); "
        "supported: PNG, JPEG, WebP, TIFF, BMP, GIF"
    )


@pytest.mark.parametrize(("case", "fmt"), [("truncated_png", "PNG"), ("truncated_jpeg", "JPEG")])
def test_truncated_files(tmp_path: Path, case: str, fmt: str) -> None:
    p = corpus.write_corpus(tmp_path, {case})[case]
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    msg = _one_line(e)
    assert msg.startswith(f"{p}: cannot decode the {fmt} data (")
    assert "truncated" in msg
    assert msg.endswith("; the file is damaged or incomplete")


def test_truncated_16bit_png(tmp_path: Path) -> None:
    p = corpus.make_truncated_png16(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert (
        _one_line(e) == f"{p}: cannot decode the 16-bit PNG data; the file is damaged or incomplete"
    )


def test_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    p = corpus.make_png_bomb(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert _one_line(e) == (
        f"{p}: the header claims 100000x100000 = 10000000000 pixels, over the limit of "
        f"{DEFAULT_MAX_PIXELS}; if you trust this file, raise the limit (RESRGAN_MAX_PIXELS or "
        "max_pixels)"
    )


def test_max_pixels_argument_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = corpus.make_bmp(tmp_path)  # 32x48 = 1536 pixels
    assert read_image(p, max_pixels=1536).pixels.shape == (48, 32, 3)
    with pytest.raises(ImageReadError, match=r"32x48 = 1536 pixels, over the limit of 1535;"):
        read_image(p, max_pixels=1535)
    monkeypatch.setenv("RESRGAN_MAX_PIXELS", "1000")
    with pytest.raises(ImageReadError, match=r"over the limit of 1000;"):
        read_image(p)
    assert read_image(p, max_pixels=None).pixels.shape == (48, 32, 3)  # explicit wins
    monkeypatch.setenv("RESRGAN_MAX_PIXELS", "lots")
    with pytest.raises(UsageError) as e:
        read_image(p)
    assert str(e.value) == (
        f"RESRGAN_MAX_PIXELS='lots' is not a positive integer; set it to a pixel count such as "
        f"{DEFAULT_MAX_PIXELS} or unset it"
    )


def test_bomb_beyond_pillows_own_limit_is_ours_to_judge(tmp_path: Path) -> None:
    # 20000x20000 = 4e8 > 2 * Pillow's MAX_IMAGE_PIXELS: Pillow alone would raise
    # DecompressionBombError at open; with max_pixels above it we reach the decode step (and fail
    # there: the file has no data)
    p = corpus.make_png_bomb(tmp_path, side=20000)
    with pytest.raises(ImageReadError) as e:
        read_image(p, max_pixels=10**9)
    assert "cannot decode the PNG data" in _one_line(e)
    assert Image.MAX_IMAGE_PIXELS is not None  # restored


def test_opencv_pixel_limit_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once; simulate its refusal of a 21x34 16-bit PNG
    p = corpus.make_gray16_png(tmp_path)
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "700")
    monkeypatch.setattr(cv2, "imdecode", lambda *args: None)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert _one_line(e) == (
        f"{p}: OpenCV refuses 34x21 = 714 pixels (its limit is 700); set "
        "OPENCV_IO_MAX_IMAGE_PIXELS=714 in the environment before starting"
    )


def test_unsupported_format(tmp_path: Path) -> None:
    p = corpus.make_ppm(tmp_path)
    with pytest.raises(ImageReadError) as e:
        read_image(p)
    assert _one_line(e) == (
        f"{p}: PPM images are not supported; convert it to PNG, JPEG, WebP, TIFF or BMP"
    )


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / "nope.png")
    assert _one_line(e) == f"{tmp_path / 'nope.png'}: no such file"
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path)
    assert _one_line(e) == f"{tmp_path}: is a folder, not an image file"


def test_whole_bad_corpus_is_refused_with_one_line_naming_the_file(tmp_path: Path) -> None:
    for name, p in corpus.write_corpus(tmp_path, corpus.BAD).items():
        with pytest.raises(ImageReadError) as e:
            read_image(p)
        assert _one_line(e).startswith(f"{p}: "), name


# --- orientation helper ---------------------------------------------------------------------------


@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    c=st.sampled_from([0, 3, 4]),
    orientation=st.integers(1, 8),
)
def test_apply_orientation_equals_pillow(h: int, w: int, c: int, orientation: int) -> None:
    shape = (h, w, c) if c else (h, w)
    a = _random(shape, np.uint8, seed=h * 100 + w * 10 + c)
    im = Image.fromarray(a)
    want = np.asarray(im if orientation == 1 else im.transpose(corpus.PIL_UPRIGHT[orientation]))
    np.testing.assert_array_equal(apply_orientation(a, orientation), want)


# --- writing: round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_lossless_round_trip_every_layout(
    tmp_path: Path, dtype: type, layout: tuple[int, ...], suffix: str
) -> None:
    a = _random((23, 31, *layout), dtype, seed=len(layout))
    p = write_image(tmp_path / f"x{suffix}", a)
    img = read_image(p)
    assert img.pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.pixels, a)


@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    layout=st.sampled_from(LAYOUTS),
    sixteen=st.booleans(),
    suffix=st.sampled_from([".png", ".tif"]),
)
def test_lossless_round_trip_any_small_shape(
    h: int, w: int, layout: tuple[int, ...], sixteen: bool, suffix: str
) -> None:
    import tempfile

    a = _random((h, w, *layout), np.uint16 if sixteen else np.uint8, seed=h * 10 + w)
    with tempfile.TemporaryDirectory() as d:
        img = read_image(write_image(Path(d) / f"x{suffix}", a))
    assert img.pixels.dtype == a.dtype
    np.testing.assert_array_equal(img.pixels, a)


def test_concurrent_reads_match_sequential_reads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = list(corpus.write_corpus(tmp_path, corpus.GOOD).values()) * 3
    sequential = [read_image(p).pixels for p in paths]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda p: read_image(p).pixels, paths))
    for a, b in zip(sequential, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_gif_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [2, 0]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([9, 9, 9, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
    im.save(tmp_path / "t.gif", transparency=0)
    img = read_image(tmp_path / "t.gif")
    assert img.mode == "RGBA" and img.format == "GIF"
    np.testing.assert_array_equal(img.pixels[..., 3], [[0, 255], [255, 0]])
    np.testing.assert_array_equal(img.pixels[0, 1, :3], [255, 0, 0])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_our_png_decodes_identically_in_pillow_and_opencv(
    tmp_path: Path, layout: tuple[int, ...]
) -> None:
    for dtype in (np.uint8, np.uint16):
        a = _random((9, 13, *layout), dtype, seed=3)
        p = write_image(tmp_path / "x.png", a)
        cv = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if layout == (3,):
            cv = cv2.cvtColor(cv, cv2.COLOR_BGR2RGB)
        elif layout == (4,):
            cv = cv2.cvtColor(cv, cv2.COLOR_BGRA2RGBA)
        elif layout == (2,):  # OpenCV expands gray+alpha to BGRA
            cv = cv[..., [0, 3]]
        np.testing.assert_array_equal(cv, a)
        if dtype == np.uint8:
            with Image.open(p) as im:
                np.testing.assert_array_equal(np.asarray(im), a)


@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    layout=st.sampled_from(LAYOUTS),
    sixteen=st.booleans(),
    smooth=st.booleans(),
)
def test_png_encoder_band_boundaries_and_all_filters(
    h: int, w: int, layout: tuple[int, ...], sixteen: bool, smooth: bool
) -> None:
    """Tiny bands (3 rows) exercise the row carried between bands; smooth data uses filters 1-4."""
    import tempfile

    dtype = np.uint16 if sixteen else np.uint8
    a = _random((h, w, *layout), dtype, seed=h * 41 + w)
    if smooth:
        yy, xx = np.mgrid[0:h, 0:w]
        ramp = (yy * 3 + xx * 5).astype(dtype)
        a = (ramp[..., None] + np.arange(max(1, len(layout) and layout[0]), dtype=dtype)).astype(
            dtype
        )
        a = a[..., 0] if not layout else a
    old = images._PNG_BAND_BYTES
    images._PNG_BAND_BYTES = 3 * w * (layout[0] if layout else 1) * (2 if sixteen else 1)
    try:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "x.png"
            with open(p, "wb") as fh:  # our own encoder (write_image uses it for gray+alpha only)
                images._write_png(fh, a, icc_profile=None, exif=None)
            cv = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    finally:
        images._PNG_BAND_BYTES = old
    if layout == (2,):
        cv = cv[..., [0, 3]]
    elif layout == (3,):
        cv = cv[..., ::-1]
    elif layout == (4,):
        cv = cv[..., [2, 1, 0, 3]]
    np.testing.assert_array_equal(cv, a)


@pytest.mark.parametrize("kind", range(5))
@pytest.mark.parametrize(("layout", "dtype"), [((), np.uint8), ((3,), np.uint8), ((4,), np.uint16)])
def test_each_png_filter_type_alone_decodes_exactly(
    tmp_path: Path, kind: int, layout: tuple[int, ...], dtype: type
) -> None:
    """Rows forced to one filter (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth), decoded by OpenCV."""
    a = _random((37, 29, *layout), dtype, seed=kind)
    a[5:9] = a[4]  # some repeated rows and flat areas as well as noise
    a[:, 3:7] = 17
    old = images._PNG_BAND_BYTES
    images._PNG_BAND_BYTES = 1  # one row per band: the row above always comes from the last band
    try:
        p = tmp_path / f"f{kind}.png"
        with open(p, "wb") as fh:
            images._write_png(fh, a, icc_profile=None, exif=None, only_filter=kind)
    finally:
        images._PNG_BAND_BYTES = old
    cv = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if layout == (3,):
        cv = cv[..., ::-1]
    elif layout == (4,):
        cv = cv[..., [2, 1, 0, 3]]
    np.testing.assert_array_equal(cv, a)
    raw = zlib.decompress(b"".join(_png_chunks(p.read_bytes(), b"IDAT")))
    row = 1 + a[0].size * a.itemsize
    assert set(raw[::row]) == {kind}


def _png_chunks(data: bytes, kind: bytes) -> list[bytes]:
    out, at = [], 8
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        if data[at + 4 : at + 8] == kind:
            out.append(data[at + 8 : at + 8 + n])
        at += 12 + n
    return out


def _own_png(p: Path, a: np.ndarray, **meta: bytes | None) -> Path:
    with open(p, "wb") as fh:
        images._write_png(fh, a, icc_profile=meta.get("icc_profile"), exif=meta.get("exif"))
    return p


def test_adaptive_filtering_picks_several_filter_types(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    a = np.zeros((64, 64, 2), np.uint8)
    a[:16] = (xx * 3)[:16, :, None]  # horizontal ramp, rows alike: Up
    a[16:32] = (xx * 3 + yy * yy)[16:32, :, None]  # rows differ by a constant: Sub
    a[32:] = _random((32, 64, 2), np.uint8)  # noise: None
    p = write_image(tmp_path / "mix.png", a)  # gray+alpha: our encoder
    raw = zlib.decompress(b"".join(_png_chunks(p.read_bytes(), b"IDAT")))
    kinds = set(raw[:: 1 + 64 * 2])
    assert len(kinds) >= 3 and kinds <= {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(read_image(p).pixels, a)


def test_png_filters_are_used_on_smooth_images(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    a = np.stack([yy * 2, xx * 3, yy + xx], -1).astype(np.uint8)
    p = _own_png(tmp_path / "ramp.png", a)
    rows = np.concatenate([np.zeros((64, 1), np.uint8), a.reshape(64, -1)], axis=1)  # filter 0
    comp = zlib.compressobj(images._PNG_LEVEL, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    unfiltered = len(comp.compress(rows.tobytes()) + comp.flush())
    assert p.stat().st_size < unfiltered / 3
    np.testing.assert_array_equal(read_image(p).pixels, a)


@pytest.mark.parametrize("layout", [(3,), (4,)])
def test_webp_lossless_round_trip(tmp_path: Path, layout: tuple[int, ...]) -> None:
    a = _random((17, 21, *layout), np.uint8, seed=5)
    p = write_image(tmp_path / "x.webp", a, quality=100)
    np.testing.assert_array_equal(read_image(p).pixels, a)


@pytest.mark.parametrize(("layout", "want"), [((), (3,)), ((2,), (4,))])
def test_webp_writes_gray_as_rgb(tmp_path: Path, layout: tuple[int, ...], want: tuple[int]) -> None:
    a = _random((6, 7, *layout), np.uint8, seed=6)
    out = read_image(write_image(tmp_path / "g.webp", a, quality=100)).pixels
    assert out.shape == (6, 7, *want)
    gray = a if not layout else a[..., 0]
    for ch in range(3):
        np.testing.assert_array_equal(out[..., ch], gray)
    if layout:
        np.testing.assert_array_equal(out[..., 3], a[..., 1])


@pytest.mark.parametrize("layout", [(), (3,)])
def test_bmp_round_trip(tmp_path: Path, layout: tuple[int, ...]) -> None:
    a = _random((5, 7, *layout), np.uint8, seed=7)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "x.bmp", a)).pixels, a)


def test_jpeg_quality_is_used_and_close(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    a = np.stack([yy * 4, xx * 4, (yy + xx) * 2], -1).astype(np.uint8)
    hi = write_image(tmp_path / "hi.jpg", a, quality=95)
    lo = write_image(tmp_path / "lo.jpg", a, quality=20)
    assert lo.stat().st_size < hi.stat().st_size
    err = read_image(hi).pixels.astype(float) - a
    psnr = 10 * np.log10(255**2 / np.mean(err**2))
    assert psnr > 38


@pytest.mark.parametrize("layout", LAYOUTS)
def test_own_png_encoder_carries_icc_and_exif(tmp_path: Path, layout: tuple[int, ...]) -> None:
    a = _random((6, 7, *layout), np.uint16, seed=13)
    exif = corpus.exif_bytes(1)
    p = _own_png(tmp_path / "own.png", a, icc_profile=corpus.srgb_icc(), exif=exif)
    img = read_image(p)
    np.testing.assert_array_equal(img.pixels, a)
    assert (img.icc_profile, img.exif) == (corpus.srgb_icc(), exif)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_is_carried(tmp_path: Path, suffix: str) -> None:
    icc = corpus.srgb_icc()
    a = _random((8, 8, 3), np.uint8)
    p = write_image(tmp_path / f"x{suffix}", a, icc_profile=icc)
    assert read_image(p).icc_profile == icc
    with Image.open(p) as im:  # what other programs see
        assert im.info.get("icc_profile") == icc


@pytest.mark.parametrize("layout", [(), (2,), (4,)])
def test_png_metadata_chunks_come_before_the_image_data(
    tmp_path: Path, layout: tuple[int, ...]
) -> None:
    a = _random((5, 5, *layout), np.uint8)
    p = write_image(tmp_path / "m.png", a, icc_profile=corpus.srgb_icc(), exif=corpus.exif_bytes(1))
    data = p.read_bytes()
    order, at = [], 8
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        order.append(data[at + 4 : at + 8])
        at += 12 + n
    assert order[:3] == [b"IHDR", b"iCCP", b"eXIf"] and order[-1] == b"IEND"
    assert b"IDAT" in order and order.count(b"iCCP") == 1
    np.testing.assert_array_equal(read_image(p).pixels, a)
    assert list(tmp_path.iterdir()) == [p]  # the side file of the splice is gone


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_exif_is_carried(tmp_path: Path, suffix: str) -> None:
    src = read_image(corpus.make_exif_jpeg(tmp_path, 6))
    assert src.exif is not None
    p = write_image(tmp_path / f"out{suffix}", src.pixels, exif=src.exif)
    back = read_image(p)
    assert back.exif == src.exif
    np.testing.assert_array_equal(back.pixels.shape, src.pixels.shape)  # no second rotation


def test_jpeg_icc_survives_a_full_read_write_read(tmp_path: Path) -> None:
    src = read_image(corpus.make_jpeg_icc(tmp_path))
    p = write_image(tmp_path / "copy.jpg", src.pixels, icc_profile=src.icc_profile, exif=src.exif)
    assert read_image(p).icc_profile == src.icc_profile == corpus.srgb_icc()


def test_hwc1_is_written_as_gray(tmp_path: Path) -> None:
    a = _random((4, 5, 1), np.uint8)
    img = read_image(write_image(tmp_path / "x.png", a))
    np.testing.assert_array_equal(img.pixels, a[..., 0])


def test_non_contiguous_input_is_written_correctly(tmp_path: Path) -> None:
    a = _random((20, 30, 4), np.uint16)[::2, ::3, :3]
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "v.png", a)).pixels, a)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "v.tif", a)).pixels, a)


def test_writing_does_not_modify_the_input(tmp_path: Path) -> None:
    a = _random((10, 11, 3), np.uint8)
    before = a.copy()
    for suffix in (".png", ".jpg", ".webp", ".tif", ".bmp"):
        write_image(tmp_path / f"x{suffix}", a)
    np.testing.assert_array_equal(a, before)


# --- writing: atomicity ---------------------------------------------------------------------------


def test_encoder_error_leaves_no_temp_file_and_keeps_the_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def broken(fh: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        fh.write(b"partial data")
        raise ValueError("simulated encoder crash")

    monkeypatch.setattr(images, "_write_png_cv2", broken)
    with pytest.raises(ImageWriteError) as e:
        write_image(target, _random((4, 4, 3), np.uint8))
    assert _one_line(e) == f"{target}: the PNG encoder failed (simulated encoder crash)"
    assert target.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []


def test_keyboard_interrupt_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fh: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        fh.write(b"partial data")
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_write_tiff", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "out.tif", _random((4, 4), np.uint16))
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_the_metadata_splice_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_written(path: Path, img: np.ndarray) -> None:
        Path(path).write_bytes(b"\x89PNG\r\n\x1a\n partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_cv2_imwrite", half_written)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "x.png", _random((4, 4, 3), np.uint8), icc_profile=corpus.srgb_icc())
    assert list(tmp_path.iterdir()) == []


def test_opencv_refusal_falls_back_to_the_builtin_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuses(path: Path, img: np.ndarray) -> None:
        Path(path).write_bytes(b"junk")
        raise images._Cv2WriteFailed("OpenCV's PNG writer failed")

    monkeypatch.setattr(images, "_cv2_imwrite", refuses)
    a = _random((6, 5, 4), np.uint16)
    target = tmp_path / "x.png"
    with caplog.at_level(logging.WARNING, logger="resrgan.io.images"):
        write_image(target, a, exif=corpus.exif_bytes(1))
    img = read_image(target)
    np.testing.assert_array_equal(img.pixels, a)
    assert img.exif == corpus.exif_bytes(1)
    assert (
        f"{target}: OpenCV's PNG writer failed; using the built-in PNG encoder" in caplog.messages
    )
    assert list(tmp_path.iterdir()) == [target]


def test_disk_full_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fh: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(images, "_write_png_cv2", full)
    target = tmp_path / "out.png"
    with pytest.raises(ImageWriteError) as e:
        write_image(target, _random((4, 4, 3), np.uint8))
    assert _one_line(e) == (
        f"{target}: cannot write: the disk is full ({os.strerror(errno.ENOSPC)}); "
        "free space or write elsewhere"
    )
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_is_refused_before_work(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root ignores folder permissions (see the simulated test below)")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ImageWriteError) as e:
            write_image(folder / "x.png", _random((4, 4), np.uint8))
        assert (
            _one_line(e)
            == f"{folder / 'x.png'}: the folder {folder} is not writable (permission denied)"
        )
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_permission_error_when_creating_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(images, "open", denied, raising=False)
    target = tmp_path / "x.jpg"
    with pytest.raises(ImageWriteError) as e:
        write_image(target, _random((4, 4, 3), np.uint8))
    assert _one_line(e) == (
        f"{target}: cannot write: the folder {tmp_path} is not writable "
        f"({os.strerror(errno.EACCES)})"
    )
    assert list(tmp_path.iterdir()) == []


def test_successful_write_leaves_only_the_output(tmp_path: Path) -> None:
    for suffix in (".png", ".jpg", ".webp", ".tif", ".bmp"):
        write_image(tmp_path / f"x{suffix}", _random((4, 4, 3), np.uint8))
    assert _leftovers(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 5


KEEP = "to keep the depth"
SMALLER = "write .png or .tif, or use a smaller outscale"
ALPHA = "write .png (or .webp/.tif) to keep it"


# --- check_writable -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "h", "w", "c", "dtype", "message"),
    [
        (
            "x.jpg",
            10,
            10,
            3,
            np.uint16,
            "JPEG holds 8 bits per channel but this image is 16-bit; write .png or .tif " + KEEP,
        ),
        (
            "x.webp",
            10,
            10,
            4,
            np.uint16,
            "WEBP holds 8 bits per channel but this image is 16-bit; write .png or .tif " + KEEP,
        ),
        (
            "x.bmp",
            10,
            10,
            1,
            np.uint16,
            "BMP holds 8 bits per channel but this image is 16-bit; write .png or .tif " + KEEP,
        ),
        (
            "x.jpg",
            65536,
            10,
            3,
            np.uint8,
            "JPEG allows at most 65535 px per side but the image is 10x65536; " + SMALLER,
        ),
        (
            "x.webp",
            10,
            16384,
            3,
            np.uint8,
            "WEBP allows at most 16383 px per side but the image is 16384x10; " + SMALLER,
        ),
        (
            "x.jpg",
            10,
            10,
            4,
            np.uint8,
            "JPEG has no alpha channel and this image has one; " + ALPHA,
        ),
        (
            "x.bmp",
            10,
            10,
            2,
            np.uint8,
            "BMP has no alpha channel and this image has one; " + ALPHA,
        ),
        (
            "x.xyz",
            10,
            10,
            3,
            np.uint8,
            "unknown image suffix .xyz; use .png, .jpg, .webp, .tif or .bmp",
        ),
        (
            "x.gif",
            10,
            10,
            3,
            np.uint8,
            "unknown image suffix .gif; use .png, .jpg, .webp, .tif or .bmp",
        ),
        (
            "x.png",
            10,
            10,
            3,
            np.float32,
            "pixels of dtype float32 cannot be written; convert them to uint8 or uint16 first",
        ),
        ("x.png", 10, 10, 5, np.uint8, "5 channels is not an image; expected 1, 2, 3 or 4"),
        (
            "x.bmp",
            40000,
            40000,
            3,
            np.uint8,
            "a 40000x40000 BMP would exceed the format's 4 GiB file size; write .png or .tif",
        ),
    ],
)
def test_check_writable_refusals(
    tmp_path: Path, name: str, h: int, w: int, c: int, dtype: type, message: str
) -> None:
    p = tmp_path / name
    with pytest.raises(ImageWriteError) as e:
        check_writable(p, h, w, c, dtype)
    assert _one_line(e) == f"{p}: {message}"


@pytest.mark.parametrize(
    ("name", "h", "w", "c", "dtype"),
    [
        ("x.jpg", 65535, 65535, 3, np.uint8),
        ("x.webp", 16383, 16383, 4, np.uint8),
        ("x.png", 100000, 100000, 4, np.uint16),
        ("x.tif", 100000, 100000, 2, np.uint16),
        ("x.JPEG", 10, 10, 1, np.uint8),
    ],
)
def test_check_writable_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, h: int, w: int, c: int, dtype: type
) -> None:
    # the 100000x100000 TIFF is written uncompressed (40 GB): give it a disk that holds it, so the
    # test does not depend on this machine's free space (it failed with 38 GB free)
    monkeypatch.setattr(images, "_free_bytes", lambda folder: 10**12)
    check_writable(tmp_path / name, h, w, c, dtype)


def test_check_writable_refuses_a_raw_tiff_larger_than_the_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "_free_bytes", lambda folder: 38_480_000_000)
    p = tmp_path / "x.tif"
    with pytest.raises(ImageWriteError) as e:
        check_writable(p, 100000, 100000, 2, np.uint16)
    assert _one_line(e) == f"{p}: needs about 40.00 GB but only 38.48 GB are free on that disk"


def test_check_writable_missing_folder(tmp_path: Path) -> None:
    p = tmp_path / "missing" / "x.png"
    with pytest.raises(ImageWriteError) as e:
        check_writable(p, 4, 4, 3, np.uint8)
    assert _one_line(e) == f"{p}: the folder {p.parent} does not exist; create it first"


def test_write_image_refuses_before_creating_anything(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="JPEG holds 8 bits per channel"):
        write_image(tmp_path / "x.jpg", _random((4, 4, 3), np.uint16))
    with pytest.raises(ImageWriteError, match="quality 0 is outside 1..100"):
        write_image(tmp_path / "x.jpg", _random((4, 4, 3), np.uint8), quality=0)
    with pytest.raises(ImageWriteError) as e:
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3, 2), np.uint8))
    assert _one_line(e) == (
        f"{tmp_path / 'x.png'}: pixels of shape (4, 4, 3, 2) are not an image; expected (H, W) or "
        "(H, W, 1..4)"
    )
    assert list(tmp_path.iterdir()) == []


# --- names and extensions -------------------------------------------------------------------------


def test_is_image_path() -> None:
    assert is_image_path("a/B.PNG") and is_image_path(Path("x.JpEg")) and is_image_path("y.tiff")
    assert not is_image_path("notes.txt") and not is_image_path("noext")
    assert not is_image_path(".out.resrgan-tmp-1a2b3c4d.png")  # our own leftovers
    assert images.TMP_MARK == ".resrgan-tmp-"
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"} <= IMAGE_SUFFIXES


def _data(shape: tuple[int, ...], dtype: type, name: str) -> ImageData:
    return ImageData(
        pixels=np.zeros(shape, dtype), format="PNG", icc_profile=None, exif=None, path=Path(name)
    )


@pytest.mark.parametrize(
    ("source", "ext", "want"),
    [
        ("photo.jpg", "auto", "jpg"),
        ("photo.JPG", "auto", "JPG"),
        ("scan.tif", "auto", "tif"),
        ("anim.gif", "auto", "png"),
        ("photo.jpg", "png", "png"),
        ("photo.png", ".webp", "webp"),
        (_data((2, 2, 4), np.uint8, "logo.jpg"), "auto", "png"),
        (_data((2, 2, 2), np.uint8, "logo.bmp"), "auto", "png"),
        (_data((2, 2, 4), np.uint8, "logo.png"), "jpg", "png"),
        (_data((2, 2, 4), np.uint8, "logo.webp"), "auto", "webp"),
        (_data((2, 2, 4), np.uint8, "logo.tif"), "auto", "tif"),
        (_data((2, 2, 3), np.uint16, "deep.png"), "jpg", "png"),
        (_data((2, 2, 3), np.uint16, "deep.tif"), "auto", "tif"),
        (_data((2, 2, 3), np.uint16, "deep.png"), "webp", "png"),
        (_data((2, 2, 3), np.uint8, "plain.jpeg"), "auto", "jpeg"),
    ],
)
def test_output_extension(source: ImageData | str, ext: str, want: str) -> None:
    assert output_extension(source, ext) == want


def test_output_extension_rejects_unknown_ext() -> None:
    with pytest.raises(UsageError) as e:
        output_extension("a.png", "heic")
    assert str(e.value) == (
        "--ext 'heic' is not a writable image format; use auto, png, jpg, webp, tif or bmp"
    )


def test_image_data_modes() -> None:
    assert _data((2, 2), np.uint8, "a").mode == "L"
    assert _data((2, 2, 2), np.uint8, "a").mode == "LA"
    assert _data((2, 2, 3), np.uint8, "a").mode == "RGB"
    d = _data((2, 2, 4), np.uint16, "a")
    assert d.mode == "RGBA" and d.has_alpha and not _data((2, 2, 3), np.uint8, "a").has_alpha
    assert (d.bit_depth, _data((2, 2), np.uint8, "a").bit_depth) == (16, 8)


def test_16bit_tiff_with_alpha_round_trip_through_tifffile_reader(tmp_path: Path) -> None:
    # independent reader: tifffile sees our TIFF as RGBA with an unassociated alpha sample
    a = _random((6, 5, 4), np.uint16, seed=11)
    p = write_image(tmp_path / "a.tif", a, icc_profile=corpus.srgb_icc())
    with tifffile.TiffFile(p) as tf:
        page = tf.pages.first
        np.testing.assert_array_equal(page.asarray(), a)
        assert bytes(page.tags[34675].value) == corpus.srgb_icc()
        assert int(page.extrasamples[0]) == 2  # unassociated alpha


# --- huge outputs (slow: a 3 GB array) ----------------------------------------------------------

HUGE_CHILD = r"""
import json, sys
import cv2, numpy as np, tifffile  # imported before measuring: library code is not image memory
from PIL import Image
from resrgan.io.images import write_image
side, path = int(sys.argv[1]), sys.argv[2]
a = np.empty((side, side, 3), np.uint8)
for r0 in range(0, side, 1000):  # touch every page, with content that is not a flat field
    a[r0:r0 + 1000] = (np.arange(side, dtype=np.uint8)[None, :, None] + r0 % 251)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS")
write_image(path, a)
print(json.dumps({"nbytes": a.nbytes, "extra": status("VmHWM") - base}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_32000_square_rgb_is_written_with_at_most_one_and_a_half_extra_copies(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import subprocess
    import sys

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to measure the peak memory of the write")
    side = 32000
    out = tmp_path / f"huge{suffix}"
    run = subprocess.run(
        [sys.executable, "-c", HUGE_CHILD, str(side), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["nbytes"] == side * side * 3
    assert r["extra"] <= 1.5 * r["nbytes"], r
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own bomb check says no
    with Image.open(out) as im:  # header only: no 3 GB decode
        assert im.size == (side, side)
    assert _leftovers(tmp_path) == []
