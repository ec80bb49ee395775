"""Counters of what the cache did, per view and in total, and signals about it.

Increments are plain attribute additions without a lock: under heavy
threading a count may very rarely be lost, which is acceptable for
statistics and keeps the hit path free of locks.

Each event is also sent as a blinker signal (see :mod:`.signals`), but only
when something listens: with no receivers connected, an event costs one
truth test of an empty dict, and no keyword arguments are built.

Counters live in the process that counted them: every worker of a server
has its own (:mod:`.metrics` can add them up across workers for Prometheus).

Counters are kept by a readable *label*, not by the name cache keys use: a
view is counted under its endpoint (``index``, ``shop.index``) once it has
answered a request, any other function under :func:`function_label`.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from flask import current_app, has_app_context

from .signals import cache_error, cache_hit, cache_miss, cache_skipped, cache_stored

__all__ = ["Counters", "History", "Stats", "function_label"]

logger = logging.getLogger("flask_stash")


def function_label(fn: Callable[..., Any]) -> str:
    """The name *fn* is counted under: ``module.qualname`` without ``<locals>``.

    ``index`` defined inside ``create_app`` in ``flask_stash.demo.app`` reads
    ``flask_stash.demo.app.create_app.index``. For statistics, logs and
    metrics only: cache keys keep :func:`.keys.function_name`, which is
    Flask-Caching's name and never changes with this one.
    """
    fn = inspect.unwrap(fn)
    qualname = ".".join(part for part in fn.__qualname__.split(".") if part != "<locals>")
    return f"{fn.__module__}.{qualname}"


@dataclass(slots=True)
class Counters:
    """What happened to one view or function, or to all of them."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    errors: int = 0
    #: Entries refused because their signature did not match the key they
    #: were read under (forged, copied from another key, or an old secret).
    integrity_errors: int = 0
    skips: Counter[str] = field(default_factory=Counter)

    @property
    def hit_ratio(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "errors": self.errors,
            "integrity_errors": self.integrity_errors,
            "skips": dict(self.skips),
            "hit_ratio": self.hit_ratio,
        }


class History:
    """Hits and misses per wall-clock second over the last *seconds* seconds.

    It is sampled, not fed by every lookup, so the hit path pays nothing for
    it: :meth:`sample` records the running totals of *counters* once per
    call, keeping one sample per second in a deque bounded to *seconds*
    entries, and the lookups of a second are the difference between two
    samples. Call it as often as convenient (the demo app calls it after
    every request); :meth:`points` samples too. Lookups made between two
    samples further apart than a second are put in the later second.
    """

    def __init__(
        self,
        counters: Callable[[], Counters],
        seconds: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if seconds < 1:
            raise ValueError("seconds must be 1 or more")
        self.counters = counters
        self.seconds = seconds
        self.clock = clock
        #: ``(second, hits so far, misses so far)``, oldest first; one more
        #: than the window, to difference the window's first second against.
        self.samples: deque[tuple[int, int, int]] = deque(maxlen=seconds + 1)
        self._lock = threading.Lock()
        self.clear()

    def sample(self) -> None:
        """Record the running totals for the current second."""
        second = int(self.clock())
        total = self.counters()
        with self._lock:
            samples = self.samples
            last = samples[-1][0]
            if last == second:
                samples[-1] = (second, total.hits, total.misses)
            elif last < second:
                samples.append((second, total.hits, total.misses))
            elif last - second > self.seconds:
                # The clock was set far back: start over, the lookups since
                # the last sample going to this second.
                _, hits, misses = samples[-1]
                samples.clear()
                samples.append((second - 1, hits, misses))
                samples.append((second, total.hits, total.misses))
            # else a thread that read the clock just before another one: drop it

    def points(self) -> list[dict[str, Any]]:
        """The seconds of the window that saw lookups, oldest first.

        Each is ``{"t": second, "hits": n, "misses": n, "ratio": hits / lookups}``.
        """
        self.sample()
        with self._lock:
            samples = list(self.samples)
        start = samples[-1][0] - self.seconds
        found = []
        for (_, hits_before, misses_before), (second, hits, misses) in pairwise(samples):
            hits -= hits_before
            misses -= misses_before
            if second > start and hits + misses > 0:
                ratio = hits / (hits + misses)
                found.append({"t": second, "hits": hits, "misses": misses, "ratio": ratio})
        return found

    def clear(self) -> None:
        """Forget the past: count from the totals as they are now."""
        total = self.counters()
        with self._lock:
            self.samples.clear()
            # A second ago, so that lookups of the current second show.
            self.samples.append((int(self.clock()) - 1, total.hits, total.misses))

    def as_dict(self) -> dict[str, Any]:
        """The window, the current second, and :meth:`points`, for a JSON endpoint."""
        points = self.points()
        return {"window": self.seconds, "now": self.samples[-1][0], "points": points}


class Stats:
    """Counters for every view and function one Cache has seen on one app.

    *sender* is what signals are sent with (the app); without one, the
    current app is used. *key* arguments are passed on to signals only.
    """

    def __init__(self, sender: object | None = None, *, history_seconds: int = 300) -> None:
        self.sender = sender
        self.total = Counters()
        self.by_name: dict[str, Counters] = {}
        #: Hits and misses per second, for charts of the hit ratio over time;
        #: filled by calling its ``sample()`` (see :class:`History`).
        self.history = History(lambda: self.total, history_seconds)

    def for_name(self, name: str) -> Counters:
        counters = self.by_name.get(name)
        if counters is None:
            counters = self.by_name.setdefault(name, Counters())
        return counters

    def hit(self, name: str, key: str | None = None) -> None:
        self.total.hits += 1
        counters = self.by_name.get(name)
        if counters is None:
            counters = self.for_name(name)
        counters.hits += 1
        if cache_hit.receivers:
            cache_hit.send(self._sender(), name=name, key=key)

    def miss(self, name: str, key: str | None = None) -> None:
        self.total.misses += 1
        self.for_name(name).misses += 1
        if cache_miss.receivers:
            cache_miss.send(self._sender(), name=name, key=key)

    def stored(self, name: str, key: str | None = None) -> None:
        self.total.stores += 1
        self.for_name(name).stores += 1
        if cache_stored.receivers:
            cache_stored.send(self._sender(), name=name, key=key)

    def error(
        self,
        name: str,
        exception: BaseException | None = None,
        key: str | None = None,
        operation: str | None = None,
    ) -> None:
        """Count a store failure; *exception* defaults to the one being handled."""
        self.total.errors += 1
        self.for_name(name).errors += 1
        if cache_error.receivers:
            if exception is None:
                exception = sys.exc_info()[1]
            cache_error.send(
                self._sender(), name=name, key=key, exception=exception, operation=operation
            )

    def integrity_error(self, key: str) -> None:
        """Count an entry refused by its signature check; it was read as a miss.

        Counted in the total only: the store key it was read under is all
        that is known of it. The first one in a process is logged as a
        warning, the rest at debug level (a flood of forged entries must not
        flood the log).
        """
        self.total.integrity_errors += 1
        level = logging.WARNING if self.total.integrity_errors == 1 else logging.DEBUG
        logger.log(
            level,
            "an entry failed its signature check under key %r and was read as a miss "
            "(written without the secret, under an old one, or copied from another key)",
            key,
        )

    def skip(self, name: str, reason: str, key: str | None = None) -> None:
        self.total.skips[reason] += 1
        self.for_name(name).skips[reason] += 1
        if cache_skipped.receivers:
            cache_skipped.send(self._sender(), name=name, key=key, reason=reason)

    def _sender(self) -> object:
        if self.sender is not None:
            return self.sender
        return current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.total = Counters()
        self.by_name.clear()
        self.history.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.as_dict(),
            "by_name": {name: c.as_dict() for name, c in sorted(self.by_name.items())},
        }
