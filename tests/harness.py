"""What the store conformance suite needs from each store's fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from flask_stash.stores import BaseStore

S = TypeVar("S", bound=BaseStore)


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


@contextmanager
def closing_factory(cls: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """Yield a builder of stores that closes every store it built at the end."""
    stores: list[S] = []

    def make(*args: Any, **kwargs: Any) -> S:
        store = cls(*args, **kwargs)
        stores.append(store)
        return store

    try:
        yield make
    finally:
        for store in stores:
            store.close()
