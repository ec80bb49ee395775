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
from .stats import Stats
from .stores import BaseStore

__all__ = ["AppState"]

logger = logging.getLogger("flask_stash")

T = TypeVar("T")

#: Seconds between two log records about store failures.
LOG_INTERVAL = 10.0


class AppState:
    """Per-app state of one Cache, kept in ``app.extensions["cache"][cache]``."""

    def __init__(self, settings: Settings, store: BaseStore) -> None:
        self.settings = settings
        self.store = store
        self.stats = Stats()
        self.breaker = CircuitBreaker(settings.failure_threshold, settings.retry_interval)
        self.warned: set[tuple[str, str]] = set()
        self._log_lock = threading.Lock()
        self._last_log = -LOG_INTERVAL
        self._suppressed = 0

    def failed(self, exc: BaseException, operation: str, name: str) -> None:
        """Count a store failure, and log it unless one was logged just now."""
        self.stats.error(name)
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

    def get(self, key: str, name: str) -> Any:
        """Read *key*; a failure or an open breaker reads as a miss (None)."""
        breaker = self.breaker
        if breaker.open_until and not breaker.allow():
            self.stats.skip(name, "store unavailable")
            return None
        try:
            value = self.store.get(key)
        except Exception as exc:
            self.failed(exc, "get", name)
            return None
        if breaker.failures:
            breaker.success()
        return value

    def call(self, name: str, operation: str, default: T, *args: Any) -> Any:
        """Run ``store.<operation>(*args)``; *default* if it fails or is skipped.

        A value that cannot be serialized is the caller's problem, not the
        store's: :class:`SerializationError` is raised, not counted.
        """
        if self.breaker.open_until and not self.breaker.allow():
            self.stats.skip(name, "store unavailable")
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
