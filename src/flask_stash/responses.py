"""Turning a view's response into an immutable value a store can keep, and back."""

from __future__ import annotations

from typing import Any, NamedTuple

from flask import Response, current_app

__all__ = ["CACHED_NONE", "FrozenResponse", "NotCacheableError", "freeze", "thaw"]

#: Stands for a cached ``None`` (with ``cache_none=True``), which a store
#: cannot tell from a miss.
CACHED_NONE = "\x00flask-stash:none\x00"


class NotCacheableError(Exception):
    """The value must be served but not stored; the message says why."""


class FrozenResponse(NamedTuple):
    """A response reduced to status, headers and body: plain, immutable data."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def freeze(rv: Any) -> Any:
    """Return what to store for a view's return value *rv*."""
    if rv is None:
        return CACHED_NONE
    if isinstance(rv, tuple) and rv and isinstance(rv[0], Response):
        rv = current_app.make_response(rv)
    if isinstance(rv, Response):
        if rv.is_streamed or rv.direct_passthrough:
            raise NotCacheableError("it is a streamed response")
        return FrozenResponse(rv.status_code, tuple(rv.headers.items()), rv.get_data())
    return rv


def thaw(value: Any) -> Any:
    """Return the view's return value from what :func:`freeze` stored."""
    if type(value) is FrozenResponse:
        return current_app.response_class(value.body, value.status, list(value.headers))
    if type(value) is str and value == CACHED_NONE:
        return None
    return value
