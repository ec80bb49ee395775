"""``flask cache``: every command, on a working store and on an unreachable one."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from flask import Flask, request
from flask.cli import FlaskGroup, ScriptInfo

from flask_stash import Cache
from flask_stash.cli import EXIT_FAILED, EXIT_NOT_FOUND, CliConfigurationError
from flask_stash.errors import ConfigurationError

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


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    """Run ``flask cache ARGS``; ``.stdout`` is the output without stderr's notes."""
    result: Result = app.test_cli_runner().invoke(args=["cache", *args], input=input)
    return result


def is_index(name: str) -> bool:
    """Whether a counter name is the index view's (its endpoint, or module.function)."""
    return name == "index" or name.endswith(".index")


@pytest.fixture
def memcached_available() -> None:
    if not servers_required():
        pytest.importorskip("pymemcache")


@pytest.fixture
def redis_available() -> None:
    if not servers_required():
        pytest.importorskip("redis")


def redis_config(server: ServerProcess) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "redis",
        "CACHE_URL": f"redis://127.0.0.1:{server.port}/0",
        "CACHE_KEY_PREFIX": f"{uuid.uuid4().hex[:8]}:",
    }


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
    out = result.stdout
    # The explanation is a note, on stderr: stdout holds the figures alone.
    assert "per process" in result.stderr
    assert "per process" not in out
    assert "hits 2  misses 3  stores 2  errors 0  hit ratio 40.0%" in out
    assert "skips  Cache-Control: private: 1" in out
    index_row = next(line for line in out.splitlines() if is_index(line.split(" ", 1)[0]))
    assert index_row.split()[1:6] == ["2", "2", "2", "0", "50.0%"]
    assert "reachable, round trip" in out
    assert "per process" in run(app, "stats", "--help").output


def test_stats_shows_the_memory_stores_own_figures() -> None:
    app, _ = make_app()
    client = app.test_client()
    client.get("/?name=a")
    client.get("/?name=b")
    result = run(app, "stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("store's own figures (this process's copy only):")
    figures = dict(line.split() for line in lines[start + 1 :])
    assert int(figures["entries"]) >= 2  # two pages (and the tag versions they carry)
    assert int(figures["bytes"]) > 0
    assert figures["max_entries"] == "500"


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
    assert data["store"]["figures"]["entries"] >= 1
    assert data["store"]["figures"]["bytes"] > 0
    assert data["store"]["figures_error"] is None
    assert any(is_index(name) for name in data["by_name"])


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
    result = run(app, "clear", "--yes")
    assert result.exit_code == 0, result.output
    assert "cleared the entries of prefix" in result.output
    assert "[y/N]" not in result.output
    for key in ("plain", "numbers", page_key):
        assert run(app, "get", key).exit_code == EXIT_NOT_FOUND


def test_clear_asks_first_and_keeps_everything_on_no(
    app_with_entries: tuple[Flask, str],
) -> None:
    app, page_key = app_with_entries
    result = run(app, "clear", input="n\n")
    assert result.exit_code == 1
    assert "Remove every entry of prefix 'flask_stash:'" in result.output
    assert "Aborted!" in result.output
    assert "cleared" not in result.output
    for key in ("plain", "numbers", page_key):
        assert run(app, "get", key).exit_code == 0
    confirmed = run(app, "clear", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert run(app, "get", "plain").exit_code == EXIT_NOT_FOUND
    short = run(app, "clear", "-y")
    assert (short.exit_code, "[y/N]" in short.output) == (0, False)


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
        "warming as http://localhost",
        "200  stored  /?name=a",
        "200  stored  /products",
        "warmed 2 of 2 URL(s)",
    ]
    # Without SERVER_NAME, stderr says for which host pages were stored, and how to change it.
    assert "SERVER_NAME is not set, so pages are stored for http://localhost" in result.stderr
    assert "--base-url" in result.stderr
    assert "warming: 2/2 done, 0 failed" in result.stderr
    again = run(app, "warm", "/?name=a")
    assert again.stdout.splitlines()[1] == "200  already cached  /?name=a"
    # The warmed entry is what visitors get.
    app.test_client().get("/?name=a")
    assert calls == Counter(index=1, products=1)


def test_warm_fails_on_errors_and_pages_it_cannot_store() -> None:
    app, _ = make_app()
    result = run(app, "warm", "/", "/missing", "/private", "/plain")
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines() == [
        "warming as http://localhost",
        "200  stored  /",
        "404  error status  /missing",
        "200  not stored: Cache-Control: private  /private",
        "200  no cached view answered  /plain",
        "warmed 1 of 4 URL(s), 3 failed",
    ]
    progress = [line for line in result.stderr.splitlines() if line.startswith("warming:")]
    assert progress == [
        "warming: 1/4 done, 0 failed",
        "warming: 2/4 done, 1 failed",
        "warming: 3/4 done, 2 failed",
        "warming: 4/4 done, 3 failed",
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
    used = run(app, "warm", "--base-url", "https://shop.example/", "/?name=x")
    assert used.stdout.splitlines()[0] == "warming as https://shop.example (from --base-url)"
    assert "SERVER_NAME" not in used.stderr
    wrong = run(app, "warm", "--base-url", "shop.example", "/")
    assert wrong.exit_code == 2
    assert "is not scheme://host[/root]" in wrong.output


def test_warm_stores_under_the_server_name_visitors_get_a_hit() -> None:
    calls: Counter[str] = Counter()
    app, cache = make_app(
        calls,
        SERVER_NAME="shop.example",
        PREFERRED_URL_SCHEME="https",
        CACHE_X_CACHE_HEADER=True,
    )
    result = run(app, "warm", "/?name=b")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "warming as https://shop.example (from SERVER_NAME)"
    assert "SERVER_NAME is not set" not in result.stderr
    # A visitor's request on that host, as a browser sends it, is a hit.
    response = app.test_client().get("/?name=b", base_url="https://shop.example")
    assert response.headers["X-Cache"] == "HIT"
    assert response.text == "hello b"
    assert calls["index"] == 1
    assert cache.stats.total.hits == 1


def test_warm_takes_the_application_root() -> None:
    calls: Counter[str] = Counter()
    app, _ = make_app(calls, SERVER_NAME="shop.example", APPLICATION_ROOT="/store")
    result = run(app, "warm", "/products")
    assert (
        result.stdout.splitlines()[0] == "warming as http://shop.example/store (from SERVER_NAME)"
    )
    app.test_client().get("/products", base_url="http://shop.example/store")
    assert calls["products"] == 1


def test_warm_in_parallel_from_a_file(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    app, _ = make_app(calls)
    names = [f"n{i}" for i in range(12)]
    listing = tmp_path / "urls.txt"
    listing.write_text(
        "# pages to warm\n\n" + "".join(f"/?name={name}\n" for name in names) + "/missing\n"
    )
    result = run(app, "warm", "--jobs", "4", "--from", str(listing), "/products")
    assert result.exit_code == EXIT_FAILED, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "warming as http://localhost"
    assert lines[-1] == "warmed 13 of 14 URL(s), 1 failed"
    # Finished in any order; every URL has its own outcome line.
    assert sorted(lines[1:-1]) == sorted(
        [
            *(f"200  stored  /?name={name}" for name in names),
            "200  stored  /products",
            "404  error status  /missing",
        ]
    )
    assert "warming: 14/14 done, 1 failed" in result.stderr
    assert calls == Counter(index=12, products=1)
    client = app.test_client()
    for name in names:
        client.get(f"/?name={name}")
    assert calls["index"] == 12


def test_warm_in_parallel_from_stdin() -> None:
    calls: Counter[str] = Counter()
    app, _ = make_app(calls)
    result = run(app, "warm", "-j", "3", "--from", "-", input="/?name=a\n/?name=b\n/plain\n")
    assert result.exit_code == EXIT_FAILED
    assert sorted(result.stdout.splitlines()[1:-1]) == [
        "200  no cached view answered  /plain",
        "200  stored  /?name=a",
        "200  stored  /?name=b",
    ]
    assert result.stdout.splitlines()[-1] == "warmed 2 of 3 URL(s), 1 failed"
    assert calls["index"] == 2


def test_warm_needs_a_url() -> None:
    app, _ = make_app()
    result = run(app, "warm", "--from", "-", input="# nothing\n\n")
    assert result.exit_code == 2
    assert "no URL to warm" in result.output


def test_keys_lists_the_memory_stores_keys_without_the_prefix(
    app_with_entries: tuple[Flask, str],
) -> None:
    app, page_key = app_with_entries
    result = run(app, "keys")
    assert result.exit_code == 0, result.output
    listed = result.stdout.splitlines()
    assert {"plain", "numbers", page_key} <= set(listed)
    assert not any(key.startswith("flask_stash:") for key in listed)
    assert f"{len(listed)} key(s) matching '*'" in result.stderr
    only = run(app, "keys", "num*")
    assert only.stdout.splitlines() == ["numbers"]
    assert run(app, "keys", "nothing*").stdout == ""


def test_keys_on_the_disk_store(tmp_path: Path) -> None:
    app, cache = make_app(CACHE_TYPE="disk", CACHE_DIR=str(tmp_path), CACHE_KEY_PREFIX="a:")
    other, other_cache = make_app(
        CACHE_TYPE="disk", CACHE_DIR=str(tmp_path), CACHE_KEY_PREFIX="ab:"
    )
    assert run(app, "warm", "/?name=x").exit_code == 0
    with app.app_context():
        cache.set("plain", "a value")
        cache.set("gone", "soon", timeout=1)
    with other.app_context():
        other_cache.set("theirs", "b value")
    page_key = run(app, "key", "/?name=x").stdout.strip()
    time.sleep(1.1)
    listed = run(app, "keys").stdout.splitlines()
    assert {"plain", page_key} <= set(listed)
    assert "gone" not in listed  # expired
    assert "theirs" not in listed  # another namespace in the same directory
    assert run(app, "keys", "pl?in").stdout == "plain\n"
    stats = run(app, "stats", "--json")
    figures = json.loads(stats.stdout)["store"]["figures"]
    assert figures["entries"] == len(listed)
    assert figures["entries_in_directory"] > figures["entries"]
    assert figures["bytes_on_disk"] > 0


def test_keys_is_not_supported_by_every_store() -> None:
    app, _ = make_app(CACHE_TYPE="saslmemcached", CACHE_MEMCACHED_SERVERS=["127.0.0.1:1"])
    result = run(app, "keys")
    assert result.exit_code == EXIT_FAILED
    assert "not supported by this store" in result.output
    assert "Traceback" not in result.output


def test_key_of_a_url_is_the_key_its_page_is_stored_under() -> None:
    app, _ = make_app(SERVER_NAME="shop.example")
    result = run(app, "key", "/?name=b")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert "shop.example" in key
    with app.test_request_context("/?name=b"):
        view: Any = app.view_functions["index"]
        assert key == view.make_cache_key()
    assert run(app, "warm", "/?name=b").exit_code == 0
    assert key in run(app, "keys").stdout.splitlines()
    shown = run(app, "get", key)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.rstrip().endswith("hello b")
    # A full URL carries its own host; --base-url another.
    assert "other.example" in run(app, "key", "http://other.example/").stdout
    assert "https://x.example" in run(app, "key", "--base-url", "https://x.example", "/").stdout


def test_key_of_a_url_whose_view_is_not_cached_exits_1() -> None:
    app, _ = make_app()
    plain = run(app, "key", "/plain")
    assert plain.exit_code == EXIT_FAILED
    assert "answered by view 'plain', which is not cached" in plain.output
    missing = run(app, "key", "/missing")
    assert missing.exit_code == EXIT_FAILED
    assert "no view answers GET http://localhost/missing" in missing.output
    assert "Traceback" not in plain.output + missing.output


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
    result = run(mine, "clear", "--yes")
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
    ["clear", "--yes"],
    ["keys"],
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


# -- on real servers: keys and the store's own figures ---------------------------


def test_keys_and_stats_on_memcached(
    memcached_server: ServerProcess, memcached_available: None
) -> None:
    app, cache = make_app(**memcached_config(memcached_server.address))
    other, other_cache = make_app(**memcached_config(memcached_server.address))
    warmed = run(app, "warm", "/?name=a", "/products")
    assert warmed.exit_code == 0, warmed.output
    with app.app_context():
        cache.set("plain", "a value")
    with other.app_context():
        other_cache.set("theirs", "b value")
    page_keys = [run(app, "key", url).stdout.strip() for url in ("/?name=a", "/products")]
    result = run(app, "keys")
    assert result.exit_code == 0, result.output
    listed = result.stdout.splitlines()
    assert {"plain", *page_keys} <= set(listed)
    assert "theirs" not in listed
    prefix = cache.state(app).store.key_prefix
    assert not any(key.startswith(prefix) for key in listed)
    assert run(app, "keys", "pla*").stdout == "plain\n"
    # After a clear the old namespace's items are still on the server, but not listed.
    assert run(app, "clear", "--yes").exit_code == 0
    assert run(app, "keys").stdout == ""

    stats = run(app, "stats")
    assert stats.exit_code == 0, stats.output
    assert "store's own figures (every process using it):" in stats.stdout
    figures = json.loads(run(app, "stats", "--json").stdout)["store"]["figures"]
    assert figures["curr_items"] >= 4
    assert figures["bytes"] > 0
    assert figures["get_hits"] >= 1
    assert figures["get_misses"] >= 1
    assert "evictions" in figures
    assert "per process" in stats.stderr


def test_keys_on_memcached_without_the_lru_crawler(memcached_available: None) -> None:
    from .plugins.memcached import start_memcached

    server = start_memcached("-o", "no_lru_crawler")
    try:
        app, _ = make_app(**memcached_config(server.address))
        assert run(app, "warm", "/").exit_code == 0
        result = run(app, "keys")
        # Memcached answers metadump without its crawler with an error, not a listing.
        assert result.exit_code == EXIT_FAILED, result.output
        assert "not supported by this store" in result.output
        assert "lru_crawler metadump all" in result.output
        assert "Traceback" not in result.output
    finally:
        server.stop()


def test_keys_and_stats_on_redis(redis_server: ServerProcess, redis_available: None) -> None:
    app, cache = make_app(**redis_config(redis_server))
    other, other_cache = make_app(**redis_config(redis_server))
    assert run(app, "warm", "/?name=a", "/products").exit_code == 0
    with app.app_context():
        cache.set("plain", "a value")
        cache.set("a*b", "a glob character")
        cache.get("plain")
        cache.get("absent")
    with other.app_context():
        other_cache.set("theirs", "b value")
    page_keys = [run(app, "key", url).stdout.strip() for url in ("/?name=a", "/products")]
    result = run(app, "keys")
    assert result.exit_code == 0, result.output
    listed = result.stdout.splitlines()
    assert {"plain", "a*b", *page_keys} <= set(listed)
    assert "theirs" not in listed
    assert run(app, "keys", "pla*").stdout == "plain\n"
    assert run(app, "keys", "a[*]b").stdout == "a*b\n"

    stats = run(app, "stats")
    assert stats.exit_code == 0, stats.output
    lines = stats.stdout.splitlines()
    start = lines.index("store's own figures (every process using it):")
    figures = {name: int(value) for name, value in (line.split() for line in lines[start + 1 :])}
    assert figures["db_keys"] >= len(listed) + 1
    assert figures["used_memory"] > 0
    assert figures["keyspace_hits"] >= 1
    assert figures["keyspace_misses"] >= 1
    assert "evicted_keys" in figures
    assert "per process" in stats.stderr


# -- a missing extra ------------------------------------------------------------


def test_a_missing_extra_names_its_fix_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    monkeypatch.delitem(sys.modules, "flask_stash.stores.redis", raising=False)
    app = Flask(__name__)
    app.config["CACHE_TYPE"] = "redis"
    with pytest.raises(ConfigurationError) as caught:
        Cache(app)
    message = str(caught.value)
    assert message.count("pip install 'flask-stash[redis]'") == 1, message
    assert message.startswith("CACHE_TYPE 'redis': the Redis store needs the redis package")


def test_a_configuration_failure_while_loading_the_app_is_one_line() -> None:
    """What ``flask cache ...`` shows when init_app raises CliConfigurationError."""
    message = "CACHE_TYPE 'redis': the Redis store needs redis; pip install 'flask-stash[redis]'"

    def create_app() -> Flask:
        raise CliConfigurationError(message)

    group = FlaskGroup(create_app=create_app, add_default_commands=False, load_dotenv=False)
    result = CliRunner().invoke(group, ["cache", "ping"], obj=ScriptInfo(create_app=create_app))
    assert result.exit_code == EXIT_FAILED
    assert result.output == f"Error: {message}\n"
    assert isinstance(CliConfigurationError(message), ConfigurationError)


def test_a_configuration_error_under_the_flask_command_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "badapp.py").write_text(
        "from flask import Flask\n"
        "from flask_stash import Cache\n"
        "app = Flask(__name__)\n"
        "Cache(app, config={'CACHE_TYPE': 'memory', 'CACHE_DEFAULT_TIMEOUT': -5})\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "badapp", "cache", "ping"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["Error: CACHE_DEFAULT_TIMEOUT must be a whole number of at least 0; got -5"]


def test_a_configuration_error_outside_the_flask_command_is_a_configuration_error() -> None:
    from flask_stash import ConfigurationError

    with pytest.raises(ConfigurationError, match="CACHE_DEFAULT_TIMEOUT") as raised:
        Cache(Flask(__name__), config={"CACHE_DEFAULT_TIMEOUT": -5})
    assert type(raised.value) is ConfigurationError
