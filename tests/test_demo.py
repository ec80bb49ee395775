"""The demo app that ``make run`` serves."""

from __future__ import annotations

import re
import time

import pytest

from flask_stash.demo import create_app
from flask_stash.demo.app import cache as demo_cache


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
    assert _without_status(client.get("/slow").text) == _without_status(first)


def test_blueprint_hooks_run_on_a_hit() -> None:
    client = create_app().test_client()
    miss = client.get("/shop/")
    hit = client.get("/shop/")
    assert miss.headers["X-Hooks"] == "app before_request, blueprint before_request, view"
    assert hit.headers["X-Hooks"] == "app before_request, blueprint before_request"
    assert _without_status(hit.text) == _without_status(miss.text)
    stats = client.get("/stats").text
    assert stats.index("app before_request") < stats.index("blueprint before_request")


def test_stats_page_counts_per_view() -> None:
    app = create_app()
    client = app.test_client()
    client.get("/?name=a")
    client.get("/?name=a")
    client.get("/?name=b")
    data = client.get("/stats.json").get_json()
    index = data["by_name"]["index"]
    assert (index["hits"], index["misses"], index["stores"], index["errors"]) == (1, 2, 2, 0)
    assert data["store"].startswith("memory")
    page = client.get("/stats").text
    assert "<code>index</code>" in page
    client.get("/shop/")
    assert "<code>shop.shop_index</code>" in client.get("/stats").text  # the endpoint, whole
    assert "33%" in page


def test_fragment_page_keeps_its_slow_part() -> None:
    app = create_app()
    client = app.test_client()
    started = time.perf_counter()
    first = client.get("/fragment?n=5").text
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    second = client.get("/fragment?n=5").text
    assert time.perf_counter() - started < 0.3
    assert "2, 3, 5, 7, 11" in first

    def fragment(page: str) -> str:
        return page[page.index('<p id="primes">') :]

    assert fragment(second) == fragment(first)
    assert "2, 3, 5, 7, 11, 13, 17" in client.get("/fragment?n=7").text
    data = client.get("/stats.json").get_json()
    counters = data["by_name"]["fragment:primes"]
    assert (counters["hits"], counters["misses"], counters["stores"]) == (1, 2, 2)


def test_history_feeds_the_chart() -> None:
    client = create_app().test_client()
    assert client.get("/stats/history.json").get_json()["points"] == []
    client.get("/?name=a")
    client.get("/?name=a")
    client.get("/?name=a")
    history = client.get("/stats/history.json").get_json()
    assert history["window"] == 300
    assert sum(point["hits"] for point in history["points"]) == 2
    assert sum(point["misses"] for point in history["points"]) == 1
    for point in history["points"]:
        assert history["now"] - 300 < point["t"] <= history["now"]
        assert 0 <= point["ratio"] <= 1


def test_stats_page_has_the_chart_and_its_script() -> None:
    page = create_app().test_client().get("/stats").text
    assert '<svg id="hit-ratio-chart"' in page
    assert 'fetch("/stats/history.json"' in page
    # Everything inline: no external scripts, styles or images.
    assert "<script src" not in page
    assert '<link rel="stylesheet"' not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_metrics_are_served_when_prometheus_client_is_installed() -> None:
    pytest.importorskip("prometheus_client")
    client = create_app().test_client()
    client.get("/?name=a")
    text = client.get("/metrics").text
    assert 'flask_stash_misses_total{name="index"} 1.0' in text


def _without_status(page: str) -> str:
    """The page without its status line, which differs between a miss and a hit."""
    return re.sub(r'<p class="cache-status">.*?</p>', "", page)


def _status_line(page: str) -> str:
    found = re.search(r'<p class="cache-status">Cache: (.*?)</p>', page)
    assert found is not None, "the page has no cache status line"
    return found.group(1)


def test_every_response_says_what_the_cache_did() -> None:
    client = create_app().test_client()
    miss = client.get("/?name=carol")
    hit = client.get("/?name=carol")
    assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("MISS", "HIT")
    assert miss.headers["Cache-Control"] == "public, max-age=60"
    assert hit.headers["Cache-Control"].startswith("public, max-age=")
    assert "Age" in hit.headers


def test_each_page_shows_its_outcome_age_and_key() -> None:
    app = create_app()
    client = app.test_client()
    key = "view//|GET|http://localhost|name=dave"
    assert (
        _status_line(client.get("/?name=dave").text) == f"MISS · age 0 s · key <code>{key}</code>"
    )
    assert _status_line(client.get("/?name=dave").text).startswith("HIT · age ")
    assert key in _status_line(client.get("/?name=dave").text)
    with app.app_context():
        assert demo_cache.get(key) is not None  # the key shown is the one stored
    assert _status_line(client.get("/stats").text) == "not cached: made for this request"


def test_a_page_revalidated_with_its_etag_is_the_page_sent() -> None:
    client = create_app().test_client()
    first = client.get("/?name=erin")
    again = client.get("/?name=erin", headers={"If-None-Match": first.headers["ETag"]})
    # The ETag belongs to the page as sent (with its status line), not as
    # stored: a browser holding the MISS page is sent the HIT page.
    assert again.status_code == 200
    assert _status_line(again.text).startswith("HIT")


def test_make_run_takes_port_and_host() -> None:
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["make", "-n", "run", "PORT=5001", "HOST=0.0.0.0"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--host 0.0.0.0 --port 5001" in done.stdout
