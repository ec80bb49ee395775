"""A sick store never stalls the site: the guarded store and single-flight, on real servers.

Each test starts its own server, since it pauses, stops or fills it. Bounds
are generous, for a loaded 2-core machine: the tight figures are measured
by ``make bench-faults``, not here.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache, cache_error
from flask_stash.flight import lock_value

from .plugins.memcached import memcached_argv, memcached_binary
from .plugins.redis import redis_argv, redis_binary
from .servers import ServerProcess, free_port

TIMEOUT = 0.3  # the store clients' socket timeout in these tests


def own_server(argv: list[str], port: int) -> Iterator[ServerProcess]:
    """A server of this test's own, continued (if it was stopped) and killed at the end."""
    server = ServerProcess(argv, port).start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
def redis_process() -> Iterator[ServerProcess]:
    pytest.importorskip("redis")
    port = free_port()
    yield from own_server(redis_argv(redis_binary(), port), port)


@pytest.fixture
def memcached_process() -> Iterator[ServerProcess]:
    pytest.importorskip("pymemcache")
    port = free_port()
    yield from own_server(memcached_argv(memcached_binary(), port), port)


def raw_redis(server: ServerProcess) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def redis_app(server: ServerProcess, calls: Counter[str], **config: Any) -> tuple[Flask, Cache]:
    app = Flask(__name__)
    app.config.update(
        CACHE_TYPE="redis",
        CACHE_REDIS_PORT=server.port,
        CACHE_REDIS_SOCKET_TIMEOUT=TIMEOUT,
        CACHE_REDIS_CONNECT_TIMEOUT=TIMEOUT,
        CACHE_SECRET_KEY="s",
        CACHE_KEY_PREFIX="sick:",
        **config,
    )
    cache = Cache(app)

    @app.route("/page/<int:n>")
    @cache.cached(timeout=60)
    def page(n: int) -> str:
        calls[f"page{n}"] += 1
        time.sleep(0.02)
        return f"page {n}"

    return app, cache


def timed_get(client: Any, path: str) -> tuple[float, str]:
    started = time.monotonic()
    response = client.get(path)
    assert response.status_code == 200
    return time.monotonic() - started, response.text


# -- the guarded store: every operation counts, the breaker sees writes ---------------


def test_a_store_that_reads_but_cannot_write_opens_the_breaker(
    redis_process: ServerProcess,
) -> None:
    calls: Counter[str] = Counter()
    app, cache = redis_app(redis_process, calls, CACHE_FAILURE_THRESHOLD=2, CACHE_RETRY_INTERVAL=60)
    client = app.test_client()
    raw = raw_redis(redis_process)
    operations: list[str] = []

    def on_error(sender: object, operation: str | None = None, **extra: Any) -> None:
        operations.append(str(operation))

    with cache_error.connected_to(on_error, sender=app):
        raw.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
        try:
            durations = [timed_get(client, f"/page/{n}")[0] for n in range(8)]
            commands_before = int(raw.info("stats")["total_commands_processed"])
            open_durations = [timed_get(client, f"/page/{n}")[0] for n in range(8, 16)]
            commands_after = int(raw.info("stats")["total_commands_processed"])
        finally:
            raw.execute_command("CLIENT", "UNPAUSE")
    # Reads succeeded, writes timed out; the write failures (the lock's add
    # among them) opened the breaker although every read was good.
    assert len(operations) >= 2
    assert all(op in ("add", "set", "set_many") for op in operations)
    assert cache.state(app).breaker.is_open
    # Each request waited out at most one timeout, and once the breaker was
    # open, none at all: no store call was made (the two INFO calls are ours).
    assert max(durations) < 3 * TIMEOUT + 0.5
    assert max(open_durations) < TIMEOUT
    assert commands_after - commands_before == 1
    assert cache.stats.total.skips["store unavailable"] >= 8
    assert sum(calls.values()) == 16  # every page served, uncached


def test_lock_failures_are_counted_as_errors_of_the_view(
    memcached_process: ServerProcess,
) -> None:
    calls: Counter[str] = Counter()
    app = Flask(__name__)
    app.config.update(
        CACHE_TYPE="memcached",
        CACHE_MEMCACHED_SERVERS=[memcached_process.address],
        CACHE_MEMCACHED_TIMEOUT=TIMEOUT,
        CACHE_MEMCACHED_CONNECT_TIMEOUT=TIMEOUT,
        CACHE_SECRET_KEY="s",
        CACHE_FAILURE_THRESHOLD=100,
    )
    cache = Cache(app)

    @app.route("/")
    @cache.cached(timeout=60)
    def index() -> str:
        calls["index"] += 1
        return "index"

    client = app.test_client()
    client.get("/")  # the namespace version is read and kept
    seen: list[tuple[str, str | None]] = []

    def on_error(sender: object, name: str, operation: str | None = None, **extra: Any) -> None:
        seen.append((name, operation))

    assert memcached_process.process is not None
    with cache_error.connected_to(on_error, sender=app):
        cache.clear()  # a cold page: the next request takes the lock
        memcached_process.process.send_signal(signal.SIGSTOP)
        try:
            duration, text = timed_get(client, "/?cold=1")
        finally:
            memcached_process.process.send_signal(signal.SIGCONT)
    assert text == "index"
    assert seen, "the stopped server's failure was not reported"
    assert all(name.endswith("index") for name, _ in seen), seen
    assert duration < 4 * TIMEOUT + 1.0, seen  # one timeout, then the rest left alone


# -- single-flight that cannot stall ---------------------------------------------------------


def lock_key_of(app: Flask, path: str, endpoint: str = "page") -> str:
    """The key of the single-flight lock of *path*'s page (without the store's prefix)."""
    view: Any = app.view_functions[endpoint]
    with app.test_request_context(path):
        key: str = view.make_cache_key()
    return f"lock:{key}"


def hold_lock(cache: Cache, app: Flask, path: str, holder: str, deadline: float) -> None:
    """Take *path*'s lock as another process's leader would: through the store."""
    with app.app_context():
        assert cache.cache.add(lock_key_of(app, path), lock_value(holder, deadline), timeout=30)


def test_a_lock_past_its_holders_deadline_is_not_waited_for(
    redis_process: ServerProcess,
) -> None:
    calls: Counter[str] = Counter()
    app, cache = redis_app(redis_process, calls)
    # A holder that hung: its lock stays for 30 s, its own deadline passed.
    hold_lock(cache, app, "/page/1", "hung", time.time() - 1)
    duration, text = timed_get(app.test_client(), "/page/1")
    assert text == "page 1"
    assert duration < 1.0  # not CACHE_LOCK_WAIT (10 s)
    assert cache.state(app).flight.stats.lock_overdue == 1


def test_a_malformed_lock_reads_as_free_and_is_replaced(redis_process: ServerProcess) -> None:
    calls: Counter[str] = Counter()
    app, cache = redis_app(redis_process, calls)
    raw = raw_redis(redis_process)
    key = "sick:" + lock_key_of(app, "/page/2")
    raw.set(key, b"\x00junk" * 900, ex=30)  # bytes nobody signed
    duration, text = timed_get(app.test_client(), "/page/2")
    assert text == "page 2"
    assert duration < 1.0
    assert cache.state(app).flight.stats.lock_malformed == 1
    assert raw.get(key) is None  # taken, then released
    assert timed_get(app.test_client(), "/page/2")[1] == "page 2"
    assert calls["page2"] == 1  # stored under the replaced lock: a hit now


def test_a_lock_that_vanishes_without_a_value_is_taken_at_once(
    redis_process: ServerProcess,
) -> None:
    calls: Counter[str] = Counter()
    app, cache = redis_app(redis_process, calls)
    raw = raw_redis(redis_process)
    # Another process's leader, alive (its deadline is far), that gives up.
    hold_lock(cache, app, "/page/3", "other", time.time() + 60)
    key = "sick:" + lock_key_of(app, "/page/3")
    threading.Timer(0.3, lambda: raw.delete(key)).start()
    duration, text = timed_get(app.test_client(), "/page/3")
    assert text == "page 3"
    assert 0.25 < duration < 1.5  # waited while it worked, not until CACHE_LOCK_WAIT
    assert calls["page3"] == 1


def test_the_wait_is_bounded_by_how_long_the_view_took_lately(
    redis_process: ServerProcess,
) -> None:
    calls: Counter[str] = Counter()
    app, cache = redis_app(redis_process, calls)
    client = app.test_client()
    timed_get(client, "/page/4")  # the view ran once here: about 20 ms
    # Another process holds page 5's lock and says it works for a minute.
    hold_lock(cache, app, "/page/5", "slow", time.time() + 60)
    duration, text = timed_get(client, "/page/5")
    assert text == "page 5"
    assert duration < 1.5  # a few times 20 ms (and polls), not 10 s
    assert cache.state(app).flight.stats.lock_wait_timeout == 1


def test_a_lock_left_by_a_paused_store_costs_later_requests_nothing(
    redis_process: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    app, cache = redis_app(redis_process, calls, CACHE_FAILURE_THRESHOLD=100)
    client = app.test_client()
    raw = raw_redis(redis_process)
    pause = {"armed": False}

    @app.route("/report")
    @cache.cached(timeout=60)
    def report() -> str:
        calls["report"] += 1
        if pause["armed"]:
            # This request leads and holds the lock; now the store stops taking
            # writes: its entry and its lock's release both fail.
            pause["armed"] = False
            raw.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
        time.sleep(0.02)
        return "report"

    timed_get(client, "/report")  # recent compute time known: about 20 ms
    assert cache.delete_cached(report, "/report")
    pause["armed"] = True
    timed_get(client, "/report")
    time.sleep(1.6)  # writes flow again; the lock left behind lives for 30 s
    assert raw.get("sick:" + lock_key_of(app, "/report", "report")) is not None
    assert "not released" in caplog.text
    duration, text = timed_get(client, "/report")
    assert text == "report"
    assert duration < TIMEOUT + 0.5  # past the lock's deadline: computed at once
    assert calls["report"] == 3
