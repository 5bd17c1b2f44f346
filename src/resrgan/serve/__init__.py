"""``resrgan serve``: a local web page to upscale images (FastAPI + uvicorn, the ``web`` extra).

:func:`create_app` builds the app from :class:`Settings`; ``resrgan serve`` runs it with uvicorn.
Importing this package imports FastAPI but not torch (the workers import it when they start).
"""

from __future__ import annotations

from .app import Settings, create_app
from .jobs import ModelChoice

__all__ = ["ModelChoice", "Settings", "create_app"]
