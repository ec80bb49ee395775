"""``@cache.cached``: caching whole view responses.

The path of a request: the bypass check, then the key (method, host, path
and canonical query string by default), then the store. A hit returns the
stored response; a miss runs the view, freezes its response and stores it
unless a rule says not to.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Request, has_request_context, request

from .arguments import bypass_for, check_callable, check_timeout
from .errors import SerializationError
from .keys import HashMethod, function_name, hash_text, view_key
from .responses import CACHED_NONE, NotCacheableError, freeze, thaw

if TYPE_CHECKING:
    from .extension import Cache
    from .state import AppState

__all__ = ["cached"]

F = TypeVar("F", bound=Callable[..., Any])

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})


def current_request() -> Request | None:
    """Return the request object itself, or None outside a request.

    Each attribute read through the ``request`` proxy costs as much as the
    rest of a cache hit, so the hit path looks the request up once.
    """
    if not has_request_context():
        return None
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    return req


def source_hash(f: Callable[..., Any], hash_method: HashMethod) -> str:
    """Hash *f*'s code, so that editing a function invalidates its entries."""
    code = f.__code__
    return hash_text(f"{code.co_code.hex()}|{code.co_consts!r}", hash_method)[:16]


def store_result(state: AppState, name: str, key: str, value: Any, timeout: float | None) -> None:
    """Store *value*; a value that cannot be serialized is served, not stored."""
    try:
        if state.call(name, "set", False, key, value, timeout):
            state.stats.stored(name)
    except SerializationError as err:
        state.stats.skip(name, "not serializable")
        state.warn_once(name, "not serializable", f"{name}: result not cached: {err}")


def cached(
    cache: Cache,
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
    """Build the decorator; see :meth:`flask_stash.Cache.cached`."""
    check_timeout(timeout)
    for label, value in (
        ("unless", unless),
        ("forced_update", forced_update),
        ("response_filter", response_filter),
        ("make_cache_key", make_cache_key),
        ("hash_method", hash_method),
    ):
        check_callable(label, value)
    if not (callable(key_prefix) or isinstance(key_prefix, str)):
        raise TypeError(f"key_prefix must be a string or a callable, got {key_prefix!r}")
    # A key built from the request applies only to safe methods. A fixed
    # key_prefix caches a value, not a page, so the method does not matter.
    from_request = make_cache_key is not None or (
        isinstance(key_prefix, str) and "%s" in key_prefix
    )

    def decorator(f: F) -> F:
        name = function_name(f)
        bypass = bypass_for(unless, f)
        suffix = f"|src:{source_hash(f, hash_method)}" if source_check else ""

        def key_for(req: Request | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if make_cache_key is not None:
                key = make_cache_key(*args, **kwargs)
            elif callable(key_prefix):
                key = key_prefix()
            elif "%s" in key_prefix:
                if req is None:
                    raise RuntimeError(f"{name}: a key built from the request needs a request")
                key = view_key(
                    key_prefix % req.path,
                    req.method,
                    req.host,
                    req.environ.get("QUERY_STRING", "") if query_string else None,
                    hash_method,
                )
            else:
                key = key_prefix
            return key + suffix

        def make_key(*args: Any, **kwargs: Any) -> str:
            """Return the key the current request would use."""
            return key_for(current_request(), args, kwargs)

        @functools.wraps(f)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            if bypass is not None and bypass(args, kwargs):
                return f(*args, **kwargs)
            req = current_request()
            if from_request and (req is None or req.method not in _CACHEABLE_METHODS):
                return f(*args, **kwargs)
            state = cache.state()
            key = key_for(req, args, kwargs)
            if forced_update is None or not forced_update():
                value = state.get(key, name)
                if value is not None:
                    state.stats.hit(name)
                    return thaw(value)
            state.stats.miss(name)
            rv = f(*args, **kwargs)
            if response_filter is not None and not response_filter(rv):
                state.stats.skip(name, "response_filter")
                return rv
            if rv is None and not cache_none:
                return rv
            try:
                value = freeze(rv) if req is not None else (CACHED_NONE if rv is None else rv)
            except NotCacheableError as err:
                state.stats.skip(name, "not serializable")
                state.warn_once(name, "not serializable", f"{name}: response not cached: {err}")
                return rv
            store_result(state, name, key, value, decorated.cache_timeout)  # type: ignore[attr-defined]
            return rv

        wrapper = cast(Any, decorated)
        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = make_key
        return cast(F, decorated)

    return decorator
