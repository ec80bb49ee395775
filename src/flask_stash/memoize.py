"""``@cache.memoize``: caching plain functions by their arguments.

Every function carries the tag ``fn:<name>``, so ``delete_memoized(f)``
replaces one tag version and every entry of *f* on every store is gone at
once, even on memcached, which cannot list its keys (see :mod:`.tags`).
:class:`FunctionCache` holds what memoized functions and ``@cached`` plain
functions share: one read of the entry and its tag versions, a computation
once per key (single-flight), stale-while-revalidate and stale-if-error.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union, cast

from flask.globals import _cv_app

from . import engine
from .arguments import (
    Predicate,
    bypass_for,
    check_callable,
    check_stale_windows,
    check_timeout,
    predicate_for,
)
from .entries import MemoEntry
from .keys import (
    MEMO_QUERY_LENGTH,
    BoundedMemo,
    HashMethod,
    bind_parts,
    function_name,
    hash_text,
    source_hash,
    stable_repr,
)
from .signals import (
    cache_hit,
    cache_memoize_hit,
    cache_memoize_miss,
    cache_view_hit,
    cache_view_miss,
)
from .stats import function_label
from .stores.memory import MemoryStore

if TYPE_CHECKING:
    from .extension import Cache
    from .state import AppState

__all__ = [
    "FunctionCache",
    "Memoized",
    "TagsArgument",
    "check_tags",
    "function_namespace",
    "join_generator",
    "memoize",
    "memoized_of",
]

logger = logging.getLogger("flask_stash")

#: What an app without Flask-Stash's state holds: nothing (one dict, not one per call).
_NONE: dict[Any, Any] = {}
_EXT = "flask_stash"

F = TypeVar("F", bound=Callable[..., Any])

#: ``tags=``: names, or a callable of the function's arguments returning names.
TagsArgument = Union[Collection[str], Callable[..., Iterable[str]], None]  # noqa: UP007


def check_tags(tags: object) -> None:
    if tags is None or callable(tags):
        return
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):  # type: ignore[attr-defined]
        raise TypeError("tags must be a list of strings, or a callable returning one")


#: The arguments of one call: what ``forced_update``, ``is_stale`` and signals see.
Call = tuple[tuple[Any, ...], dict[str, Any]]
_NO_CALL: Call = ((), {})


def join_generator(value: Any) -> Any:
    """Consume a generator result so it can be cached and returned again.

    Text parts are joined into one string, bytes into one bytes object, and
    anything else becomes a list, as Flask-Caching does.
    """
    if not inspect.isgenerator(value):
        return value
    parts: list[Any] = list(value)
    if parts and all(type(part) is str for part in parts):
        return "".join(parts)
    if parts and all(type(part) is bytes for part in parts):
        return b"".join(parts)
    return parts


class FunctionCache:
    """The entries of one cached function: lookup, compute once, store."""

    def __init__(
        self,
        cache: Cache,
        name: str,
        *,
        timeout: Callable[[], int | None],
        forced_update: Predicate | None,
        response_filter: Callable[[Any], bool] | None,
        cache_none: bool,
        stale_while_revalidate: int,
        stale_if_error: int,
        single_flight: bool,
        is_stale: Predicate | None = None,
        function: Callable[..., Any] | None = None,
    ) -> None:
        self.cache = cache
        self.name = name
        self.timeout = timeout
        self.forced_update = forced_update
        self.is_stale = is_stale
        #: The undecorated function for memoize signals; None for ``@cached``.
        self.function = function
        self.response_filter = response_filter
        self.cache_none = cache_none
        self.swr = stale_while_revalidate
        self.sie = stale_if_error
        self.single_flight = single_flight

    def signal(self, hit: bool, key: str, call: Call) -> None:
        """Send Flask-Caching's signal for this hit or miss (``CACHE_ENABLE_SIGNALS``)."""
        args, kwargs = call
        if self.function is None:
            (cache_view_hit if hit else cache_view_miss).send(
                cache=self.cache, cache_key=key, args=args, kwargs=kwargs
            )
        else:
            (cache_memoize_hit if hit else cache_memoize_miss).send(
                cache=self.cache, cache_key=key, args=args, kwargs=kwargs, f=self.function
            )

    def get_or_compute(
        self,
        state: AppState,
        key: str,
        tags: list[str],
        compute: Callable[[], Any],
        call: Call = _NO_CALL,
        known: KnownCall | None = None,
    ) -> Any:
        """The cached value of one call (see :func:`.engine.get_or_compute`).

        A fresh hit on the memory store is kept in *known*, if given.
        """
        found = None
        if self.forced_update is None:
            if self.is_stale is None and not state.settings.enable_signals:
                # The common hit, answered here; anything else goes to the
                # engine with what was read, not read again.
                store = state.store
                # Read before the entry: a write after it makes the hit kept stale.
                writes = store.writes if type(store) is MemoryStore else None
                keys = engine.read_keys(key, tags)
                found = state.entries.get_many(keys, self.name)
                hit, value = engine.plain_value(state, self.name, key, found)
                if hit:
                    if known is not None and writes is not None and state.entries is state.guard:
                        known.remember(state, cast(MemoryStore, store), writes, found[0], keys)
                    return value
            forced = False
        else:
            forced = self.forced_update((), *call)
        return engine.get_or_compute(
            state, ValueCall(self, state, key, tags, compute, call, found), forced
        )

    async def aget_or_compute(
        self,
        state: AppState,
        key: str,
        tags: list[str],
        compute: Callable[[], Awaitable[Any]],
        call: Call = _NO_CALL,
    ) -> Any:
        """The coroutine version: the same entries and decisions, awaited computation."""
        forced = self.forced_update is not None and self.forced_update((), *call)
        return await engine.aget_or_compute(
            state, ValueCall(self, state, key, tags, compute, call), forced
        )

    def _serve_stale(self, state: AppState, stale: MemoEntry, key: str) -> Any:
        logger.warning("%s raised; serving the stale entry (stale_if_error)", self.name)
        state.stats.skip(self.name, "stale_if_error", key)
        return stale.value

    def compute_and_store(
        self,
        state: AppState,
        key: str,
        tags: list[str],
        versions: Sequence[object] | None,
        stale: MemoEntry | None,
        compute: Callable[[], Any],
    ) -> tuple[Any, MemoEntry | None]:
        """Compute, then store; a raise within stale-if-error serves the stale entry."""
        try:
            rv = join_generator(compute())
        except Exception:
            if stale is None:
                raise
            return self._serve_stale(state, stale, key), None
        return self.store(state, key, tags, versions, rv)

    async def acompute_and_store(
        self,
        state: AppState,
        key: str,
        tags: list[str],
        versions: Sequence[object] | None,
        stale: MemoEntry | None,
        compute: Callable[[], Awaitable[Any]],
    ) -> tuple[Any, MemoEntry | None]:
        try:
            rv = await compute()
        except Exception:
            if stale is None:
                raise
            return self._serve_stale(state, stale, key), None
        return self.store(state, key, tags, versions, rv)

    def store(
        self,
        state: AppState,
        key: str,
        tags: list[str],
        versions: Sequence[object] | None,
        rv: Any,
    ) -> tuple[Any, MemoEntry | None]:
        """Store *rv* unless a filter says not to; return it and the entry stored."""
        if rv is None and not self.cache_none:
            return rv, None
        if self.response_filter is not None and not self.response_filter(rv):
            state.stats.skip(self.name, "response_filter", key)
            return rv, None
        timeout = self.timeout()
        entry, stored = engine.store_value(
            state, self.name, key, tags, versions, rv, timeout, max(self.swr, self.sie)
        )
        return rv, entry if stored else None

    def refresh(
        self, state: AppState, key: str, tags: list[str], compute: Callable[[], Any]
    ) -> None:
        """Recompute a stale entry in a background thread; callers get the stale one now."""
        app = state.app

        def work() -> None:
            with app.app_context():
                # The versions read before computing: an invalidation while
                # it runs leaves the new entry invalid too.
                _, versions = engine.read_value(state, self.name, key, tags)
                self.store(state, key, tags, versions, compute())

        state.start_revalidation(key, work, self.name)


class ValueCall:
    """One call of a cached function, as :mod:`.engine` sees it: its entry holds a value."""

    __slots__ = (
        "args",
        "found",
        "function",
        "is_stale",
        "key",
        "name",
        "run",
        "single_flight",
        "stale_while_revalidate",
        "state",
        "tags",
    )

    def __init__(
        self,
        function: FunctionCache,
        state: AppState,
        key: str,
        tags: list[str],
        compute: Callable[[], Any],
        args: Call,
        found: list[Any] | None = None,
    ) -> None:
        self.function = function
        #: What the first read returned, if the caller made it already.
        self.found = found
        self.state = state
        self.key = key
        self.tags = tags
        self.run = compute
        self.args = args
        self.name = function.name
        self.single_flight = function.single_flight
        self.stale_while_revalidate = function.swr
        self.is_stale = None if function.is_stale is None else self._is_stale

    def read(self) -> tuple[MemoEntry | None, tuple[object, ...]]:
        found, self.found = self.found, None
        return engine.read_value(self.state, self.name, self.key, self.tags, found)

    def _is_stale(self, entry: MemoEntry) -> bool:
        check = self.function.is_stale
        return check is not None and check((entry.value,), *self.args)

    def answer(self, entry: MemoEntry, label: str, now: float) -> Any:
        return entry.value

    def refresh(self) -> None:
        self.function.refresh(self.state, self.key, self.tags, self.run)

    def signal(self, hit: bool) -> None:
        self.function.signal(hit, self.key, self.args)

    def compute(
        self, versions: Sequence[object] | None, stale: MemoEntry | None, owner: object
    ) -> engine.Made[Any, MemoEntry]:
        value, entry = self.function.compute_and_store(
            self.state, self.key, self.tags, versions, stale, self.run
        )
        return engine.Made(value, entry, owner)

    async def acompute(
        self, versions: Sequence[object] | None, stale: MemoEntry | None, owner: object
    ) -> engine.Made[Any, MemoEntry]:
        value, entry = await self.function.acompute_and_store(
            self.state, self.key, self.tags, versions, stale, self.run
        )
        return engine.Made(value, entry, owner)

    def _fresh(self) -> MemoEntry | None:
        entry, versions = self.read()
        return entry if engine.fresh(self.state, entry, versions) else None

    def poll(self) -> engine.Made[Any, MemoEntry] | None:
        entry = self._fresh()
        return None if entry is None else engine.Made(None, entry)

    def share(self, made: engine.Made[Any, MemoEntry]) -> tuple[bool, Any]:
        # Read back, so no two callers share one mutable object.
        entry = self._fresh()
        return (False, None) if entry is None else (True, entry.value)


#: Argument types whose value alone (with its type) makes a call's key.
_PLAIN_ARGUMENTS = frozenset({str, int, float, bool, type(None), bytes})


def _text_length(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """How many characters the plain arguments of a call hold, for the memo's bound."""
    values = (*args, *kwargs.values())
    return sum(len(value) for value in values if type(value) is str or type(value) is bytes)


async def _awaited(compute: Callable[[], Awaitable[Any]]) -> Any:
    return await compute()


#: The largest entry (in the memory store's own estimate) a KnownCall keeps.
KNOWN_HIT_BYTES = 2048


class KnownCall:
    """A call with plain arguments: its key and tags, worked out once.

    On the memory store it also keeps its last fresh hit (:meth:`recall`):
    while the store's write count is the one seen before that read, nothing
    the hit depended on (the entry, its tags' versions) can have changed, so
    the next call is answered without reading again. Only entries the store
    keeps as they are (immutable values) are kept here, so no caller gets an
    object another caller could change.
    """

    __slots__ = ("hit", "key", "tags", "types")

    def __init__(self, key: str, tags: list[str]) -> None:
        self.key = key
        self.tags = tags  # shared: callers only read it
        #: The types of the positional arguments it was remembered for.
        self.types: tuple[type, ...] = ()
        #: (state, store, its write count, fresh_until, value, the store's
        #: LRU touch, full keys read, and for a value kept pickled, what
        #: reads a new copy of its entry).
        self.hit: (
            tuple[
                AppState,
                MemoryStore,
                int,
                float,
                Any,
                Callable[[str], None],
                tuple[str, ...],
                Callable[[], Any] | None,
            ]
            | None
        ) = None

    def remember(
        self, state: AppState, store: MemoryStore, writes: int, entry: MemoEntry, keys: list[str]
    ) -> None:
        """Keep a fresh hit read while the store's write count was *writes*.

        Only entries of at most KNOWN_HIT_BYTES (as the store counts them):
        what is kept here outlives the store's own eviction until the next
        call, and must not undo its bound on memory.
        """
        full_keys = tuple(store.key_prefix + key for key in keys)
        held = store.held(full_keys[0])
        if held is None or held[0] > KNOWN_HIT_BYTES:
            return
        # A value the store keeps pickled is read as a new copy each time
        # (thaw): so must it be here, from the same bytes.
        thaw = held[1]
        self.hit = (
            state,
            store,
            writes,
            entry.fresh_until,
            entry.value,
            store.mark_read,
            full_keys,
            thaw,
        )


@dataclass(frozen=True)
class Memoized:
    """How a memoized function names its entries; kept on the wrapper."""

    function: Callable[..., Any]
    name: str
    hash_method: HashMethod
    ignore: Collection[str]
    #: The decorator's ``source_check``; None follows ``CACHE_SOURCE_CHECK``.
    source_check: bool | None
    #: ``"self"`` or ``"cls"`` when that is the first parameter (and not in
    #: *ignore*): entries then also carry a tag of their instance, so
    #: ``delete_memoized(obj.method)`` drops that object's entries only.
    instance: str | None = None

    @functools.cached_property
    def calls(self) -> BoundedMemo:
        """Calls with plain keyword arguments (or checked sources), by value and type."""
        return BoundedMemo()

    @functools.cached_property
    def positional(self) -> BoundedMemo:
        """Calls with plain positional arguments only, by value (bounded)."""
        return BoundedMemo()

    @functools.cached_property
    def label(self) -> str:
        """What the function is counted and logged under; *name* stays in its keys.

        Its :func:`.stats.function_label`, or the name ``make_name`` gave it
        as it is, since the app chose that one.
        """
        if self.name != function_name(self.function):
            return self.name
        return function_label(self.function)

    @functools.cached_property
    def tag(self) -> str:
        """The tag every entry of the function carries."""
        return f"fn:{self.name}"

    def instance_tag(self, instance: object) -> str:
        return self._instance_tag(f"{self.instance}={stable_repr(instance)}")

    def _instance_tag(self, bound_first: str) -> str:
        return f"{self.tag}|{hash_text(bound_first, self.hash_method)[:32]}"

    @functools.cached_property
    def source(self) -> str:
        return f"|src:{source_hash(self.function, self.hash_method)}"

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any], source_check: bool = False) -> str:
        return self.key_and_tags(args, kwargs, source_check)[0]

    def key_and_tags(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], source_check: bool = False
    ) -> tuple[str, list[str]]:
        """The key of a call, and the tags its entry carries.

        A method's instance tag reuses the text its ``self`` was bound to,
        so the instance is written out once per call.
        """
        known = self.recall(args, kwargs, source_check)
        if known is not None:
            return known.key, known.tags
        return self._key_and_tags(args, kwargs, source_check)

    def recall(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], source_check: bool
    ) -> KnownCall | None:
        """The :class:`KnownCall` of a call with plain arguments; None for any other.

        Calls with plain arguments are remembered: binding them to the
        signature and hashing their text is most of what a hit costs.
        """
        if kwargs or source_check:
            return self._recall_keyed(args, kwargs, source_check)
        # Positional calls are looked up by their arguments alone, and the
        # types they were remembered with are checked after: 1, 1.0 and True
        # are one key of a dict but not the same call.
        try:
            known: KnownCall | None = self.positional.get(args)
        except TypeError:  # an unhashable argument: not a plain call
            return None
        if known is not None:
            types = known.types
            index = 0
            for arg in args:  # a loop in this frame: cheaper than building a tuple
                if type(arg) is not types[index]:
                    return None
                index += 1  # noqa: SIM113 (enumerate() costs more here)
            return known
        for arg in args:
            if type(arg) not in _PLAIN_ARGUMENTS:
                return None
        known = KnownCall(*self._key_and_tags(args, kwargs, source_check))
        known.types = tuple(map(type, args))
        if _text_length(args, kwargs) <= MEMO_QUERY_LENGTH:
            self.positional.remember(args, known)
        return known

    def _recall_keyed(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], source_check: bool
    ) -> KnownCall | None:
        """:meth:`recall` for calls with keyword arguments, or under ``source_check``."""
        memo: tuple[object, ...] = (
            source_check,
            args,
            tuple(map(type, args)),
            tuple((name, type(value), value) for name, value in kwargs.items()),
        )
        for value in (*args, *kwargs.values()):
            if type(value) not in _PLAIN_ARGUMENTS:
                return None
        known: KnownCall | None = self.calls.get(memo)
        if known is None:
            known = KnownCall(*self._key_and_tags(args, kwargs, source_check))
            if _text_length(args, kwargs) <= MEMO_QUERY_LENGTH:
                self.calls.remember(memo, known)
        return known

    def _key_and_tags(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], source_check: bool
    ) -> tuple[str, list[str]]:
        parts = bind_parts(self.function, args, kwargs, self.ignore)
        check = self.source_check if self.source_check is not None else source_check
        digest = hash_text(";".join(parts) + (self.source if check else ""), self.hash_method)
        key = f"memoize:{self.name}:{digest}"
        if self.instance is not None and parts:
            return key, [self.tag, self._instance_tag(parts[0])]
        return key, [self.tag]

    def invalidate(self, state: AppState, tags: list[str] | None = None) -> bool:
        return engine.invalidate(state, self.label, tags or [self.tag])


def memoized_of(f: Callable[..., Any]) -> tuple[Memoized, tuple[Any, ...]] | None:
    """Return the naming of memoized *f*, and the bound ``self`` of a method.

    None if *f* is not memoized.
    """
    bound: tuple[Any, ...] = ()
    if inspect.ismethod(f):
        bound = (f.__self__,)
        f = f.__func__
    meta = getattr(f, "__stash_memoized__", None)
    if not isinstance(meta, Memoized):
        return None
    return meta, bound


def _state_of(cache: Cache) -> AppState:
    """The cache's state on the current app, with one context lookup.

    Through ``current_app`` it would cost as much as the rest of a hit.
    """
    ctx = _cv_app.get(None)
    if ctx is not None:
        found: AppState | None = ctx.app.extensions.get(_EXT, _NONE).get(cache)
        if found is not None:
            return found
    return cache.state()


def function_namespace(
    f: Callable[..., Any], args: Sequence[Any] | None = None
) -> tuple[str, str | None]:
    """The name entries of *f* are kept under, and with *args*, that of their instance.

    The second value is set only for a method called with its ``self`` (or
    ``cls``) as the first of *args*.
    """
    found = memoized_of(f)
    name = found[0].name if found is not None else function_name(f)
    if args and _instance_parameter(inspect.unwrap(f)) is not None:
        return name, f"{name}.{stable_repr(args[0])}"
    return name, None


def _instance_parameter(f: Callable[..., Any]) -> str | None:
    """``"self"`` or ``"cls"`` if that is *f*'s first parameter, else None."""
    try:
        first = next(iter(inspect.signature(f).parameters), None)
    except (TypeError, ValueError):
        return None
    return first if first in ("self", "cls") else None


def memoize(
    cache: Cache,
    timeout: Any = None,
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
    tags: TagsArgument = None,
    single_flight: bool = True,
) -> Callable[[F], F]:
    """Build the decorator; see :meth:`flask_stash.Cache.memoize`."""
    timeout = check_timeout(timeout)
    for label, value in (
        ("unless", unless),
        ("make_name", make_name),
        ("forced_update", forced_update),
        ("is_stale", is_stale),
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
        first = _instance_parameter(f)
        ignore = frozenset(args_to_ignore or ())
        meta = Memoized(
            function=f,
            name=make_name(base_name) if make_name else base_name,
            hash_method=hash_method,
            ignore=ignore,
            source_check=source_check,
            instance=None if first in ignore else first,
        )
        bypass = bypass_for(unless, f)
        wrapper: Any = None
        entries = FunctionCache(
            cache,
            meta.label,
            timeout=lambda: check_timeout(wrapper.cache_timeout),
            forced_update=predicate_for(forced_update),
            response_filter=response_filter,
            cache_none=cache_none,
            stale_while_revalidate=stale_while_revalidate,
            stale_if_error=stale_if_error,
            single_flight=single_flight,
            is_stale=predicate_for(is_stale, leading=1),
            function=f,
        )

        def with_extra_tags(
            args: tuple[Any, ...], kwargs: dict[str, Any], source_check: bool
        ) -> tuple[str, list[str]]:
            key, own = meta.key_and_tags(args, kwargs, source_check)
            extra = tags(*args, **kwargs) if callable(tags) else tags or ()
            return key, [*own, *extra]

        key_and_tags = meta.key_and_tags if tags is None else with_extra_tags
        # Calls that nothing but the entry decides can be answered from the last hit.
        plain = tags is None and forced_update is None and is_stale is None
        fast = plain and bypass is None
        positional = meta.positional
        name = meta.label  # the statistics label, for the inlined Stats.hit below

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def decorated_async(*args: Any, **kwargs: Any) -> Any:
                if bypass is not None and bypass(args, kwargs):
                    return await f(*args, **kwargs)
                state = _state_of(cache)
                state.begin()
                key, entry_tags = key_and_tags(args, kwargs, state.settings.source_check)
                return await entries.aget_or_compute(
                    state, key, entry_tags, lambda: f(*args, **kwargs), (args, kwargs)
                )

            wrapper = decorated_async
        else:

            def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                if bypass is not None and bypass(args, kwargs):
                    return f(*args, **kwargs)
                state = _state_of(cache)
                state.begin()
                source_check = state.settings.source_check
                known = meta.recall(args, kwargs, source_check) if plain else None
                if known is not None:
                    key, entry_tags = known.key, known.tags
                elif plain:  # not a plain call: recall() said so already
                    key, entry_tags = meta._key_and_tags(args, kwargs, source_check)
                else:
                    key, entry_tags = key_and_tags(args, kwargs, source_check)
                return entries.get_or_compute(
                    state, key, entry_tags, lambda: f(*args, **kwargs), (args, kwargs), known
                )

            @functools.wraps(f)
            def decorated(*args: Any, **kwargs: Any) -> Any:
                # The common hit, answered here: a positional call whose last
                # hit on the memory store (KnownCall.hit) still stands, since
                # the store has not changed since. Everything else is call().
                if fast and not kwargs:
                    try:
                        known = positional.get(args)
                    except TypeError:  # unhashable: not a plain call
                        known = None
                    if known is not None:
                        hit = known.hit
                        if hit is not None and hit[1].writes == hit[2]:
                            ctx = _cv_app.get(None)
                            state = hit[0]
                            if (
                                ctx is not None
                                and ctx.app.extensions.get(_EXT, _NONE).get(cache) is state
                                and (not hit[3] or state.clock() < hit[3])
                            ):
                                types = known.types
                                index = 0
                                for arg in args:
                                    if type(arg) is not types[index]:
                                        break  # 1, 1.0 and True: equal keys, other calls
                                    index += 1  # noqa: SIM113 (enumerate() costs more here)
                                else:
                                    touch = hit[5]  # keep the LRU order as a read would
                                    for full_key in hit[6]:
                                        try:  # noqa: SIM105
                                            touch(full_key)
                                        except KeyError:  # evicted: the count has moved
                                            pass
                                    # Stats.hit, inlined (a signal receiver: the call itself).
                                    stats = state.stats
                                    counters = stats.by_name.get(name)
                                    if counters is None or cache_hit.receivers:
                                        stats.hit(name, known.key)
                                    else:
                                        stats.total.hits += 1
                                        counters.hits += 1
                                    thaw = hit[7]
                                    return hit[4] if thaw is None else thaw().value
                return call(args, kwargs)

            wrapper = decorated

        def make_cache_key(*args: Any, **kwargs: Any) -> str:
            """The key of a call; Flask-Caching's form passes the function first."""
            if args and args[0] in (f, wrapper):
                args = args[1:]
            return meta.key(args, kwargs, cache.state().settings.source_check)

        wrapper.uncached = f
        wrapper.cache_timeout = timeout
        wrapper.make_cache_key = make_cache_key
        wrapper.__stash_memoized__ = meta
        wrapper.delete_memoized = lambda: cache.delete_memoized(wrapper)
        return cast(F, wrapper)

    return decorator
