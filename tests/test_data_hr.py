"""HRFolder (spec §1.2): read, hflip, reflect-101 pad bottom/right, random crop to 400."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from resrgan.data.hr import HRFolder
from resrgan.errors import ImageReadError, UsageError


def save(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    save(tmp_path / "b_big.png", rng.integers(0, 256, (450, 520, 3), dtype=np.uint8))
    save(tmp_path / "a_small.png", rng.integers(0, 256, (300, 410, 3), dtype=np.uint8))
    save(tmp_path / "c_gray.png", rng.integers(0, 256, (400, 400), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def find(patch: np.ndarray, img: np.ndarray) -> tuple[int, int] | None:
    """(top, left) where ``patch`` occurs exactly in ``img`` (template matching), else None."""
    score = cv2.matchTemplate(img.astype(np.float32), patch.astype(np.float32), cv2.TM_SQDIFF)
    t, left = np.unravel_index(int(np.argmin(score)), score.shape)
    h, w = patch.shape[:2]
    return (int(t), int(left)) if np.array_equal(img[t : t + h, left : left + w], patch) else None


def test_sorted_listing_and_shapes(folder: Path) -> None:
    ds = HRFolder(folder)
    assert [Path(p).name for p in ds.paths] == ["a_small.png", "b_big.png", "c_gray.png"]
    for i in range(3):
        item = ds[i]
        assert item["gt"].shape == (3, 400, 400) and item["gt"].dtype == torch.float32
        assert item["gt"].min() >= 0 and item["gt"].max() <= 1
    gray = ds[2]["gt"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])


def test_small_image_is_reflect101_padded_bottom_right(folder: Path) -> None:
    ds = HRFolder(folder, use_hflip=False)
    arr = np.asarray(Image.open(folder / "a_small.png"))
    ref = cv2.copyMakeBorder(arr, 0, 100, 0, 0, cv2.BORDER_REFLECT_101)  # 400 x 410
    got = (ds[0]["gt"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    # width 410 > 400 -> cropped: the result is a 400-wide window of the padded image, top 0
    pos = find(got[:8, :8], ref[:8])
    assert pos is not None and pos[0] == 0
    np.testing.assert_array_equal(got, ref[:, pos[1] : pos[1] + 400])


def test_big_image_crop_is_a_window_of_the_maybe_flipped_image(folder: Path) -> None:
    arr = np.asarray(Image.open(folder / "b_big.png"))
    flips = 0
    for seed in range(6):
        got = (HRFolder(folder, seed=seed)[1]["gt"].permute(1, 2, 0).numpy() * 255).round()
        got = got.astype(np.uint8)
        hit = find(got[:8, :8], arr)
        if hit is not None and np.array_equal(
            got, arr[hit[0] : hit[0] + 400, hit[1] : hit[1] + 400]
        ):
            continue
        flipped = arr[:, ::-1]
        hit = find(got[:8, :8], np.ascontiguousarray(flipped))
        assert hit is not None
        np.testing.assert_array_equal(got, flipped[hit[0] : hit[0] + 400, hit[1] : hit[1] + 400])
        flips += 1
    assert 0 < flips < 6


def test_flip_rate_is_one_half() -> None:
    ds = HRFolder.__new__(HRFolder)
    ds.crop_pad_size, ds.use_hflip, ds.seed, ds.epoch, ds.gray_prob = 4, True, 0, 0, 0.0
    img = torch.arange(16, dtype=torch.float32).view(1, 4, 4).expand(3, 4, 4)
    n = 2000
    flips = sum(int(ds.augment(img, i)[0, 0, 0] == 3) for i in range(n))
    assert abs(flips - n / 2) < 4.5 * np.sqrt(n / 4)


def test_gray_prob_turns_that_share_of_crops_grey_and_keeps_the_rest(folder: Path) -> None:
    plain, mixed = HRFolder(folder, seed=3), HRFolder(folder, seed=3, gray_prob=0.3)
    n_gray = 0
    for epoch in range(12):
        for ds in (plain, mixed):
            ds.set_epoch(epoch)
        a, b = plain[1]["gt"], mixed[1]["gt"]
        if torch.equal(a, b):  # not drawn grey: the same flip and crop as without the option
            continue
        n_gray += 1
        # grey: OpenCV's BT.601 luma of the very crop the plain folder gives, in all 3 channels
        luma = cv2.cvtColor(a.permute(1, 2, 0).numpy(), cv2.COLOR_RGB2GRAY)
        for c in range(3):
            np.testing.assert_allclose(b[c].numpy(), luma, atol=2e-6)
    assert 1 <= n_gray <= 8  # 12 draws at p 0.3: 3.6 expected
    # the rate, on the augmentation alone
    ds = HRFolder(folder, gray_prob=0.25)
    img = torch.rand(3, 400, 400)
    n = 1200
    grey = sum(int(torch.equal(ds.augment(img, i)[0], ds.augment(img, i)[1])) for i in range(n))
    assert abs(grey - n / 4) < 4.5 * np.sqrt(n * 0.25 * 0.75)
    with pytest.raises(ValueError, match="gray_prob"):
        HRFolder(folder, gray_prob=1.5)


def test_items_depend_on_seed_epoch_index_only(folder: Path) -> None:
    a, b = HRFolder(folder, seed=5), HRFolder(folder, seed=5)
    _ = b[0]  # access order must not matter
    assert torch.equal(a[1]["gt"], b[1]["gt"])
    a.set_epoch(1)
    assert not torch.equal(a[1]["gt"], b[1]["gt"])


def test_meta_info_and_single_file(folder: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta.txt"
    meta.write_text("c_gray.png (400,400,1)\nb_big.png (450,520,3)\n", encoding="utf-8")
    ds = HRFolder(folder, meta_info=meta)
    assert [Path(p).name for p in ds.paths] == ["c_gray.png", "b_big.png"]
    assert len(HRFolder(folder / "b_big.png")) == 1
    meta.write_text("missing.png\n", encoding="utf-8")
    with pytest.raises(UsageError, match="1 listed file\\(s\\) not found under .*missing.png"):
        HRFolder(folder, meta_info=meta)


def test_unreadable_and_empty_inputs_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    ds = HRFolder(tmp_path)
    with pytest.raises(ImageReadError, match="bad.png"):
        ds[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="empty: no images found"):
        HRFolder(empty)


def test_16bit_and_alpha_images_become_rgb_floats(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    deep = rng.integers(0, 65536, (400, 400, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])  # cv2 writes BGR
    rgba = rng.integers(0, 256, (400, 400, 4), dtype=np.uint8)
    save(tmp_path / "rgba.png", rgba)
    ds = HRFolder(tmp_path, use_hflip=False)
    got = ds[0]["gt"].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, deep / 65535.0, atol=1e-6)
    got = ds[1]["gt"].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, rgba[..., :3] / 255.0, atol=1e-6)  # alpha dropped, as cv2
