"""Flask-Stash: caching for Flask views and functions."""

from __future__ import annotations

from .errors import ConfigurationError, SerializationError, StashError
from .extension import Cache
from .jinja import make_template_fragment_key
from .responses import CachedResponse
from .signals import cache_error, cache_hit, cache_miss, cache_skipped, cache_stored
from .stats import Counters, History, Stats
from .stores import BaseStore, MemoryStore, NullStore

__all__ = [
    "BaseStore",
    "Cache",
    "CachedResponse",
    "ConfigurationError",
    "Counters",
    "History",
    "MemoryStore",
    "NullStore",
    "SerializationError",
    "StashError",
    "Stats",
    "cache_error",
    "cache_hit",
    "cache_miss",
    "cache_skipped",
    "cache_stored",
    "make_template_fragment_key",
]

__version__ = "0.1.0"
