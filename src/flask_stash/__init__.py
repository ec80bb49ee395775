"""Flask-Stash: caching for Flask views and functions."""

from __future__ import annotations

from .errors import ConfigurationError, SerializationError, StashError
from .extension import Cache
from .responses import CachedResponse
from .stats import Counters, Stats
from .stores import BaseStore, MemoryStore, NullStore

__all__ = [
    "BaseStore",
    "Cache",
    "CachedResponse",
    "ConfigurationError",
    "Counters",
    "MemoryStore",
    "NullStore",
    "SerializationError",
    "StashError",
    "Stats",
]

__version__ = "0.1.0"
