"""The demo app that ``make run`` serves."""

from __future__ import annotations

import time

from flask_stash.demo import create_app


def test_parameterised_view_keeps_names_apart() -> None:
    client = create_app().test_client()
    assert "Hello, alice!" in client.get("/?name=alice").text
    assert "Hello, bob!" in client.get("/?name=bob").text
    assert "Hello, alice!" in client.get("/?name=alice").text


def test_slow_view_is_fast_once_cached() -> None:
    client = create_app().test_client()
    started = time.perf_counter()
    first = client.get("/slow").text
    assert time.perf_counter() - started >= 0.5
    assert client.get("/slow").text == first


def test_blueprint_hooks_run_on_a_hit() -> None:
    client = create_app().test_client()
    miss = client.get("/shop/")
    hit = client.get("/shop/")
    assert miss.headers["X-Hooks"] == "app before_request, blueprint before_request, view"
    assert hit.headers["X-Hooks"] == "app before_request, blueprint before_request"
    assert hit.text == miss.text
    stats = client.get("/stats").text
    assert stats.index("app before_request") < stats.index("blueprint before_request")


def test_stats_page_counts_per_view() -> None:
    app = create_app()
    client = app.test_client()
    client.get("/?name=a")
    client.get("/?name=a")
    client.get("/?name=b")
    data = client.get("/stats.json").get_json()
    index = next(v for k, v in data["by_name"].items() if k.endswith(".index"))
    assert (index["hits"], index["misses"], index["stores"], index["errors"]) == (1, 2, 2, 0)
    assert data["store"].startswith("memory")
    page = client.get("/stats").text
    assert "<code>index</code>" in page
    assert "33%" in page
