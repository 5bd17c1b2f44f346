"""Importer for ncnn .param/.bin files (work in progress)."""

from __future__ import annotations
