"""A circuit breaker, so a sick store costs a request nothing.

After ``threshold`` consecutive failures the store is skipped: requests are
served uncached at full speed instead of each waiting out a timeout. After a
second, one request tries the store again; a success closes the breaker, a
failure opens it for twice as long, up to ``retry_interval`` seconds. So a
store that comes back is used again within about a second, and one that
stays down costs one timeout per ``retry_interval`` at most.

Reads and writes are counted apart: a store that answers reads but times
out on writes (full, paused for writes) still opens the breaker, since a
good read only clears read failures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["FIRST_INTERVAL", "CircuitBreaker"]

#: Seconds before the first trial of a store that just failed.
FIRST_INTERVAL = 1.0


class CircuitBreaker:
    """Counts consecutive failures and decides whether to try the store."""

    def __init__(
        self,
        threshold: int = 3,
        retry_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be 1 or more, got {threshold}")
        if retry_interval < 0:
            raise ValueError(f"retry_interval must be 0 or more, got {retry_interval}")
        self.threshold = threshold
        self.retry_interval = retry_interval
        #: The first wait before a trial, doubled after each failed trial.
        self.first_interval = min(FIRST_INTERVAL, retry_interval)
        self.interval = self.first_interval
        self.clock = clock
        #: Consecutive failures, reads and writes together: nonzero means
        #: "look closer" on the hot path.
        self.failures = 0
        self.open_until = 0.0
        self._read_failures = 0
        self._write_failures = 0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Whether the store is being skipped right now."""
        return bool(self.open_until) and self.clock() < self.open_until

    def allow(self) -> bool:
        """Return whether this call may use the store.

        When an interval ends, exactly one caller gets through to try the
        store; the others keep skipping until that trial succeeds.
        """
        if not self.open_until:
            return True
        with self._lock:
            if self.clock() < self.open_until:
                return False
            # Let one trial through; hold the rest off for another interval
            # unless the trial succeeds and closes the breaker.
            self.open_until = self.clock() + self.interval
            return True

    def success(self, write: bool = True) -> None:
        """Record a success; a read clears read failures only.

        Any success closes an open breaker (the trial got through). Write
        failures a read did not clear stay counted, so if writes still
        fail, the next one opens the breaker again at once.
        """
        if self.failures or self.open_until:
            with self._lock:
                if write:
                    self._write_failures = 0
                self._read_failures = 0
                self.failures = self._read_failures + self._write_failures
                self.open_until = 0.0
                self.interval = self.first_interval

    def failure(self, write: bool = False) -> bool:
        """Record a failure; return True if it opened the breaker."""
        with self._lock:
            if write:
                self._write_failures += 1
            else:
                self._read_failures += 1
            self.failures = self._read_failures + self._write_failures
            if self.failures >= self.threshold:
                opened = not self.open_until
                if not opened:  # a failed trial: wait longer before the next one
                    self.interval = min(self.interval * 2, self.retry_interval)
                self.open_until = self.clock() + self.interval
                return opened
            return False
