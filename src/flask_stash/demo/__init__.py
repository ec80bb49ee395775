"""The demo app that ``make run`` serves on the in-process store."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
