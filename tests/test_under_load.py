"""Under load: single-flight, stale-while-revalidate, stale-if-error, tags, near cache, async."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, request, session

from flask_stash import Cache
from flask_stash.stores.near import NearStore

from .harness import StoreHarness
from .plugins.memory import FakeClock
from .servers import ServerProcess
from .stampede_app import fire


def clocked_app(**config: Any) -> tuple[Flask, Cache, FakeClock]:
    """An app whose cache runs on a clock the test moves."""
    clock = FakeClock()
    app = Flask(__name__)
    app.config.update(CACHE_OPTIONS={"clock": clock}, CACHE_X_CACHE_HEADER=True, **config)
    cache = Cache(app)
    cache.state(app).clock = clock
    return app, cache, clock


def concurrently(count: int, action: Any) -> list[Any]:
    """Run *action* in *count* threads released together; return their results."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(n: int) -> None:
        barrier.wait()
        results[n] = action()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# -- single-flight ----------------------------------------------------------------


def test_32_concurrent_misses_run_the_view_once() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/slow")
    @cache.cached(timeout=60)
    def slow() -> str:
        runs["slow"] += 1
        time.sleep(0.3)
        return f"page {runs['slow']}"

    bodies = concurrently(32, lambda: app.test_client().get("/slow").text)
    assert runs["slow"] == 1
    assert bodies == ["page 1"] * 32


def test_single_flight_can_be_turned_off() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/slow")
    @cache.cached(timeout=60, single_flight=False)
    def slow() -> str:
        runs["slow"] += 1
        time.sleep(0.2)
        return "page"

    concurrently(8, lambda: app.test_client().get("/slow").text)
    assert runs["slow"] > 1


def test_concurrent_memoized_calls_run_once_and_get_their_own_copies() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @cache.memoize(timeout=60)
    def report(n: int) -> list[int]:
        runs["report"] += 1
        time.sleep(0.2)
        return [n]

    def call() -> list[int]:
        with app.app_context():
            return report(7)

    results = concurrently(16, call)
    assert runs["report"] == 1
    assert results == [[7]] * 16
    assert len({id(result) for result in results}) == 16


def test_single_flight_never_hands_one_users_page_to_another() -> None:
    app = Flask(__name__)
    app.secret_key = "s"
    cache = Cache(app)

    @app.route("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        return "ok"

    @app.route("/me")
    @cache.cached(timeout=60)
    def me() -> str:
        time.sleep(0.2)
        return f"hello {session.get('user')}"

    clients = []
    for n in range(8):
        client = app.test_client()
        client.get(f"/login/user{n}")
        clients.append(client)
    order = iter(range(8))
    lock = threading.Lock()

    def visit() -> tuple[int, str]:
        with lock:
            n = next(order)
        return n, clients[n].get("/me").text

    for n, body in concurrently(8, visit):
        assert body == f"hello user{n}"


def test_stampede_across_processes_runs_the_view_once(
    harness: StoreHarness, tmp_path: Path
) -> None:
    if not harness.shared or harness.url is None:
        pytest.skip("only stores shared between processes")
    log, results = tmp_path / "ran.log", tmp_path / "bodies.txt"
    prefix = f"{uuid.uuid4().hex[:8]}:"
    start_at = time.time() + 2.0
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=fire, args=(harness.url, prefix, str(log), 8, start_at, str(results))
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert log.read_text().splitlines() == ["ran"]
    assert results.read_text().splitlines() == ["computed once"] * 32


# -- stale-while-revalidate and stale-if-error --------------------------------------


def test_stale_while_revalidate_serves_at_once_and_refreshes_in_background() -> None:
    app, cache, clock = clocked_app()
    runs: Counter[str] = Counter()

    @app.route("/news")
    @cache.cached(timeout=10, stale_while_revalidate=30)
    def news() -> str:
        runs["news"] += 1
        if runs["news"] > 1:
            time.sleep(0.3)  # a slow refresh nobody must wait for
        return f"edition {runs['news']}"

    client = app.test_client()
    assert client.get("/news").text == "edition 1"
    clock.advance(15)
    started = time.perf_counter()
    stale = client.get("/news")
    assert time.perf_counter() - started < 0.2
    assert (stale.text, stale.headers["X-Cache"]) == ("edition 1", "STALE")
    cache.state(app).join_background()
    fresh = client.get("/news")
    assert (fresh.text, fresh.headers["X-Cache"]) == ("edition 2", "HIT")
    assert runs["news"] == 2


def test_only_one_refresh_runs_for_many_stale_hits() -> None:
    app, cache, clock = clocked_app()
    runs: Counter[str] = Counter()

    @app.route("/news")
    @cache.cached(timeout=10, stale_while_revalidate=30)
    def news() -> str:
        runs["news"] += 1
        time.sleep(0.2)
        return f"edition {runs['news']}"

    client = app.test_client()
    client.get("/news")
    clock.advance(15)
    bodies = concurrently(8, lambda: app.test_client().get("/news").text)
    assert bodies == ["edition 1"] * 8
    cache.state(app).join_background()
    assert runs["news"] == 2


def test_past_the_stale_window_the_request_recomputes() -> None:
    app, cache, clock = clocked_app()
    runs: Counter[str] = Counter()

    @app.route("/news")
    @cache.cached(timeout=10, stale_while_revalidate=5)
    def news() -> str:
        runs["news"] += 1
        return f"edition {runs['news']}"

    client = app.test_client()
    client.get("/news")
    clock.advance(16)
    response = client.get("/news")
    assert (response.text, response.headers["X-Cache"]) == ("edition 2", "MISS")


def test_refresh_runs_the_before_request_hooks() -> None:
    app, cache, clock = clocked_app()
    seen: list[str] = []

    @app.before_request
    def hook() -> None:
        seen.append(request.path)

    @app.route("/news")
    @cache.cached(timeout=10, stale_while_revalidate=30)
    def news() -> str:
        return "edition"

    client = app.test_client()
    client.get("/news")
    clock.advance(15)
    client.get("/news")
    cache.state(app).join_background()
    assert seen == ["/news"] * 3


@pytest.mark.parametrize("failure", ["raise", "503"])
def test_stale_if_error_serves_the_stale_page(failure: str) -> None:
    app, _, clock = clocked_app()
    state = {"broken": False}

    @app.route("/prices")
    @cache_for(app).cached(timeout=10, stale_if_error=60)
    def prices() -> Any:
        if state["broken"]:
            if failure == "raise":
                raise RuntimeError("database down")
            return Response("unavailable", status=503)
        return "prices v1"

    client = app.test_client()
    assert client.get("/prices").text == "prices v1"
    state["broken"] = True
    clock.advance(20)
    response = client.get("/prices")
    assert (response.status_code, response.text) == (200, "prices v1")
    assert response.headers["X-Cache"] == "STALE"
    clock.advance(60)
    assert client.get("/prices").status_code in (500, 503)


def cache_for(app: Flask) -> Cache:
    found: Cache = next(iter(app.extensions["flask_stash"]))
    return found


def test_memoize_stale_while_revalidate_and_stale_if_error() -> None:
    app, cache, clock = clocked_app()
    state = {"version": 1, "broken": False}

    @cache.memoize(timeout=10, stale_while_revalidate=20, stale_if_error=60)
    def rate(currency: str) -> str:
        if state["broken"]:
            raise RuntimeError("upstream down")
        return f"{currency} v{state['version']}"

    with app.app_context():
        assert rate("EUR") == "EUR v1"
        state["version"] = 2
        clock.advance(15)
        assert rate("EUR") == "EUR v1"  # stale, refreshed in the background
        cache.state(app).join_background()
        assert rate("EUR") == "EUR v2"
        state["broken"] = True
        clock.advance(40)  # past stale-while-revalidate, within stale-if-error
        assert rate("EUR") == "EUR v2"
        clock.advance(60)
        with pytest.raises(RuntimeError, match="upstream down"):
            rate("EUR")


@pytest.mark.parametrize("seconds", [-1, 1.5, "10"])
def test_bad_stale_windows_raise_when_applied(seconds: Any) -> None:
    cache = Cache(Flask(__name__))
    with pytest.raises(ValueError, match="stale_while_revalidate"):
        cache.cached(stale_while_revalidate=seconds)
    with pytest.raises(ValueError, match="stale_if_error"):
        cache.memoize(stale_if_error=seconds)


# -- tags -----------------------------------------------------------------------------


def test_tags_on_views_and_functions() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/products/<int:pid>")
    @cache.cached(tags=lambda pid: [f"product:{pid}"])
    def product(pid: int) -> str:
        runs[f"page {pid}"] += 1
        return f"product {pid}"

    @cache.memoize(tags=lambda pid: [f"product:{pid}", "prices"])
    def price(pid: int) -> int:
        runs[f"price {pid}"] += 1
        return pid * 10

    @cache.memoize(tags=["catalog"])
    def catalog() -> list[int]:
        runs["catalog"] += 1
        return [7, 8]

    client = app.test_client()
    with app.app_context():
        for _ in range(2):
            client.get("/products/7"), client.get("/products/8")
            price(7), price(8), catalog()
        assert cache.invalidate_tags("product:7") is True
        client.get("/products/7"), client.get("/products/8")
        price(7), price(8), catalog()
        cache.invalidate_tags("prices", "catalog")
        price(7), price(8), catalog()
    assert runs == {
        "page 7": 2,
        "page 8": 1,
        "price 7": 3,
        "price 8": 2,
        "catalog": 2,
    }


def test_tag_invalidation_is_seen_by_another_app_instance_at_once(harness: StoreHarness) -> None:
    if not harness.shared or harness.url is None:
        pytest.skip("only stores shared between app instances")
    config = {
        "CACHE_URL": harness.url,
        "CACHE_KEY_PREFIX": f"{uuid.uuid4().hex[:8]}:",
        "SECRET_KEY": "tags",
    }
    runs: Counter[str] = Counter()
    apps = []
    for _ in range(2):
        app = Flask(__name__)
        app.config.update(config)
        cache = Cache(app)

        @app.route("/p")
        @cache.cached(tags=["product:7"])
        def page() -> str:
            runs["page"] += 1
            return "product 7"

        apps.append((app, cache))
    (first, first_cache), (second, _) = apps
    first.test_client().get("/p")
    second.test_client().get("/p")
    assert runs["page"] == 1
    with first.app_context():
        first_cache.invalidate_tags("product:7")
    second.test_client().get("/p")
    assert runs["page"] == 2
    for app, _ in apps:
        for state in app.extensions["flask_stash"].values():
            state.store.close()


def test_tags_must_be_names() -> None:
    cache = Cache(Flask(__name__))
    with pytest.raises(TypeError, match="tags"):
        cache.cached(tags="product:7")
    with pytest.raises(TypeError, match="tags"):
        cache.memoize(tags=[7])  # type: ignore[list-item]


# -- near cache --------------------------------------------------------------------------


def test_near_cache_from_config_serves_hot_entries_locally(memcached_server: ServerProcess) -> None:
    app = Flask(__name__)
    app.config.update(
        CACHE_TYPE="memcached",
        CACHE_MEMCACHED_SERVERS=[memcached_server.address],
        CACHE_KEY_PREFIX=f"{uuid.uuid4().hex[:8]}:",
        CACHE_NEAR_TTL=5,
        SECRET_KEY="near",
    )
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/hot")
    @cache.cached(timeout=60)
    def hot() -> str:
        runs["hot"] += 1
        return "hot page"

    store = cache.state(app).store
    assert isinstance(store, NearStore)
    client = app.test_client()
    assert [client.get("/hot").text for _ in range(3)] == ["hot page"] * 3
    assert runs["hot"] == 1
    store.close()


def test_near_cache_in_front_of_the_memory_store_is_refused() -> None:
    from flask_stash import ConfigurationError

    app = Flask(__name__)
    app.config.update(CACHE_NEAR_TTL=5)
    with pytest.raises(ConfigurationError, match="CACHE_NEAR_TTL"):
        Cache(app)


# -- async ---------------------------------------------------------------------------------


def test_async_view_is_cached() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/async")
    @cache.cached(timeout=60)
    async def page() -> str:
        runs["page"] += 1
        await asyncio.sleep(0)
        return f"async {request.args.get('q')}"

    client = app.test_client()
    assert client.get("/async?q=1").text == "async 1"
    assert client.get("/async?q=1").text == "async 1"
    assert client.get("/async?q=2").text == "async 2"
    assert runs["page"] == 2


def test_memoized_coroutine_function_returns_awaitables() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @cache.memoize(timeout=60)
    async def lookup(n: int) -> int:
        runs["lookup"] += 1
        await asyncio.sleep(0)
        return n * 2

    assert asyncio.iscoroutinefunction(lookup)

    async def main() -> list[int]:
        return [await lookup(2), await lookup(2), await lookup(3)]

    with app.app_context():
        assert asyncio.run(main()) == [4, 4, 6]
        cache.delete_memoized(lookup, 2)
        assert asyncio.run(main()) == [4, 4, 6]
    assert runs["lookup"] == 3


def test_cached_response_sets_its_own_timeout() -> None:
    from flask_stash import CachedResponse

    app, _, clock = clocked_app()
    runs: Counter[str] = Counter()

    @app.route("/short")
    @cache_for(app).cached(timeout=3600)
    def short() -> CachedResponse:
        runs["short"] += 1
        return CachedResponse(Response(f"v{runs['short']}"), timeout=5)

    client = app.test_client()
    assert client.get("/short").text == "v1"
    clock.advance(4)
    assert client.get("/short").text == "v1"
    clock.advance(2)
    assert client.get("/short").text == "v2"
