"""One get-or-compute for every cached call: views, plain functions and coroutines.

The decisions live here once: whether an entry found with its tag versions
answers the call (fresh, or stale within ``stale_while_revalidate``),
whether a stale one may stand in if computing fails (``stale_if_error``),
who computes a cold key (single-flight, in the process and across
processes), and what the callers that did not compute get. The kinds of
call differ only in how they read, answer, compute and store, which a
:class:`Call` says; :mod:`.views` and :mod:`.memoize` adapt a request or a
function call to one. Nothing here imports Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from .entries import FrozenResponse, MemoEntry, VaryIndex, is_fresh
from .errors import SerializationError
from .tags import current_versions, matches, tag_keys
from .tags import invalidate as _invalidate

if TYPE_CHECKING:
    from .state import AppState

__all__ = [
    "AsyncCall",
    "Call",
    "Made",
    "aget_or_compute",
    "forget_versions",
    "fresh",
    "fresh_hit",
    "get_or_compute",
    "invalidate",
    "plain_value",
    "read_keys",
    "read_page",
    "read_value",
    "store_page",
    "store_value",
    "varied_on",
]

E = TypeVar("E")
R = TypeVar("R")


class Made(Generic[R, E]):
    """What one computation made: the caller's result, and the entry others may share."""

    __slots__ = ("entry", "extra", "owner", "result")

    def __init__(self, result: R, entry: E | None, owner: object = None, extra: Any = None):
        self.result = result
        #: The entry stored (or that may be shared), None if the result is the caller's own.
        self.entry = entry
        #: Which call made it; a follower that is not the owner re-checks what it may use.
        self.owner = owner
        #: What the kind of call needs besides (a page's Vary variant key).
        self.extra = extra


class Call(Protocol[R, E]):
    """One cached call, as the engine sees it.

    ``name`` is the view or function (for counters and single-flight
    timing), ``key`` its entry's key.
    """

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def single_flight(self) -> bool: ...

    @property
    def stale_while_revalidate(self) -> int: ...

    def read(self) -> tuple[E | None, tuple[object, ...]]:
        """The entry that may answer this call (or None), and the tag versions read with it."""
        ...

    @property
    def is_stale(self) -> Callable[[E], bool] | None:
        """The app's own check of a hit (``is_stale``): true recomputes. None: no check."""
        ...

    def answer(self, entry: E, label: str, now: float) -> R:
        """The result of a hit: ``label`` is ``HIT``, ``STALE`` or ``MISS`` (shared)."""
        ...

    def refresh(self) -> None:
        """Recompute a stale entry in the background."""
        ...

    def signal(self, hit: bool) -> None:
        """Report a hit or a miss beyond the counters (Flask-Caching's signals)."""
        ...

    def compute(
        self, versions: Sequence[object] | None, stale: E | None, owner: object
    ) -> Made[R, E]:
        """Run the function and store its result if the rules allow it.

        *versions* are the tag versions read with the entry, None if nothing
        was read (a forced call).
        """
        ...

    def poll(self) -> Made[R, E] | None:
        """What another process stored while this one waited for its lock."""
        ...

    def share(self, made: Made[R, E]) -> tuple[bool, R | None]:
        """Whether this call may use what another caller made, and the result if so."""
        ...


def _look_again(
    state: AppState, call: Call[Any, Any], entry: Any, versions: tuple[object, ...]
) -> tuple[bool, Any, Any]:
    """What a first look that found no fresh entry decides.

    *entry* (None if there was none, or it failed its checks) may still be
    served within ``stale_while_revalidate``, or kept for stale-if-error.
    Returns whether it answered, the result, and the stale entry.
    """
    stale = None
    if entry is not None and matches(entry.versions, versions):
        now = state.clock()
        fresh_until: float = entry.fresh_until
        check = call.is_stale
        if is_fresh(fresh_until, now):
            pass  # fresh, but the app's is_stale said no
        elif now < fresh_until + call.stale_while_revalidate:
            if check is None or not check(entry):
                call.refresh()
                state.stats.hit(call.name, call.key)
                state.stats.skip(call.name, "served stale", call.key)
                return True, call.answer(entry, "STALE", now), None
        elif now < entry.stale_until:
            stale = entry
    state.stats.miss(call.name, call.key)
    if state.settings.enable_signals:
        call.signal(False)
    return False, None, stale


def _first_look(
    state: AppState, call: Call[Any, Any], forced: bool
) -> tuple[bool, Any, tuple[object, ...] | None, Any]:
    """Answer from the store if an entry allows it.

    Returns whether it answered, the result, and on a miss the tag versions
    read (None when *forced*: nothing was read) and a stale entry that
    stale-if-error may still serve.
    """
    if forced:
        state.stats.miss(call.name, call.key)
        if state.settings.enable_signals:
            call.signal(False)
        return False, None, None, None
    entry, versions = call.read()
    # tags.matches and entries.is_fresh, written out: this is every hit.
    if entry is not None and None not in entry.versions and entry.versions == versions:
        now = state.clock()
        fresh_until = entry.fresh_until
        if not fresh_until or now < fresh_until:
            check = call.is_stale
            if check is None or not check(entry):
                state.stats.hit(call.name, call.key)
                if state.settings.enable_signals:
                    call.signal(True)
                return True, call.answer(entry, "HIT", now), versions, None
    answered, result, stale = _look_again(state, call, entry, versions)
    return answered, result, versions, stale


def _settled(
    state: AppState, call: Call[Any, Any], made: Made[Any, Any], me: object
) -> tuple[bool, Any]:
    """This caller's result after single-flight; ``(False, None)`` if it must compute."""
    if made.owner is me:
        return True, made.result
    if made.entry is None:
        return False, None  # the other caller's result was its own
    usable, shared = call.share(made)
    if usable:
        state.stats.hit(call.name, call.key)
    return usable, shared


def get_or_compute(state: AppState, call: Call[R, E], forced: bool = False) -> R:
    """The result of *call*: from its entry, or computed once per key and stored.

    A forced call (``forced_update``, a background refresh) skips the read,
    and is never answered by another caller's result: it must replace the
    entry.
    """
    answered, result, versions, stale = _first_look(state, call, forced)
    if answered:
        return cast(R, result)
    seen = versions
    me = object()
    if forced or not call.single_flight:
        return call.compute(seen, stale, me).result

    def compute() -> tuple[Made[R, E], bool]:
        made = call.compute(seen, stale, me)
        return made, made.entry is not None

    made = state.flight.run(
        call.key, compute, read=call.poll, lock=state.lock(call.name), name=call.name
    )
    done, shared = _settled(state, call, made, me)
    return cast(R, shared) if done else call.compute(seen, stale, me).result


class AsyncCall(Call[R, E], Protocol):
    """A :class:`Call` whose function is a coroutine function."""

    async def acompute(
        self, versions: Sequence[object] | None, stale: E | None, owner: object
    ) -> Made[R, E]: ...


async def aget_or_compute(state: AppState, call: AsyncCall[R, E], forced: bool = False) -> R:
    """:func:`get_or_compute` for a coroutine: the same decisions and single-flight, awaited."""
    answered, result, versions, stale = _first_look(state, call, forced)
    if answered:
        return cast(R, result)
    seen = versions
    me = object()
    if forced or not call.single_flight:
        return (await call.acompute(seen, stale, me)).result

    async def compute() -> tuple[Made[R, E], bool]:
        made = await call.acompute(seen, stale, me)
        return made, made.entry is not None

    made = await state.flight.arun(
        call.key, compute, read=call.poll, lock=state.lock(call.name), name=call.name
    )
    done, shared = _settled(state, call, made, me)
    return cast(R, shared) if done else (await call.acompute(seen, stale, me)).result


# -- what is stored: pages and values, under their tag versions ----------------------


def _store(
    state: AppState,
    name: str,
    key: str,
    tags: Sequence[str],
    versions: Sequence[object] | None,
    build: Callable[[tuple[str | None, ...], float, float, float], Any],
    timeout: int | None,
    window: int,
    vary: tuple[tuple[str, ...], str] | None = None,
    what: str = "result",
) -> tuple[Any, bool]:
    """Store the entry *build* makes under the tags' current versions.

    Returns the entry, and whether the store took it; the entry is made
    even when the store is failing, so callers waiting in this process can
    still share it. With *vary* (the header names, the variant's key), a
    :class:`~flask_stash.entries.VaryIndex` stands at *key* and the entry at
    the variant's key.
    """
    if versions is None:
        versions = (None,) * len(tags)
    tokens = current_versions(state, name, tags, versions)
    if timeout is None:
        timeout = state.store.default_timeout
    now = state.clock()
    fresh_until = now + timeout if timeout else 0.0
    entry = build(tokens, now, fresh_until, fresh_until + window if timeout else 0.0)
    if None in tokens:
        return entry, False  # the store is failing; it was counted there
    store_timeout = timeout + window if timeout else 0
    entries = state.entries
    try:
        if vary is None:
            stored = entries.set(key, entry, store_timeout, name)
        else:
            names, variant = vary
            stored = entries.set(key, VaryIndex(names, now, tokens), store_timeout, name)
            stored = stored and entries.set(variant, entry, store_timeout, name)
    except SerializationError as err:
        # A value (or a user's CACHE_SERIALIZER) the store's format cannot hold.
        state.stats.skip(name, "not serializable", key)
        state.warn_once(name, "not serializable", f"{name}: {what} not cached: {err}")
        return entry, False
    if stored:
        state.stats.stored(name, key)
    return entry, bool(stored)


def store_value(
    state: AppState,
    name: str,
    key: str,
    tags: Sequence[str],
    versions: Sequence[object] | None,
    value: Any,
    timeout: int | None,
    window: int,
) -> tuple[MemoEntry, bool]:
    """Store a function's result as a :class:`~flask_stash.entries.MemoEntry`."""

    def build(
        tokens: tuple[str | None, ...], now: float, fresh_until: float, stale_until: float
    ) -> MemoEntry:
        return MemoEntry(value, now, fresh_until, stale_until, tokens)

    entry, stored = _store(state, name, key, tags, versions, build, timeout, window)
    return cast(MemoEntry, entry), stored


def store_page(
    state: AppState,
    name: str,
    key: str,
    tags: Sequence[str],
    versions: Sequence[object] | None,
    page: tuple[int, tuple[tuple[str, str], ...], bytes, int],
    timeout: int | None,
    window: int,
    vary: tuple[tuple[str, ...], str] | None,
) -> tuple[FrozenResponse, bool]:
    """Store a page: *page* is its status, headers, body and flags."""
    status, headers, body, flags = page

    def build(
        tokens: tuple[str | None, ...], now: float, fresh_until: float, stale_until: float
    ) -> FrozenResponse:
        return FrozenResponse(status, headers, body, now, fresh_until, stale_until, tokens, flags)

    entry, stored = _store(
        state, name, key, tags, versions, build, timeout, window, vary, what="page"
    )
    return cast(FrozenResponse, entry), stored


def read_value(
    state: AppState, name: str, key: str, tags: Sequence[str], found: list[Any] | None = None
) -> tuple[MemoEntry | None, tuple[object, ...]]:
    """A function's entry and its tags' versions, in one round trip.

    *found* is what a read of :func:`read_keys` already returned, if the
    caller made one.
    """
    if found is None:
        found = state.entries.get_many([key, *tag_keys(tags)], name)
    entry = found[0]
    return (entry if type(entry) is MemoEntry else None), tuple(found[1:])


def read_page(
    state: AppState,
    name: str,
    keys: list[str],
    variant_of: Callable[[tuple[str, ...]], str],
    found: list[Any] | None = None,
) -> tuple[FrozenResponse | None, tuple[object, ...], str | None]:
    """A page, its tags' versions, and its variant's key if it varies.

    *keys* are the page's key, then its tags' (:func:`read_keys`). A
    :class:`~flask_stash.entries.VaryIndex` at the page's key names the
    request headers the page varies on; *variant_of* turns them into the key
    of the variant this request selects. *found* is what a read of *keys*
    already returned, if the caller made one.
    """
    entries = state.entries
    if found is None:
        found = entries.get_many(keys, name)
    entry, versions = found[0], tuple(found[1:])
    variant = None
    if type(entry) is VaryIndex and matches(entry.versions, versions):
        variant = variant_of(entry.names)
        entry = entries.get(variant, name)
    return (entry if type(entry) is FrozenResponse else None), versions, variant


def varied_on(state: AppState, name: str, key: str) -> tuple[str, ...]:
    """The header names the :class:`~flask_stash.entries.VaryIndex` at *key* lists, if one does."""
    found = state.entries.get(key, name)
    return found.names if type(found) is VaryIndex else ()


def read_keys(key: str, tags: Sequence[str]) -> list[str]:
    """What one read of an entry fetches: its key, then its tags' version keys."""
    return [key, *tag_keys(tags)]


def fresh_hit(state: AppState, name: str, key: str, found: list[Any]) -> float | None:
    """The time now, if the entry in *found* (read with its tags' versions) is a fresh hit.

    For calls that nothing else decides (no ``forced_update``, ``is_stale``
    or signals): the hit is counted. None leaves the call to
    :func:`get_or_compute`, with what was read. The caller has checked the
    entry's type.
    """
    entry = found[0]
    versions = entry.versions
    if None in versions or versions != tuple(found[1:]):
        return None
    now = state.clock()
    fresh_until = entry.fresh_until
    if fresh_until and now >= fresh_until:
        return None
    state.stats.hit(name, key)
    return now


def plain_value(state: AppState, name: str, key: str, found: list[Any]) -> tuple[bool, Any]:
    """``(True, value)`` for a fresh function entry in *found*, else ``(False, None)``.

    See :func:`fresh_hit`.
    """
    entry = found[0]
    if type(entry) is MemoEntry and fresh_hit(state, name, key, found) is not None:
        return True, entry.value
    return False, None


def fresh(state: AppState, entry: Any, versions: tuple[object, ...]) -> bool:
    """Whether *entry*, read with *versions*, is valid and fresh now."""
    return (
        entry is not None
        and matches(entry.versions, versions)
        and is_fresh(entry.fresh_until, state.clock())
    )


def invalidate(state: AppState, name: str, tags: Iterable[str]) -> bool:
    """Drop every entry carrying any of *tags*, on every store and in every process."""
    return _invalidate(state, name, tags)


def forget_versions(state: AppState, name: str, tags: Iterable[str]) -> bool:
    """Drop *tags* by deleting their versions (a missing version matches no entry)."""
    return bool(state.entries.delete_many(tag_keys(tags), name))
