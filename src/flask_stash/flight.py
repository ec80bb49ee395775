"""One computation per cold key, in one process and across processes.

When a popular entry expires, every request that misses it would compute the
same value at once (a stampede). :class:`SingleFlight` lets one caller per key
compute while the others wait for its result. Given a :class:`LockOps`
(normally :class:`StoreLock` on the shared store) the same holds across
processes: one process takes the lock and computes, the others poll the store
until the value appears.

Waiting is always bounded and a failing store never blocks anyone: in the
worst case every caller computes by itself, which is what happens without
this module. Nothing here imports Flask.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from .stores.base import BaseStore

__all__ = ["FlightStats", "LockOps", "SingleFlight", "StoreLock"]

logger = logging.getLogger("flask_stash")

T = TypeVar("T")

#: The poll interval doubles while waiting for another process, up to this
#: many times itself: small, so a waiter learns of the result soon after.
BACKOFF_CAP = 4


class LockOps(Protocol):
    """A lock shared between processes that expires by itself if its holder dies."""

    def acquire(self, key: str, token: str, timeout: float) -> bool:
        """Take *key* for *timeout* seconds, marked with *token*; False if it is taken."""
        ...

    def release(self, key: str, token: str) -> None:
        """Free *key*, but only if it still holds *token* (it may have expired and moved on)."""
        ...


class StoreLock:
    """:class:`LockOps` on any store, taken with ``add`` (atomic set-if-absent).

    Timeouts are rounded up to whole seconds, at least 1: memcached keeps time
    in seconds. Release reads the token, then deletes: two operations, so if
    the lock expired in between and another process took it, that process's
    lock is deleted. The window is one round trip and only opens after
    ``lock_timeout``; the cost is at worst one extra computation elsewhere.
    """

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def acquire(self, key: str, token: str, timeout: float) -> bool:
        return bool(self.store.add(key, token, timeout=max(1, math.ceil(timeout))))

    def release(self, key: str, token: str) -> None:
        if self.store.get(key) == token:
            self.store.delete(key)


@dataclass
class FlightStats:
    """What :meth:`SingleFlight.run` did, for tests and metrics."""

    leader: int = 0  # callers that found no computation of their key in this process
    follower: int = 0  # callers that found one and waited for it
    shared: int = 0  # followers given the leader's value
    computed: int = 0  # calls of compute(), by leaders and followers
    waited: int = 0  # leaders that found the cross-process lock taken
    lock_hit: int = 0  # leaders that read the value another process stored
    lock_wait_timeout: int = 0  # leaders that gave up waiting after ``wait`` seconds
    lock_error: int = 0  # leaders whose lock raised: computed at once, without it


class _Flight:
    """One key being computed in this process; its followers wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.shared = False


class SingleFlight:
    """Run at most one computation per key at a time; see the module docstring.

    ``lock_timeout`` should exceed the slowest computation: past it, another
    process may take the lock and compute too. ``wait`` bounds how long any
    caller waits for someone else's result before computing by itself.
    ``clock`` and ``sleep`` time the cross-process polling (followers in this
    process wait on an event, in real time).
    """

    def __init__(
        self,
        *,
        lock_timeout: float = 30.0,
        wait: float = 10.0,
        poll_interval: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if lock_timeout <= 0 or wait < 0 or poll_interval <= 0:
            raise ValueError("lock_timeout and poll_interval must be positive, wait 0 or more")
        self.lock_timeout, self.wait, self.poll_interval = lock_timeout, wait, poll_interval
        self.clock, self.sleep = clock, sleep
        self.stats = FlightStats()
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    @property
    def in_flight(self) -> frozenset[str]:
        """The keys being computed in this process right now."""
        with self._lock:
            return frozenset(self._flights)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def run(
        self,
        key: str,
        compute: Callable[[], tuple[T, bool]],
        *,
        read: Callable[[], T | None] | None = None,
        lock: LockOps | None = None,
    ) -> T:
        """Return *key*'s value, computing it here only if nobody else is.

        ``compute()`` returns ``(value, shareable)``; only a shareable value is
        handed to the callers waiting on this one. ``read()`` returns the value
        another process stored, or None; it is polled while that process holds
        *lock*.
        """
        with self._lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.stats.leader += 1
            else:
                self.stats.follower += 1
        if not leading:
            if flight.done.wait(self.wait) and flight.shared:
                self._count("shared")
                return cast(T, flight.value)
            return self._compute(compute)[0]  # not shareable, failed, or too slow
        try:
            flight.value, flight.shared = self._lead(key, compute, read, lock)
            return cast(T, flight.value)
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def _compute(self, compute: Callable[[], tuple[T, bool]]) -> tuple[T, bool]:
        self._count("computed")
        return compute()

    def _lead(
        self,
        key: str,
        compute: Callable[[], tuple[T, bool]],
        read: Callable[[], T | None] | None,
        lock: LockOps | None,
    ) -> tuple[T, bool]:
        """Compute under the cross-process lock, or wait for whoever holds it."""
        if lock is None:
            return self._compute(compute)
        lock_key, token = f"lock:{key}", secrets.token_hex(16)
        deadline, delay = self.clock() + self.wait, self.poll_interval
        waiting = False
        while True:
            try:
                acquired = lock.acquire(lock_key, token, self.lock_timeout)
            except Exception as exc:
                # Nobody can take a lock on a failing store: waiting is pointless.
                logger.debug("single-flight lock %r failed, computing: %r", lock_key, exc)
                self._count("lock_error")
                return self._compute(compute)
            if acquired:
                try:
                    # The previous holder may have stored the value just before
                    # releasing, after our caller's miss: read once more.
                    value = self._read(read)
                    if value is not None:
                        self._count("lock_hit")
                        return value, True
                    return self._compute(compute)
                finally:
                    self._release(lock, lock_key, token)
            if not waiting:
                waiting = True
                self._count("waited")
            value = self._read(read)
            if value is not None:
                self._count("lock_hit")
                return value, True
            remaining = deadline - self.clock()
            if remaining <= 0:
                self._count("lock_wait_timeout")
                return self._compute(compute)
            # Then try the lock again: its holder may have died or stored nothing.
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, self.poll_interval * BACKOFF_CAP)

    @staticmethod
    def _read(read: Callable[[], T | None] | None) -> T | None:
        """Call *read*; a failure reads as a miss, so polling goes on."""
        if read is None:
            return None
        try:
            return read()
        except Exception as exc:
            logger.debug("single-flight read failed, counted as a miss: %r", exc)
            return None

    @staticmethod
    def _release(lock: LockOps, lock_key: str, token: str) -> None:
        """Release the lock; if that fails it expires after ``lock_timeout`` anyway."""
        try:
            lock.release(lock_key, token)
        except Exception as exc:
            logger.debug("single-flight lock %r not released: %r", lock_key, exc)
