"""What one Cache keeps per app: the store behind its circuit breaker, and counters.

Every store call made on behalf of a request goes through here, so the rule
"a store failure never fails a request" is enforced in one place: failures
are counted, logged at most once per ``LOG_INTERVAL``, and turned into a
miss (for reads) or a skipped write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .breaker import CircuitBreaker
from .config import Settings
from .errors import SerializationError
from .flight import SingleFlight, StoreLock
from .stats import Stats
from .stores import BaseStore

__all__ = ["AppState"]

logger = logging.getLogger("flask_stash")

T = TypeVar("T")

#: Seconds between two log records about store failures.
LOG_INTERVAL = 10.0


class AppState:
    """Per-app state of one Cache, kept in ``app.extensions["flask_stash"][cache]``."""

    #: Wall-clock time for entry freshness. A class attribute, so tests can
    #: move time for one state (``state.clock = ...``) or for all of them.
    clock: Callable[[], float] = staticmethod(time.time)
    #: A ``Cache`` subclass that overrides some of the low-level methods;
    #: the decorators' store calls then go through them (see :meth:`route`).
    front: Any = None
    front_methods: frozenset[str] = frozenset()

    def __init__(
        self,
        settings: Settings,
        store: BaseStore,
        response_class: type[Any] | None = None,
        sender: object | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        #: The app, for work done outside its context (background refreshes).
        self.app: Any = sender
        #: The app's response class, kept here so a hit needs no ``current_app``.
        self.response_class = response_class
        #: Counters; signals about them are sent with *sender* (the app).
        self.stats = Stats(sender)
        self.breaker = CircuitBreaker(settings.failure_threshold, settings.retry_interval)
        self.flight = SingleFlight(lock_timeout=settings.lock_timeout, wait=settings.lock_wait)
        self.warned: set[tuple[str, str]] = set()
        self._log_lock = threading.Lock()
        self._last_log = -LOG_INTERVAL
        self._suppressed = 0
        self._background: set[threading.Thread] = set()
        self._thread = threading.local()
        self._revalidating: set[str] = set()

    def lock(self) -> StoreLock | None:
        """The cross-process lock, if the store is shared and has not failed lately.

        After a failure nobody can rely on a lock in that store, and waiting
        for one would only add a timeout to the request.
        """
        if not self.store.shared or self.breaker.open_until or self.breaker.failures:
            return None
        return StoreLock(self.store)

    def start_revalidation(self, key: str, work: Callable[[], None]) -> bool:
        """Run *work* in a background thread unless *key* is already being refreshed."""
        with self._log_lock:
            if key in self._revalidating:
                return False
            self._revalidating.add(key)

        def run() -> None:
            try:
                work()
            except Exception:
                logger.exception("refreshing a stale cache entry failed")
            finally:
                with self._log_lock:
                    self._revalidating.discard(key)
                    self._background.discard(thread)

        thread = threading.Thread(target=run, name="flask-stash-revalidate", daemon=True)
        with self._log_lock:
            self._background.add(thread)
        thread.start()
        return True

    def join_background(self, timeout: float = 10.0) -> None:
        """Wait for background refreshes to finish (for tests and shutdown)."""
        with self._log_lock:
            threads = list(self._background)
        for thread in threads:
            thread.join(timeout)

    def failed(self, exc: BaseException, operation: str, name: str) -> None:
        """Count a store failure, and log it unless one was logged just now."""
        self.stats.error(name, exc, operation=operation)
        self._thread.failed = True
        opened = self.breaker.failure()
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

    def warn_once(self, name: str, reason: str, message: str) -> None:
        """Log a warning about *name* the first time *reason* happens to it."""
        if (name, reason) not in self.warned:
            self.warned.add((name, reason))
            logger.warning(message)

    def begin(self) -> None:
        """Start one cached call (a view, a function, a low-level operation).

        After a store failure, the rest of the same call leaves the store
        alone, so one request waits out at most one timeout, not one per
        store operation it would have made.
        """
        if self.breaker.failures and getattr(self._thread, "failed", False):
            self._thread.failed = False

    def _skip(self, name: str) -> bool:
        """Whether to leave the store alone for this operation.

        Only reached after a recent failure, so the healthy hit path pays
        one attribute check: skipped while the breaker is open, or when this
        call already saw the store fail.
        """
        breaker = self.breaker
        if getattr(self._thread, "failed", False) or (breaker.open_until and not breaker.allow()):
            self.stats.skip(name, "store unavailable")
            return True
        return False

    def route(self, operation: str, *args: Any) -> Any:
        """Run a decorator's store call through the ``Cache`` subclass's own method.

        Instrumentation subclasses ``Cache`` and wraps ``get``, ``set`` ...;
        it sees the decorators' traffic only if that goes through them. The
        low-level methods return entries unwrapped for this thread meanwhile.
        """
        self._thread.raw = True
        try:
            return getattr(self.front, operation)(*args)
        finally:
            self._thread.raw = False

    def wants_raw(self) -> bool:
        """Whether a low-level call is a decorator's, routed by :meth:`route`."""
        return self.front is not None and getattr(self._thread, "raw", False)

    def get(self, key: str, name: str) -> Any:
        """Read *key*; a failure or an open breaker reads as a miss (None)."""
        if "get" in self.front_methods:
            return self.route("get", key)
        breaker = self.breaker
        if (breaker.failures or breaker.open_until) and self._skip(name):
            return None
        try:
            value = self.store.get(key)
        except Exception as exc:
            self.failed(exc, "get", name)
            return None
        if breaker.failures:
            breaker.success()
        return value

    def get_many(self, keys: list[str], name: str) -> list[Any]:
        """Read *keys* in one round trip; a failure or an open breaker reads as misses."""
        if self.front is not None:
            # A decorator reads an entry and its tag versions together. The
            # subclass sees the entry's read through its ``get``; the tag
            # versions are bookkeeping and go straight to the store.
            if "get" in self.front_methods:
                return [self.route("get", keys[0]), *self.direct_many(keys[1:], name)]
            if "get_many" in self.front_methods:
                return list(self.route("get_many", *keys))
        breaker = self.breaker
        if (breaker.failures or breaker.open_until) and self._skip(name):
            return [None] * len(keys)
        try:
            found = self.store.get_many(*keys)
        except Exception as exc:
            self.failed(exc, "get_many", name)
            return [None] * len(keys)
        if breaker.failures:
            breaker.success()
        return found

    def direct_many(self, keys: list[str], name: str) -> list[Any]:
        """Read bookkeeping *keys* from the store itself, never through a subclass."""
        if not keys:
            return []
        found: list[Any] = self.direct(name, "get_many", [None] * len(keys), *keys)
        return found

    def call(self, name: str, operation: str, default: T, *args: Any) -> Any:
        """Run ``store.<operation>(*args)``; *default* if it fails or is skipped.

        A value that cannot be serialized is the caller's problem, not the
        store's: :class:`~flask_stash.SerializationError` is raised, not counted.
        """
        if operation in self.front_methods:
            return self.route(operation, *args)
        return self.direct(name, operation, default, *args)

    def direct(self, name: str, operation: str, default: T, *args: Any) -> Any:
        """:meth:`call`, straight to the store: what the low-level API itself uses."""
        breaker = self.breaker
        if (breaker.failures or breaker.open_until) and self._skip(name):
            return default
        method: Callable[..., Any] = getattr(self.store, operation)
        try:
            result = method(*args)
        except SerializationError:
            raise
        except Exception as exc:
            self.failed(exc, operation, name)
            return default
        self.breaker.success()
        return result
