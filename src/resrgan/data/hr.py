"""HR-folder dataset for degradation training (spec §1.2, upstream ``RealESRGANDataset`` CPU side).

Reads an HR image, flips it horizontally with p = 0.5, pads it (reflect-101, bottom/right) when a
side is shorter than ``crop_pad_size`` and crops a random ``crop_pad_size`` square when a side is
longer. Kernel sampling, which upstream also does here, lives in :mod:`resrgan.degradation.params`
(``sample_degradation``), so the dataset holds no degradation logic.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..color import BT601_LUMA
from ..errors import ImageReadError, UsageError
from ..seeds import derive_seed

log = logging.getLogger(__name__)

_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def read_rgb_float(path: str | os.PathLike[str]) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1], like upstream's cv2 ``IMREAD_COLOR`` read: gray is
    replicated to three channels and alpha is dropped. 16-bit files keep their precision
    (/65535; upstream reduces them to 8 bits first). Raises ImageReadError naming the file."""
    from ..io.images import read_rgb

    px = read_rgb(path)
    scale = 65535.0 if px.dtype == np.uint16 else 255.0
    return px.astype(np.float32) / np.float32(scale)


def _reflect101_pad(img: Tensor, size: int) -> Tensor:
    """Pad (3, H, W) at the bottom/right to at least ``size`` with cv2 BORDER_REFLECT_101."""
    _, h, w = img.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return img

    def idx(n: int, extra: int) -> Tensor:
        i = torch.arange(n + extra)
        if n == 1:
            return torch.zeros_like(i)
        period = 2 * (n - 1)
        i = i % period
        return torch.where(i > n - 1, period - i, i)  # reflect-101, repeated for tiny images

    return img[:, idx(h, ph)][:, :, idx(w, pw)]


# BT.601 luma weights for RGB, as OpenCV's COLOR_RGB2GRAY
_LUMA = torch.tensor([BT601_LUMA])


class HRFolder(torch.utils.data.Dataset):
    """HR images from a folder (sorted), one image file, or a ``meta_info`` list (first token of
    each line, relative to ``root``).

    ``__getitem__(i)`` -> ``{"gt": (3, S, S) float32 RGB in [0, 1], "gt_path": str}`` with
    S = ``crop_pad_size``: horizontal flip (p 0.5, when ``use_hflip``), then bottom/right
    reflect-101 padding for sides < S, then a uniform random S x S crop for sides > S, then, with
    probability ``gray_prob`` (default 0: the original has no such step), the crop turned grey
    (BT.601 luma in all three channels), so that a model also learns that grey photos stay grey.
    The flip, crop and grey draws come from a ``torch.Generator`` seeded by (seed, epoch, index),
    so the result does not depend on the number of DataLoader workers; call :meth:`set_epoch` each
    epoch.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        crop_pad_size: int = 400,
        use_hflip: bool = True,
        gray_prob: float = 0.0,
        seed: int = 0,
        meta_info: str | os.PathLike[str] | None = None,
    ) -> None:
        if not 0.0 <= gray_prob <= 1.0:
            raise ValueError(f"gray_prob must be in [0, 1], got {gray_prob}")
        self.root = Path(root)
        self.crop_pad_size = int(crop_pad_size)
        self.use_hflip = use_hflip
        self.gray_prob = float(gray_prob)
        self.seed = int(seed)
        self.epoch = 0
        if meta_info is not None:
            mp = Path(meta_info)
            try:
                lines = mp.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise UsageError(
                    f"{mp}: cannot read the meta_info file ({e.strerror or e})"
                ) from None
            names = [ln.split(" ")[0] for ln in lines if ln.strip()]
            self.paths = [self.root / n for n in names]
            missing = [p for p in self.paths if not p.is_file()]
            if missing:
                raise UsageError(
                    f"{mp}: {len(missing)} listed file(s) not found under {self.root}, "
                    f"e.g. {missing[0]}; fix the list or the dataset root"
                )
        elif self.root.is_file():
            self.paths = [self.root]
        else:
            if not self.root.is_dir():
                raise UsageError(
                    f"{self.root}: no such folder or image; give a folder of HR images or one image"
                )
            self.paths = sorted(
                p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES
            )
        if not self.paths:
            raise UsageError(
                f"{self.root}: no images found (looked for {', '.join(sorted(_SUFFIXES))})"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips and crops ``__getitem__`` draws."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        path = self.paths[index]
        try:
            arr = read_rgb_float(path)
        except ImageReadError:
            raise
        except Exception as e:  # anything a decoder throws: name the file
            raise ImageReadError(f"{path}: cannot read the image ({e})") from None
        img = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
        return {"gt": self.augment(img, index), "gt_path": str(path)}

    def augment(self, img: Tensor, index: int) -> Tensor:
        """Flip, pad and crop one (3, H, W) image as item ``index`` of the current epoch would."""
        g = torch.Generator().manual_seed(
            derive_seed(self.seed, self.epoch, index, scheme="splitmix64")
        )
        s = self.crop_pad_size
        if self.use_hflip and torch.rand(1, generator=g).item() < 0.5:
            img = img.flip(-1)
        img = _reflect101_pad(img, s)
        _, h, w = img.shape
        if h > s or w > s:
            top = int(torch.randint(0, h - s + 1, (1,), generator=g).item())
            left = int(torch.randint(0, w - s + 1, (1,), generator=g).item())
            img = img[:, top : top + s, left : left + s]
        # drawn only when enabled, so gray_prob 0 leaves the flip/crop stream as it always was
        if self.gray_prob > 0 and torch.rand(1, generator=g).item() < self.gray_prob:
            img = (_LUMA.to(img.dtype) @ img.flatten(1)).view(1, *img.shape[1:]).expand(3, -1, -1)
        return img.contiguous()
