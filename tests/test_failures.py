"""A store failure never fails a request: served uncached, logged, counted."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache, MemoryStore
from flask_stash.breaker import CircuitBreaker

from .plugins.memory import FakeClock


class FlakyStore(MemoryStore):
    """A memory store whose server can be switched off, like a dead connection."""

    down = False
    calls = 0

    def _check(self) -> None:
        type(self).calls += 1
        if type(self).down:
            raise ConnectionRefusedError("store is down")

    def get(self, key: str) -> Any:
        self._check()
        return super().get(key)

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        self._check()
        return super().set(key, value, timeout)

    def get_many(self, *keys: str) -> list[Any]:
        self._check()
        return super().get_many(*keys)

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        self._check()
        return super().add(key, value, timeout)


@pytest.fixture
def flaky() -> type[FlakyStore]:
    FlakyStore.down = False
    FlakyStore.calls = 0
    return FlakyStore


def make_app(**config: Any) -> tuple[Flask, Cache, Counter[str]]:
    app = Flask(__name__)
    app.config.update(CACHE_TYPE=FlakyStore, **config)
    cache = Cache(app)
    calls: Counter[str] = Counter()

    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"page {calls['index']}"

    return app, cache, calls


def test_view_is_served_uncached_while_store_is_down(
    flaky: type[FlakyStore], caplog: pytest.LogCaptureFixture
) -> None:
    app, cache, calls = make_app()
    flaky.down = True
    client = app.test_client()
    with caplog.at_level(logging.ERROR, "flask_stash"):
        responses = [client.get("/") for _ in range(50)]
    assert all(r.status_code == 200 for r in responses)
    assert calls["index"] == 50
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # Logged when it first happens and when the breaker opens, not per request.
    assert 1 <= len(errors) <= 2
    assert "store is down" in errors[0].getMessage()
    with app.app_context():
        assert cache.stats.total.errors >= 3
        assert cache.stats.total.errors + cache.stats.total.skips["store unavailable"] >= 50


def test_caching_resumes_when_store_comes_back(flaky: type[FlakyStore]) -> None:
    app, _, calls = make_app(CACHE_RETRY_INTERVAL=0)
    client = app.test_client()
    flaky.down = True
    client.get("/")
    flaky.down = False
    assert client.get("/").text == client.get("/").text
    assert calls["index"] == 2


def test_breaker_skips_the_store_after_failures(flaky: type[FlakyStore]) -> None:
    app, cache, _ = make_app(CACHE_FAILURE_THRESHOLD=3, CACHE_RETRY_INTERVAL=60)
    flaky.down = True
    client = app.test_client()
    for _ in range(3):
        client.get("/")
    calls_when_opened = flaky.calls
    with app.app_context():
        skips_before = cache.stats.total.skips["store unavailable"]
    for _ in range(20):
        assert client.get("/").status_code == 200
    assert flaky.calls == calls_when_opened
    with app.app_context():
        # Every request skipped the store at least once, and never called it.
        assert cache.stats.total.skips["store unavailable"] - skips_before >= 20


def test_low_level_api_reads_failures_as_misses(flaky: type[FlakyStore]) -> None:
    app, cache, _ = make_app()
    with app.app_context():
        cache.set("k", "v")
        flaky.down = True
        assert cache.get("k") is None
        assert cache.set("k", "w") is False
        assert cache.get_many("a", "b") == [None, None]
        assert cache.add("x", 1) is False
        total = cache.stats.total
        assert (total.errors, total.skips["store unavailable"]) == (3, 1)


def test_memoize_runs_uncached_while_store_is_down(flaky: type[FlakyStore]) -> None:
    app, cache, _ = make_app()
    runs: Counter[str] = Counter()

    @cache.memoize()
    def double(x: int) -> int:
        runs["double"] += 1
        return 2 * x

    flaky.down = True
    with app.app_context():
        assert [double(2) for _ in range(3)] == [4, 4, 4]
    assert runs["double"] == 3


def test_breaker_opens_then_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=2, retry_interval=5, clock=clock)
    assert breaker.allow()
    assert breaker.failure() is False
    assert breaker.failure() is True
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()
    assert not breaker.allow()  # only one trial per interval
    breaker.success()
    assert breaker.allow()
    assert breaker.allow()


def test_breaker_failed_trials_wait_longer_up_to_the_retry_interval() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, retry_interval=5, clock=clock)
    breaker.failure()
    waits = []
    for _ in range(5):
        waited = 0.0
        while not breaker.allow():
            clock.advance(0.25)
            waited += 0.25
        waits.append(waited)
        breaker.failure()  # the trial failed too
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    breaker.success()
    breaker.failure()
    clock.advance(1.0)
    assert breaker.allow()  # a store that came back starts over at one second
