"""``flask cache``: every command, on a working store and on an unreachable one."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import Result
from flask import Flask, request

from flask_stash import Cache
from flask_stash.cli import EXIT_FAILED, EXIT_NOT_FOUND

from .servers import ServerProcess, SilentServer, free_port, servers_required

_OPEN_APPS: list[Flask] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    yield
    while _OPEN_APPS:
        for state in _OPEN_APPS.pop().extensions["flask_stash"].values():
            state.store.close()


def make_app(calls: Counter[str] | None = None, **config: Any) -> tuple[Flask, Cache]:
    """An app with a cached page, a tagged page, a page never stored and a plain page."""
    calls = Counter() if calls is None else calls
    app = Flask(__name__)
    app.config.update(SECRET_KEY="cli-tests", **config)
    cache = Cache(app)
    _OPEN_APPS.append(app)

    @app.route("/")
    @cache.cached(timeout=60)
    def index() -> str:
        calls["index"] += 1
        return f"hello {request.args.get('name', 'world')}"

    @app.route("/products")
    @cache.cached(timeout=60, tags=["products"])
    def products() -> str:
        calls["products"] += 1
        return "products"

    @app.route("/private")
    @cache.cached(timeout=60)
    def private() -> tuple[str, int, dict[str, str]]:
        return "mine", 200, {"Cache-Control": "private"}

    @app.route("/plain")
    def plain() -> str:
        return "not cached"

    return app, cache


def run(app: Flask, *args: str) -> Result:
    """Run ``flask cache ARGS``; ``.stdout`` is the output without stderr's notes."""
    result: Result = app.test_cli_runner().invoke(args=["cache", *args])
    return result


@pytest.fixture
def memcached_available() -> None:
    if not servers_required():
        pytest.importorskip("pymemcache")


def memcached_config(*addresses: str, **extra: Any) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "memcached",
        "CACHE_MEMCACHED_SERVERS": list(addresses),
        "CACHE_KEY_PREFIX": f"{uuid.uuid4().hex[:8]}:",
        **extra,
    }


# -- on a working store -------------------------------------------------------


def test_commands_are_registered_once_per_app() -> None:
    app, _ = make_app()
    Cache(app, config={"CACHE_KEY_PREFIX": "second:"})
    assert "cache" in app.cli.commands
    result = run(app, "--help")
    assert result.exit_code == 0
    for command in ("stats", "clear", "get", "delete", "invalidate-tag", "ping", "warm", "list"):
        assert command in result.output


def test_an_apps_own_cache_command_is_left_alone() -> None:
    app = Flask(__name__)

    @app.cli.command("cache")
    def own() -> None:
        click.echo("the app's own")

    Cache(app)
    assert run(app).stdout == "the app's own\n"


def test_stats_shows_counters_per_view_and_says_they_are_per_process() -> None:
    app, _ = make_app()
    client = app.test_client()
    client.get("/?name=a")
    client.get("/?name=a")
    client.get("/?name=a")
    client.get("/?name=b")
    client.get("/private")
    result = run(app, "stats")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "per process" in out
    assert "hits 2  misses 3  stores 2  errors 0  hit ratio 40.0%" in out
    assert "skips  Cache-Control: private: 1" in out
    index_row = next(line for line in out.splitlines() if line.split(" ", 1)[0].endswith(".index"))
    assert index_row.split()[1:6] == ["2", "2", "2", "0", "50.0%"]
    assert "reachable, round trip" in out
    assert "per process" in run(app, "stats", "--help").output


def test_stats_as_json() -> None:
    app, _ = make_app()
    app.test_client().get("/")
    result = run(app, "stats", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["per_process"] is True
    assert data["total"]["misses"] == 1
    assert data["store"]["type"] == "memory"
    assert data["store"]["reachable"] is True
    assert any(name.endswith(".index") for name in data["by_name"])


def test_ping_reports_type_address_and_latency() -> None:
    app, _ = make_app()
    result = run(app, "ping", "--count", "2")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines())
    assert lines["type"] == "memory"
    assert lines["address"].startswith("memory (in this process")
    assert "round trip (best of 1" in lines["latency"]


def test_get_shows_values_entries_and_responses(app_with_entries: tuple[Flask, str]) -> None:
    app, page_key = app_with_entries
    result = run(app, "get", "plain")
    assert (result.exit_code, result.stdout) == (0, "a value\n")
    result = run(app, "get", "numbers")
    assert (result.exit_code, result.stdout) == (0, "[1, 2, 3]\n")
    page = run(app, "get", page_key)
    assert page.exit_code == 0, page.output
    assert page.stdout.startswith("cached response: status 200,")
    assert "fresh for" in page.output
    assert page.stdout.rstrip().endswith("hello world")


def test_get_of_a_missing_key_exits_3() -> None:
    app, _ = make_app()
    result = run(app, "get", "nothing-here")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "no entry at 'nothing-here'" in result.output


def test_delete_removes_one_key(app_with_entries: tuple[Flask, str]) -> None:
    app, _ = app_with_entries
    result = run(app, "delete", "plain")
    assert (result.exit_code, result.stdout) == (0, "deleted 'plain'\n")
    assert run(app, "get", "plain").exit_code == EXIT_NOT_FOUND
    assert run(app, "get", "numbers").exit_code == 0
    again = run(app, "delete", "plain")
    assert again.exit_code == 0
    assert "nothing to delete" in again.output


def test_clear_empties_the_cache(app_with_entries: tuple[Flask, str]) -> None:
    app, page_key = app_with_entries
    result = run(app, "clear")
    assert result.exit_code == 0, result.output
    assert "cleared the entries of prefix" in result.output
    for key in ("plain", "numbers", page_key):
        assert run(app, "get", key).exit_code == EXIT_NOT_FOUND


def test_invalidate_tag_drops_tagged_pages_only() -> None:
    calls: Counter[str] = Counter()
    app, _ = make_app(calls)
    client = app.test_client()
    client.get("/products")
    client.get("/")
    result = run(app, "invalidate-tag", "products")
    assert result.exit_code == 0, result.output
    assert "invalidated tag 'products'" in result.output
    client.get("/products")
    client.get("/")
    assert calls == Counter(products=2, index=1)


def test_warm_requests_each_url_and_reports_it() -> None:
    calls: Counter[str] = Counter()
    app, _ = make_app(calls)
    result = run(app, "warm", "/?name=a", "/products")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "200  stored  /?name=a",
        "200  stored  /products",
        "warmed 2 of 2 URL(s)",
    ]
    again = run(app, "warm", "/?name=a")
    assert again.stdout.splitlines()[0] == "200  already cached  /?name=a"
    # The warmed entry is what visitors get.
    app.test_client().get("/?name=a")
    assert calls == Counter(index=1, products=1)


def test_warm_fails_on_errors_and_pages_it_cannot_store() -> None:
    app, _ = make_app()
    result = run(app, "warm", "/", "/missing", "/private", "/plain")
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines() == [
        "200  stored  /",
        "404  error status  /missing",
        "200  not stored: Cache-Control: private  /private",
        "200  no cached view answered  /plain",
        "warmed 1 of 4 URL(s)",
    ]


def test_warm_uses_the_host_visitors_use() -> None:
    calls: Counter[str] = Counter()
    app, _ = make_app(calls)
    assert run(app, "warm", "--base-url", "https://shop.example", "/").exit_code == 0
    assert run(app, "warm", "http://other.example/").exit_code == 0
    client = app.test_client()
    client.get("/", base_url="https://shop.example")
    client.get("/", base_url="http://other.example")
    assert calls["index"] == 2
    client.get("/")  # localhost: a host of its own
    assert calls["index"] == 3


def test_several_caches_pick_one_with_the_cache_option() -> None:
    app, first = make_app()
    second = Cache(app, config={"CACHE_KEY_PREFIX": "second:"})
    with app.app_context():
        first.set("k", "in the first")
        second.set("k", "in the second")
    assert run(app, "get", "k").stdout == "in the first\n"
    assert run(app, "--cache", "2", "get", "k").stdout == "in the second\n"
    listing = run(app, "--cache", "2", "list").stdout.splitlines()
    assert listing[0].startswith("  1  memory")
    assert listing[1].startswith("* 2  memory")
    assert "'second:'" in listing[1]
    wrong = run(app, "--cache", "3", "ping")
    assert wrong.exit_code == 2
    assert "this app has 2 cache(s)" in wrong.output


@pytest.fixture
def app_with_entries() -> tuple[Flask, str]:
    """An app holding a plain value, a list and a cached page; returns the page's key."""
    app, cache = make_app()
    app.test_client().get("/")
    with app.app_context():
        cache.set("plain", "a value")
        cache.set("numbers", [1, 2, 3])
    with app.test_request_context("/"):
        view: Any = app.view_functions["index"]
        page_key: str = view.make_cache_key()
    return app, page_key


# -- on memcached: namespaces, and a store that cannot be reached ---------------


def test_clear_leaves_other_apps_on_the_same_server_alone(
    memcached_server: ServerProcess, memcached_available: None
) -> None:
    mine, my_cache = make_app(**memcached_config(memcached_server.address))
    theirs, their_cache = make_app(**memcached_config(memcached_server.address))
    with mine.app_context():
        my_cache.set("k", "mine")
    with theirs.app_context():
        their_cache.set("k", "theirs")
    result = run(mine, "clear")
    assert result.exit_code == 0, result.output
    assert run(mine, "get", "k").exit_code == EXIT_NOT_FOUND
    assert run(theirs, "get", "k").stdout == "theirs\n"
    ping = run(mine, "ping")
    assert ping.exit_code == 0, ping.output
    assert f"address  memcached {memcached_server.address}" in ping.output


COMMANDS: list[list[str]] = [
    ["stats"],
    ["stats", "--json"],
    ["ping"],
    ["clear"],
    ["get", "k"],
    ["delete", "k"],
    ["invalidate-tag", "products"],
    ["warm", "/"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda args: " ".join(args))
def test_every_command_fails_with_status_1_when_the_store_is_down(
    command: list[str], memcached_available: None
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    app, _ = make_app(**memcached_config(dead))
    result = run(app, *command)
    assert result.exit_code == EXIT_FAILED, result.output
    assert f"memcached {dead}" in result.output
    assert "unreachable" in result.output
    assert "Traceback" not in result.output


def test_a_store_that_never_answers_fails_within_its_timeout(
    silent_server: SilentServer, memcached_available: None
) -> None:
    app, _ = make_app(
        **memcached_config(
            silent_server.address, CACHE_MEMCACHED_TIMEOUT=0.2, CACHE_MEMCACHED_CONNECT_TIMEOUT=0.2
        )
    )
    started = time.perf_counter()
    result = run(app, "ping", "--count", "1")
    assert time.perf_counter() - started < 3
    assert result.exit_code == EXIT_FAILED
    assert "unreachable" in result.output


def test_warm_reports_a_store_that_fails_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    app, cache = make_app()
    store = cache.state(app).store

    def failing_set(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionResetError("connection reset")

    monkeypatch.setattr(store, "set", failing_set)
    result = run(app, "warm", "/")
    assert result.exit_code == EXIT_FAILED
    assert "200  store failed  /" in result.stdout
