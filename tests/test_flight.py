"""SingleFlight: one computation per cold key, with real threads, processes and servers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flask_stash.breaker import CircuitBreaker
from flask_stash.flight import SingleFlight, StoreLock, lock_value
from flask_stash.guard import GuardedStore
from flask_stash.stats import Stats
from flask_stash.stores import BaseStore, MemoryStore

from .harness import StoreHarness
from .plugins.memory import FakeClock


def store_lock(store: BaseStore) -> StoreLock:
    """The lock the cache takes on *store*, through its guard."""
    return StoreLock(GuardedStore(store, CircuitBreaker(), Stats(object())), "test")


def held(token: str, seconds: float = 60.0) -> str:
    """A lock value whose holder expects to be done in *seconds*."""
    return lock_value(token, time.time() + seconds)


def _start(count: int, target: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until *condition* holds, so no test depends on thread scheduling luck."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def hit(self) -> int:
        with self._lock:
            self.calls += 1
            return self.calls


# -- one process ---------------------------------------------------------------


def test_concurrent_callers_of_one_key_compute_once() -> None:
    flight = SingleFlight()
    counter = Counter()
    results: list[str] = []

    def compute() -> tuple[str, bool]:
        counter.hit()
        _until(lambda: flight.stats.follower == 31)
        time.sleep(0.2)
        return "value", True

    threads = _start(32, lambda: results.append(flight.run("hot", compute)))
    _join(threads)
    assert counter.calls == 1
    assert results == ["value"] * 32
    assert (flight.stats.leader, flight.stats.follower, flight.stats.shared) == (1, 31, 31)
    assert flight.in_flight == frozenset()


def test_a_value_that_is_not_shareable_is_not_shared() -> None:
    flight = SingleFlight()
    counter = Counter()
    mismatches: list[tuple[int, int]] = []

    def compute() -> tuple[int, bool]:
        counter.hit()
        _until(lambda: flight.stats.follower == 7)
        return threading.get_ident(), False  # "per user": only for its own caller

    def call() -> None:
        got = flight.run("private", compute)
        if got != threading.get_ident():
            mismatches.append((got, threading.get_ident()))

    _join(_start(8, call))
    assert mismatches == []
    assert counter.calls == 8
    assert flight.stats.shared == 0
    assert flight.in_flight == frozenset()


def test_a_failing_leader_raises_and_its_followers_compute() -> None:
    flight = SingleFlight()
    counter = Counter()
    results: list[str] = []
    errors: list[BaseException] = []

    def compute() -> tuple[str, bool]:
        if counter.hit() == 1:
            _until(lambda: flight.stats.follower == 7)
            raise RuntimeError("leader failed")
        return "ok", True

    def call() -> None:
        try:
            results.append(flight.run("hot", compute))
        except RuntimeError as exc:
            errors.append(exc)

    _join(_start(8, call))
    assert [str(exc) for exc in errors] == ["leader failed"]
    assert results == ["ok"] * 7
    assert counter.calls == 8
    assert flight.in_flight == frozenset()


def test_followers_stop_waiting_after_wait_seconds() -> None:
    flight = SingleFlight(wait=0.1)
    release = threading.Event()
    results: list[str] = []
    timings: list[float] = []

    def slow() -> tuple[str, bool]:
        release.wait(5)  # a computation far slower than ``wait``
        return "leader's", True

    def fast() -> tuple[str, bool]:
        return "own", True

    def follow() -> None:
        started = time.monotonic()
        results.append(flight.run("hot", fast))
        timings.append(time.monotonic() - started)

    leader = _start(1, lambda: results.append(flight.run("hot", slow)))
    _until(lambda: flight.in_flight == {"hot"})
    _join(_start(4, follow))
    assert results == ["own"] * 4
    assert all(0.09 <= seconds < 1.0 for seconds in timings), timings
    release.set()
    _join(leader)
    assert results[-1] == "leader's"
    assert flight.stats.computed == 5
    assert flight.in_flight == frozenset()


def test_different_keys_do_not_wait_for_each_other() -> None:
    flight = SingleFlight()
    # Each computation waits for all four to be running: serialized, they would break it.
    together = threading.Barrier(4, timeout=5)
    results: list[str] = []

    def compute_for(key: str) -> Callable[[], tuple[str, bool]]:
        def compute() -> tuple[str, bool]:
            together.wait()
            return key, True

        return compute

    keys = ["a", "b", "c", "d"]
    threads = [
        threading.Thread(target=lambda k=key: results.append(flight.run(k, compute_for(k))))
        for key in keys
    ]
    for thread in threads:
        thread.start()
    _join(threads)
    assert sorted(results) == keys
    assert flight.stats.leader == 4
    assert flight.in_flight == frozenset()


def test_the_registry_is_emptied_after_successes_and_failures() -> None:
    flight = SingleFlight()

    def fail() -> tuple[str, bool]:
        raise ValueError("nope")

    for index in range(3):
        assert flight.run(f"k{index}", lambda: ("v", True)) == "v"
        with pytest.raises(ValueError, match="nope"):
            flight.run(f"k{index}", fail)
        with pytest.raises(ValueError, match="nope"):
            flight.run(f"k{index}", fail, lock=store_lock(MemoryStore()))
    assert flight.in_flight == frozenset()
    assert flight.stats.leader == 9


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="must be"):
        SingleFlight(lock_timeout=0)
    with pytest.raises(ValueError, match="must be"):
        SingleFlight(wait=-1)
    with pytest.raises(ValueError, match="must be"):
        SingleFlight(poll_interval=0)


# -- the lock, on an in-process store with a hand-moved clock ----------------------


def test_store_lock_rounds_up_to_whole_seconds_and_checks_its_token(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    lock = store_lock(store)
    assert lock.acquire("lock:k", "mine", 0.2) is True
    clock.advance(0.5)
    assert lock.acquire("lock:k", "theirs", 0.2) is False  # held for 1 s, not 0.2
    lock.release("lock:k", "theirs")
    assert store.get("lock:k") == "mine"  # someone else's token releases nothing
    lock.release("lock:k", "mine")
    assert store.get("lock:k") is None
    assert lock.acquire("lock:k", "theirs", 0.2) is True
    clock.advance(1.0)
    assert lock.acquire("lock:k", "third", 0.2) is True


def test_the_lock_is_released_after_computing(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    flight = SingleFlight(clock=clock, sleep=clock.advance)
    assert flight.run("k", lambda: ("v", True), lock=store_lock(store)) == "v"
    assert store.get("lock:k") is None
    assert (flight.stats.computed, flight.stats.waited) == (1, 0)


def test_a_value_stored_before_the_lock_was_taken_is_read_not_computed(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    store.set("value", "stored by the previous holder")
    flight = SingleFlight(clock=clock, sleep=clock.advance)

    def compute() -> tuple[str, bool]:
        raise AssertionError("computed although the value was there")

    got = flight.run("k", compute, read=lambda: store.get("value"), lock=store_lock(store))
    assert got == "stored by the previous holder"
    assert flight.stats.lock_hit == 1
    assert store.get("lock:k") is None


def test_an_expired_lock_is_taken_over(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    assert store_lock(store).acquire("lock:k", held("crashed"), 1)
    flight = SingleFlight(wait=30, clock=clock, sleep=clock.advance)
    started = clock.now
    assert flight.run("k", lambda: ("v", True), lock=store_lock(store)) == "v"
    assert 1.0 <= clock.now - started < 1.5
    assert (flight.stats.waited, flight.stats.lock_wait_timeout, flight.stats.computed) == (1, 0, 1)


def test_waiting_for_another_process_is_bounded(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    assert store_lock(store).acquire("lock:k", held("slow"), 600)
    flight = SingleFlight(wait=3, poll_interval=0.05, clock=clock, sleep=clock.advance)
    started = clock.now
    got = flight.run(
        "k", lambda: ("mine", True), read=lambda: store.get("value"), lock=store_lock(store)
    )
    assert got == "mine"
    assert clock.now - started == pytest.approx(3.0)
    assert (flight.stats.lock_wait_timeout, flight.stats.computed) == (1, 1)
    assert str(store.get("lock:k")).startswith("slow|")  # not ours to release


def test_a_read_that_raises_is_a_miss_and_polling_goes_on(clock: FakeClock) -> None:
    store = MemoryStore(clock=clock)
    assert store_lock(store).acquire("lock:k", held("other"), 60)
    reads = Counter()

    def read() -> str | None:
        if reads.hit() <= 2:
            raise ConnectionError("store hiccup")
        return "theirs"

    def compute() -> tuple[str, bool]:
        raise AssertionError("computed although the value came")

    flight = SingleFlight(clock=clock, sleep=clock.advance)
    assert flight.run("k", compute, read=read, lock=store_lock(store)) == "theirs"
    assert reads.calls == 3
    assert flight.stats.lock_hit == 1


class FailingStore(BaseStore):
    """A store whose server is gone: every operation raises."""

    def get(self, key: str) -> Any:
        raise ConnectionError("store down")

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        raise ConnectionError("store down")

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        raise ConnectionError("store down")

    def delete(self, key: str) -> bool:
        raise ConnectionError("store down")

    def clear(self) -> bool:
        raise ConnectionError("store down")


def test_a_failing_store_means_computing_at_once(caplog: pytest.LogCaptureFixture) -> None:
    flight = SingleFlight(wait=5)
    store = FailingStore()
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="flask_stash"):
        got = flight.run(
            "k", lambda: ("v", True), read=lambda: store.get("v"), lock=store_lock(store)
        )
    assert got == "v"
    assert time.monotonic() - started < 1.0
    assert (flight.stats.lock_error, flight.stats.waited, flight.stats.computed) == (1, 0, 1)
    assert "store down" in caplog.text


class ForgetfulStore(MemoryStore):
    """Takes locks, then fails when asked to give them back."""

    def delete(self, key: str) -> bool:
        raise ConnectionError("gone while releasing")


def test_a_failed_release_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    flight = SingleFlight()
    with caplog.at_level(logging.DEBUG, logger="flask_stash"):
        assert flight.run("k", lambda: ("v", True), lock=store_lock(ForgetfulStore())) == "v"
    assert "gone while releasing" in caplog.text
    assert flight.in_flight == frozenset()


# -- real servers and processes ----------------------------------------------------


def _shared_only(harness: StoreHarness) -> None:
    if not harness.shared or harness.url is None:
        pytest.skip("only stores shared between processes")


def _run_in_process(
    url: str, prefix: str, directory: str, index: int, start: Any, threads: int
) -> None:
    """One web server process: *threads* requests miss the same key at once."""
    from flask_stash.stores import StoreConfig, build_store, type_for_url

    store_type, parts = type_for_url(url)
    store = build_store(store_type, StoreConfig(key_prefix=prefix, url=parts))
    flight = SingleFlight(lock_timeout=10, wait=10)
    lock = store_lock(store)
    results: list[str] = []

    def compute() -> tuple[str, bool]:
        time.sleep(0.3)
        value = f"computed by {os.getpid()}"
        store.set("value", value, timeout=60)
        with open(Path(directory, "executions"), "a") as log:
            log.write(value + "\n")
        return value, True

    def call() -> None:
        results.append(flight.run("hot", compute, read=lambda: store.get("value"), lock=lock))

    start.wait(60)
    workers = _start(threads, call)
    for worker in workers:
        worker.join(30)
    Path(directory, f"results-{index}").write_text("".join(f"{r}\n" for r in results))
    store.close()


def test_one_computation_across_processes(harness: StoreHarness, tmp_path: Path) -> None:
    _shared_only(harness)
    assert harness.url is not None
    prefix = f"f{uuid.uuid4().hex[:8]}:"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(
            target=_run_in_process, args=(harness.url, prefix, str(tmp_path), index, start, 8)
        )
        for index in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    executions = (tmp_path / "executions").read_text().splitlines()
    assert len(executions) == 1
    results = [
        line
        for index in range(4)
        for line in (tmp_path / f"results-{index}").read_text().splitlines()
    ]
    assert results == executions * 32  # everyone got the one computed value


def test_a_crashed_lock_holder_delays_but_does_not_stop_computing(
    harness: StoreHarness,
) -> None:
    _shared_only(harness)
    prefix = f"c{uuid.uuid4().hex[:8]}:"
    crashed, store = harness.make(prefix), harness.make(prefix)
    assert store_lock(crashed).acquire("lock:hot", held("never released"), 1)
    counter = Counter()

    def compute() -> tuple[str, bool]:
        counter.hit()
        return "v", True

    flight = SingleFlight(wait=3)
    started = time.monotonic()
    got = flight.run("hot", compute, read=lambda: store.get("value"), lock=store_lock(store))
    elapsed = time.monotonic() - started
    assert got == "v"
    assert counter.calls == 1
    # Taken over when the lock expired (memcached: within 2 s), not after the wait.
    assert flight.stats.lock_wait_timeout == 0
    assert elapsed < 3.0
    assert store.get("lock:hot") is None


# -- coroutines ------------------------------------------------------------------------


def test_coroutines_in_their_own_loops_share_one_computation() -> None:
    import asyncio

    flight = SingleFlight()
    started = threading.Event()
    results: list[str] = []

    async def compute() -> tuple[str, bool]:
        started.set()
        await asyncio.sleep(0.3)
        return "v", True

    def call() -> None:
        results.append(asyncio.run(flight.arun("k", compute, name="view")))

    first = _start(1, call)
    started.wait(5)
    _join(first + _start(7, call))
    assert results == ["v"] * 8
    assert (flight.stats.computed, flight.stats.shared) == (1, 7)


def test_a_memoized_coroutine_computes_once_under_concurrent_calls() -> None:
    import asyncio

    from flask import Flask

    from flask_stash import Cache

    app = Flask(__name__)
    cache = Cache(app)
    runs: list[int] = []

    @cache.memoize(timeout=60)
    async def slow(n: int) -> int:
        runs.append(n)
        await asyncio.sleep(0.3)
        return n * 2

    results: list[int] = []

    def call() -> None:
        with app.app_context():
            results.append(asyncio.run(slow(21)))

    _join(_start(8, call))
    assert results == [42] * 8
    assert runs == [21]


def test_a_coroutines_lock_is_released_when_it_raises(clock: FakeClock) -> None:
    import asyncio

    store = MemoryStore(clock=clock)
    flight = SingleFlight(clock=clock, sleep=clock.advance)

    async def fail() -> tuple[str, bool]:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        asyncio.run(flight.arun("k", fail, lock=store_lock(store)))
    assert store.get("lock:k") is None
    assert flight.in_flight == frozenset()
