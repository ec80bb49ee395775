"""The ``Cache`` extension: configuration, the low-level API and the decorators.

State lives in ``app.extensions["cache"][cache]``, never on the extension,
so one ``Cache`` serves several apps and one app can have several caches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState

from . import cli, jinja
from . import memoize as _memoize
from . import tags as _tags
from . import views as _views
from .config import load_settings
from .entries import MemoEntry
from .keys import HashMethod, request_host
from .state import AppState
from .stats import Stats
from .stores import BaseStore

__all__ = ["Cache"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_LOW_LEVEL = "low-level API"
#: Methods whose success changes what a GET of the same URL returns.
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _value(found: Any) -> Any:
    """What the low-level API returns for an entry a decorator stored."""
    return found.value if type(found) is MemoEntry else found


class Cache:
    """Caching for a Flask app's views and functions.

    Configuration is read from ``app.config`` in :meth:`init_app`; a
    *config* mapping given here or to ``init_app`` overrides it. Keys:

    ``CACHE_TYPE``
        The store: ``memory``/``simple`` (the default), ``null``,
        ``filesystem``/``disk``, ``memcached``, ``saslmemcached``, ``redis``,
        one of Flask-Caching's class names, or an import path to a
        :class:`~flask_stash.stores.BaseStore` subclass.
    ``CACHE_URL``
        The store as one URL instead: ``memory://``, ``file:///path``,
        ``memcached://user:pass@h1:11211,h2:11211``, ``redis://h:6379/0``.
    ``CACHE_DEFAULT_TIMEOUT``
        Seconds an entry lives when a call gives no timeout (300; 0 is forever).
    ``CACHE_KEY_PREFIX``
        Put before every key, so apps sharing a server stay apart
        (``"flask_stash:"``).
    ``CACHE_THRESHOLD``
        Most entries the memory store keeps (500).
    ``CACHE_OPTIONS``
        Keyword arguments passed to the store's constructor.
    ``CACHE_FAILURE_THRESHOLD``, ``CACHE_RETRY_INTERVAL``
        After this many consecutive store failures (3), skip the store for
        this many seconds (10).

    Each store reads further keys of its own; see its class.
    """

    def __init__(self, app: Flask | None = None, *, config: Mapping[str, Any] | None = None):
        self.config = dict(config) if config else None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, config: Mapping[str, Any] | None = None) -> None:
        """Check the configuration, build the store, and register it on *app*.

        :raises ConfigurationError: if a ``CACHE_*`` key is not usable; the
            message says what is accepted.
        """
        settings = load_settings(app.config, self.config, config)
        store = settings.build_store()
        caches = app.extensions.setdefault("cache", {})
        old = caches.get(self)
        if isinstance(old, AppState):
            old.store.close()
        else:
            app.after_request(self._after_unsafe_method)
            preprocessors = app.url_value_preprocessors.setdefault(None, [])
            if _views.forget_cookies not in preprocessors:
                preprocessors.insert(0, _views.forget_cookies)
            cli.register(app)  # flask cache ...
            jinja.register(app)  # {% cache %}
        caches[self] = AppState(settings, store, app.response_class, sender=app)

    def _after_unsafe_method(self, response: Response) -> Response:
        """After a successful POST, PUT, PATCH or DELETE, drop the cached GETs of its URL."""
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.method in _UNSAFE_METHODS and response.status_code < 400:
            state = self.state()
            url = _tags.url_tag(request_host(req.environ), req.path)
            _tags.invalidate(state, f"{req.method} {req.path}", [url])
        return response

    # -- per-app state -----------------------------------------------------

    def state(self, app: Flask | None = None) -> AppState:
        """Return this cache's state on *app*, or on the current app."""
        if app is None:
            try:
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            except RuntimeError:
                raise RuntimeError(
                    "Flask-Stash needs an application context: use it inside a request or "
                    "within 'with app.app_context():'"
                ) from None
        try:
            found: AppState = app.extensions["cache"][self]
        except KeyError:
            raise RuntimeError(
                f"this Cache is not set up on app {app.name!r}; did you call cache.init_app(app)?"
            ) from None
        return found

    @property
    def cache(self) -> BaseStore:
        """The store object of the current app (``get``, ``set``, ``add`` ...)."""
        return self.state().store

    @property
    def stats(self) -> Stats:
        """Hits, misses, stores, skips and errors on the current app."""
        return self.state().stats

    # -- low-level API: store failures read as misses, never raise -----------

    def _call(self, operation: str, default: T, *args: Any) -> Any:
        state = self.state()
        state.begin()
        return state.call(_LOW_LEVEL, operation, default, *args)

    def get(self, key: str) -> Any:
        """Return the value at *key*, or None."""
        return _value(self._call("get", None, key))

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        """Store *value* at *key* for *timeout* seconds (the default if None)."""
        result: bool = self._call("set", False, key, value, timeout)
        return result

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        """Store *value* only if *key* holds nothing; return whether it did."""
        result: bool = self._call("add", False, key, value, timeout)
        return result

    def delete(self, key: str) -> bool:
        result: bool = self._call("delete", False, key)
        return result

    def get_many(self, *keys: str) -> list[Any]:
        return [_value(found) for found in self._call("get_many", [None] * len(keys), *keys)]

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None = None) -> list[str]:
        result: list[str] = self._call("set_many", [], mapping, timeout)
        return result

    def delete_many(self, *keys: str) -> list[str]:
        result: list[str] = self._call("delete_many", [], *keys)
        return result

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def has(self, key: str) -> bool:
        result: bool = self._call("has", False, key)
        return result

    def clear(self) -> bool:
        """Remove this app's entries (and only this app's) from the store."""
        result: bool = self._call("clear", False)
        return result

    def inc(self, key: str, delta: int = 1) -> int | None:
        result: int | None = self._call("inc", None, key, delta)
        return result

    def dec(self, key: str, delta: int = 1) -> int | None:
        result: int | None = self._call("dec", None, key, delta)
        return result

    def get_or_set(self, key: str, default: Any, timeout: int | None = None) -> Any:
        """Return the value at *key*; if absent, store *default* (or its result) first."""
        value = self.get(key)
        if value is None:
            value = default() if callable(default) else default
            self.set(key, value, timeout)
        return value

    # -- decorators --------------------------------------------------------

    def cached(
        self,
        timeout: int | None = None,
        key_prefix: str | Callable[[], str] = "view/%s",
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[[], bool] | None = None,
        response_filter: Callable[[Any], bool] | None = None,
        query_string: bool = True,
        hash_method: HashMethod = hashlib.sha256,
        cache_none: bool = False,
        make_cache_key: Callable[..., str] | None = None,
        source_check: bool = False,
        *,
        stale_while_revalidate: int = 0,
        stale_if_error: int = 0,
        tags: _memoize.TagsArgument = None,
        single_flight: bool = True,
        per_user: bool | Callable[[], object] = False,
        query_params: Collection[str] | None = None,
    ) -> Callable[[F], F]:
        """Cache a view's response; put it under ``@app.route``.

        The key is the method, host, path and canonical query string, so
        ``/?name=alice`` and ``/?name=bob`` never share an entry while
        ``?a=1&b=2`` and ``?b=2&a=1`` do. Only GET and HEAD are cached.

        :param key_prefix: ``%s`` is replaced by the path; without ``%s``
            the string is the whole key (for caching a non-view function);
            a callable returns the whole key.
        :param unless: skip the cache when it returns true; called with no
            arguments, or with the function and its arguments.
        :param forced_update: recompute and store when it returns true.
        :param response_filter: store only when it returns true for the result.
        :param query_string: False leaves the query string out of the key.
        :param cache_none: store a ``None`` result too.
        :param make_cache_key: builds the whole key from the view's arguments.
        :param source_check: put a hash of the function's code in the key.
        :param stale_while_revalidate: for this many seconds after the
            timeout, serve the stale page at once while one background
            request refreshes it.
        :param stale_if_error: for this many seconds after the timeout,
            serve the stale page if the view raises or answers 5xx.
        :param tags: names to invalidate the page by
            (:meth:`invalidate_tags`), or a callable of the view's arguments
            returning them.
        :param single_flight: compute a cold page once, while concurrent
            requests for it (in every process) wait for that result.
        :param per_user: keep one entry per user (per session cookie and
            Authorization header, or per what a callable returns), so pages
            that read the session are cached too.
        :param query_params: the only query parameters that make pages
            differ; others do not split the entry.

        Never stored: statuses outside ``CACHE_CACHEABLE_STATUSES``,
        responses with ``Set-Cookie``, ``Cache-Control: private`` or
        ``no-store``, ``Vary: *``, streamed responses, answers to requests
        with ``Authorization`` unless ``public``, and pages that read a
        non-empty session (unless *per_user*).
        """
        return _views.cached(
            self,
            timeout=timeout,
            key_prefix=key_prefix,
            unless=unless,
            forced_update=forced_update,
            response_filter=response_filter,
            query_string=query_string,
            hash_method=hash_method,
            cache_none=cache_none,
            make_cache_key=make_cache_key,
            source_check=source_check,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            tags=tags,
            single_flight=single_flight,
            per_user=per_user,
            query_params=query_params,
        )

    def memoize(
        self,
        timeout: int | None = None,
        make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[[], bool] | None = None,
        response_filter: Callable[[Any], bool] | None = None,
        hash_method: HashMethod = hashlib.sha256,
        cache_none: bool = False,
        source_check: bool = False,
        args_to_ignore: Collection[str] | None = None,
        *,
        stale_while_revalidate: int = 0,
        stale_if_error: int = 0,
        tags: _memoize.TagsArgument = None,
        single_flight: bool = True,
    ) -> Callable[[F], F]:
        """Cache a function's result per arguments.

        Arguments are bound to the signature with defaults applied, so
        ``f(1, 2)``, ``f(1, b=2)`` and ``f(a=1, b=2)`` share an entry.
        Objects are keyed by ``__caching_id__()``, else their own
        ``__repr__``, else their class and attributes, never by address.
        Coroutine functions stay coroutine functions. ``stale_while_revalidate``,
        ``stale_if_error``, ``tags`` and ``single_flight`` work as for
        :meth:`cached`.
        """
        return _memoize.memoize(
            self,
            timeout=timeout,
            make_name=make_name,
            unless=unless,
            forced_update=forced_update,
            response_filter=response_filter,
            hash_method=hash_method,
            cache_none=cache_none,
            source_check=source_check,
            args_to_ignore=args_to_ignore,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            tags=tags,
            single_flight=single_flight,
        )

    def invalidate_tags(self, *tags: str) -> bool:
        """Drop every entry carrying any of *tags*, in every process, on any store."""
        return _tags.invalidate(self.state(), "invalidate_tags", tags)

    def cache_pages(self, target: Flask | Blueprint, **options: Any) -> None:
        """Cache every GET view of an app or a blueprint, as ``@cached(**options)`` would.

        Views are wrapped when first requested, after every ``before_request``
        hook has run, so a hook added later (an auth check, say) still guards
        the cached pages. Opt a view out with :meth:`exempt`.
        """
        decorator = self.cached(**options)

        def hook_for(prefix: str | None) -> Callable[[], None]:
            def wrap_view() -> None:
                endpoint = request.endpoint
                if endpoint is None or (prefix is not None and not endpoint.startswith(prefix)):
                    return
                app = current_app._get_current_object()  # type: ignore[attr-defined]
                view = app.view_functions.get(endpoint)
                static = endpoint == "static" or endpoint.endswith(".static")
                if view is None or static or getattr(view, "__stash_skip__", False):
                    return
                wrapped: Any = decorator(view)
                wrapped.__stash_skip__ = True
                app.view_functions[endpoint] = wrapped

            return wrap_view

        if isinstance(target, Flask):
            target.before_request(hook_for(None))
        else:

            def register(state: BlueprintSetupState) -> None:
                state.app.before_request(hook_for(f"{state.name}."))

            target.record(register)

    @staticmethod
    def exempt(f: F) -> F:
        """Leave a view out of :meth:`cache_pages`."""
        cast_f: Any = f
        cast_f.__stash_skip__ = True
        return f

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Drop every entry of memoized *f*, or with arguments, the one entry for them.

        For a bound method, ``delete_memoized(obj.method, 1)`` drops the entry
        of ``obj.method(1)``; with no arguments every entry of the method goes.
        """
        meta, bound = _memoize.memoized_of(f)
        state = self.state()
        if not args and not kwargs:
            return meta.invalidate(state)
        key = meta.key((*bound, *args), kwargs)
        result: bool = state.call(meta.name, "delete", False, key)
        return result

    def delete_memoized_verhash(self, f: Callable[..., Any]) -> bool:
        """Drop every entry of memoized *f* (Flask-Caching's name for it)."""
        meta, _ = _memoize.memoized_of(f)
        return meta.invalidate(self.state())
