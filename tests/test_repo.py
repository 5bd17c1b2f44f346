"""Repository guards: the public API is pinned, importing is cheap, no large files are tracked."""

from __future__ import annotations

import subprocess
import sys

import resrgan
from conftest import REPO

PUBLIC_API = [
    "RRDBNet",
    "RealESRGANer",
    "ResrganError",
    "SRVGGNetCompact",
    "Upscaler",
    "__version__",
    "degrade",
    "detect_arch",
    "load_model",
    "load_state_dict",
    "save_weights",
    "train",
]


def test_public_api_is_pinned() -> None:
    assert resrgan.__all__ == PUBLIC_API


def test_import_has_no_heavy_side_effects() -> None:
    code = "import sys, resrgan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Our own trained model is our artefact and ships in the package; nothing else large may enter git.
OWN_MODELS = {"src/resrgan/weights/resrgan-compact-x4.safetensors": 2_500_000}


def test_no_large_files_are_tracked() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    big = [
        f.decode()
        for f in files
        if f
        and (REPO / f.decode()).is_file()
        and (REPO / f.decode()).stat().st_size > OWN_MODELS.get(f.decode(), 512 * 1024)
    ]
    assert big == [], f"weights/datasets must not enter git: {big}"
