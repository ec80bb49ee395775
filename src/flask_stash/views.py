"""``@cache.cached``: caching whole view responses.

The path of a request: the bypass check, then the key (method, host, path
and canonical query string by default), then one read of the entry and its
tag versions. A fresh entry is answered at once (304 when the client has it);
a stale one within ``stale_while_revalidate`` too, while a background request
refreshes it. Otherwise the view runs, once per key across threads and
processes, and its response is stored unless a rule of :mod:`.http` or the
session says it belongs to one user.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import io
import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import (
    Flask,
    Request,
    Response,
    current_app,
    has_app_context,
    has_request_context,
    request,
    url_for,
)
from flask.globals import _cv_request, request_ctx
from flask.sessions import SessionMixin
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_cookie

from . import engine, http
from .arguments import (
    Predicate,
    bypass_for,
    check_callable,
    check_stale_windows,
    check_timeout,
    predicate_for,
    seconds,
)
from .entries import (
    NEEDS_EMPTY_SESSION,
    PUBLIC,
    RETURNED_TEXT,
    FrozenResponse,
)
from .fastlane import lane_of, url_parts
from .keys import (
    HashMethod,
    QueryArgs,
    hash_text,
    query_names,
    query_string_of,
    request_host,
    request_origin,
    source_hash,
    view_key,
)
from .memoize import FunctionCache, TagsArgument, check_tags
from .reads import EVERY_HEADER, UNWATCHED, environ_header, headers_read
from .responses import CachedResponse, stored_response
from .stats import function_label
from .tags import url_tag

if TYPE_CHECKING:
    from .extension import Cache
    from .state import AppState

__all__ = ["CachedView", "cached", "current_request"]

logger = logging.getLogger("flask_stash")

#: What an app without Flask-Stash's state holds: nothing (one dict, not one per call).
_NONE: dict[Any, Any] = {}

F = TypeVar("F", bound=Callable[..., Any])

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
#: The host, path and query of a request whose page key is remembered hold
#: this many characters at most, so the memo stays small (MEMO_ENTRIES of them).
MEMO_PART_LENGTH = 1024
#: Set in the environ of the background request that refreshes a stale entry.
REVALIDATE = "flask_stash.revalidate"
_MISSING = object()


def current_request() -> Request | None:
    """Return the request object itself, or None outside a request.

    Each attribute read through the ``request`` proxy costs as much as the
    rest of a cache hit, so the hit path looks the request up once.
    """
    if not has_request_context():
        return None
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    return req


def peek_session() -> SessionMixin | None:
    """Return the session without marking it accessed.

    Reading it through ``flask.session`` marks it accessed (Flask 3.1 and
    later), which is exactly what this module watches for.
    """
    ctx = request_ctx._get_current_object()  # type: ignore[attr-defined]
    found = getattr(ctx, "_session", _MISSING)
    if found is _MISSING:  # Flask before 3.1 keeps it as a plain attribute
        found = ctx.session
    return cast("SessionMixin | None", found)


def variant_key(key: str, names: Sequence[str], req: Request) -> str:
    """The key of the variant of *key* that *req*'s headers select (Vary).

    The values are written as a JSON list, which no header value can forge
    (a separator inside a value is escaped), and where an absent header
    (null) differs from an empty one ("").
    """
    environ = req.environ
    # Read from the environ: req.headers would count as the page reading them.
    values = json.dumps([environ_header(environ, name) for name in names])
    return f"{key}|vary:{hash_text(values)[:32]}"


@dataclass
class Computed:
    """What a miss produced: the response for its own request, and what others may share."""

    response: Any
    frozen: FrozenResponse | None
    variant: str | None = None


@dataclass(frozen=True)
class ViewOptions:
    timeout: int | None
    key_prefix: str | Callable[[], str]
    unless: Callable[..., Any] | None
    forced_update: Predicate | None
    response_filter: Callable[[Any], bool] | None
    query_string: bool
    hash_method: HashMethod
    cache_none: bool
    make_cache_key: Callable[..., str] | None
    source_check: bool | None
    response_hit_indication: bool
    is_stale: Predicate | None
    stale_while_revalidate: int
    stale_if_error: int
    tags: TagsArgument
    single_flight: bool
    per_user: bool | Callable[[], object]
    query_params: frozenset[str] | None


class CachedView:
    """The cache of one decorated view; built once, used on every request."""

    def __init__(self, cache: Cache, f: Callable[..., Any], options: ViewOptions) -> None:
        self.cache = cache
        self.f = f
        self.options = options
        #: What the view is counted and logged under: its endpoint once it
        #: has answered a request (see label_by_endpoint), until then, and
        #: when called as a plain function, its function_label().
        self.name = function_label(f)
        self.labelled = False
        self.source = f"|src:{source_hash(f, options.hash_method)}"
        #: The decorated function; its ``cache_timeout`` is read on every store,
        #: as Flask-Caching does, so changing it changes later timeouts.
        self.decorated: Any = None
        #: The ``make_cache_key`` the decorator put on it; another one
        #: assigned later builds the keys instead, as in Flask-Caching.
        self.default_make_key: Any = None
        #: Whether a page's key and tags follow from the request's raw parts
        #: alone (not from the session, a callable or the app's own key).
        self.memoizable = (
            options.make_cache_key is None
            and isinstance(options.key_prefix, str)
            and "%s" in options.key_prefix
            and not options.per_user
            and not callable(options.tags)
        )
        self.plain = FunctionCache(
            cache,
            self.name,
            timeout=lambda: self.timeout,
            forced_update=options.forced_update,
            response_filter=options.response_filter,
            cache_none=options.cache_none,
            stale_while_revalidate=options.stale_while_revalidate,
            stale_if_error=options.stale_if_error,
            single_flight=options.single_flight,
            is_stale=options.is_stale,
        )

    @property
    def timeout(self) -> int | None:
        return seconds(getattr(self.decorated, "cache_timeout", self.options.timeout))

    # -- keys ----------------------------------------------------------------

    def key(
        self,
        req: Request | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        host: str | None = None,
        state: AppState | None = None,
    ) -> str:
        """The entry's key; *host* and *state* save looking them up again on the hit path."""
        options = self.options
        prefix = options.key_prefix
        make_key = getattr(self.decorated, "make_cache_key", None)
        if make_key is not self.default_make_key and callable(make_key):
            key = str(make_key(*args, **kwargs))  # assigned by the app after decorating
        elif options.make_cache_key is not None:
            key = options.make_cache_key(*args, **kwargs)
        elif callable(prefix):
            key = prefix()
        elif "%s" in prefix:
            if req is None:
                raise RuntimeError(f"{self.name}: a key built from the request needs a request")
            environ = req.environ
            key = view_key(
                prefix % req.path,
                req.method,
                request_origin(environ, host),
                environ.get("QUERY_STRING", "") if options.query_string else None,
                options.hash_method,
                options.query_params,
            )
        else:
            key = prefix
        if options.per_user and req is not None:
            key += "|user:" + self._user(req)
        check = options.source_check
        if check is False:
            return key
        if check is None:
            check = (state or self.cache.state()).settings.source_check
        return key + self.source if check else key

    def key_for(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        path: str | None = None,
        query_args: QueryArgs | None = None,
    ) -> str:
        """The key of the page at *path* (or the URL of the view's arguments).

        With nothing given inside a request, it is the current request's key.
        Otherwise the key is that of a GET of the URL, on the current
        request's host, else on ``SERVER_NAME`` (or ``localhost``), exactly as
        ``app.test_request_context()`` would build that request.
        """
        req = current_request()
        prefix = self.options.key_prefix
        if not (isinstance(prefix, str) and "%s" in prefix) or self.options.make_cache_key:
            return self.key(req, args, kwargs)  # the key does not come from a URL
        if req is not None and path is None and query_args is None and not args and not kwargs:
            return self.key(req, (), {})
        if not has_app_context():
            app: Flask = self.cache.state().app
            with app.app_context():
                return self.key_for(args, kwargs, path, query_args)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        if path is None:
            values = dict(zip(_parameter_names(self.f), args, strict=False))
            values.update(kwargs)
            # url_for needs a request (or SERVER_NAME) to build a path with:
            # outside one, the request app.test_request_context() makes.
            with app.test_request_context() if req is None else contextlib.nullcontext():
                path = url_for(self.endpoint(app), _external=False, **values)
        if query_args is not None:
            query = query_string_of(query_args)
        else:
            query = req.environ.get("QUERY_STRING", "") if req is not None else ""
        base_url = req.root_url if req is not None else None
        context = app.test_request_context(path, base_url=base_url, query_string=query)
        return self.key(context.request, (), {})

    def endpoint(self, app: Flask) -> str:
        """The endpoint this view is registered under (its name if it is not)."""
        for endpoint, view in app.view_functions.items():
            if view is self.decorated:
                return endpoint
        return self.f.__name__

    def _user(self, req: Request) -> str:
        """Who the request is from, for per-user entries."""
        per_user = self.options.per_user
        if callable(per_user):
            return hash_text(repr(per_user()), self.options.hash_method)[:32]
        # Parsed here rather than through req.cookies or req.headers, which
        # would count as the page reading them (see .reads).
        environ = req.environ
        cookies = parse_cookie(environ.get("HTTP_COOKIE", ""))
        cookie = cookies.get(current_app.config["SESSION_COOKIE_NAME"], "")
        who = f"{cookie}|{environ.get('HTTP_AUTHORIZATION', '')}"
        return hash_text(who, self.options.hash_method)[:32]

    def tags(
        self,
        req: Request | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        is_view: bool,
        host: str | None = None,
    ) -> list[str]:
        tags = self.options.tags
        found = list(tags(*args, **kwargs) if callable(tags) else tags or ())
        # The URL tag lets an unsafe method drop the URL's cached GETs; a
        # POST cached under the app's own key must not drop itself.
        if req is not None and is_view and req.method in _CACHEABLE_METHODS:
            host = request_host(req.environ) if host is None else host
            found.insert(0, url_tag(host, req.path))
        return found

    # -- the request path ------------------------------------------------------

    def is_view(self, req: Request, app: Flask) -> bool:
        """Whether this call answers the request, rather than helping a view.

        Only the endpoint's own view (or the ``dispatch_request`` or method
        handler of its class-based view) makes a page; any other function
        under ``@cached`` caches its return value.
        """
        rule = req.url_rule
        if rule is None:
            return False
        view = app.view_functions.get(rule.endpoint)
        if view is self.decorated:
            return True
        view_class = getattr(view, "view_class", None)
        if view_class is None:
            return False
        handler = getattr(view_class, req.method.lower(), None) or getattr(
            view_class, "dispatch_request", None
        )
        return handler is self.decorated

    def label_by_endpoint(self, req: Request, app: Flask) -> None:
        """Count the view under the endpoint of *req* from now on.

        An endpoint is known only once the view is routed, so it is looked up
        at the first request the view answers, then kept. A function routed
        under several endpoints is counted under the first of them in sorted
        order, the same in every process.
        """
        rule = req.url_rule
        if rule is None:
            return
        view = app.view_functions.get(rule.endpoint)
        endpoints = [endpoint for endpoint, found in app.view_functions.items() if found is view]
        self.name = min(endpoints, default=rule.endpoint)
        self.labelled = True

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # One context lookup gives both the request and the app: each proxy
        # read (request, current_app) costs as much as a store hit's checks.
        ctx = _cv_request.get(None)
        if ctx is None:
            req, state = None, self.cache.state()
        else:
            req = ctx.request
            found = ctx.app.extensions.get("flask_stash", _NONE).get(self.cache)
            state = found if found is not None else self.cache.state(ctx.app)
            if self.memoizable and self.decorated.make_cache_key is self.default_make_key:
                # A page's key, tags and store names follow from the request's
                # raw parts alone: worked out once per URL, not on every hit.
                # Only pages are remembered (this view answering a GET or HEAD
                # at this URL), so a remembered one needs no other check.
                known = state.page_keys.get(_page_parts(self, req))
                if known is not None:
                    state.guard.begin()
                    key, tags, keys, plain = known
                    environ = req.environ
                    if plain and REVALIDATE not in environ and "HTTP_AUTHORIZATION" not in environ:
                        # The common hit, answered here; anything else goes
                        # to the engine with what was read, not read again.
                        found = state.entries.get_many(keys, self.name)
                        response = self.plain_hit(state, key, found, environ)
                        if response is not None:
                            return response
                        return self.serve(state, req, key, tags, args, kwargs, keys, found)
                    return self.serve(state, req, key, tags, args, kwargs, keys)
        is_view = req is not None and self.is_view(req, state.app)
        if is_view and not self.labelled and req is not None:
            self.label_by_endpoint(req, state.app)
        # A key the app builds itself (make_cache_key) is the app's to choose,
        # so any method may be cached under it; otherwise GET and HEAD only.
        if (
            is_view
            and req is not None
            and req.method not in _CACHEABLE_METHODS
            and self.options.make_cache_key is None
        ):
            return self.call(args, kwargs)
        state.guard.begin()  # state.begin(), without the call
        if (
            is_view
            and req is not None
            and self.memoizable
            and self.decorated.make_cache_key is self.default_make_key
        ):
            environ = req.environ
            page_host = request_host(environ)
            key = self.key(req, args, kwargs, page_host, state)
            tags = self.tags(req, args, kwargs, is_view, page_host)
            keys = engine.read_keys(key, tags)
            query = environ.get("QUERY_STRING") or ""
            if (
                environ.get("HTTP_HOST") is not None
                and len(page_host) + len(req.path) + len(query) <= MEMO_PART_LENGTH
            ):
                plain = self.plain_hits(state)
                state.page_keys.remember(_page_parts(self, req), (key, tags, keys, plain))
                if state.settings.fast_lane and plain:
                    lane = lane_of(state.app)
                    if lane is not None:
                        lane.pages.remember(
                            url_parts(environ),
                            functools.partial(self.answer_early, state, key, keys),
                        )
            return self.serve(state, req, key, tags, args, kwargs, keys)
        host = request_host(req.environ) if req is not None else None
        key = self.key(req, args, kwargs, host, state)
        tags = self.tags(req, args, kwargs, is_view, host)
        if req is None or not is_view:
            return self.plain.get_or_compute(
                state, key, tags, lambda: self.call(args, kwargs), (args, kwargs)
            )
        return self.serve(state, req, key, tags, args, kwargs)

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not has_request_context() and not inspect.iscoroutinefunction(self.f):
            return self.f(*args, **kwargs)
        return current_app.ensure_sync(self.f)(*args, **kwargs)

    def serve(
        self,
        state: AppState,
        req: Request,
        key: str,
        tags: list[str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        keys: list[str] | None = None,
        found: list[Any] | None = None,
    ) -> Any:
        """Answer *req* from its page, or run the view (see :func:`.engine.get_or_compute`).

        *found* is what one read of *keys* returned already, if it was made.

        A forced recompute (``forced_update``, the background refresh of a
        stale page) is never answered by the entry it replaces.
        """
        options = self.options
        forced = (
            req.environ.get(REVALIDATE) == key
            or (options.forced_update is not None and options.forced_update((), args, kwargs))
            or (state.settings.honor_request_no_cache and _asks_no_cache(req))
        )
        return engine.get_or_compute(
            state, PageCall(self, state, req, key, tags, args, kwargs, keys, found), forced
        )

    def _variant_of(self, key: str, frozen: FrozenResponse, req: Request) -> str | None:
        names = http.vary_names(frozen.headers)
        return variant_key(key, names, req) if names else None

    def usable_for(self, entry: FrozenResponse, req: Request) -> bool:
        """Whether *entry*, made for someone, may answer *req* (see :meth:`rules`)."""
        flags = entry.flags
        if flags & NEEDS_EMPTY_SESSION and len(peek_session() or ()):
            return False
        return bool(
            flags & PUBLIC or self.options.per_user or "HTTP_AUTHORIZATION" not in req.environ
        )

    def respond(
        self, state: AppState, entry: FrozenResponse, req: Request, now: float, label: str
    ) -> Response:
        """Build the answer to *req* from a stored response."""
        age = int(now - entry.stored_at)
        headers = [*entry.headers, ("Age", str(age) if age > 0 else "0")]
        settings = state.settings
        if settings.x_cache_header:
            headers.append(("X-Cache", label))
        if self.options.response_hit_indication:
            headers.append(("hit_cache", "True"))
        if settings.send_cache_control and not http.header_values(headers, "cache-control"):
            remaining = max(0, int(entry.fresh_until - now)) if entry.fresh_until else 31536000
            # A page kept per user, or only for empty sessions, must not be
            # shared by a cache in front of the app.
            personal = self.options.per_user or entry.flags & NEEDS_EMPTY_SESSION
            scope = "private" if personal else "public"
            headers.append(("Cache-Control", f"{scope}, max-age={remaining}"))
        response_class = state.response_class or current_app.response_class
        if_none_match = req.environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None:
            etags = http.header_values(entry.headers, "etag")
            if etags and http.etag_matches(if_none_match, etags[0]):
                kept = http.not_modified_headers(headers)
                kept.append(("Age", headers[len(entry.headers)][1]))
                response: Response = response_class(status=304, headers=kept)
                return response
        response = stored_response(response_class, entry.status, headers, entry.body)
        return response

    def plain_hits(self, state: AppState) -> bool:
        """Whether a fresh page of this view is answered without asking the engine.

        True when nothing but the entry decides: no ``forced_update`` or
        ``is_stale`` to ask, no signals to send, no request ``no-cache`` to
        honour, no ``unless``. The fast lane answers only such views too.
        """
        options = self.options
        settings = state.settings
        return (
            options.unless is None
            and options.forced_update is None
            and options.is_stale is None
            and not settings.enable_signals
            and not settings.honor_request_no_cache
        )

    def plain_hit(
        self, state: AppState, key: str, found: list[Any], environ: dict[str, Any]
    ) -> Response | None:
        """The answer from *found* (a page and its tag versions) if it is fresh and anyone's.

        None leaves the decision to :func:`.engine.get_or_compute`: a miss, a
        stale page, a Vary index, a page made for empty sessions only. The
        request carries no Authorization (the caller checks).
        """
        entry = found[0]
        if type(entry) is not FrozenResponse or entry.flags & NEEDS_EMPTY_SESSION:
            return None
        now = engine.fresh_hit(state, self.name, key, found)
        if now is None:
            return None
        return self.respond(state, entry, cast(Request, _EnvironOnly(environ)), now, "HIT")

    def answer_early(
        self, state: AppState, key: str, keys: list[str], environ: dict[str, Any]
    ) -> Response | None:
        """The fast lane's answer (see :meth:`plain_hit`); None hands the request to Flask."""
        state.guard.begin()
        return self.plain_hit(state, key, state.entries.get_many(keys, self.name), environ)

    def refresh_in_background(self, state: AppState, req: Request, key: str) -> None:
        """Refresh a stale entry with a copy of *req*, run through the whole app.

        The copy runs every before_request hook, so the refresh sees exactly
        what a visitor's request would. Only one process refreshes a key: the
        others see the lock and keep serving the stale entry.
        """
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        environ = dict(req.environ)
        environ[REVALIDATE] = key
        environ["wsgi.input"] = io.BytesIO()

        def work() -> None:
            with app.request_context(environ):
                app.full_dispatch_request()

        state.start_revalidation(key, work, self.name)

    # -- a miss ----------------------------------------------------------------

    def compute(
        self,
        state: AppState,
        req: Request,
        key: str,
        tags: list[str],
        versions: Sequence[object] | None,
        stale: FrozenResponse | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Computed:
        """Run the view and store its response if every rule allows it."""
        produced: Any = None
        try:
            rv = self.call(args, kwargs)
        except HTTPException as exc:
            # abort(404) is a page like a returned 404: the app's error
            # handler makes it, and the storing rules decide on it.
            rv = current_app.handle_user_exception(exc)
            if isinstance(rv, HTTPException):  # no handler: the exception's own page
                rv = rv.get_response(req.environ)
            produced = True
        except Exception:
            if stale is None:
                raise
            logger.warning("%s raised; serving the stale entry (stale_if_error)", self.name)
            state.stats.skip(self.name, "stale_if_error", key)
            return Computed(self.respond(state, stale, req, state.clock(), "STALE"), None)
        # Cookies and headers are watched from before the first hook runs
        # (see .reads): the page may depend on what was read.
        read_cookies = "cookies" in req.__dict__
        read_headers = headers_read(req)
        response = current_app.make_response(rv)
        if stale is not None and response.status_code >= 500:
            state.stats.skip(self.name, "stale_if_error", key)
            return Computed(self.respond(state, stale, req, state.clock(), "STALE"), None)
        if self.options.response_filter is not None and not self.options.response_filter(
            response if produced else rv
        ):
            state.stats.skip(self.name, "response_filter", key)
            return Computed(response, None)
        reason, flags, lifetime = self.rules(response, req, read_headers)
        if reason is not None:
            logger.debug("%s: response not cached: %s", self.name, reason)
            state.stats.skip(self.name, reason, key)
            if reason == "streamed":
                state.warn_once(
                    self.name, reason, f"{self.name}: response not cached: it is streamed"
                )
            return Computed(response, None)
        if type(rv) is str:
            flags |= RETURNED_TEXT
        read = {"cookie"} if read_cookies else set()
        read.update(read_headers)
        return self.store(state, req, key, tags, versions, response, flags, read, lifetime)

    def rules(
        self, response: Response, req: Request, read_headers: frozenset[str] = frozenset()
    ) -> tuple[str | None, int, int | None]:
        """Why *response* must not be stored (or None), the entry's flags, its lifetime cap.

        The lifetime is what the response's own freshness allows (RFC 9111),
        or None if it sets none.
        """
        if response.is_streamed or response.direct_passthrough:
            return "streamed", 0, None
        if req.method == "HEAD":
            # A view may answer HEAD with an empty body (its own head(), or a
            # check of request.method): GET's entry must hold GET's body.
            return "HEAD request", 0, None
        if EVERY_HEADER in read_headers:
            return "read every request header", 0, None
        if UNWATCHED in read_headers:
            return "request headers not watchable", 0, None
        state = self.cache.state()
        settings = state.settings
        per_user = bool(self.options.per_user)
        headers = response.headers.to_wsgi_list()
        reason = http.why_not_storable(
            response.status_code,
            headers,
            request_authorized=not per_user and "HTTP_AUTHORIZATION" in req.environ,
            cacheable_statuses=settings.cacheable_statuses,
        )
        if reason is None and http.request_forbids_storing(req.environ.get("HTTP_CACHE_CONTROL")):
            reason = "request Cache-Control: no-store"
        lifetime = None
        if reason is None and settings.honor_freshness:
            reason, lifetime = http.freshness(headers, state.clock())
        if reason is not None:
            return reason, 0, None
        flags = PUBLIC if "public" in http.cache_control(headers) else 0
        current = peek_session()
        if current is not None and current.modified:
            # Flask will send Set-Cookie after this: the response is one user's.
            return "session written", 0, None
        if not per_user and current is not None and current.accessed:
            # The page may depend on who is logged in: keep it only while
            # the session is empty, and serve it only to empty sessions.
            if len(current):
                return "session", 0, None
            flags |= NEEDS_EMPTY_SESSION
        return None, flags, lifetime

    def store(
        self,
        state: AppState,
        req: Request,
        key: str,
        tags: list[str],
        versions: Sequence[object] | None,
        response: Response,
        flags: int,
        read: Collection[str] = (),
        lifetime: int | None = None,
    ) -> Computed:
        """Store the page, varied on what it read of the request besides its own ``Vary``.

        The names read are added to the ``Vary`` header it is stored (and
        sent) with, so that a cache in front of the app varies on them too.
        """
        timeout = self.timeout if self.timeout is not None else state.store.default_timeout
        if isinstance(response, CachedResponse):
            timeout = response.timeout
        if lifetime is not None and (not timeout or lifetime < timeout):
            timeout = lifetime  # never kept longer than the response itself allows
        window = max(self.options.stale_while_revalidate, self.options.stale_if_error)
        body = response.get_data()
        if not http.header_values(response.headers.to_wsgi_list(), "etag"):
            response.headers["ETag"] = http.strong_etag(body)
        names = http.vary_names(response.headers.to_wsgi_list()) or ()
        if read or names:
            # Requests to one URL may read different headers (a hook that
            # reads Authorization only when X-Api-Key is absent): the URL
            # varies on all of them, or each store would replace the names
            # the others' variants are found by.
            read = set(read).union(engine.varied_on(state, self.name, key))
        unlisted = sorted(set(read).difference(names))
        if unlisted:
            response.vary.update(name.title() for name in unlisted)
            names = tuple(sorted((*names, *unlisted)))
        # Content-Length is derived from the body when the response is rebuilt.
        headers = tuple(
            (name, value)
            for name, value in response.headers.items()
            if name.lower() not in ("set-cookie", "content-length")
        )
        variant = variant_key(key, names, req) if names else None
        frozen, _ = engine.store_page(
            state,
            self.name,
            key,
            tags,
            versions,
            (response.status_code, headers, body, flags),
            timeout,
            window,
            (names, variant) if variant is not None else None,
        )
        if state.settings.x_cache_header:
            response.headers["X-Cache"] = "MISS"
        if state.settings.send_cache_control and "Cache-Control" not in response.headers:
            # What the hits that follow will say, from the start.
            personal = self.options.per_user or flags & NEEDS_EMPTY_SESSION
            scope = "private" if personal else "public"
            max_age = timeout if timeout else 31536000
            response.headers["Cache-Control"] = f"{scope}, max-age={max_age}"
        # Shared with the requests waiting in this process even if the store
        # did not take it: a sick store must not turn into a stampede.
        return Computed(response, frozen, variant)


class PageCall:
    """One request for a cached view, as :mod:`.engine` sees it: its entry is a page."""

    __slots__ = (
        "args",
        "found",
        "is_stale",
        "key",
        "keys",
        "kwargs",
        "name",
        "req",
        "state",
        "tags",
        "view",
    )

    def __init__(
        self,
        view: CachedView,
        state: AppState,
        req: Request,
        key: str,
        tags: list[str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        keys: list[str] | None = None,
        found: list[Any] | None = None,
    ) -> None:
        self.view = view
        #: What the first read returned, if the caller made it already.
        self.found = found
        self.state = state
        self.req = req
        self.key = key
        self.tags = tags
        self.keys = engine.read_keys(key, tags) if keys is None else keys
        self.args = args
        self.kwargs = kwargs
        self.name = view.name
        self.is_stale = None if view.options.is_stale is None else self._is_stale

    # Read on a miss or a stale entry only, so not copied on every hit.
    @property
    def single_flight(self) -> bool:
        return self.view.options.single_flight

    @property
    def stale_while_revalidate(self) -> int:
        return self.view.options.stale_while_revalidate

    def _variant_of(self, names: tuple[str, ...]) -> str:
        return variant_key(self.key, names, self.req)

    def read(self) -> tuple[FrozenResponse | None, tuple[object, ...]]:
        found, self.found = self.found, None
        entry, versions, _ = engine.read_page(
            self.state, self.name, self.keys, self._variant_of, found
        )
        if entry is not None and (
            # usable_for()'s answer for the common page, without the call.
            (not entry.flags and "HTTP_AUTHORIZATION" not in self.req.environ)
            or self.view.usable_for(entry, self.req)
        ):
            return entry, versions
        return None, versions

    def _is_stale(self, entry: FrozenResponse) -> bool:
        check = self.view.options.is_stale
        assert check is not None
        return check((self.answer(entry, "HIT", self.state.clock()),), self.args, self.kwargs)

    def answer(self, entry: FrozenResponse, label: str, now: float) -> Response:
        return self.view.respond(self.state, entry, self.req, now, label)

    def refresh(self) -> None:
        self.view.refresh_in_background(self.state, self.req, self.key)

    def signal(self, hit: bool) -> None:
        self.view.plain.signal(hit, self.key, (self.args, self.kwargs))

    def compute(
        self, versions: Sequence[object] | None, stale: FrozenResponse | None, owner: object
    ) -> engine.Made[Any, FrozenResponse]:
        done = self.view.compute(
            self.state, self.req, self.key, self.tags, versions, stale, self.args, self.kwargs
        )
        return engine.Made(done.response, done.frozen, owner, done.variant)

    def poll(self) -> engine.Made[Any, FrozenResponse] | None:
        """What another process stored while this one waited for its lock."""
        entry, versions, variant = engine.read_page(
            self.state, self.name, self.keys, self._variant_of
        )
        if entry is not None and engine.fresh(self.state, entry, versions):
            return engine.Made(None, entry, None, variant)
        return None

    def share(self, made: engine.Made[Any, FrozenResponse]) -> tuple[bool, Any]:
        """Another request's page, only if it is the one this request would get.

        Same variant, and not someone's own page.
        """
        frozen, variant = made.entry, made.extra
        if (
            frozen is not None
            and self.view.usable_for(frozen, self.req)
            and (variant is None or variant == self.view._variant_of(self.key, frozen, self.req))
        ):
            return True, self.answer(frozen, "MISS", self.state.clock())
        return False, None


class _EnvironOnly:
    """What :meth:`CachedView.respond` reads of a request, for the fast lane."""

    __slots__ = ("environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ


def _page_parts(view: CachedView, req: Request) -> tuple[object, ...]:
    """What a page's key, tags and store names follow from: the request's raw parts."""
    environ = req.environ
    return (
        view,
        req.method,
        environ.get("HTTP_HOST"),
        environ.get("wsgi.url_scheme"),
        environ.get("SCRIPT_NAME"),
        req.path,
        environ.get("QUERY_STRING"),
    )


def _asks_no_cache(req: Request) -> bool:
    """Whether the request says ``Cache-Control: no-cache`` (or ``Pragma: no-cache``)."""
    value = req.environ.get("HTTP_CACHE_CONTROL")
    if value and "no-cache" in http.cache_control([("Cache-Control", value)]):
        return True
    return bool(str(req.environ.get("HTTP_PRAGMA", "")).strip().lower() == "no-cache")


def _parameter_names(f: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        return []


def cached(
    cache: Cache,
    timeout: Any = None,
    key_prefix: str | Callable[[], str] = "view/%s",
    unless: Callable[..., Any] | None = None,
    forced_update: Callable[..., bool] | None = None,
    response_filter: Callable[[Any], bool] | None = None,
    query_string: bool = True,
    hash_method: HashMethod = hashlib.sha256,
    cache_none: bool = False,
    make_cache_key: Callable[..., str] | None = None,
    source_check: bool | None = None,
    response_hit_indication: bool = False,
    *,
    is_stale: Callable[..., bool] | None = None,
    stale_while_revalidate: int = 0,
    stale_if_error: int = 0,
    tags: TagsArgument = None,
    single_flight: bool = True,
    per_user: bool | Callable[[], object] = False,
    query_params: Collection[str] | None = None,
) -> Callable[[F], F]:
    """Build the decorator; see :meth:`flask_stash.Cache.cached`."""
    timeout = check_timeout(timeout)
    for label, value in (
        ("unless", unless),
        ("forced_update", forced_update),
        ("is_stale", is_stale),
        ("response_filter", response_filter),
        ("make_cache_key", make_cache_key),
        ("hash_method", hash_method),
    ):
        check_callable(label, value)
    if not (callable(key_prefix) or isinstance(key_prefix, str)):
        raise TypeError(f"key_prefix must be a string or a callable, got {key_prefix!r}")
    check_stale_windows(stale_while_revalidate, stale_if_error)
    check_tags(tags)
    if isinstance(query_params, str):
        raise TypeError("query_params must be a list of parameter names, not a string")
    options = ViewOptions(
        timeout=timeout,
        key_prefix=key_prefix,
        unless=unless,
        forced_update=predicate_for(forced_update),
        response_filter=response_filter,
        query_string=query_string,
        hash_method=hash_method,
        cache_none=cache_none,
        make_cache_key=make_cache_key,
        source_check=source_check,
        response_hit_indication=response_hit_indication,
        is_stale=predicate_for(is_stale, leading=1),
        stale_while_revalidate=stale_while_revalidate,
        stale_if_error=stale_if_error,
        tags=tags,
        single_flight=single_flight,
        per_user=per_user,
        query_params=query_names(query_params) if query_params is not None else None,
    )

    def decorator(f: F) -> F:
        view = CachedView(cache, f, options)
        bypass = bypass_for(unless, f)
        serve_call = view.__call__  # a bound method: calling the instance costs a lookup more

        @functools.wraps(f)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            if bypass is not None and bypass(args, kwargs):
                return view.call(args, kwargs)
            return serve_call(args, kwargs)

        def make_key(
            *args: Any, path: str | None = None, query_args: QueryArgs | None = None, **kwargs: Any
        ) -> str:
            """The key of the current request, or of the URL of *path* or the view's arguments."""
            return view.key_for(args, kwargs, path, query_args)

        wrapper = cast(Any, decorated)
        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = make_key
        wrapper.__stash_cached__ = view
        view.decorated = wrapper
        view.default_make_key = make_key
        return cast(F, decorated)

    return decorator
