"""What a page read from its request, beyond its key: cookies and headers.

A page made from a cookie or a request header that is not in its key
belongs to the requests that send the same value. Before any hook runs, the
request's parsed cookies are dropped and its headers start noting every
name looked up (:class:`WatchedHeaders`); after the view, :mod:`.views`
varies the stored page on what was read (as if the response had said
``Vary``), so another value never gets it.

The watch starts in :meth:`WatchedRequestContext.match_request`, the hook
Flask offers for subclasses of its request context: it runs once per
request, after the session is opened (which parses the cookies) and before
the first ``before_request`` hook. Hanging it there rather than on a URL
value preprocessor and an ``after_request`` hook keeps Flask's hook
machinery off the hit path; the ``after_request`` work (dropping a URL's
pages after an unsafe method) is added for unsafe methods only.

This is how an identity taken from a header (an ``X-Api-Key`` read by
Flask-Login's ``request_loader`` in a hook, say) keeps one user's page from
answering another: the page is stored for the value it was made for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Request
from flask.ctx import RequestContext
from werkzeug.datastructures import EnvironHeaders

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "EVERY_HEADER",
    "EXEMPT_HEADERS",
    "UNSAFE_METHODS",
    "UNWATCHED",
    "WatchedHeaders",
    "WatchedRequestContext",
    "environ_header",
    "headers_read",
    "install",
    "watch",
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

    A request's :class:`~werkzeug.datastructures.EnvironHeaders` becomes one
    by changing its class (see :func:`watch`): it holds no state of its own
    until a name is read.

    Listing them all (iterating, ``len``, ``items()``) notes
    :data:`EVERY_HEADER`: such a page may depend on any of them.
    """

    #: The names read, lower-cased; None until one is.
    read: set[str] | None = None
    _quiet = False

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


#: Methods after which the URL's cached pages are dropped (if they succeed).
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def watch(ctx: RequestContext) -> None:
    """Start watching what the request's hooks and view read.

    The parsed cookies are dropped (opening the session parsed them; finding
    them parsed again after the view shows a hook or the view read them),
    and the headers turn into :class:`WatchedHeaders` (the same object, so
    nothing is copied). A request pushed again (``stream_with_context``)
    is already watched, and keeps what it noted. After an unsafe method,
    every Cache on the app gets to drop the URL's pages.
    """
    req = ctx.request
    headers = req.headers
    if type(headers) is WatchedHeaders:
        return
    if type(headers) is EnvironHeaders:
        headers.__class__ = WatchedHeaders
    req.__dict__.pop("cookies", None)
    if req.method in UNSAFE_METHODS:
        for cache in ctx.app.extensions.get("flask_stash", ()):
            ctx._after_request_functions.append(cache._after_unsafe_method)


class WatchedRequestContext(RequestContext):
    """Flask's request context, watching the request once its URL is matched."""

    def match_request(self) -> None:
        super().match_request()
        watch(self)


_WATCHED_KINDS: dict[type[RequestContext], type[RequestContext]] = {}


def _watched_kind(kind: type[RequestContext]) -> type[RequestContext]:
    """A subclass of the request context class *kind* that watches its requests."""
    found = _WATCHED_KINDS.get(kind)
    if found is None:
        if issubclass(kind, WatchedRequestContext):
            found = kind
        else:
            found = type(f"Watched{kind.__name__}", (kind,), {"match_request": _match_and_watch})
        _WATCHED_KINDS[kind] = found
    return found


def _match_and_watch(ctx: RequestContext) -> None:
    super(type(ctx), ctx).match_request()  # type: ignore[misc]
    watch(ctx)


def install(app: Flask) -> None:
    """Make *app* build watched request contexts; once per app.

    ``app.request_context`` is how Flask builds every request's context
    (test requests included), so the app's own is replaced by one that
    builds a :class:`WatchedRequestContext`. An app (or a Flask subclass)
    that already builds its own kind of context keeps it, turned into a
    watching subclass of that kind.
    """
    current = app.request_context
    if getattr(current, "__flask_stash_watch__", False):
        return
    if getattr(current, "__func__", None) is Flask.request_context:

        def request_context(environ: WSGIEnvironment) -> RequestContext:
            return WatchedRequestContext(app, environ)

    else:

        def request_context(environ: WSGIEnvironment) -> RequestContext:
            ctx = current(environ)
            ctx.__class__ = _watched_kind(type(ctx))
            return ctx

    request_context.__flask_stash_watch__ = True  # type: ignore[attr-defined]
    app.request_context = request_context  # type: ignore[method-assign]


def headers_read(req: Request) -> frozenset[str]:
    """The headers a page read that it must be varied on, lower-cased.

    Headers that were not watched give :data:`UNWATCHED`: a request class
    whose headers are of its own kind, or a request context that Flask-Stash
    did not build (``app.request_context`` replaced after ``init_app``).
    """
    headers = req.headers
    if type(headers) is not WatchedHeaders:
        return _UNWATCHED
    read = headers.read
    if not read:
        return frozenset()
    return frozenset(read - EXEMPT_HEADERS)
