"""A ``@memoize`` hit on the memory store answered from the last read.

A call with plain positional arguments remembers its last fresh hit while
the store's write count stands still. These tests change, one at a time,
each thing that hit depended on, and check that the next call sees it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache
from flask_stash.entries import MemoEntry


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask(__name__)
    with app.app_context():
        yield app


def _entry_key(cache: Cache, function: Any, *args: Any) -> str:
    return str(function.make_cache_key(*args))


def test_repeated_hits_are_counted(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def double(n: int) -> int:
        calls["double"] += 1
        return n * 2

    for _ in range(5):
        assert double(4) == 8
    assert calls["double"] == 1
    assert cache.stats.total.hits == 4
    assert cache.stats.total.misses == 1


def test_an_entry_rewritten_in_the_store_is_what_the_next_call_returns(cache: Cache) -> None:
    @cache.memoize()
    def double(n: int) -> int:
        return n * 2

    assert double(4) == 8
    assert double(4) == 8  # now answered from the remembered hit
    key = _entry_key(cache, double, 4)
    entry = cache.cache.get(key)
    assert isinstance(entry, MemoEntry)
    cache.cache.set(key, entry._replace(value=99))
    assert double(4) == 99


def test_a_write_to_another_key_does_not_change_the_answer(
    cache: Cache, calls: Counter[str]
) -> None:
    @cache.memoize()
    def double(n: int) -> int:
        calls["double"] += 1
        return n * 2

    double(4)
    double(4)
    cache.set("unrelated", 1)
    assert double(4) == 8
    assert double(4) == 8
    assert calls["double"] == 1


def test_delete_memoized_after_remembered_hits(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def double(n: int) -> int:
        calls["double"] += 1
        return n * 2

    double(4)
    double(4)
    cache.delete_memoized(double)
    double(4)
    assert calls["double"] == 2


def test_clear_after_remembered_hits(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def double(n: int) -> int:
        calls["double"] += 1
        return n * 2

    double(4)
    double(4)
    cache.clear()
    double(4)
    assert calls["double"] == 2


def test_an_expired_entry_is_not_served_from_the_remembered_hit(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    state = cache.state()
    now = [1_000_000.0]
    state.clock = lambda: now[0]

    @cache.memoize(timeout=10)
    def double(n: int) -> int:
        calls["double"] += 1
        return n * 2

    double(4)
    double(4)
    now[0] += 11
    double(4)
    assert calls["double"] == 2


def test_equal_arguments_of_other_types_are_other_calls(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def show(value: object) -> str:
        calls[repr(value)] += 1
        return repr(value)

    assert show(1) == "1"
    assert show(1) == "1"
    assert show(True) == "True"
    assert show(1.0) == "1.0"
    assert show(True) == "True"
    assert show(1) == "1"
    assert calls == Counter({"1": 1, "True": 1, "1.0": 1})


def test_a_mutable_result_is_a_new_copy_on_every_hit(cache: Cache) -> None:
    @cache.memoize()
    def rows(n: int) -> list[int]:
        return list(range(n))

    first = rows(3)
    first.append(99)
    second = rows(3)
    second.append(100)
    third = rows(3)
    assert third == [0, 1, 2]
    assert third is not second


def test_a_remembered_hit_keeps_its_entry_recently_used(app: Flask, calls: Counter[str]) -> None:
    cache = Cache(app, config={"CACHE_TYPE": "memory", "CACHE_THRESHOLD": 4})

    @cache.memoize()
    def double(n: int) -> int:
        calls["double"] += 1
        return n * 2

    double(4)  # stores its entry and its function's tag version
    cache.set("a", 1)
    cache.set("b", 2)  # the store is full: a, b, the entry, the tag
    double(4)  # read from the store: remembered
    cache.get("a")
    cache.get("b")  # now the entry and its tag are the least recently used...
    double(4)  # ...until this remembered hit uses them
    cache.set("c", 3)  # evicts the least recently used: "a"
    assert double(4) == 8
    assert calls["double"] == 1
    assert cache.get("a") is None


def test_one_function_on_two_apps_keeps_their_hits_apart(calls: Counter[str]) -> None:
    cache = Cache()
    first, second = Flask("first"), Flask("second")
    for each in (first, second):
        cache.init_app(each, config={"CACHE_TYPE": "memory"})

    @cache.memoize()
    def name_of_app(n: int) -> str:
        from flask import current_app

        calls[current_app.name] += 1
        return current_app.name

    with first.app_context():
        assert name_of_app(1) == "first"
        assert name_of_app(1) == "first"
    with second.app_context():
        assert name_of_app(1) == "second"
        assert name_of_app(1) == "second"
    with first.app_context():
        assert name_of_app(1) == "first"
    assert calls == Counter({"first": 1, "second": 1})


def test_a_receiver_of_the_hit_signal_hears_remembered_hits(cache: Cache) -> None:
    from flask_stash.signals import cache_hit

    heard: list[str] = []

    def receiver(sender: object, name: str, key: str | None = None) -> None:
        heard.append(name)

    @cache.memoize()
    def double(n: int) -> int:
        return n * 2

    double(4)
    with cache_hit.connected_to(receiver):
        double(4)
        double(4)
    assert len(heard) == 2


def test_only_small_entries_are_kept_beside_the_store(cache: Cache) -> None:
    from flask_stash.memoize import KNOWN_HIT_BYTES, Memoized

    @cache.memoize()
    def text(n: int) -> str:
        return "x" * n

    for _ in range(3):
        assert text(10) == "x" * 10
        assert text(KNOWN_HIT_BYTES) == "x" * KNOWN_HIT_BYTES
    meta = text.__stash_memoized__  # type: ignore[attr-defined]
    assert isinstance(meta, Memoized)
    small, large = meta.positional[(10,)], meta.positional[(KNOWN_HIT_BYTES,)]
    assert small.hit is not None
    # Kept here, a large value would outlive its eviction from the store.
    assert large.hit is None
