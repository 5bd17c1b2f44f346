"""Typed errors. Every message names the file or field, the bad value and what to do.

The CLI prints ``str(err)`` on one line and exits with ``err.exit_code``.
"""

from __future__ import annotations


class ResrganError(Exception):
    """Base class for every error resrgan raises on purpose."""

    exit_code = 1


class UsageError(ResrganError):
    """Bad arguments or configuration: the user must change what they asked for (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """An invalid configuration key or value."""


class ImageReadError(ResrganError):
    """An input image cannot be decoded or is refused (too large, unsupported)."""


class ImageWriteError(ResrganError):
    """An output image cannot be written."""


class VideoReadError(ResrganError):
    """An input video cannot be decoded or is refused (no video stream, corrupt, HDR)."""


class VideoWriteError(ResrganError):
    """An output video cannot be encoded or written."""


class WeightsError(ResrganError):
    """A weights file cannot be loaded safely, or does not match a known architecture."""


class ModelNotFoundError(WeightsError):
    """A model name is unknown, or its weights are not available offline."""
