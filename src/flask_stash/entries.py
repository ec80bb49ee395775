"""What the decorators keep in a store: plain, immutable records.

They are named tuples of atoms, so the memory store keeps them without
copying, every serializer can write them, and a reader can check their
shape before trusting them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["FrozenResponse", "MemoEntry", "VaryIndex", "is_fresh"]

#: Flags of a FrozenResponse.
NEEDS_EMPTY_SESSION = 1  # made while the (empty) session was read
PUBLIC = 2  # Cache-Control: public, so it may answer an authorized request


class FrozenResponse(NamedTuple):
    """A response reduced to data, with the times that decide how it is served.

    Times are wall-clock seconds, comparable across processes. ``fresh_until``
    of 0 means it never goes stale; past it, the entry may still be served
    until ``stale_until`` (stale-while-revalidate, stale-if-error).
    ``versions`` are the tokens of its tags when it was stored.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    fresh_until: float
    stale_until: float
    versions: tuple[str | None, ...]
    flags: int = 0


class MemoEntry(NamedTuple):
    """A function's result, with the same times and tag versions as a response."""

    value: Any
    stored_at: float
    fresh_until: float
    stale_until: float
    versions: tuple[str | None, ...]


class VaryIndex(NamedTuple):
    """Stands at a URL's key when its response has a Vary header.

    The response itself is stored under a second key that adds the values
    of the request headers named here (learned per URL, as the response
    said). ``versions`` are its tag versions, like an entry's.
    """

    names: tuple[str, ...]
    stored_at: float
    versions: tuple[str | None, ...]


def is_fresh(fresh_until: float, now: float) -> bool:
    return not fresh_until or now < fresh_until
