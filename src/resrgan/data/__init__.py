"""Datasets: HR folders for on-the-fly degradation (``hr.HRFolder``). Crop/flip only."""

from __future__ import annotations

__all__ = ["HRFolder"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "HRFolder":
        from .hr import HRFolder

        return HRFolder
    raise AttributeError(f"module 'resrgan.data' has no attribute '{name}'")
