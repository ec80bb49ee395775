"""What a page read from its request, beyond its key: cookies and headers.

A page made from a cookie or a request header that is not in its key
belongs to the requests that send the same value. Before any hook runs, the
request's parsed cookies are dropped and its headers are replaced by a
:class:`WatchedHeaders` that notes every name looked up; after the view,
:mod:`.views` varies the stored page on what was read (as if the response
had said ``Vary``), so another value never gets it.

This is how an identity taken from a header (an ``X-Api-Key`` read by
Flask-Login's ``request_loader`` in a hook, say) keeps one user's page from
answering another: the page is stored for the value it was made for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flask import Request, request
from werkzeug.datastructures import EnvironHeaders

__all__ = [
    "EVERY_HEADER",
    "EXEMPT_HEADERS",
    "UNWATCHED",
    "WatchedHeaders",
    "environ_header",
    "headers_read",
    "watch_headers",
    "watch_request",
]

#: Headers a page may read without being varied on them, lower-cased. None
#: changes who the user is or what the page says:
#:
#: - ``host``: the key holds it already;
#: - ``accept-encoding``: compression is the server's or a middleware's,
#:   applied to the response after it is stored;
#: - ``cache-control``, ``pragma`` and the conditional headers
#:   (``if-none-match``, ``if-modified-since``, ``if-match``,
#:   ``if-unmodified-since``, ``if-range``): they say how to answer, and the
#:   cache answers them itself from the stored page;
#: - ``connection``, ``keep-alive``, ``te``, ``upgrade``: hop-by-hop, about
#:   the connection only.
EXEMPT_HEADERS = frozenset(
    {
        "host",
        "accept-encoding",
        "cache-control",
        "pragma",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
    }
)

#: Stands in :func:`headers_read` for a page that listed every header.
EVERY_HEADER = "*"

_BODY_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
#: Stands in :func:`headers_read` for headers that could not be watched.
UNWATCHED = "?"
_UNWATCHED = frozenset({UNWATCHED})


def environ_header(environ: Mapping[str, Any], name: str) -> str | None:
    """A request header's value read straight from the environ, so it is not watched."""
    key = name.upper().replace("-", "_")
    if key not in _BODY_HEADERS:
        key = "HTTP_" + key
    value = environ.get(key)
    return None if value is None else str(value)


class WatchedHeaders(EnvironHeaders):
    """The request's headers, noting each name read (lower-cased) in ``read``.

    Listing them all (iterating, ``len``, ``items()``) notes
    :data:`EVERY_HEADER`: such a page may depend on any of them.
    """

    #: The names read, lower-cased; None until one is.
    read: set[str] | None = None
    _quiet = False
    # Headers.__init__ only sets up this list, which EnvironHeaders never
    # uses; skipping it keeps the watch cheap on every request.
    _list: Any = ()

    def __init__(self, environ: Any) -> None:
        self.environ = environ

    def _note(self, name: str) -> None:
        read = self.read
        if read is None:
            read = self.read = set()
        read.add(name)

    def _get_key(self, key: str) -> str:
        if isinstance(key, str):
            self._note(key.lower())
        return super()._get_key(key)

    def getlist(self, key: str, type: Any = None) -> list[Any]:
        if isinstance(key, str):
            self._note(key.lower())
        self._quiet = True  # Headers.getlist looks through every header for this one
        try:
            return super().getlist(key, type)
        finally:
            self._quiet = False

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if not self._quiet:
            self._note(EVERY_HEADER)
        return super().__iter__()


def watch_request(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Start watching what the request's hooks and view read.

    The parsed cookies are dropped (opening the session parsed them; finding
    them parsed again after the view shows a hook or the view read them),
    and the headers are replaced by :class:`WatchedHeaders`. Registered
    first among the app's URL value preprocessors by ``init_app``, so it runs
    before every ``before_request`` hook.
    """
    req = request._get_current_object()  # type: ignore[attr-defined]
    req.__dict__.pop("cookies", None)
    watch_headers(req)


def watch_headers(req: Request) -> None:
    """Watch *req*'s headers from now on, unless they are watched already.

    A request class with headers of its own kind is left as it is; see
    :func:`headers_read`.
    """
    if type(req.headers) is EnvironHeaders:
        req.headers = WatchedHeaders(req.environ)


def headers_read(req: Request) -> frozenset[str]:
    """The headers a page read that it must be varied on, lower-cased.

    Headers that cannot be watched (a request class whose headers are of
    its own kind) give :data:`UNWATCHED`.
    """
    headers = req.headers
    if type(headers) is not WatchedHeaders:
        return _UNWATCHED
    read = headers.read
    if not read:
        return frozenset()
    return frozenset(read - EXEMPT_HEADERS)
