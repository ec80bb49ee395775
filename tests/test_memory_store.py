"""The in-process store: bounds, LRU eviction, expiry, copies and threads."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from flask_stash import Cache, MemoryStore
from flask_stash.stores.memory import frozen_size

from .plugins.memory import FakeClock


def test_entry_count_bound_evicts_least_recently_used() -> None:
    store = MemoryStore(threshold=3)
    for key in "abc":
        store.set(key, key)
    assert store.get("a") == "a"  # a is now the most recently used
    store.set("d", "d")
    assert store.get("b") is None
    assert [store.get(k) for k in "acd"] == ["a", "c", "d"]
    assert len(store) == 3


def test_byte_bound_evicts_until_under_it() -> None:
    store = MemoryStore(threshold=10_000, max_bytes=10_000)
    for n in range(100):
        store.set(f"k{n}", b"x" * 1000)
    assert store.size_bytes <= 10_000
    assert len(store) < 10
    assert store.get("k99") == b"x" * 1000


def test_value_larger_than_the_byte_bound_is_not_stored() -> None:
    store = MemoryStore(max_bytes=1000)
    store.set("small", "s")
    assert store.set("huge", "x" * 5000) is False
    assert store.get("huge") is None
    assert store.get("small") == "s"


def test_flood_of_distinct_urls_stays_bounded() -> None:
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_THRESHOLD": 50, "CACHE_MAX_BYTES": 200_000})

    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "x" * 1000

    client = app.test_client()
    for n in range(2000):
        assert client.get(f"/?r={n}").status_code == 200
    store = cache.state(app).store
    assert isinstance(store, MemoryStore)
    assert len(store) <= 50
    assert store.size_bytes <= 200_000


def test_expiry_follows_the_clock() -> None:
    clock = FakeClock()
    store = MemoryStore(default_timeout=10, clock=clock)
    store.set("default", 1)
    store.set("short", 1, timeout=2)
    store.set("forever", 1, timeout=0)
    clock.advance(3)
    assert store.get("short") is None
    assert store.get("default") == 1
    clock.advance(8)
    assert store.get("default") is None
    assert store.get("forever") == 1
    assert len(store) == 1


def test_expired_entries_free_their_bytes() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    store.set("k", "x" * 1000, timeout=1)
    before = store.size_bytes
    clock.advance(2)
    assert store.has("k") is False
    assert store.size_bytes < before


def test_immutable_values_are_kept_as_they_are() -> None:
    store = MemoryStore()
    body = ("page", (("Content-Type", "text/html"),), b"x" * 100)
    store.set("k", body)
    assert store.get("k") is body


def test_mutable_values_are_copied_both_ways() -> None:
    store = MemoryStore()
    value = {"items": [1]}
    store.set("k", value)
    value["items"].append(2)
    read = store.get("k")
    assert read == {"items": [1]}
    read["items"].append(3)
    assert store.get("k") == {"items": [1]}


@pytest.mark.parametrize(
    ("value", "immutable"),
    [
        ("s", True),
        ((1, ("a", b"b"), frozenset({1.5})), True),
        ((1, [2]), False),
        ({"a": 1}, False),
        (object(), False),
    ],
)
def test_frozen_size_recognises_immutable_values(value: object, immutable: bool) -> None:
    assert (frozen_size(value) is not None) is immutable


def test_inc_is_atomic_across_threads() -> None:
    store = MemoryStore()

    def work() -> None:
        for _ in range(1000):
            store.inc("n")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("n") == 8000


def test_add_has_one_winner_across_threads() -> None:
    store = MemoryStore()
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        if store.add("lock", n):
            winners.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert store.get("lock") == winners[0]


def test_concurrent_sets_and_gets_keep_accounting_right() -> None:
    store = MemoryStore(threshold=64, max_bytes=50_000)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(2000):
                key = f"k{(n * 7919 + i) % 200}"
                store.set(key, "v" * (i % 500))
                store.get(key)
                if i % 7 == 0:
                    store.delete(key)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store) <= 64
    assert store.size_bytes <= 50_000
    assert store.size_bytes == sum(entry.size for entry in store._data.values())


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        MemoryStore(threshold=0)
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryStore(max_bytes=0)


def test_keys_count_against_the_byte_bound() -> None:
    store = MemoryStore(threshold=100_000, max_bytes=64 * 1024)
    long_key = "k" * 2000
    for n in range(200):  # 200 tiny values under 2 KB keys: about 400 KB of keys
        store.set(f"{long_key}{n}", 1)
    assert store.size_bytes <= 64 * 1024
    assert len(store) < 40  # the oldest were evicted to stay within the bound
    assert store.get(f"{long_key}199") == 1
