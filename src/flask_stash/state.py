"""What one Cache keeps per app: the guarded store, counters, single-flight, the clock.

Store calls go through :attr:`AppState.guard` (see :mod:`.guard`); the
decorators' entry reads and writes go through :attr:`AppState.entries`,
which is the guard itself unless a ``Cache`` subclass overrides the
low-level methods.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .breaker import CircuitBreaker
from .config import Settings
from .flight import SingleFlight, StoreLock, lock_value
from .guard import Entries, GuardedStore
from .keys import BoundedMemo
from .serializers import SignedSerializer
from .stats import Stats
from .stores import BaseStore

__all__ = ["AppState"]

logger = logging.getLogger("flask_stash")


class AppState:
    """Per-app state of one Cache, kept in ``app.extensions["flask_stash"][cache]``."""

    #: Wall-clock time for entry freshness. A class attribute, so tests can
    #: move time for one state (``state.clock = ...``) or for all of them.
    clock: Callable[[], float] = staticmethod(time.time)

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
        for part in (store, getattr(store, "remote", None)):  # a near cache's remote store
            serializer = getattr(part, "serializer", None)
            if isinstance(serializer, SignedSerializer):
                serializer.on_reject = self.stats.integrity_error
        self.breaker = CircuitBreaker(settings.failure_threshold, settings.retry_interval)
        #: Every store call goes through it.
        self.guard = GuardedStore(store, self.breaker, self.stats)
        #: Where the decorators read and write their entries.
        self.entries: Entries = self.guard
        self.flight = SingleFlight(lock_timeout=settings.lock_timeout, wait=settings.lock_wait)
        #: A page request's raw parts -> its key, tags and the names one read
        #: fetches (see ``views.CachedView.__call__``); bounded.
        self.page_keys = BoundedMemo()
        self.warned: set[tuple[str, str]] = set()
        self._log_lock = threading.Lock()
        self._background: set[threading.Thread] = set()
        self._revalidating: set[str] = set()

    def lock(self, name: str) -> StoreLock | None:
        """The cross-process lock, if the store is shared and has not failed lately.

        After a failure nobody can rely on a lock in that store, and waiting
        for one would only add a timeout to the request.
        """
        if not self.store.shared or self.breaker.open_until or self.breaker.failures:
            return None
        return StoreLock(self.guard, name)

    def start_revalidation(self, key: str, work: Callable[[], None], name: str) -> bool:
        """Run *work* in a background thread unless *key* is already being refreshed.

        On a shared store only one process refreshes a key: the others find
        its ``refresh:`` lock taken and keep serving the stale entry.
        """
        with self._log_lock:
            if key in self._revalidating:
                return False
            self._revalidating.add(key)
        lock = self.lock(name)

        def run() -> None:
            lock_key = f"refresh:{key}"
            mine = lock_value(secrets.token_hex(16), time.time() + self.settings.lock_timeout)
            try:
                if lock is not None and not lock.acquire(
                    lock_key, mine, self.settings.lock_timeout
                ):
                    return
                try:
                    work()
                finally:
                    if lock is not None:
                        lock.release(lock_key, mine)
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

    def warn_once(self, name: str, reason: str, message: str) -> None:
        """Log a warning about *name* the first time *reason* happens to it."""
        if (name, reason) not in self.warned:
            self.warned.add((name, reason))
            logger.warning(message)

    def begin(self) -> None:
        """Start one cached call: see :meth:`.GuardedStore.begin`."""
        self.guard.begin()

    def wants_raw(self) -> bool:
        """Whether a low-level call is a decorator's, routed through a Cache subclass."""
        return self.entries.raw()
