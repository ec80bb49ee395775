"""The ``Cache`` extension: configuration, the low-level API and the decorators.

State lives in ``app.extensions["cache"][cache]``, never on the extension,
so one ``Cache`` serves several apps and one app can have several caches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from flask import Flask, current_app

from . import memoize as _memoize
from . import views as _views
from .config import load_settings
from .keys import HashMethod
from .state import AppState
from .stats import Stats
from .stores import BaseStore

__all__ = ["Cache"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_LOW_LEVEL = "low-level API"


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
        caches[self] = AppState(settings, store)

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
        return self.state().call(_LOW_LEVEL, operation, default, *args)

    def get(self, key: str) -> Any:
        """Return the value at *key*, or None."""
        return self._call("get", None, key)

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
        result: list[Any] = self._call("get_many", [None] * len(keys), *keys)
        return result

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
    ) -> Callable[[F], F]:
        """Cache a function's result per arguments.

        Arguments are bound to the signature with defaults applied, so
        ``f(1, 2)``, ``f(1, b=2)`` and ``f(a=1, b=2)`` share an entry.
        Objects are keyed by ``__caching_id__()``, else their own
        ``__repr__``, else their class and attributes, never by address.
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
        )

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
