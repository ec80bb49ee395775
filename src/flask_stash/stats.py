"""Counters of what the cache did, per view and in total.

Increments are plain attribute additions without a lock: under heavy
threading a count may very rarely be lost, which is acceptable for
statistics and keeps the hit path free of locks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Counters", "Stats"]


@dataclass
class Counters:
    """What happened to one view or function, or to all of them."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    errors: int = 0
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
            "skips": dict(self.skips),
            "hit_ratio": self.hit_ratio,
        }


class Stats:
    """Counters for every view and function one Cache has seen on one app."""

    def __init__(self) -> None:
        self.total = Counters()
        self.by_name: dict[str, Counters] = {}

    def for_name(self, name: str) -> Counters:
        counters = self.by_name.get(name)
        if counters is None:
            counters = self.by_name.setdefault(name, Counters())
        return counters

    def hit(self, name: str) -> None:
        self.total.hits += 1
        self.for_name(name).hits += 1

    def miss(self, name: str) -> None:
        self.total.misses += 1
        self.for_name(name).misses += 1

    def stored(self, name: str) -> None:
        self.total.stores += 1
        self.for_name(name).stores += 1

    def error(self, name: str) -> None:
        self.total.errors += 1
        self.for_name(name).errors += 1

    def skip(self, name: str, reason: str) -> None:
        self.total.skips[reason] += 1
        self.for_name(name).skips[reason] += 1

    def reset(self) -> None:
        self.total = Counters()
        self.by_name.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.as_dict(),
            "by_name": {name: c.as_dict() for name, c in sorted(self.by_name.items())},
        }
