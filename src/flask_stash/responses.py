"""Responses a view can return to steer the cache, and headers a hit is built from."""

# No ``from __future__ import annotations``: typed code inspects this
# constructor's signature, and expects real types there, not strings.
from typing import Any

from flask import Response
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Response as WerkzeugResponse

__all__ = ["CachedResponse", "stored_response", "trusted_headers"]

# Werkzeug's Headers keeps its pairs in ``_list``; if a release ever stops
# doing so, the checked path below is taken instead.
_LIST_OF_PAIRS = Headers([("A", "b")]).__dict__.get("_list") == [("A", "b")]


def trusted_headers(pairs: list[tuple[str, str]]) -> Headers:
    """Headers holding *pairs* as they are, without checking each one again.

    For a stored page's headers: Werkzeug checked them when the view's
    response was built, and an entry read from bytes is checked for shape
    before it is served (:func:`~flask_stash.entries.well_formed`). Skipping
    the second check is a good part of what a hit costs.
    """
    if not _LIST_OF_PAIRS:
        return Headers(pairs)
    headers: Headers = Headers.__new__(Headers)
    headers.__dict__["_list"] = pairs
    return headers


class CachedResponse(Response):
    """A response that sets its own cache timeout, for views that know best.

    ``return CachedResponse(make_response(page), timeout=60)`` stores the
    page for 60 seconds whatever the decorator's ``timeout`` says; 0 stores
    it without expiry. Everything else about the response is unchanged.
    """

    def __init__(self, response: Response, timeout: int) -> None:
        if type(timeout) is not int or timeout < 0:
            raise ValueError(
                f"timeout must be a whole number of seconds, 0 or more; got {timeout!r}"
            )
        # Take over the wrapped response's state as it is, headers and body
        # included, rather than copying it field by field.
        self.__dict__ = response.__dict__
        self.timeout = timeout


#: What Werkzeug's Response.__init__ leaves in a response's __dict__, given
#: a body, a status and headers that hold a Content-Type.
_FIELDS = frozenset(
    {"headers", "_status", "_status_code", "direct_passthrough", "_on_close", "response"}
)
_BUILDS_PLAINLY: dict[type, bool] = {}
_STATUS_LINES: dict[int, str] = {}


def _builds_plainly(cls: type) -> bool:
    """Whether *cls* is built by Werkzeug's own __init__, into the fields above.

    A response class with an __init__ of its own (or a Werkzeug release
    that keeps other fields) is built by calling it.
    """
    known = _BUILDS_PLAINLY.get(cls)
    if known is None:
        known = False
        if _LIST_OF_PAIRS and cls.__init__ is WerkzeugResponse.__init__:  # type: ignore[misc]
            probe = cls(b"", 200, [("Content-Type", "text/plain")])
            known = set(probe.__dict__) == _FIELDS and probe.automatically_set_content_length
        _BUILDS_PLAINLY[cls] = known
    return known


def _status_line(cls: type, status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        probe = cls(status=status)
        line = _STATUS_LINES[status] = probe.status
    return line


def stored_response(
    cls: type[Any], status: int, headers: list[tuple[str, str]], body: bytes
) -> Any:
    """A response of *cls* that holds a stored page, built without re-checking it.

    The same fields Werkzeug's constructor would set (Content-Length is
    appended to *headers*, as it appends it), filled in directly: on a
    hit, checking the status, the content type and every header again would
    cost more than the lookup.
    """
    plain = _BUILDS_PLAINLY.get(cls)
    if plain is None:
        plain = _builds_plainly(cls)
    if not plain:
        return cls(body, status, trusted_headers(headers))
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _status_line(cls, status)
    headers.append(("Content-Length", str(len(body))))
    kept: Headers = Headers.__new__(Headers)  # trusted_headers(), written out
    kept.__dict__["_list"] = headers
    response = object.__new__(cls)
    fields = response.__dict__
    fields["headers"] = kept
    fields["_status"] = line
    fields["_status_code"] = status
    fields["direct_passthrough"] = False
    fields["_on_close"] = []
    fields["response"] = [body]
    return response
