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

import asyncio
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from .guard import GuardedStore

__all__ = ["FlightStats", "LockOps", "LockUnavailableError", "SingleFlight", "StoreLock"]

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

    def holder(self, key: str) -> object:
        """What *key* holds: its holder's lock value, or None if it is free."""
        ...

    def remove(self, key: str) -> None:
        """Drop *key* whatever it holds."""
        ...


class LockUnavailableError(Exception):
    """The store holding the locks cannot be reached: nobody can hold a lock now."""


class StoreLock:
    """:class:`LockOps` on the guarded store, taken with ``add`` (atomic set-if-absent).

    Every lock operation is a store call like any other: counted, behind
    the breaker. Timeouts are rounded up to whole seconds, at least 1:
    memcached keeps time in seconds. Release reads the token, then deletes:
    two operations, so if the lock expired in between and another process
    took it, that process's lock is deleted. The window is one round trip
    and only opens after ``lock_timeout``; the cost is at worst one extra
    computation elsewhere.
    """

    def __init__(self, guard: GuardedStore, name: str) -> None:
        self.guard = guard
        self.name = name

    def acquire(self, key: str, token: str, timeout: float) -> bool:
        taken = self.guard.add(key, token, max(1, math.ceil(timeout)), self.name)
        if taken is None:
            raise LockUnavailableError(key)
        return taken

    def holder(self, key: str) -> object:
        """What the lock holds now: its holder's token, or None if it is free."""
        if not self.guard.available():
            raise LockUnavailableError(key)
        found = self.guard.get(key, self.name)
        if not self.guard.available():
            raise LockUnavailableError(key)
        return found

    def release(self, key: str, token: str) -> None:
        """Free *key* if it still holds *token*; a failed delete is tried once more.

        The read is not retried: a store that cannot read now is hung, and
        another try would only wait out another timeout. The lock's deadline
        frees its waiters anyway.
        """
        if self.holder(key) != token:
            return
        if self.guard.delete(key, self.name) is not None:
            return
        if self.guard.breaker.is_open:
            raise LockUnavailableError(key)
        self.guard.begin()  # this call's failure flag: the retry may reach the store
        if self.guard.delete(key, self.name) is None:
            raise LockUnavailableError(key)

    def remove(self, key: str) -> None:
        """Drop a lock whatever it holds (a malformed one nobody can own)."""
        self.guard.delete(key, self.name)


@dataclass
class FlightStats:
    """What :meth:`SingleFlight.run` did, for tests and metrics."""

    leader: int = 0  # callers that found no computation of their key in this process
    follower: int = 0  # callers that found one and waited for it
    shared: int = 0  # followers given the leader's value
    computed: int = 0  # calls of compute(), by leaders and followers
    waited: int = 0  # leaders that found the cross-process lock taken
    lock_hit: int = 0  # leaders that read the value another process stored
    lock_wait_timeout: int = 0  # leaders that gave up waiting after their bounded wait
    lock_error: int = 0  # leaders whose lock store failed: computed at once, without it
    lock_overdue: int = 0  # leaders that found the lock past its holder's own deadline
    lock_malformed: int = 0  # locks holding something no holder writes: removed
    release_failed: int = 0  # locks this process could not release (they expire)


#: What :meth:`SingleFlight._lead` yields when it wants the value computed.
COMPUTE = object()

#: A follower waits for a computation at most this many times as long as
#: the slowest of its recent computations, and at least MIN_WAIT seconds.
WAIT_FACTOR = 4.0
MIN_WAIT = 0.05
#: How many recent computation times are kept per name.
RECENT = 8


class _Flight:
    """One key being computed in this process; its followers wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.shared = False


def lock_value(token: str, deadline: float) -> str:
    """What a lock holds: its holder's token, and when the holder expects to be done.

    The deadline is wall-clock time, comparable across processes. A holder
    past it is hung or gone, and nobody waits for it any longer.
    """
    return f"{token}|{deadline:.3f}"


def parse_lock(found: object) -> tuple[str, float] | None:
    """The token and deadline of a lock's value, or None if it is malformed."""
    if type(found) is not str or len(found) > 80:
        return None
    token, sep, deadline = found.partition("|")
    if not sep or not token or len(deadline) > 20:
        return None
    try:
        when = float(deadline)
    except ValueError:
        return None
    return (token, when) if when == when and when not in (float("inf"), float("-inf")) else None


class SingleFlight:
    """Run at most one computation per key at a time; see the module docstring.

    ``lock_timeout`` should exceed the slowest computation: past it, the lock
    expires in the store. ``wait`` caps how long any caller waits for someone
    else's result before computing by itself; within it, a caller waits only
    a small multiple of how long the same *name* took lately
    (:meth:`bounded_wait`), and only while the lock's holder is within the
    deadline it wrote into the lock. ``clock`` and ``sleep`` time the
    polling; ``wall`` is the wall clock of lock deadlines.
    """

    def __init__(
        self,
        *,
        lock_timeout: float = 30.0,
        wait: float = 10.0,
        poll_interval: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if lock_timeout <= 0 or wait < 0 or poll_interval <= 0:
            raise ValueError("lock_timeout and poll_interval must be positive, wait 0 or more")
        self.lock_timeout, self.wait, self.poll_interval = lock_timeout, wait, poll_interval
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self.stats = FlightStats()
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._recent: dict[str, list[float]] = {}

    @property
    def in_flight(self) -> frozenset[str]:
        """The keys being computed in this process right now."""
        with self._lock:
            return frozenset(self._flights)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def bounded_wait(self, name: str | None) -> float:
        """How long to wait for another's computation of *name*.

        A small multiple of the slowest of its recent computations here,
        capped by ``wait``; the whole ``wait`` while none is known yet.
        """
        recent = self._recent.get(name) if name is not None else None
        if not recent:
            return self.wait
        return min(self.wait, max(MIN_WAIT, WAIT_FACTOR * max(recent)))

    def _join(self, key: str) -> tuple[_Flight, bool]:
        """The computation of *key* in this process, and whether this caller leads it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.stats.leader += 1
                return flight, True
            self.stats.follower += 1
            return flight, False

    def _finish(self, key: str, flight: _Flight) -> None:
        with self._lock:
            del self._flights[key]
        flight.done.set()

    def run(
        self,
        key: str,
        compute: Callable[[], tuple[T, bool]],
        *,
        read: Callable[[], T | None] | None = None,
        lock: LockOps | None = None,
        name: str | None = None,
    ) -> T:
        """Return *key*'s value, computing it here only if nobody else is.

        ``compute()`` returns ``(value, shareable)``; only a shareable value is
        handed to the callers waiting on this one. ``read()`` returns the value
        another process stored, or None; it is polled while that process holds
        *lock* and is within its deadline. *name* (the view or function)
        groups keys whose computations take about as long.
        """
        flight, leading = self._join(key)
        if not leading:
            if flight.done.wait(self.bounded_wait(name)) and flight.shared:
                self._count("shared")
                return cast(T, flight.value)
            return self._timed(compute, name)[0]  # not shareable, failed, or too slow
        try:
            steps = self._lead(key, read, lock, name)
            step = next(steps)
            while True:
                try:
                    if step is COMPUTE:
                        done = self._timed(compute, name)
                    else:
                        self.sleep(cast(float, step))
                        done = None
                except BaseException as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(done)
        except StopIteration as stop:
            flight.value, flight.shared = stop.value
            return cast(T, flight.value)
        finally:
            self._finish(key, flight)

    async def arun(
        self,
        key: str,
        compute: Callable[[], Awaitable[tuple[T, bool]]],
        *,
        read: Callable[[], T | None] | None = None,
        lock: LockOps | None = None,
        name: str | None = None,
    ) -> T:
        """:meth:`run` for a coroutine: the same registry, locks and bounds, awaited.

        Followers in this process wait in a worker thread, so an event loop
        is never blocked by another request's computation.
        """
        flight, leading = self._join(key)
        if not leading:
            waited = await asyncio.to_thread(flight.done.wait, self.bounded_wait(name))
            if waited and flight.shared:
                self._count("shared")
                return cast(T, flight.value)
            return (await self._atimed(compute, name))[0]
        try:
            steps = self._lead(key, read, lock, name)
            step = next(steps)
            while True:
                try:
                    if step is COMPUTE:
                        done = await self._atimed(compute, name)
                    else:
                        await asyncio.sleep(cast(float, step))
                        done = None
                except BaseException as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(done)
        except StopIteration as stop:
            flight.value, flight.shared = stop.value
            return cast(T, flight.value)
        finally:
            self._finish(key, flight)

    def _record(self, name: str | None, took: float) -> None:
        if name is not None:
            with self._lock:
                recent = self._recent.setdefault(name, [])
                recent.append(took)
                del recent[:-RECENT]

    def _timed(self, compute: Callable[[], tuple[T, bool]], name: str | None) -> tuple[T, bool]:
        self._count("computed")
        started = self.clock()
        try:
            return compute()
        finally:
            self._record(name, self.clock() - started)

    async def _atimed(
        self, compute: Callable[[], Awaitable[tuple[T, bool]]], name: str | None
    ) -> tuple[T, bool]:
        self._count("computed")
        started = self.clock()
        try:
            return await compute()
        finally:
            self._record(name, self.clock() - started)

    def _lead(
        self,
        key: str,
        read: Callable[[], T | None] | None,
        lock: LockOps | None,
        name: str | None,
    ) -> Generator[object, tuple[T, bool] | None, tuple[T, bool]]:
        """The leader's decisions, as steps: yield COMPUTE for the value, or seconds to sleep.

        :meth:`run` and :meth:`arun` drive it, computing and sleeping their
        own way, so the rules live here once. It computes under the
        cross-process lock, or waits for whoever holds it; waiting ends as
        soon as the value can be read, the lock is free (then this process
        takes it), the holder is past its own deadline, the lock store
        fails, or this caller's bounded wait is over.
        """
        if lock is None:
            return cast("tuple[T, bool]", (yield COMPUTE))
        wait = self.bounded_wait(name)
        lock_key, token = f"lock:{key}", secrets.token_hex(16)
        mine = lock_value(token, self.wall() + wait)
        deadline, delay = self.clock() + wait, self.poll_interval
        waiting = vanished = False
        while True:
            try:
                acquired = lock.acquire(lock_key, mine, self.lock_timeout)
            except Exception as exc:
                # Nobody can take a lock on a failing store: waiting is pointless.
                logger.debug("single-flight lock %r failed, computing: %r", lock_key, exc)
                self._count("lock_error")
                return cast("tuple[T, bool]", (yield COMPUTE))
            if acquired:
                try:
                    # The previous holder may have stored the value just before
                    # releasing, after our caller's miss: read once more.
                    value = self._read(read)
                    if value is not None:
                        self._count("lock_hit")
                        return value, True
                    return cast("tuple[T, bool]", (yield COMPUTE))
                finally:
                    self._release(lock, lock_key, mine)
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
                return cast("tuple[T, bool]", (yield COMPUTE))
            try:
                found = lock.holder(lock_key)
            except Exception as exc:
                logger.debug("single-flight lock %r unreadable, computing: %r", lock_key, exc)
                self._count("lock_error")
                return cast("tuple[T, bool]", (yield COMPUTE))
            if found is None and not vanished:
                # Released or expired without a value: take it at once.
                vanished = True
                yield min(self.poll_interval, remaining) / 4
                continue
            # Taken again, yet unreadable (bytes nobody signed, say): as malformed.
            parsed = None if found is None else parse_lock(found)
            if parsed is None:
                # Nothing a holder writes: drop it, so the next take succeeds.
                self._count("lock_malformed")
                lock.remove(lock_key)
                yield min(self.poll_interval, remaining) / 4
                continue
            vanished = False
            if parsed[1] <= self.wall():
                self._count("lock_overdue")
                return cast("tuple[T, bool]", (yield COMPUTE))
            remaining = min(remaining, parsed[1] - self.wall())
            # Then try the lock again: its holder may be done by then.
            yield min(delay, remaining)
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

    def _release(self, lock: LockOps, lock_key: str, token: str) -> None:
        """Release the lock; if it stays, its deadline frees the others."""
        try:
            lock.release(lock_key, token)
            return
        except Exception as exc:
            error = exc
        self._count("release_failed")
        logger.warning(
            "single-flight lock %r not released (others stop waiting at its deadline; "
            "it expires after %gs): %r",
            lock_key,
            self.lock_timeout,
            error,
        )
