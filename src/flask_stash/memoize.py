"""``@cache.memoize``: caching plain functions by their arguments.

Every function carries the tag ``fn:<name>``, so ``delete_memoized(f)``
replaces one tag version and every entry of *f* on every store is gone at
once, even on memcached, which cannot list its keys (see :mod:`.tags`).
:class:`FunctionCache` holds what memoized functions and ``@cached`` plain
functions share: one read of the entry and its tag versions, a computation
once per key (single-flight), stale-while-revalidate and stale-if-error.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Union, cast

from flask import current_app

from .arguments import bypass_for, check_callable, check_stale_windows, check_timeout
from .entries import MemoEntry, is_fresh
from .errors import SerializationError
from .keys import HashMethod, bind_arguments, function_name, hash_text, source_hash
from .tags import current_versions, invalidate, matches, tag_keys

if TYPE_CHECKING:
    from .extension import Cache
    from .state import AppState

__all__ = ["FunctionCache", "Memoized", "TagsArgument", "check_tags", "memoize", "memoized_of"]

logger = logging.getLogger("flask_stash")

F = TypeVar("F", bound=Callable[..., Any])

#: ``tags=``: names, or a callable of the function's arguments returning names.
TagsArgument = Union[Collection[str], Callable[..., Iterable[str]], None]  # noqa: UP007


def check_tags(tags: object) -> None:
    if tags is None or callable(tags):
        return
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):  # type: ignore[attr-defined]
        raise TypeError("tags must be a list of strings, or a callable returning one")


@dataclass
class _Outcome:
    """A computed value, and which thread computed it (others re-read the store)."""

    value: Any
    owner: int = field(default_factory=threading.get_ident)


class FunctionCache:
    """The entries of one cached function: lookup, compute once, store."""

    def __init__(
        self,
        cache: Cache,
        name: str,
        *,
        timeout: Callable[[], int | None],
        forced_update: Callable[[], bool] | None,
        response_filter: Callable[[Any], bool] | None,
        cache_none: bool,
        stale_while_revalidate: int,
        stale_if_error: int,
        single_flight: bool,
    ) -> None:
        self.cache = cache
        self.name = name
        self.timeout = timeout
        self.forced_update = forced_update
        self.response_filter = response_filter
        self.cache_none = cache_none
        self.swr = stale_while_revalidate
        self.sie = stale_if_error
        self.single_flight = single_flight

    def lookup(
        self, state: AppState, key: str, keys: list[str]
    ) -> tuple[MemoEntry | None, Sequence[object], MemoEntry | None]:
        """Return a usable entry (fresh, or stale within SWR), the tag versions, and a stale one.

        The third value is an entry past its freshness that stale-if-error
        may still serve if computing fails.
        """
        if self.forced_update is not None and self.forced_update():
            return None, [None] * len(keys), None
        found = state.get_many([key, *keys], self.name)
        entry, versions = found[0], tuple(found[1:])
        if type(entry) is not MemoEntry or not matches(entry.versions, versions):
            return None, versions, None
        now = state.clock()
        if is_fresh(entry.fresh_until, now) or now < entry.fresh_until + self.swr:
            return entry, versions, None
        return None, versions, entry if now < entry.stale_until else None

    def _hit(self, state: AppState, entry: MemoEntry, key: str) -> Any:
        state.stats.hit(self.name, key)
        if not is_fresh(entry.fresh_until, state.clock()):
            state.stats.skip(self.name, "served stale", key)
        return entry.value

    def get_or_compute(
        self, state: AppState, key: str, tags: list[str], compute: Callable[[], Any]
    ) -> Any:
        keys = tag_keys(tags)
        entry, versions, stale = self.lookup(state, key, keys)
        if entry is not None:
            if not is_fresh(entry.fresh_until, state.clock()):
                self.refresh(state, key, tags, lambda: compute())
            return self._hit(state, entry, key)
        state.stats.miss(self.name, key)

        def run() -> tuple[_Outcome, bool]:
            value, stored = self.compute_and_store(state, key, tags, versions, stale, compute)
            return _Outcome(value), stored

        if not self.single_flight:
            return run()[0].value

        def read() -> _Outcome | None:
            found, _, _ = self.lookup(state, key, keys)
            return _Outcome(None, owner=0) if found is not None else None

        outcome = state.flight.run(key, run, read=read, lock=state.lock())
        if outcome.owner == threading.get_ident():
            return outcome.value
        # Computed elsewhere: read our own copy, so no two callers share one
        # mutable object.
        found, versions, stale = self.lookup(state, key, keys)
        if found is not None:
            return self._hit(state, found, key)
        return self.compute_and_store(state, key, tags, versions, stale, compute)[0]

    async def aget_or_compute(
        self, state: AppState, key: str, tags: list[str], compute: Callable[[], Awaitable[Any]]
    ) -> Any:
        """The coroutine version: the same entries, awaited computation."""
        keys = tag_keys(tags)
        entry, versions, stale = self.lookup(state, key, keys)
        if entry is not None:
            if not is_fresh(entry.fresh_until, state.clock()):
                self.refresh(state, key, tags, lambda: asyncio.run(_awaited(compute)))
            return self._hit(state, entry, key)
        state.stats.miss(self.name, key)
        try:
            rv = await compute()
        except Exception:
            if stale is None:
                raise
            return self._serve_stale(state, stale, key)
        return self.store(state, key, tags, versions, rv)[0]

    def _serve_stale(self, state: AppState, stale: MemoEntry, key: str) -> Any:
        logger.warning("%s raised; serving the stale entry (stale_if_error)", self.name)
        state.stats.skip(self.name, "stale_if_error", key)
        return stale.value

    def compute_and_store(
        self,
        state: AppState,
        key: str,
        tags: list[str],
        versions: Sequence[object],
        stale: MemoEntry | None,
        compute: Callable[[], Any],
    ) -> tuple[Any, bool]:
        try:
            rv = compute()
        except Exception:
            if stale is None:
                raise
            return self._serve_stale(state, stale, key), False
        return self.store(state, key, tags, versions, rv)

    def store(
        self, state: AppState, key: str, tags: list[str], versions: Sequence[object], rv: Any
    ) -> tuple[Any, bool]:
        """Store *rv* unless a filter says not to; return it and whether it was stored."""
        if rv is None and not self.cache_none:
            return rv, False
        if self.response_filter is not None and not self.response_filter(rv):
            state.stats.skip(self.name, "response_filter", key)
            return rv, False
        tokens = current_versions(state, self.name, tags, versions)
        if None in tokens:
            return rv, False  # the store is failing; it was counted there
        timeout = self.timeout()
        if timeout is None:
            timeout = state.store.default_timeout
        window = max(self.swr, self.sie)
        now = state.clock()
        fresh_until = now + timeout if timeout else 0.0
        entry = MemoEntry(rv, now, fresh_until, fresh_until + window if timeout else 0.0, tokens)
        try:
            stored = bool(
                state.call(self.name, "set", False, key, entry, timeout + window if timeout else 0)
            )
        except SerializationError as err:
            state.stats.skip(self.name, "not serializable", key)
            state.warn_once(self.name, "not serializable", f"{self.name}: result not cached: {err}")
            return rv, False
        if stored:
            state.stats.stored(self.name, key)
        return rv, stored

    def refresh(
        self, state: AppState, key: str, tags: list[str], compute: Callable[[], Any]
    ) -> None:
        """Recompute a stale entry in a background thread; callers get the stale one now."""
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        keys = tag_keys(tags)

        def work() -> None:
            with app.app_context():
                found = state.get_many(keys, self.name) if keys else []
                self.store(state, key, tags, found, compute())

        state.start_revalidation(key, work)


async def _awaited(compute: Callable[[], Awaitable[Any]]) -> Any:
    return await compute()


@dataclass(frozen=True)
class Memoized:
    """How a memoized function names its entries; kept on the wrapper."""

    function: Callable[..., Any]
    name: str
    hash_method: HashMethod
    ignore: Collection[str]
    source: str

    @property
    def tag(self) -> str:
        """The tag every entry of the function carries."""
        return f"fn:{self.name}"

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        bound = bind_arguments(self.function, args, kwargs, self.ignore)
        return f"memoize:{self.name}:{hash_text(bound + self.source, self.hash_method)}"

    def invalidate(self, state: AppState) -> bool:
        return invalidate(state, self.name, [self.tag])


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
    *,
    stale_while_revalidate: int = 0,
    stale_if_error: int = 0,
    tags: TagsArgument = None,
    single_flight: bool = True,
) -> Callable[[F], F]:
    """Build the decorator; see :meth:`flask_stash.Cache.memoize`."""
    check_timeout(timeout)
    for label, value in (
        ("unless", unless),
        ("make_name", make_name),
        ("forced_update", forced_update),
        ("response_filter", response_filter),
        ("hash_method", hash_method),
    ):
        check_callable(label, value)
    if isinstance(args_to_ignore, str):
        raise TypeError("args_to_ignore must be a list of parameter names, not a string")
    check_stale_windows(stale_while_revalidate, stale_if_error)
    check_tags(tags)

    def decorator(f: F) -> F:
        base_name = function_name(f)
        meta = Memoized(
            function=f,
            name=make_name(base_name) if make_name else base_name,
            hash_method=hash_method,
            ignore=frozenset(args_to_ignore or ()),
            source=f"|src:{source_hash(f, hash_method)}" if source_check else "",
        )
        bypass = bypass_for(unless, f)
        wrapper: Any = None
        entries = FunctionCache(
            cache,
            meta.name,
            timeout=lambda: wrapper.cache_timeout,
            forced_update=forced_update,
            response_filter=response_filter,
            cache_none=cache_none,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            single_flight=single_flight,
        )

        def tags_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
            extra = tags(*args, **kwargs) if callable(tags) else tags or ()
            return [meta.tag, *extra]

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def decorated_async(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(args, kwargs):
                    return await f(*args, **kwargs)
                state = cache.state()
                state.begin()
                return await entries.aget_or_compute(
                    state,
                    meta.key(args, kwargs),
                    tags_for(args, kwargs),
                    lambda: f(*args, **kwargs),
                )

            wrapper = decorated_async
        else:

            @functools.wraps(f)
            def decorated(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(args, kwargs):
                    return f(*args, **kwargs)
                state = cache.state()
                state.begin()
                return entries.get_or_compute(
                    state,
                    meta.key(args, kwargs),
                    tags_for(args, kwargs),
                    lambda: f(*args, **kwargs),
                )

            wrapper = decorated

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = lambda *args, **kwargs: meta.key(args, kwargs)
        wrapper.__stash_memoized__ = meta
        wrapper.delete_memoized = lambda: cache.delete_memoized(wrapper)
        return cast(F, wrapper)

    return decorator
