"""Flask apps on shared stores, with real servers: sharing, clearing and faults."""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, request

from flask_stash import Cache

from .harness import StoreHarness
from .plugins.memcached import start_memcached
from .plugins.saslmemcached import SASL_PASSWORD, SASL_USER
from .servers import ServerProcess, SilentServer

_OPEN_APPS: list[Flask] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    """Close the connections of every app a test built."""
    yield
    while _OPEN_APPS:
        for state in _OPEN_APPS.pop().extensions["flask_stash"].values():
            state.store.close()


def page_app(config: dict[str, Any], calls: Counter[str]) -> tuple[Flask, Cache]:
    """An app with one cached view that counts its runs in *calls*."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="shared-stores-test", **config)
    cache = Cache(app)
    _OPEN_APPS.append(app)

    @app.route("/")
    @cache.cached(timeout=60)
    def index() -> str:
        calls["index"] += 1
        return f"hello {request.args.get('name')}"

    @app.route("/<path:anything>")
    @cache.cached(timeout=60)
    def anything(anything: str) -> str:
        calls[anything] += 1
        return anything

    return app, cache


@pytest.fixture
def shared_config(harness: StoreHarness) -> dict[str, Any]:
    if not harness.shared or harness.url is None:
        pytest.skip("only stores shared between app instances")
    return {"CACHE_URL": harness.url, "CACHE_KEY_PREFIX": f"{uuid.uuid4().hex[:8]}:"}


def test_page_stored_by_one_app_instance_is_served_by_another(
    shared_config: dict[str, Any],
) -> None:
    calls: Counter[str] = Counter()
    first, _ = page_app(shared_config, calls)
    second, _ = page_app(shared_config, calls)
    assert first.test_client().get("/?name=alice").text == "hello alice"
    assert second.test_client().get("/?name=alice").text == "hello alice"
    assert second.test_client().get("/?name=bob").text == "hello bob"
    assert calls["index"] == 2


def test_clear_removes_only_this_apps_pages(harness: StoreHarness) -> None:
    if not harness.shared or harness.url is None:
        pytest.skip("only stores shared between app instances")
    calls: Counter[str] = Counter()
    namespace = uuid.uuid4().hex[:8]
    mine, my_cache = page_app(
        {"CACHE_URL": harness.url, "CACHE_KEY_PREFIX": f"{namespace}a:"}, calls
    )
    theirs, _ = page_app({"CACHE_URL": harness.url, "CACHE_KEY_PREFIX": f"{namespace}b:"}, calls)
    mine.test_client().get("/")
    theirs.test_client().get("/")
    with mine.app_context():
        assert my_cache.clear() is True
    mine.test_client().get("/")
    theirs.test_client().get("/")
    assert calls["index"] == 3  # mine twice, theirs once


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("with spaces/and more spaces", "with spaces/and more spaces"),
        ("long/" + "x" * 300, "long/" + "x" * 300),
        ("caf%C3%A9/%C3%BCber", "caf\u00e9/\u00fcber"),
        ("tab%09here%01", "tab\there\x01"),
    ],
)
def test_awkward_urls_are_cached_on_every_shared_store(
    shared_config: dict[str, Any], url: str, path: str
) -> None:
    calls: Counter[str] = Counter()
    app, cache = page_app(shared_config, calls)
    client = app.test_client()
    assert client.get("/" + url).text == path
    assert client.get("/" + url).text == path
    assert calls[path] == 1
    with app.app_context():
        assert cache.stats.total.errors == 0


def test_notes_memcached_with_username_and_password_from_a_config_class(
    saslmemcached_server: ServerProcess,
) -> None:
    class Development:
        CACHE_TYPE = "saslmemcached"
        CACHE_MEMCACHED_SERVERS = (saslmemcached_server.address,)
        CACHE_MEMCACHED_USERNAME = SASL_USER
        CACHE_MEMCACHED_PASSWORD = SASL_PASSWORD
        CACHE_KEY_PREFIX = f"{uuid.uuid4().hex[:8]}:"
        SECRET_KEY = "notes-secret"

    app = Flask(__name__)
    app.config.from_object(Development)
    cache = Cache(app)
    _OPEN_APPS.append(app)
    runs: list[int] = []

    @app.route("/")
    @cache.cached(timeout=50)
    def index() -> str:
        runs.append(1)
        return "hello world!"

    client = app.test_client()
    assert [client.get("/").text for _ in range(3)] == ["hello world!"] * 3
    assert len(runs) == 1
    with app.app_context():
        assert cache.stats.total.errors == 0


def test_wrong_sasl_password_still_serves_pages(
    saslmemcached_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    app, _ = page_app(
        {"CACHE_URL": f"memcached://{SASL_USER}:wrong@{saslmemcached_server.address}"}, calls
    )
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(10)] == [200] * 10
    assert calls["index"] == 10
    assert SASL_USER in caplog.text
    assert saslmemcached_server.address in caplog.text


def memcached_app(servers: list[ServerProcess], calls: Counter[str], **config: Any) -> Flask:
    app, _ = page_app(
        {
            "CACHE_TYPE": "memcached",
            "CACHE_MEMCACHED_SERVERS": [server.address for server in servers],
            "CACHE_RETRY_INTERVAL": 0.2,
            **config,
        },
        calls,
    )
    return app


def test_memcached_killed_mid_run_then_restarted(
    memcached_processes: Callable[[int], list[ServerProcess]],
) -> None:
    (server,) = memcached_processes(1)
    calls: Counter[str] = Counter()
    client = memcached_app([server], calls).test_client()
    client.get("/?name=a")
    client.get("/?name=a")
    assert calls["index"] == 1
    server.stop()
    assert [client.get("/?name=a").status_code for _ in range(10)] == [200] * 10
    assert calls["index"] == 11
    server.start()
    time.sleep(0.3)  # past CACHE_RETRY_INTERVAL, so the breaker lets a trial through
    for _ in range(3):
        client.get("/?name=b")
    assert calls["index"] == 12  # caching resumed: one run, then hits


def test_one_of_three_memcached_nodes_killed(
    memcached_processes: Callable[[int], list[ServerProcess]],
) -> None:
    servers = memcached_processes(3)
    calls: Counter[str] = Counter()
    client = memcached_app(
        servers, calls, CACHE_MEMCACHED_RETRY_ATTEMPTS=2, CACHE_MEMCACHED_RETRY_TIMEOUT=0.2
    ).test_client()
    paths = [f"page{n}" for n in range(30)]
    for path in paths:
        client.get("/" + path)
    servers[1].stop()
    # Until the dead node is left out (two tries, 0.2 s apart), its keys read
    # as misses; every page is still served right meanwhile.
    deadline = time.monotonic() + 10
    computed_in_pass = -1
    while computed_in_pass != 0 and time.monotonic() < deadline:
        before = sum(calls.values())
        for path in paths:
            response = client.get("/" + path)
            assert (response.status_code, response.text) == (200, path)
        computed_in_pass = sum(calls.values()) - before
    # Then its keys (and, one time in three, the namespace version or a
    # page's URL tag) live on the other nodes, and every page is a hit.
    assert computed_in_pass == 0


def test_server_that_never_answers_costs_one_timeout_then_nothing(
    silent_server: SilentServer,
) -> None:
    timeout = 0.3
    calls: Counter[str] = Counter()
    app, _ = page_app(
        {
            "CACHE_TYPE": "memcached",
            "CACHE_MEMCACHED_SERVERS": [silent_server.address],
            "CACHE_MEMCACHED_TIMEOUT": timeout,
            "CACHE_MEMCACHED_CONNECT_TIMEOUT": timeout,
            "CACHE_FAILURE_THRESHOLD": 2,
            "CACHE_RETRY_INTERVAL": 60,
        },
        calls,
    )
    client = app.test_client()
    durations = []
    for _ in range(20):
        started = time.perf_counter()
        assert client.get("/").status_code == 200
        durations.append(time.perf_counter() - started)
    # No request waits longer than the store calls it makes, each bounded.
    assert max(durations) < 2 * timeout + 0.25
    # Once the breaker is open the store is skipped: the median pays nothing.
    assert statistics.median(durations) < 0.05
    assert calls["index"] == 20


def test_memcached_started_after_the_app_is_used_once_it_answers() -> None:
    server = start_memcached()
    address = server.address
    server.stop()
    calls: Counter[str] = Counter()
    app = memcached_app([server], calls)
    client = app.test_client()
    assert client.get("/").status_code == 200
    server.start()
    try:
        assert server.address == address
        time.sleep(0.3)
        client.get("/")
        client.get("/")
        client.get("/")
        assert calls["index"] == 2
    finally:
        server.stop()
