"""The few exceptions Flask-Stash raises, under one base class."""

from __future__ import annotations


class StashError(Exception):
    """Base class for every error raised by Flask-Stash."""


class ConfigurationError(StashError, ValueError):
    """The ``CACHE_*`` configuration is not usable; raised by ``init_app``."""


class SerializationError(StashError, TypeError):
    """A value cannot be turned into bytes, so it cannot be cached."""
