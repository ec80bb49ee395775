"""The store behind its circuit breaker: the only way the cache touches a store.

Every operation goes through one typed method here, so the rule "a store
failure never fails a request" holds in one place: a failure is counted (as
an error of the view or function it was made for), logged at most once per
``LOG_INTERVAL``, fed to the breaker, and turned into a miss or a skipped
write. Lock, tag and namespace traffic goes through the same methods, so it
counts and trips the breaker like everything else.

After a failure the rest of the same cached call leaves the store alone
(see :meth:`GuardedStore.begin`), so one request waits out at most one
timeout; while the breaker is open no call reaches the store at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from .breaker import CircuitBreaker
from .errors import SerializationError
from .stats import Stats
from .stores import BaseStore

__all__ = ["LOG_INTERVAL", "Entries", "GuardedStore"]

logger = logging.getLogger("flask_stash")

T = TypeVar("T")

#: Seconds between two log records about store failures.
LOG_INTERVAL = 10.0


class Entries(Protocol):
    """Where the decorators read and write their entries: the guard, or a subclass's methods."""

    def get(self, key: str, name: str) -> Any: ...

    def get_many(self, keys: list[str], name: str) -> list[Any]: ...

    def set(self, key: str, value: Any, timeout: int | None, name: str) -> bool: ...

    def delete(self, key: str, name: str) -> bool | None: ...

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None, name: str) -> list[str]: ...

    def delete_many(self, keys: list[str], name: str) -> list[str]: ...

    def raw(self) -> bool:
        """Whether the current thread is a decorator reading through a subclass."""
        ...


class GuardedStore:
    """Typed store operations that never raise a store's failure.

    Each method takes *name*, the view, function or part of the cache the
    call is made for, under which failures and skips are counted. Reads
    return None (or a list of None) on failure, writes False (or an empty
    list); :meth:`add` and :meth:`delete` return None instead, so the
    locks can tell "taken" from "store unavailable".

    A value that cannot be serialized is the caller's problem, not the
    store's: :class:`~flask_stash.SerializationError` is raised, not counted.
    """

    def __init__(self, store: BaseStore, breaker: CircuitBreaker, stats: Stats) -> None:
        self.store = store
        self.breaker = breaker
        self.stats = stats
        self._thread = threading.local()
        self._log_lock = threading.Lock()
        self._last_log = -LOG_INTERVAL
        self._suppressed = 0

    # -- the state of one cached call ----------------------------------------

    def begin(self) -> None:
        """Start one cached call (a view, a function, a low-level operation).

        After a store failure, the rest of the same call leaves the store
        alone, so one request waits out at most one timeout, not one per
        store operation it would have made.
        """
        if self.breaker.failures and getattr(self._thread, "failed", False):
            self._thread.failed = False

    def available(self) -> bool:
        """Whether a call now would reach the store (for locks: no store, no lock)."""
        breaker = self.breaker
        if not (breaker.failures or breaker.open_until):
            return True
        if getattr(self._thread, "failed", False):
            return False
        return not breaker.is_open

    def _skip(self, name: str) -> bool:
        """Whether to leave the store alone for this operation.

        Only reached after a recent failure, so the healthy hit path pays
        two attribute checks: skipped while the breaker is open, or when
        this call already saw the store fail.
        """
        breaker = self.breaker
        if getattr(self._thread, "failed", False) or (breaker.open_until and not breaker.allow()):
            self.stats.skip(name, "store unavailable")
            return True
        return False

    def _failed(self, exc: BaseException, operation: str, name: str, write: bool) -> None:
        """Count a store failure, and log it unless one was logged just now."""
        self.stats.error(name, exc, operation=operation)
        self._thread.failed = True
        opened = self.breaker.failure(write=write)
        now = time.monotonic()
        with self._log_lock:
            if now - self._last_log < LOG_INTERVAL and not opened:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
            self._last_log = now
        more = f" ({suppressed} more failures since the last report)" if suppressed else ""
        skipping = f"; skipping the store for {self.breaker.retry_interval:g}s" if opened else ""
        logger.error(
            "cache store %s failed on %s for %s: %r%s%s",
            self.store.describe(),
            operation,
            name,
            exc,
            more,
            skipping,
        )

    def _run(self, name: str, operation: str, default: T, write: bool, call: Callable[[], T]) -> T:
        breaker = self.breaker
        if (breaker.failures or breaker.open_until) and self._skip(name):
            return default
        try:
            result = call()
        except SerializationError:
            raise
        except Exception as exc:
            self._failed(exc, operation, name, write)
            return default
        if breaker.failures or breaker.open_until:
            breaker.success(write=write)
        return result

    def raw(self) -> bool:
        return False

    # -- reads ---------------------------------------------------------------------

    def get(self, key: str, name: str) -> Any:
        """Read *key*; a failure or an open breaker reads as a miss (None)."""
        breaker = self.breaker
        if (breaker.failures or breaker.open_until) and self._skip(name):
            return None
        try:
            value = self.store.get(key)
        except Exception as exc:
            self._failed(exc, "get", name, write=False)
            return None
        if breaker.failures:
            breaker.success(write=False)
        return value

    def get_many(self, keys: list[str], name: str) -> list[Any]:
        """Read *keys* in one round trip; a failure or an open breaker reads as misses."""
        breaker = self.breaker
        if (breaker.failures or breaker.open_until) and self._skip(name):
            return [None] * len(keys)
        try:
            found = self.store.get_many(*keys)
        except Exception as exc:
            self._failed(exc, "get_many", name, write=False)
            return [None] * len(keys)
        if breaker.failures:
            breaker.success(write=False)
        return found

    def has(self, key: str, name: str) -> bool:
        return self._run(name, "has", False, False, lambda: self.store.has(key))

    # -- writes --------------------------------------------------------------------

    def set(self, key: str, value: Any, timeout: int | None, name: str) -> bool:
        return self._run(name, "set", False, True, lambda: self.store.set(key, value, timeout))

    def add(self, key: str, value: Any, timeout: int | None, name: str) -> bool | None:
        """Store *value* if *key* is empty: True, False if it is taken, None if unavailable."""
        result: bool | None = self._run(
            name, "add", None, True, lambda: self.store.add(key, value, timeout)
        )
        return result

    def delete(self, key: str, name: str) -> bool | None:
        """Remove *key*: whether it existed, or None if the store is unavailable."""
        result: bool | None = self._run(name, "delete", None, True, lambda: self.store.delete(key))
        return result

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None, name: str) -> list[str]:
        return self._run(name, "set_many", [], True, lambda: self.store.set_many(mapping, timeout))

    def delete_many(self, keys: list[str], name: str) -> list[str]:
        return self._run(name, "delete_many", [], True, lambda: self.store.delete_many(*keys))

    def unlink(self, keys: list[str], name: str) -> list[str]:
        return self._run(name, "unlink", [], True, lambda: self.store.unlink(*keys))

    def inc(self, key: str, delta: int, name: str) -> int | None:
        return self._run(name, "inc", None, True, lambda: self.store.inc(key, delta))

    def dec(self, key: str, delta: int, name: str) -> int | None:
        return self._run(name, "dec", None, True, lambda: self.store.dec(key, delta))

    def clear(self, name: str) -> bool:
        return self._run(name, "clear", False, True, self.store.clear)
