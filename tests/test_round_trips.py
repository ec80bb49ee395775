"""One round trip per hit, counted by the servers themselves.

Memcached run with ``-vv`` writes every command it receives; Redis counts
calls per command in ``INFO commandstats``. A cached page's hit reads its
entry, its URL tag's version and (on memcached) the namespace version in
one multi-get; a memoized function's hit, its entry and its function tag's
version.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache

from .plugins.memcached import start_memcached
from .servers import ServerProcess

HITS = 5


@pytest.fixture
def chatty_memcached() -> Iterator[ServerProcess]:
    pytest.importorskip("pymemcache")
    server = start_memcached("-vv")
    yield server
    server.stop()


def memcached_commands(server: ServerProcess) -> list[str]:
    """The commands the server received so far, as it logged them (``<fd command ...``)."""
    assert server.log is not None
    time.sleep(0.05)  # the server writes its log as it answers
    server.log.seek(0)
    lines = server.log.read().decode(errors="replace").splitlines()
    found = []
    for line in lines:
        match = re.match(r"<\d+ (\w+)", line)
        if match and match.group(1) not in ("server", "new"):
            found.append(line.split(" ", 1)[1])
    return found


def site(config: dict[str, Any]) -> tuple[Flask, Cache]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="round-trips", CACHE_X_CACHE_HEADER=True, **config)
    cache = Cache(app)

    @app.route("/page")
    @cache.cached(timeout=300)
    def page() -> str:
        return "the page"

    return app, cache


def test_a_page_hit_on_memcached_is_one_multi_get(chatty_memcached: ServerProcess) -> None:
    app, _ = site({"CACHE_URL": f"memcached://{chatty_memcached.address}"})
    client = app.test_client()
    assert client.get("/page?q=1").headers["X-Cache"] == "MISS"
    assert client.get("/page?q=1").headers["X-Cache"] == "HIT"
    before = len(memcached_commands(chatty_memcached))
    for _ in range(HITS):
        assert client.get("/page?q=1").headers["X-Cache"] == "HIT"
    during = memcached_commands(chatty_memcached)[before:]
    assert len(during) == HITS, during
    for command in during:
        name, *keys = command.split()
        # The namespace version, the page and its URL tag's version.
        assert (name, len(keys)) == ("get", 3), command


def test_a_memoized_hit_on_memcached_is_one_multi_get(chatty_memcached: ServerProcess) -> None:
    app, cache = site({"CACHE_URL": f"memcached://{chatty_memcached.address}"})

    @cache.memoize(timeout=300)
    def total(n: int) -> int:
        return n * 2

    with app.app_context():
        total(21)
        before = len(memcached_commands(chatty_memcached))
        for _ in range(HITS):
            assert total(21) == 42
    during = memcached_commands(chatty_memcached)[before:]
    assert len(during) == HITS, during
    assert all(command.startswith("get ") for command in during), during


def redis_calls(client: Any) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name: value["calls"] for name, value in stats.items()})


@pytest.fixture
def redis_config(redis_server: ServerProcess) -> dict[str, Any]:
    pytest.importorskip("redis")
    return {
        "CACHE_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "CACHE_KEY_PREFIX": f"trips-{uuid.uuid4().hex[:8]}:",
    }


def test_a_page_hit_on_redis_is_one_mget(
    redis_server: ServerProcess, redis_config: dict[str, Any]
) -> None:
    import redis

    app, _ = site(redis_config)
    client = app.test_client()
    server = redis.Redis(port=redis_server.port)
    client.get("/page")
    assert client.get("/page").headers["X-Cache"] == "HIT"
    before = redis_calls(server)
    for _ in range(HITS):
        assert client.get("/page").headers["X-Cache"] == "HIT"
    calls = redis_calls(server) - before
    calls.pop("cmdstat_info", None)  # this test's own INFO
    assert calls == Counter({"cmdstat_mget": HITS})


def test_a_memoized_hit_on_redis_is_one_mget(
    redis_server: ServerProcess, redis_config: dict[str, Any]
) -> None:
    import redis

    app, cache = site(redis_config)
    server = redis.Redis(port=redis_server.port)

    @cache.memoize(timeout=300)
    def total(n: int) -> int:
        return n * 2

    with app.app_context():
        total(21)
        before = redis_calls(server)
        for _ in range(HITS):
            assert total(21) == 42
    calls = redis_calls(server) - before
    calls.pop("cmdstat_info", None)
    assert calls == Counter({"cmdstat_mget": HITS})
