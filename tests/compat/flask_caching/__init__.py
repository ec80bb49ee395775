"""Flask-Caching's import names, mapped onto Flask-Stash, for running its test suite.

Only names live here: every behaviour under test is Flask-Stash's own.
The one adapter is the clock: the suite moves time by replacing
``cachelib.simple.time``, so Flask-Stash's freshness clock reads it too.
"""

import cachelib.simple

from flask_stash import (
    SUPPORTED_HASH_FUNCTIONS,
    Cache,
    CachedResponse,
    cache_memoize_hit,
    cache_memoize_miss,
    cache_view_hit,
    cache_view_miss,
    function_namespace,
    make_template_fragment_key,
)
from flask_stash.state import AppState


def _suite_clock() -> float:
    return float(vars(cachelib.simple)["time"]())


AppState.clock = staticmethod(_suite_clock)

__all__ = [
    "SUPPORTED_HASH_FUNCTIONS",
    "Cache",
    "CachedResponse",
    "cache_memoize_hit",
    "cache_memoize_miss",
    "cache_view_hit",
    "cache_view_miss",
    "function_namespace",
    "make_template_fragment_key",
]
