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

__all__ = ["cache_error", "cache_hit", "cache_miss", "cache_skipped", "cache_stored"]

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
