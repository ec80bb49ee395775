"""The ``Cache`` extension: configuration, the low-level API and the decorators.

State lives in ``app.extensions["flask_stash"][cache]``, never on the
extension, so one ``Cache`` serves several apps and one app can have several
caches. ``app.extensions["cache"][cache]`` is the store, where code written
for Flask-Caching looks for it.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import click
from flask import Blueprint, Flask, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState

from . import cli, engine, fastlane, jinja, reads
from . import memoize as _memoize
from . import tags as _tags
from . import views as _views
from .arguments import Timeout, seconds
from .config import load_settings
from .entries import RETURNED_TEXT, FrozenResponse, MemoEntry
from .errors import ConfigurationError, SerializationError
from .guard import GuardedStore
from .keys import HashMethod, QueryArgs, request_host
from .state import AppState
from .stats import Stats
from .stores import BaseStore

__all__ = ["Cache"]

logger = logging.getLogger("flask_stash")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_LOW_LEVEL = "low-level API"
#: Methods whose success changes what a GET of the same URL returns.
#: Low-level methods a subclass may override to see the decorators' store calls.
_OVERRIDABLE = ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "has")


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

    def __init__(
        self,
        app: Flask | None = None,
        with_jinja2_ext: bool | Mapping[str, Any] = True,
        config: Mapping[str, Any] | None = None,
    ):
        if isinstance(with_jinja2_ext, Mapping):  # Cache(app, {...}): the config by position
            config, with_jinja2_ext = with_jinja2_ext, True
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping of CACHE_* keys, got {config!r}")
        self.config = dict(config) if config else None
        self.with_jinja2_ext = bool(with_jinja2_ext)
        self._apps: list[weakref.ref[Flask]] = []
        if app is not None:
            self.init_app(app)

    @property
    def app(self) -> Flask | None:
        """The app this cache was last set up on (Flask-Caching's attribute).

        Kept as a weak reference: the extension never keeps an app alive.
        """
        for ref in reversed(self._apps):
            found = ref()
            if found is not None:
                return found
        return None

    def init_app(self, app: Flask, config: Mapping[str, Any] | None = None) -> None:
        """Check the configuration, build the store, and register it on *app*.

        :raises ConfigurationError: if a ``CACHE_*`` key is not usable; the
            message says what is accepted.
        """
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping of CACHE_* keys, got {config!r}")
        try:
            settings = load_settings(app.config, self.config, config)
            store = settings.build_store(app)
        except ConfigurationError as err:
            if click.get_current_context(silent=True) is None:
                raise
            # Under the flask command, which loads the app before any of our
            # commands runs: one line with the fix, not a traceback.
            raise cli.CliConfigurationError(str(err)) from err
        states = app.extensions.setdefault("flask_stash", {})
        old = states.get(self)
        if isinstance(old, AppState):
            old.store.close()
        else:
            # What the hooks and view read is watched, and the URL's pages
            # are dropped after an unsafe method, from the request context
            # (see .reads): no hook of the app's runs on a GET for it.
            reads.install(app)
            cli.register(app)  # flask cache ...
            if self.with_jinja2_ext:
                jinja.register(app)  # {% cache %}
        state = AppState(settings, store, app.response_class, sender=app)
        if settings.fast_lane:
            fastlane.install(app)
        overridden = frozenset(
            name for name in _OVERRIDABLE if getattr(type(self), name) is not getattr(Cache, name)
        )
        if overridden:
            state.entries = ThroughSubclass(self, state.guard, overridden)
        states[self] = state
        app.extensions.setdefault("cache", {})[self] = store
        self._apps = [ref for ref in self._apps if ref() not in (None, app)]
        self._apps.append(weakref.ref(app))

    def _after_unsafe_method(self, response: Response) -> Response:
        """After a successful POST, PUT, PATCH or DELETE, drop the cached GETs of its URL.

        Added to the request's own after-request functions by
        :func:`.reads.watch`, for unsafe methods only.
        """
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.method in reads.UNSAFE_METHODS and response.status_code < 400:
            state = self.state()
            url = _tags.url_tag(request_host(req.environ), req.path)
            engine.invalidate(state, f"{req.method} {req.path}", [url])
        return response

    # -- per-app state -----------------------------------------------------

    def state(self, app: Flask | None = None) -> AppState:
        """Return this cache's state on *app*, or on the current app."""
        if app is None:
            try:
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            except RuntimeError:
                app = self._only_app()
        try:
            found: AppState = app.extensions["flask_stash"][self]
        except KeyError:
            raise RuntimeError(
                f"this Cache is not set up on app {app.name!r}; did you call cache.init_app(app)?"
            ) from None
        return found

    def _only_app(self) -> Flask:
        """The app to use outside an app context: the one this cache was set up on."""
        apps = [app for app in (ref() for ref in self._apps) if app is not None]
        if len(apps) == 1:
            return apps[0]
        if not apps:
            raise RuntimeError(
                "this Cache is not set up on any app: call cache.init_app(app) first"
            )
        raise RuntimeError(
            f"this Cache is set up on {len(apps)} apps, so outside an application "
            "context it cannot tell which one to use: push one with "
            "'with app.app_context():'"
        )

    @property
    def cache(self) -> BaseStore:
        """The store object of the current app (``get``, ``set``, ``add`` ...)."""
        return self.state().store

    @property
    def stats(self) -> Stats:
        """Hits, misses, stores, skips and errors on the current app."""
        return self.state().stats

    # -- low-level API: store failures read as misses, never raise -----------

    def _guard(self) -> GuardedStore:
        """The guarded store of the current app, at the start of one low-level call."""
        guard = self.state().guard
        guard.begin()
        return guard

    def _value(self, found: Any) -> Any:
        """What the low-level API returns for an entry a decorator stored.

        A memoized result is the value; a page is what the view returned if
        that was text, else the stored response rebuilt. A decorator's own
        read, routed through an overriding subclass, gets the entry itself.
        """
        kind = type(found)
        if kind is not MemoEntry and kind is not FrozenResponse:
            return found
        state = self.state()
        if state.wants_raw():
            return found
        if kind is MemoEntry:
            return found.value
        if found.flags & RETURNED_TEXT:
            return found.body.decode("utf-8")
        response_class = state.response_class or Response
        return response_class(found.body, found.status, list(found.headers))

    def get(self, key: str) -> Any:
        """Return the value at *key*, or None."""
        return self._value(self._guard().get(key, _LOW_LEVEL))

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store *value* at *key* for *timeout* seconds (the default if None).

        A value the store's format cannot hold is not stored: False, and one
        warning that says why.
        """
        try:
            result = self._guard().set(key, value, seconds(timeout), _LOW_LEVEL)
        except SerializationError as err:
            self.state().warn_once(_LOW_LEVEL, f"set {type(value).__qualname__}", f"{err}")
            return False
        return result

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store *value* only if *key* holds nothing; return whether it did."""
        try:
            result = bool(self._guard().add(key, value, seconds(timeout), _LOW_LEVEL))
        except SerializationError as err:
            self.state().warn_once(_LOW_LEVEL, f"add {type(value).__qualname__}", f"{err}")
            return False
        return result

    def delete(self, key: str) -> bool:
        return bool(self._guard().delete(key, _LOW_LEVEL))

    def get_many(self, *keys: str) -> list[Any]:
        found = self._guard().get_many(list(keys), _LOW_LEVEL)
        return [self._value(item) for item in found]

    def set_many(self, mapping: Mapping[str, Any], timeout: Timeout = None) -> list[str]:
        try:
            result = self._guard().set_many(mapping, seconds(timeout), _LOW_LEVEL)
        except SerializationError as err:
            self.state().warn_once(_LOW_LEVEL, "set_many", f"{err}")
            return []
        return result

    def delete_many(self, *keys: str) -> list[str]:
        return self._guard().delete_many(list(keys), _LOW_LEVEL)

    def unlink(self, *keys: str) -> list[str]:
        """Remove *keys*; on Redis without waiting for the memory to be freed."""
        return self._guard().unlink(list(keys), _LOW_LEVEL)

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def has(self, key: str) -> bool:
        return self._guard().has(key, _LOW_LEVEL)

    def clear(self) -> bool:
        """Remove this app's entries (and only this app's) from the store."""
        return self._guard().clear(_LOW_LEVEL)

    def inc(self, key: str, delta: int = 1) -> int | None:
        return self._guard().inc(key, delta, _LOW_LEVEL)

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self._guard().dec(key, delta, _LOW_LEVEL)

    def get_or_set(self, key: str, default: Any, timeout: Timeout = None) -> Any:
        """Return the value at *key*; if absent, store *default* (or its result) first."""
        value = self.get(key)
        if value is None:
            value = default() if callable(default) else default
            self.set(key, value, timeout)
        return value

    # -- decorators --------------------------------------------------------

    def cached(
        self,
        timeout: Timeout = None,
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
        :param forced_update: recompute and store when it returns true;
            called with the function's arguments if it takes any.
        :param response_filter: store only when it returns true for the
            result (for a view that raised an ``HTTPException``, its response).
        :param query_string: False leaves the query string out of the key.
        :param cache_none: store a ``None`` result too.
        :param make_cache_key: builds the whole key from the view's
            arguments; the key is then the caller's, so any method is cached.
        :param source_check: put a hash of the function's code in the key
            (None: ``CACHE_SOURCE_CHECK``).
        :param response_hit_indication: add ``hit_cache: True`` to pages
            served from the cache.
        :param is_stale: called on a hit with the cached value (then the
            function's arguments, if it takes them); true recomputes.
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
            response_hit_indication=response_hit_indication,
            is_stale=is_stale,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            tags=tags,
            single_flight=single_flight,
            per_user=per_user,
            query_params=query_params,
        )

    def memoize(
        self,
        timeout: Timeout = None,
        make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[..., bool] | None = None,
        response_filter: Callable[[Any], bool] | None = None,
        hash_method: HashMethod = hashlib.sha256,
        cache_none: bool = False,
        source_check: bool | None = None,
        args_to_ignore: Collection[str] | None = None,
        *,
        is_stale: Callable[..., bool] | None = None,
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
            is_stale=is_stale,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            tags=tags,
            single_flight=single_flight,
        )

    def invalidate_tags(self, *tags: str) -> bool:
        """Drop every entry carrying any of *tags*, in every process, on any store."""
        return engine.invalidate(self.state(), "invalidate_tags", tags)

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

    def _memoized(
        self, f: Callable[..., Any], caller: str
    ) -> tuple[tuple[_memoize.Memoized, tuple[Any, ...]], AppState] | None:
        """The naming of memoized *f* and the state, or None (and a warning) if it is not."""
        found = _memoize.memoized_of(f)
        if found is None:
            logger.warning("%s: %r is not decorated with @cache.memoize", caller, f)
            return None
        state = self.state()
        state.begin()
        return found, state

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Drop every entry of memoized *f*, or with arguments, the one entry for them.

        ``delete_memoized(obj.method)`` drops the entries of that object only,
        ``delete_memoized(Cls.method)`` those of every object. With
        arguments, a bound method supplies its own ``self``
        (``delete_memoized(obj.method, 3)``); through the class, or for a
        classmethod, pass it first (``delete_memoized(Cls.method, obj, 3)``).
        On a function that is not memoized this logs a warning and returns
        False, as Flask-Caching does.

        :raises ValueError: if the arguments do not fit the function's signature.
        """
        found = self._memoized(f, "delete_memoized")
        if found is None:
            return False
        (meta, bound), state = found
        if not args and not kwargs:
            if bound and meta.instance is not None:
                return meta.invalidate(state, [meta.instance_tag(bound[0])])
            return meta.invalidate(state)
        if bound and not inspect.isclass(bound[0]) and not (args and args[0] is bound[0]):
            args = (*bound, *args)
        try:
            key = meta.key(args, kwargs, state.settings.source_check)
        except TypeError as err:
            raise ValueError(f"delete_memoized({meta.name}): {err}") from err
        return bool(state.entries.delete(key, meta.label))

    def delete_memoized_verhash(self, f: Callable[..., Any], *args: Any) -> bool:
        """Drop every entry of memoized *f* by deleting its version (Flask-Caching's name).

        Arguments are accepted and ignored, as Flask-Caching does.
        """
        found = self._memoized(f, "delete_memoized_verhash")
        if found is None:
            return False
        (meta, _), state = found
        # A missing tag version never matches a stored entry (see tags.py),
        # so deleting it invalidates like replacing it.
        return engine.forget_versions(state, meta.label, [meta.tag])

    def delete_cached(
        self,
        f: Callable[..., Any],
        path: str | None = None,
        query_args: QueryArgs | None = None,
        **kwargs: Any,
    ) -> bool:
        """Drop the cached page of a ``@cached`` view for one URL.

        Outside a request, give the *path* (and *query_args*, a query string,
        a mapping or pairs), or the view's arguments to build it with
        ``url_for``. The host is the current request's, else ``SERVER_NAME``,
        else ``localhost``, as ``app.test_request_context()`` has it.
        """
        make_key = getattr(f, "make_cache_key", None)
        if make_key is None or getattr(f, "__stash_cached__", None) is None:
            logger.warning("delete_cached: %r is not decorated with @cache.cached", f)
            return False
        return self.delete(make_key(path=path, query_args=query_args, **kwargs))


class ThroughSubclass:
    """The decorators' entry reads and writes, through a ``Cache`` subclass's own methods.

    Instrumentation subclasses ``Cache`` and wraps ``get``, ``set`` ...; it
    sees the decorators' traffic only if that goes through them. Only the
    entries themselves do: tag versions, locks and namespace reads are
    bookkeeping and go straight to the guarded store. While a decorator
    reads through the subclass, the low-level methods hand back entries
    unwrapped (:meth:`raw`).
    """

    def __init__(self, cache: Cache, guard: GuardedStore, methods: frozenset[str]) -> None:
        self.cache = cache
        self.guard = guard
        self.methods = methods
        self._thread = threading.local()

    def raw(self) -> bool:
        return bool(getattr(self._thread, "raw", False))

    def _through(self, method: Callable[..., T], *args: Any) -> T:
        self._thread.raw = True
        try:
            return method(*args)
        finally:
            self._thread.raw = False

    def get(self, key: str, name: str) -> Any:
        if "get" in self.methods:
            return self._through(self.cache.get, key)
        return self.guard.get(key, name)

    def get_many(self, keys: list[str], name: str) -> list[Any]:
        if "get" in self.methods:
            return [self.get(keys[0], name), *self.guard.get_many(keys[1:], name)]
        if "get_many" in self.methods:
            return list(self._through(self.cache.get_many, *keys))
        return self.guard.get_many(keys, name)

    def set(self, key: str, value: Any, timeout: int | None, name: str) -> bool:
        if "set" in self.methods:
            return bool(self._through(self.cache.set, key, value, timeout))
        return self.guard.set(key, value, timeout, name)

    def delete(self, key: str, name: str) -> bool | None:
        if "delete" in self.methods:
            return bool(self._through(self.cache.delete, key))
        return self.guard.delete(key, name)

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None, name: str) -> list[str]:
        if "set_many" in self.methods:
            return list(self._through(self.cache.set_many, mapping, timeout))
        return self.guard.set_many(mapping, timeout, name)

    def delete_many(self, keys: list[str], name: str) -> list[str]:
        if "delete_many" in self.methods:
            return list(self._through(self.cache.delete_many, *keys))
        return self.guard.delete_many(keys, name)
