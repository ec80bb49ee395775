"""Prometheus exposition of the counters, and the hit-ratio time series."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView

from flask_stash import Cache, Counters, History, MemoryStore, Stats
from flask_stash.stats import function_label

from .plugins.memory import FakeClock
from .test_signals import make_app

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from flask_stash.metrics import CacheCollector, mount_metrics, register_metrics  # noqa: E402


class BrokenStore(MemoryStore):
    def get_many(self, *keys: str) -> list[Any]:
        raise ConnectionRefusedError("store is down")


def scrape(registry: CollectorRegistry) -> str:
    text: str = generate_latest(registry).decode()
    return text


def test_metrics_endpoint_exposes_the_counters() -> None:
    app, _ = make_app()
    mount_metrics(app)
    client = app.test_client()
    client.get("/")
    client.get("/")
    client.get("/")
    client.get("/cookie")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.text
    index, cookie = "index", "cookie"  # the views' endpoints
    assert f'flask_stash_hits_total{{name="{index}"}} 2.0' in text
    assert f'flask_stash_misses_total{{name="{index}"}} 1.0' in text
    assert f'flask_stash_stores_total{{name="{index}"}} 1.0' in text
    assert f'flask_stash_errors_total{{name="{index}"}} 0.0' in text
    assert f'flask_stash_skips_total{{name="{cookie}",reason="Set-Cookie"}} 1.0' in text
    assert 'flask_stash_store_info{shared="false",type="memory"} 1.0' in text
    assert "# TYPE flask_stash_hits_total counter" in text


def test_errors_are_exposed() -> None:
    app, _ = make_app(CACHE_TYPE=BrokenStore)
    registry = CollectorRegistry()
    register_metrics(app, registry=registry)
    assert app.test_client().get("/").text == "hello"
    text = scrape(registry)
    assert 'flask_stash_errors_total{name="index"} 1.0' in text


def test_shared_stores_name_their_address() -> None:
    class SharedMemory(MemoryStore):
        shared = True

        def describe(self) -> str:
            return "shared memory at somewhere:1"

    app, _ = make_app(CACHE_TYPE=SharedMemory, SECRET_KEY="metrics")
    registry = CollectorRegistry()
    register_metrics(app, registry=registry)
    assert 'address="shared memory at somewhere:1"' in scrape(registry)


def test_the_collector_reads_the_counters_at_each_scrape() -> None:
    app, cache = make_app()
    registry = CollectorRegistry()
    collector = register_metrics(app, cache, registry)
    assert isinstance(collector, CacheCollector)
    assert "flask_stash_hits_total{" not in scrape(registry)
    client = app.test_client()
    client.get("/")
    client.get("/")
    assert "flask_stash_hits_total{" in scrape(registry)
    # Set up again: the collector follows the new state.
    cache.init_app(app)
    assert "flask_stash_hits_total{" not in scrape(registry)


def test_a_registry_refuses_the_same_names_twice() -> None:
    app, cache = make_app()
    second = Cache(app, config={"CACHE_KEY_PREFIX": "second:"})
    registry = CollectorRegistry()
    register_metrics(app, cache, registry)
    with pytest.raises(ValueError, match="Duplicated"):
        register_metrics(app, second, registry)
    register_metrics(app, second, registry, namespace="pages_cache")
    assert "# TYPE pages_cache_hits_total counter" in scrape(registry)


def test_a_served_registry_may_hold_other_metrics() -> None:
    app, _ = make_app()
    registry = CollectorRegistry()
    requests = prometheus_client.Counter("app_requests", "Requests.", registry=registry)
    requests.inc()
    assert mount_metrics(app, registry=registry, path="/internal/metrics") is registry
    text = app.test_client().get("/internal/metrics").text
    assert "app_requests_total 1.0" in text
    assert "# TYPE flask_stash_hits_total counter" in text


def test_an_app_without_a_cache_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no Flask-Stash Cache"):
        CacheCollector(Flask(__name__))


# -- what the counters are named ----------------------------------------------


def test_views_are_counted_under_their_endpoint() -> None:
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "memory"})
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "home"

    @shop.route("/")
    @cache.cached()
    def shop_home() -> str:
        return "shop"

    class Items(MethodView):
        @cache.cached()
        def get(self) -> str:
            return "items"

    @cache.cached()
    def custom_view() -> str:
        return "custom"

    app.register_blueprint(shop, name="shop")
    app.add_url_rule("/items", view_func=Items.as_view("items"))
    app.add_url_rule("/custom", endpoint="custom", view_func=custom_view)
    mount_metrics(app, cache)
    client = app.test_client()
    for path in ("/", "/", "/shop/", "/shop/", "/items", "/items", "/custom", "/custom"):
        assert client.get(path).status_code == 200
    by_name = cache.stats.by_name
    assert sorted(by_name) == ["custom", "index", "items", "shop.shop_home"]
    assert all((c.hits, c.misses) == (1, 1) for c in by_name.values())
    text = client.get("/metrics").text
    assert 'flask_stash_hits_total{name="shop.shop_home"} 1.0' in text
    assert "<locals>" not in text


def test_a_view_under_two_endpoints_is_counted_under_the_first_in_order() -> None:
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "memory"})

    @cache.cached()
    def page() -> str:
        return "page"

    app.add_url_rule("/b", endpoint="b_page", view_func=page)
    app.add_url_rule("/a", endpoint="a_page", view_func=page)
    client = app.test_client()
    client.get("/b")  # the first request is not what decides
    client.get("/b")
    client.get("/a")
    assert list(cache.stats.by_name) == ["a_page"]
    assert cache.stats.by_name["a_page"].hits == 1


def test_functions_are_counted_by_module_and_qualname_without_locals() -> None:
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "memory"})

    @cache.memoize()
    def square(n: int) -> int:
        return n * n

    @cache.cached(key_prefix="greeting")
    def greeting() -> str:
        return "hello"

    @app.route("/")
    def index() -> str:
        return f"{greeting()} {square(3)}"

    here = f"{__name__}.test_functions_are_counted_by_module_and_qualname_without_locals"
    with app.test_request_context():
        # The third call is answered by the memoize fast path, counted inline.
        assert [square(2), square(2), square(2)] == [4, 4, 4]
        # Keys and tags keep Flask-Caching's name, <locals> included.
        key = square.make_cache_key(2)  # type: ignore[attr-defined]
        assert key.startswith(f"memoize:{here}.<locals>.square:")
        assert cache.get(key) is not None
    client = app.test_client()
    client.get("/")
    client.get("/")
    by_name = cache.stats.by_name
    assert sorted(by_name) == [f"{here}.greeting", f"{here}.square"]
    assert (by_name[f"{here}.square"].hits, by_name[f"{here}.square"].misses) == (3, 2)
    assert (by_name[f"{here}.greeting"].hits, by_name[f"{here}.greeting"].misses) == (1, 1)


def test_a_name_given_by_make_name_is_the_label() -> None:
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "memory"})

    @cache.memoize(make_name=lambda name: "reports.total")
    def total(n: int) -> int:
        return n + 1

    with app.app_context():
        total(1)
        total(1)
        assert total.make_cache_key(1).startswith("memoize:reports.total:")  # type: ignore[attr-defined]
    assert list(cache.stats.by_name) == ["reports.total"]
    assert cache.stats.by_name["reports.total"].hits == 1


def test_function_label_drops_only_locals() -> None:
    def outer() -> Any:
        class Inner:
            def method(self) -> None:
                pass

        return Inner.method

    assert function_label(outer()) == (
        f"{__name__}.test_function_label_drops_only_locals.outer.Inner.method"
    )
    assert function_label(Stats.hit) == "flask_stash.stats.Stats.hit"


# -- the time series behind the demo's chart -----------------------------------


def history_of(stats: Stats, clock: FakeClock, seconds: int = 300) -> History:
    return History(lambda: stats.total, seconds, clock)


def test_history_counts_lookups_per_second() -> None:
    clock = FakeClock()
    stats = Stats()
    history = history_of(stats, clock)
    stats.miss("v")
    stats.hit("v")
    history.sample()
    stats.hit("v")
    history.sample()  # same second: updates its sample
    clock.advance(1)
    stats.hit("v")
    history.sample()
    clock.advance(1)  # a second without lookups leaves no point
    history.sample()
    clock.advance(3)
    stats.miss("v")
    assert history.points() == [
        {"t": 1000, "hits": 2, "misses": 1, "ratio": 2 / 3},
        {"t": 1001, "hits": 1, "misses": 0, "ratio": 1.0},
        {"t": 1005, "hits": 0, "misses": 1, "ratio": 0.0},
    ]
    assert history.as_dict()["window"] == 300
    assert history.as_dict()["now"] == 1005


def test_history_keeps_only_its_window() -> None:
    clock = FakeClock()
    stats = Stats()
    history = history_of(stats, clock, seconds=10)
    for _ in range(25):
        stats.hit("v")
        history.sample()
        clock.advance(1)
    points = history.points()
    assert len(history.samples) <= 11
    # The window is the last 10 seconds; the current one, 1025, saw no lookup.
    assert [point["t"] for point in points] == list(range(1016, 1025))


def test_history_survives_a_clock_that_goes_back() -> None:
    clock = FakeClock()
    stats = Stats()
    history = history_of(stats, clock, seconds=10)
    stats.hit("v")
    history.sample()
    clock.now -= 1  # a thread that read the clock a moment earlier: ignored
    history.sample()
    assert [point["t"] for point in history.points()] == [1000]
    clock.now -= 100  # the wall clock was set back: start again
    stats.hit("v")
    history.sample()
    assert [point["t"] for point in history.points()] == [899]


def test_stats_reset_clears_the_history() -> None:
    stats = Stats()
    stats.hit("v")
    assert len(stats.history.points()) == 1
    stats.reset()
    assert stats.history.points() == []
    stats.miss("v")
    assert [point["misses"] for point in stats.history.points()] == [1]


def test_history_needs_a_window() -> None:
    with pytest.raises(ValueError, match="1 or more"):
        History(Counters, 0)
