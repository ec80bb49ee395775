"""A near cache: an in-process copy of hot entries in front of a remote store.

A hit on memcached or Redis costs a network round trip; a hit in the
process costs a dictionary lookup. The price is staleness: a copy held here
does not see a write made by another process. Two ways bound it.

``ttl`` (seconds). A copy is served for at most ``ttl`` seconds after it was
taken from the remote store, then read again. A write, a delete, an expiry
or a ``clear()`` made elsewhere is therefore seen within ``ttl``. This works
with any remote store.

``track=True`` (standalone Redis only). The Redis server tells this process
which keys under the store's prefix changed (client tracking, see
:class:`~flask_stash.stores.redis.InvalidationWatcher`), and the copy is
dropped as soon as the message arrives, so a write elsewhere is seen within
milliseconds and no ``ttl`` is needed. If the watcher's connection is lost
every copy is dropped, and without a ``ttl`` nothing is copied or served from
the process until it is back. A ``ttl`` may still be given as a second bound.

Writes made through this store (``set``, ``add``, ``delete``, ``inc``,
``clear``...) go to the remote store and drop the local copy at once, so this
process never reads back an older value than it wrote. Copies are dropped
rather than updated: the next read takes the value the remote store holds,
which is what every other process reads too.

Misses are not copied: a miss costs the one round trip it would cost without
a near cache, and a key that does not exist yet is often about to be written
by another process.

A read whose key is written or invalidated while the read is out at the
remote store is served but not copied, because the value it brought back may
predate that write; the next read copies it. That keeps a slow read from
planting a stale copy after the write that replaced it. With ``track=True``
this process's own writes come back as invalidations too, a moment later, so
a copy taken right after an own write may be dropped once more.

Copies live in a :class:`~flask_stash.stores.memory.MemoryStore`, so they are
bounded by ``max_entries`` and ``max_bytes`` (least recently used out first)
and a mutable value read from them is a fresh copy each time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .base import BaseStore, StoreConfig
from .memory import MemoryStore

__all__ = ["NearStore", "wrap_near"]

DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class Watcher(Protocol):
    """What a near cache needs from a source of invalidations."""

    @property
    def live(self) -> bool:
        """Whether every change is being reported right now."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Watchable(Protocol):
    """A store whose server can report which of its keys changed."""

    def watch_invalidations(self, on_change: Callable[[list[str] | None], None]) -> Watcher: ...


class _Copy(NamedTuple):
    """A value taken from the remote store, and when it stops being served."""

    value: Any
    expires: float  # on the near store's clock; 0.0 means only invalidation ends it


class NearStore(BaseStore):
    """An in-process copy of entries in front of *remote*; see the module docstring.

    The remote store owns the key prefix: keys are handed to it unchanged,
    and the local copy is keyed by the same unprefixed keys (it is private
    to this object, so it needs no prefix of its own).
    """

    name = "near"

    def __init__(
        self,
        remote: BaseStore,
        ttl: float | None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        track: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(remote.default_timeout, remote.key_prefix)
        if isinstance(remote, MemoryStore):
            raise ValueError(
                "a near cache in front of the memory store would copy one in-process "
                "dictionary into another; use the memory store alone"
            )
        if isinstance(remote, NearStore):
            raise ValueError(f"{remote.describe()} is already a near cache")
        if ttl is not None and ttl < 0:
            raise ValueError(f"the near cache ttl must be 0 or more seconds, got {ttl}")
        if not ttl and not track:
            raise ValueError(
                "a near cache needs a ttl (seconds a local copy may be served) "
                "or server invalidation (track=True, standalone Redis only)"
            )
        if track and not isinstance(remote, Watchable):
            raise ValueError(
                f"track=True needs a server that reports changed keys (a standalone "
                f"Redis store); {remote.describe()} cannot, so give a ttl instead"
            )
        self.remote = remote
        self.ttl = ttl or None
        self.clock = clock
        self.shared = remote.shared
        self.local = MemoryStore(default_timeout=0, threshold=max_entries, max_bytes=max_bytes)
        self._lock = threading.Lock()
        # A read copies its value only if its key was not written or
        # invalidated while it was out at the remote store: _reading counts
        # the reads out per key, _changed holds those of its keys that were
        # written meanwhile, and _epoch is bumped by a drop of everything.
        self._reading: dict[str, int] = {}
        self._changed: set[str] = set()
        self._epoch = 0
        self.watcher: Watcher | None = None
        if track and isinstance(remote, Watchable):
            self.watcher = remote.watch_invalidations(self._invalidated)

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        """Refuse: a near cache wraps another store, which a config must name."""
        raise ValueError(
            "the near cache is not a store type of its own: it goes in front of a "
            "remote store (wrap_near, or CACHE_REDIS_CLIENT_CACHE for Redis)"
        )

    # -- the local copy --------------------------------------------------------

    def _servable(self) -> bool:
        """Whether copies may be served or taken now, apart from their age."""
        if self.watcher is None:
            return True
        # A ttl bounds a copy even while invalidations are not being heard.
        # Reading ``live`` also lets the watcher restart after a fork.
        return self.watcher.live or self.ttl is not None

    def _local(self, key: str) -> Any:
        """Return the copy at *key* if it may still be served, else None."""
        copy = self.local.get(key)
        if copy is None:
            return None
        if copy.expires and copy.expires <= self.clock():
            self.local.delete(key)
            return None
        if not self._servable():
            return None
        return copy.value

    def _local_many(self, keys: tuple[str, ...]) -> list[Any]:
        """:meth:`_local` of each key, in one read of the copies (the hit path)."""
        now = 0.0
        servable: bool | None = None
        values: list[Any] = []
        for key, copy in zip(keys, self.local.get_many(*keys), strict=True):
            if copy is not None:
                expires = copy.expires
                if expires:
                    if not now:
                        now = self.clock()
                    if expires <= now:
                        self.local.delete(key)
                        copy = None
                if copy is not None:
                    if servable is None:
                        servable = self._servable()
                    if servable:
                        values.append(copy.value)
                        continue
            values.append(None)
        return values

    def _begin(self, keys: Iterable[str]) -> int:
        """Note that *keys* are being read from the remote store; return the epoch."""
        with self._lock:
            for key in keys:
                self._reading[key] = self._reading.get(key, 0) + 1
            return self._epoch

    def _finish(self, keys: Iterable[str], found: Mapping[str, Any], epoch: int) -> None:
        """End the reads of *keys* begun at *epoch*; copy what *found* holds if still current."""
        servable = self._servable()
        expires = self.clock() + self.ttl if self.ttl else 0.0
        with self._lock:
            current = servable and epoch == self._epoch
            for key in keys:
                changed = key in self._changed
                left = self._reading[key] - 1
                if left:
                    self._reading[key] = left
                else:
                    del self._reading[key]
                    self._changed.discard(key)
                value = found.get(key)
                if current and not changed and value is not None:
                    self.local.set(key, _Copy(value, expires), timeout=0)

    def _drop(self, keys: Iterable[str] | None) -> None:
        """Forget the copies of *keys*, or every copy for None."""
        with self._lock:
            if keys is None:
                self._epoch += 1
                self.local.clear()
                return
            for key in keys:
                self.local.delete(key)
                if key in self._reading:
                    self._changed.add(key)

    def _invalidated(self, keys: list[str] | None) -> None:
        """Called by the watcher when the server says *keys* (None: anything) changed."""
        self._drop(keys)

    # -- reads -----------------------------------------------------------------

    def get(self, key: str) -> Any:
        value = self._local(key)
        if value is not None:
            return value
        epoch = self._begin((key,))
        found: dict[str, Any] = {}
        try:
            found[key] = self.remote.get(key)
        finally:
            self._finish((key,), found, epoch)
        return found[key]

    def get_many(self, *keys: str) -> list[Any]:
        values = self._local_many(keys)
        # Positions, not keys: a key asked for twice gets two objects, as it
        # would from the remote store.
        missing = [index for index, value in enumerate(values) if value is None]
        if not missing:
            return values
        names = list(dict.fromkeys(keys[index] for index in missing))
        epoch = self._begin(names)
        found: dict[str, Any] = {}
        try:
            fetched = self.remote.get_many(*(keys[index] for index in missing))
            for index, value in zip(missing, fetched, strict=True):
                values[index] = found[keys[index]] = value
        finally:
            self._finish(names, found, epoch)
        return values

    def has(self, key: str) -> bool:
        return self._local(key) is not None or self.remote.has(key)

    # -- writes: the remote store first, then the copy goes -------------------
    # The copy is dropped even when the remote call fails: the write may have
    # reached the server before the error.

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        try:
            return self.remote.set(key, value, timeout)
        finally:
            self._drop((key,))

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        try:
            return self.remote.add(key, value, timeout)
        finally:
            self._drop((key,))

    def delete(self, key: str) -> bool:
        try:
            return self.remote.delete(key)
        finally:
            self._drop((key,))

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None = None) -> list[str]:
        try:
            return self.remote.set_many(mapping, timeout)
        finally:
            self._drop(mapping)

    def delete_many(self, *keys: str) -> list[str]:
        try:
            return self.remote.delete_many(*keys)
        finally:
            self._drop(keys)

    def inc(self, key: str, delta: int = 1) -> int | None:
        try:
            return self.remote.inc(key, delta)
        finally:
            self._drop((key,))

    def dec(self, key: str, delta: int = 1) -> int | None:
        try:
            return self.remote.dec(key, delta)
        finally:
            self._drop((key,))

    def clear(self) -> bool:
        try:
            return self.remote.clear()
        finally:
            self._drop(None)

    # -- the rest --------------------------------------------------------------

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """The remote store's keys: every copy held here is of one of them."""
        return self.remote.keys(pattern)

    def figures(self) -> dict[str, int]:
        return {**self.remote.figures(), "near_copies": len(self.local)}

    def close(self) -> None:
        """Stop hearing invalidations, drop every copy and close the remote store."""
        try:
            if self.watcher is not None:
                self.watcher.close()
        finally:
            self._drop(None)
            self.remote.close()

    def describe(self) -> str:
        bounds = []
        if self.ttl is not None:
            bounds.append(f"ttl={self.ttl:g}s")
        if self.watcher is not None:
            bounds.append("invalidated by the server")
        return f"near cache ({', '.join(bounds)}) in front of {self.remote.describe()}"


def wrap_near(
    store: BaseStore,
    ttl: float | None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    *,
    track: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> BaseStore:
    """Put a near cache in front of *store* when one is asked for.

    With no ``ttl`` (None or 0) and no ``track``, no near cache is wanted and
    *store* comes back unchanged, so a config can always pass its setting
    through. A near cache in front of the memory store, or of another near
    cache, is refused with ValueError: it would only copy a local dictionary.
    """
    if not ttl and not track:
        return store
    return NearStore(store, ttl, max_entries, max_bytes, track=track, clock=clock)
