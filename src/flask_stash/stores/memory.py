"""The in-process store: the default, and the one the notes call "simple".

It is bounded twice, by entry count and by bytes, and evicts the least
recently used entry first, so a flood of distinct URLs cannot grow the
process without bound.

A value read back must not be an object the caller can change inside the
store, or a mutation in one request would leak into the next (remote stores
cannot behave that way, and code must not depend on it). Values built only
from immutable atoms (str, bytes, numbers, None, tuples and frozensets of
those) are kept as they are, which is what a cached response is. Anything
else is pickled on the way in and unpickled on the way out.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from ..serializers import COUNTER_MAX, COUNTER_MIN, PickleSerializer, Serializer, is_counter
from .base import BaseStore, StoreConfig

__all__ = ["MemoryStore"]

_ATOM_SIZE = 32
_CONTAINER_SIZE = 56
_MAX_DEPTH = 8


def frozen_size(value: Any, depth: int = 0) -> int | None:
    """Return an estimate of *value*'s size if it is deeply immutable, else None."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value) + _ATOM_SIZE
    if kind is int or kind is float or kind is bool or value is None:
        return _ATOM_SIZE
    # Tuple subclasses without an instance __dict__ (named tuples) are as
    # immutable as tuples.
    immutable_container = (
        kind is tuple or kind is frozenset or (isinstance(value, tuple) and not kind.__dictoffset__)
    )
    if immutable_container and depth < _MAX_DEPTH:
        total = _CONTAINER_SIZE
        for item in value:
            size = frozen_size(item, depth + 1)
            if size is None:
                return None
            total += size
        return total
    return None


class _Entry(NamedTuple):
    expires: float  # on the store's clock; 0.0 means never
    value: Any  # the value itself, or its pickled bytes
    size: int
    # None when value is the value itself; else the key its bytes were
    # serialized under (the full key), which the serializer needs to read them.
    pickled: str | None


class MemoryStore(BaseStore):
    """A thread-safe LRU dictionary with expiry, bounded by entries and bytes."""

    name = "memory"
    shared = False

    def __init__(
        self,
        default_timeout: int = 300,
        key_prefix: str = "",
        threshold: int = 500,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(default_timeout, key_prefix)
        if threshold < 1:
            raise ValueError(f"threshold must be 1 or more, got {threshold}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be 1 or more, got {max_bytes}")
        self.threshold = threshold
        self.max_bytes = max_bytes
        self.clock = clock
        self.serializer = serializer or PickleSerializer()
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Counts every change to what the store holds (writes, deletes,
        #: evictions, expiries), each after it is made: a reader that saw
        #: the same count before and after a read knows nothing changed since.
        self.writes = 0

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        options: dict[str, Any] = {}
        if config.threshold is not None:
            options["threshold"] = config.threshold
        if config.settings.get("max_bytes") is not None:
            options["max_bytes"] = config.settings["max_bytes"]
        options.update(config.options)
        return cls(default_timeout=config.default_timeout, key_prefix=config.key_prefix, **options)

    @property
    def size_bytes(self) -> int:
        """The estimated bytes held, as counted against ``max_bytes``."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def _entry(self, key: str, value: Any, timeout: int | None) -> _Entry:
        """Build the entry for *value* at *key* (the full key, prefix included)."""
        seconds = self._timeout(timeout)
        expires = self.clock() + seconds if seconds else 0.0
        # The key counts against max_bytes as well: a flood of long keys
        # with tiny values must not grow the store past its bound.
        key_size = len(key) + _CONTAINER_SIZE
        size = frozen_size(value)
        if size is not None:
            return _Entry(expires, value, size + key_size, None)
        blob = self.serializer.dumps(value, key)
        return _Entry(expires, blob, len(blob) + _CONTAINER_SIZE + key_size, key)

    def _thaw(self, entry: _Entry) -> Any:
        if entry.pickled is None:
            return entry.value
        return self.serializer.loads(entry.value, entry.pickled)

    def _live(self, key: str) -> _Entry | None:
        """Return the entry at *key* if it has not expired. Call with the lock held."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires and entry.expires <= self.clock():
            del self._data[key]
            self._bytes -= entry.size
            self.writes += 1
            return None
        return entry

    def _put(self, key: str, entry: _Entry) -> bool:
        """Insert *entry* and evict down to the bounds. Call with the lock held."""
        old = self._data.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        if entry.size > self.max_bytes:
            self.writes += 1
            return False
        self._data[key] = entry
        self._bytes += entry.size
        while len(self._data) > self.threshold or self._bytes > self.max_bytes:
            _, evicted = self._data.popitem(last=False)
            self._bytes -= evicted.size
        self.writes += 1
        return True

    def get(self, key: str) -> Any:
        key = self.key_prefix + key
        with self._lock:
            entry = self._live(key)
            if entry is None:
                return None
            self._data.move_to_end(key)
        return self._thaw(entry)

    def get_many(self, *keys: str) -> list[Any]:
        # The view hit path reads an entry and its tag versions together:
        # this is the hot path. A live entry is read without the lock (a dict
        # read and move_to_end are each atomic); only an expired one takes
        # it, to be removed.
        prefix = self.key_prefix
        data = self._data
        now = 0.0
        found: list[Any] = []
        for key in keys:
            full = prefix + key
            entry = data.get(full)
            if entry is not None:
                expires = entry.expires
                if expires:
                    if not now:
                        now = self.clock()
                    if expires <= now:
                        self._expire(full, entry)
                        found.append(None)
                        continue
                # Not contextlib.suppress(): a context manager per hit costs more.
                try:  # noqa: SIM105
                    data.move_to_end(full)
                except KeyError:  # removed by another thread meanwhile
                    pass
                found.append(
                    entry.value
                    if entry.pickled is None
                    else self.serializer.loads(entry.value, entry.pickled)
                )
            else:
                found.append(None)
        return found

    def held(self, full_key: str) -> tuple[int, Callable[[], Any] | None] | None:
        """The size of the entry at *full_key* (prefix included), and what reads its value.

        The reader is None for a value kept as it is; for a pickled one, each
        call unpickles the same bytes, so no two callers share one object, as
        with :meth:`get`. None if nothing is held there.
        """
        entry = self._data.get(full_key)
        if entry is None:
            return None
        pickled = entry.pickled
        if pickled is None:
            return entry.size, None
        loads, blob = self.serializer.loads, entry.value
        return entry.size, lambda: loads(blob, pickled)

    @property
    def mark_read(self) -> Callable[[str], None]:
        """Mark a full key (prefix included) as just read, for the LRU order.

        For readers that answer from what they read earlier, while
        :attr:`writes` says it is still what the store holds. Raises
        KeyError for a key no longer held.
        """
        return self._data.move_to_end

    def _expire(self, key: str, entry: _Entry) -> None:
        """Remove *entry* at *key*, unless another thread replaced it meanwhile."""
        with self._lock:
            if self._data.get(key) is entry:
                del self._data[key]
                self._bytes -= entry.size
                self.writes += 1

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        key = self.key_prefix + key
        entry = self._entry(key, value, timeout)
        with self._lock:
            return self._put(key, entry)

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        key = self.key_prefix + key
        entry = self._entry(key, value, timeout)
        with self._lock:
            if self._live(key) is not None:
                return False
            return self._put(key, entry)

    def delete(self, key: str) -> bool:
        with self._lock:
            entry = self._data.pop(self.key_prefix + key, None)
            if entry is None:
                return False
            self._bytes -= entry.size
            self.writes += 1
            return True

    def clear(self) -> bool:
        with self._lock:
            self._data.clear()
            self._bytes = 0
            self.writes += 1
        return True

    def has(self, key: str) -> bool:
        with self._lock:
            return self._live(self.key_prefix + key) is not None

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add *delta* under the lock; a key that holds no counter restarts at *delta*.

        A counter keeps its expiry; one that starts again has none, like a new one.
        """
        key = self.key_prefix + key
        with self._lock:
            entry = self._live(key)
            current = None if entry is None else self._thaw(entry)
            if is_counter(current) and COUNTER_MIN <= current + delta <= COUNTER_MAX:
                result: int = current + delta
                expires = entry.expires if entry is not None else 0.0
            else:
                result, expires = delta, 0.0
            self._put(key, _Entry(expires, result, _ATOM_SIZE, None))
            return result

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """Live keys matching *pattern*, sorted; expired ones are skipped, not removed."""
        prefix = self.key_prefix
        with self._lock:
            now = self.clock()
            names = [
                name[len(prefix) :]
                for name, entry in self._data.items()
                if name.startswith(prefix) and not (entry.expires and entry.expires <= now)
            ]
        return iter(sorted(name for name in names if fnmatchcase(name, pattern)))

    def figures(self) -> dict[str, int]:
        return {
            "entries": len(self._data),
            "bytes": self._bytes,
            "max_entries": self.threshold,
            "max_bytes": self.max_bytes,
        }

    def describe(self) -> str:
        return f"memory (in this process, {len(self)} entries, {self._bytes} bytes)"
