"""Flask-Stash: caching for Flask views and functions."""

from __future__ import annotations

from .config import ConfigWarning
from .errors import ConfigurationError, SerializationError, StashError
from .extension import Cache
from .jinja import make_template_fragment_key
from .keys import SUPPORTED_HASH_FUNCTIONS
from .memoize import function_namespace
from .responses import CachedResponse
from .signals import (
    cache_error,
    cache_hit,
    cache_memoize_hit,
    cache_memoize_miss,
    cache_miss,
    cache_skipped,
    cache_stored,
    cache_view_hit,
    cache_view_miss,
)
from .stats import Counters, History, Stats
from .stores import BaseStore, MemoryStore, NullStore

__all__ = [
    "SUPPORTED_HASH_FUNCTIONS",
    "BaseStore",
    "Cache",
    "CachedResponse",
    "ConfigWarning",
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
    "cache_memoize_hit",
    "cache_memoize_miss",
    "cache_miss",
    "cache_skipped",
    "cache_stored",
    "cache_view_hit",
    "cache_view_miss",
    "function_namespace",
    "make_template_fragment_key",
]

__version__ = "0.1.0"
