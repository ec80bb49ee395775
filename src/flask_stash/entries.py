"""What the decorators keep in a store: plain, immutable records.

They are named tuples of atoms, so the memory store keeps them without
copying, every serializer can write them, and a reader can check their
shape before trusting them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["FrozenResponse", "MemoEntry", "VaryIndex", "is_fresh", "well_formed"]

#: Flags of a FrozenResponse.
NEEDS_EMPTY_SESSION = 1  # made while the (empty) session was read
PUBLIC = 2  # Cache-Control: public, so it may answer an authorized request
RETURNED_TEXT = 4  # the view returned a str: the low-level get() gives it back


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


# Wall-clock seconds, with room to spare. Anything else (NaN, an infinity, a
# huge integer) would break the arithmetic that serves an entry.
_MAX_TIME = 1e18


def _time(value: object) -> bool:
    # bool is an int subclass, but never a time.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return -_MAX_TIME <= value <= _MAX_TIME


def _header_text(value: object) -> bool:
    # Werkzeug refuses a header that holds a line break when the response is built.
    return type(value) is str and "\n" not in value and "\r" not in value


def _versions(values: object) -> bool:
    return type(values) is tuple and all(value is None or type(value) is str for value in values)


def well_formed(record: object) -> bool:
    """Whether *record* has the field types the decorators rely on when they serve it.

    A record decoded from bytes that nobody signed may hold anything; one
    that fails this check reads as a miss rather than failing the request.
    """
    if isinstance(record, FrozenResponse):
        return (
            type(record.status) is int
            and 100 <= record.status <= 999
            and type(record.headers) is tuple
            and all(
                type(pair) is tuple
                and len(pair) == 2
                and _header_text(pair[0])
                and _header_text(pair[1])
                for pair in record.headers
            )
            and type(record.body) is bytes
            and _time(record.stored_at)
            and _time(record.fresh_until)
            and _time(record.stale_until)
            and _versions(record.versions)
            and type(record.flags) is int
        )
    if isinstance(record, MemoEntry):
        return (
            _time(record.stored_at)
            and _time(record.fresh_until)
            and _time(record.stale_until)
            and _versions(record.versions)
        )
    if isinstance(record, VaryIndex):
        return (
            type(record.names) is tuple
            and all(_header_text(name) for name in record.names)
            and _time(record.stored_at)
            and _versions(record.versions)
        )
    return False
