"""Synthetic HR images for the training tests: smooth colour patterns plus sharp rectangles."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_hr_folder(root: Path, n: int, *, seed: int, size: tuple[int, int] = (120, 136)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = size[0] + 8 * (i % 3), size[1]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.zeros((h, w, 3), np.float32)
        for c in range(3):
            fx, fy = rng.uniform(0.02, 0.2, 2)
            img[..., c] = 0.5 + 0.35 * np.sin(fx * x + rng.uniform(0, 6)) * np.cos(fy * y)
        for _ in range(4):
            x0, y0 = rng.integers(0, w - 30), rng.integers(0, h - 30)
            img[y0 : y0 + rng.integers(8, 30), x0 : x0 + rng.integers(8, 30)] = rng.uniform(0, 1, 3)
        cv2.imwrite(str(root / f"img{i}.png"), (img * 255).clip(0, 255).astype(np.uint8))
    return root
