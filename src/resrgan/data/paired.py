"""Paired LQ/GT folders for finetuning on your own pairs (spec §3.4, ``RealESRGANPairedDataset``).

Pairs come from a meta-info file (lines ``gt_rel_path, lq_rel_path``, relative to the two roots) or,
without one, from files with the same name in both folders. Each item is a paired random crop (GT
``gt_size``, LQ ``gt_size // scale`` at the matching place) and a horizontal flip with p = 0.5, both
drawn from a generator seeded by (seed, epoch, index), so the result does not depend on the number
of workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ImageReadError
from ..seeds import derive_seed

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _read_rgb(path: Path) -> torch.Tensor:
    """(3, H, W) float32 RGB in [0, 1] (gray replicated, alpha dropped, 16-bit kept)."""
    from .hr import read_rgb_float

    return torch.from_numpy(read_rgb_float(path).transpose(2, 0, 1).copy())


def paired_paths(
    gt_root: str | os.PathLike[str],
    lq_root: str | os.PathLike[str],
    meta_info: str | os.PathLike[str] | None = None,
) -> list[tuple[Path, Path]]:
    """(gt_path, lq_path) pairs from a meta-info file or from matching file names."""
    gt_dir, lq_dir = Path(gt_root), Path(lq_root)
    for name, d in (("data.root (GT)", gt_dir), ("data.lq_root (LQ)", lq_dir)):
        if not d.is_dir():
            raise ConfigError(f"{name}: folder {d} does not exist")
    pairs: list[tuple[Path, Path]] = []
    if meta_info is not None:
        meta = Path(meta_info)
        try:
            lines = meta.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ConfigError(f"data.meta_info: cannot read {meta} ({e.strerror or e})") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(", ")]
            if len(parts) != 2:
                raise ConfigError(
                    f"{meta}:{n}: expected 'gt_rel_path, lq_rel_path', got {line.strip()!r}"
                )
            pairs.append((gt_dir / parts[0], lq_dir / parts[1]))
    else:
        gts = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        lq_names = {p.name for p in lq_dir.iterdir()}
        missing = [p.name for p in gts if p.name not in lq_names]
        if missing:
            raise ConfigError(
                f"data.lq_root: {lq_dir} lacks {len(missing)} LQ image(s) named like the GT "
                f"images, e.g. {missing[0]}; give the same file names or a meta_info file"
            )
        pairs = [(p, lq_dir / p.name) for p in gts]
    if not pairs:
        raise ConfigError(f"data.root: no images found in {gt_dir}")
    return pairs


class PairedFolder(torch.utils.data.Dataset):
    """Items ``{"lq": (3, gt_size/scale, ...), "gt": (3, gt_size, gt_size), "lq_path",
    "gt_path"}``."""

    def __init__(
        self,
        gt_root: str | os.PathLike[str],
        lq_root: str | os.PathLike[str],
        *,
        scale: int = 4,
        gt_size: int = 256,
        use_hflip: bool = True,
        seed: int = 0,
        meta_info: str | os.PathLike[str] | None = None,
    ) -> None:
        if gt_size % scale:
            raise ConfigError(
                f"degradation.gt_size: {gt_size} is not a multiple of the scale {scale}"
            )
        self.pairs = paired_paths(gt_root, lq_root, meta_info)
        self.scale = scale
        self.gt_size = gt_size
        self.use_hflip = use_hflip
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        gt_path, lq_path = self.pairs[index]
        gt, lq = _read_rgb(gt_path), _read_rgb(lq_path)
        s, gs = self.scale, self.gt_size
        ls = gs // s
        hl, wl = lq.shape[-2:]
        if gt.shape[-2:] != (hl * s, wl * s):
            raise ImageReadError(
                f"{gt_path}: GT is {tuple(gt.shape[-2:])} but LQ {lq_path} is {(hl, wl)}; "
                f"the GT must be exactly {s}x the LQ"
            )
        if hl < ls or wl < ls:
            raise ImageReadError(
                f"{lq_path}: LQ {(hl, wl)} is smaller than the patch {ls}x{ls} "
                f"(gt_size {gs} / scale {s})"
            )
        g = torch.Generator().manual_seed(derive_seed("paired", self.seed, self.epoch, index))
        top = int(torch.randint(0, hl - ls + 1, (1,), generator=g))
        left = int(torch.randint(0, wl - ls + 1, (1,), generator=g))
        flip = bool(torch.rand((), generator=g) < 0.5) and self.use_hflip
        lq = lq[:, top : top + ls, left : left + ls]
        gt = gt[:, top * s : top * s + gs, left * s : left * s + gs]
        if flip:
            lq, gt = lq.flip(-1), gt.flip(-1)
        return {
            "lq": lq.contiguous(),
            "gt": gt.contiguous(),
            "lq_path": str(lq_path),
            "gt_path": str(gt_path),
        }
