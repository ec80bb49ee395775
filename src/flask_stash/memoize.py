"""``@cache.memoize``: caching plain functions by their arguments.

Each function has a version token in the store. Entries carry the token
they were computed under, and a read fetches the entry and the current
token in one round trip; an entry whose token differs is a miss. So
``delete_memoized(f)`` replaces one token and every entry of *f* on every
store is gone at once, even on memcached, which cannot list its keys.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .arguments import bypass_for, check_callable, check_timeout
from .keys import HashMethod, bind_arguments, function_name, hash_text
from .views import source_hash, store_result

if TYPE_CHECKING:
    from .extension import Cache
    from .state import AppState

__all__ = ["Memoized", "memoize", "memoized_of"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Memoized:
    """How a memoized function names its entries; kept on the wrapper."""

    function: Callable[..., Any]
    name: str
    hash_method: HashMethod
    ignore: Collection[str]
    source: str

    @property
    def version_key(self) -> str:
        return f"memver:{self.name}"

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        bound = bind_arguments(self.function, args, kwargs, self.ignore)
        return f"memoize:{self.name}:{hash_text(bound + self.source, self.hash_method)}"

    def current_version(self, state: AppState) -> str | None:
        """Return the function's version token, creating it if there is none."""
        token = uuid.uuid4().hex
        if state.call(self.name, "add", False, self.version_key, token, 0):
            return token
        found = state.get(self.version_key, self.name)
        return found if isinstance(found, str) else None

    def invalidate(self, state: AppState) -> bool:
        result: bool = state.call(self.name, "set", False, self.version_key, uuid.uuid4().hex, 0)
        return result


def memoized_of(f: Callable[..., Any]) -> tuple[Memoized, tuple[Any, ...]]:
    """Return the naming of memoized *f*, and the bound ``self`` of a method."""
    bound: tuple[Any, ...] = ()
    if inspect.ismethod(f):
        bound = (f.__self__,)
        f = f.__func__
    meta = getattr(f, "__stash_memoized__", None)
    if not isinstance(meta, Memoized):
        raise TypeError(f"{f!r} is not decorated with @cache.memoize")
    return meta, bound


def memoize(
    cache: Cache,
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
    """Build the decorator; see :meth:`flask_stash.Cache.memoize`."""
    check_timeout(timeout)
    for label, value in (
        ("make_name", make_name),
        ("unless", unless),
        ("forced_update", forced_update),
        ("response_filter", response_filter),
        ("hash_method", hash_method),
    ):
        check_callable(label, value)
    if isinstance(args_to_ignore, str):
        raise TypeError("args_to_ignore must be a list of parameter names, not a string")

    def decorator(f: F) -> F:
        base_name = function_name(f)
        meta = Memoized(
            function=f,
            name=make_name(base_name) if make_name else base_name,
            hash_method=hash_method,
            ignore=frozenset(args_to_ignore or ()),
            source=f"|src:{source_hash(f, hash_method)}" if source_check else "",
        )
        name = meta.name
        version_key = meta.version_key
        bypass = bypass_for(unless, f)

        @functools.wraps(f)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            if bypass is not None and bypass(args, kwargs):
                return f(*args, **kwargs)
            state = cache.state()
            key = meta.key(args, kwargs)
            version = None
            if forced_update is None or not forced_update():
                entry, version = state.call(name, "get_many", (None, None), key, version_key)
                if (
                    version is not None
                    and type(entry) is tuple
                    and len(entry) == 2
                    and entry[1] == version
                ):
                    state.stats.hit(name)
                    return entry[0]
            state.stats.miss(name)
            rv = f(*args, **kwargs)
            if rv is None and not cache_none:
                return rv
            if response_filter is not None and not response_filter(rv):
                state.stats.skip(name, "response_filter")
                return rv
            if not isinstance(version, str):
                version = meta.current_version(state)
                if version is None:
                    return rv
            store_result(state, name, key, (rv, version), decorated.cache_timeout)  # type: ignore[attr-defined]
            return rv

        wrapper = cast(Any, decorated)
        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = lambda *args, **kwargs: meta.key(args, kwargs)
        wrapper.__stash_memoized__ = meta
        wrapper.delete_memoized = lambda: cache.delete_memoized(decorated)
        return cast(F, decorated)

    return decorator
