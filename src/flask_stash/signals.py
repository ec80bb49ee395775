"""Blinker signals sent on every cache event, for logging, tracing and metrics.

Each signal is sent with the app as sender and these keyword arguments:

``cache_hit``, ``cache_miss``, ``cache_stored``
    ``name``: the view or function (``module.qualname``), a template
    fragment (``fragment:<name>``) or ``"low-level API"``; ``key``: the
    cache key when the caller knows it, else None.
``cache_skipped``
    the same, and ``reason``: why the store was left alone (``"session"``,
    ``"Set-Cookie"``, ``"store unavailable"``, ``"served stale"`` ...).
``cache_error``
    the same, and ``exception``: what the store raised, and ``operation``
    (``"get"``, ``"set"`` ...) when known.

Connect as with Flask's own signals::

    from flask_stash import cache_miss

    @cache_miss.connect_via(app)
    def on_miss(sender, name, key, **extra):
        log.info("miss on %s", name)

Receivers run inside the request, so they should be quick; accept
``**extra`` to keep working when arguments are added. Nothing is built
while no receiver is connected.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "cache_error",
    "cache_hit",
    "cache_memoize_hit",
    "cache_memoize_miss",
    "cache_miss",
    "cache_skipped",
    "cache_stored",
    "cache_view_hit",
    "cache_view_miss",
]

_signals = Namespace()

#: An entry was found and served.
cache_hit = _signals.signal("cache-hit", doc="An entry was found and served.")
#: No usable entry: the view or function runs.
cache_miss = _signals.signal("cache-miss", doc="No usable entry; the value is computed.")
#: A computed value was written to the store.
cache_stored = _signals.signal("cache-stored", doc="A computed value was written to the store.")
#: The store was left alone on purpose; ``reason`` says why.
cache_skipped = _signals.signal("cache-skipped", doc="The store was left alone; see reason.")
#: The store failed; the request went on without it.
cache_error = _signals.signal("cache-error", doc="A store operation failed.")

# -- Flask-Caching's signals ----------------------------------------------------
#
# Sent only with ``CACHE_ENABLE_SIGNALS = True``, without a sender, with the
# keyword arguments Flask-Caching gives them: ``cache`` (the Cache),
# ``cache_key``, ``args`` and ``kwargs`` (the call's arguments), and for the
# memoize signals ``f``, the undecorated function.

#: A ``@cached`` view or function was answered from the cache.
cache_view_hit = _signals.signal(
    "cache-view-hit", doc="A @cached call was answered from the cache."
)
#: A ``@cached`` view or function had to run.
cache_view_miss = _signals.signal("cache-view-miss", doc="A @cached call had to run.")
#: A ``@memoize`` function was answered from the cache.
cache_memoize_hit = _signals.signal(
    "cache-memoize-hit", doc="A @memoize call was answered from the cache."
)
#: A ``@memoize`` function had to run.
cache_memoize_miss = _signals.signal("cache-memoize-miss", doc="A @memoize call had to run.")
