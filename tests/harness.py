"""What the store conformance suite needs from each store's fixtures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask_stash.stores import BaseStore


@dataclass
class StoreHarness:
    """A way to build stores of one kind, all talking to the same data.

    ``make(key_prefix)`` builds a new store instance; ``advance(seconds)``
    lets that much time pass for expiry (a fake clock, or a real sleep for
    servers that keep their own time). ``shared`` says whether two instances
    see each other's entries, as two web servers on one memcached would.
    ``url`` is a ``CACHE_URL`` naming the same data, or None.
    """

    make: Callable[[str], BaseStore]
    advance: Callable[[float], None]
    shared: bool
    url: str | None = None
