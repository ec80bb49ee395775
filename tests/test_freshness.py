"""RFC 9111 freshness: what a response (or request) says about its own lifetime."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.http import http_date

from flask_stash import Cache


def freshness_app(**config: Any) -> tuple[Flask, Cache, Counter[str]]:
    app = Flask(__name__)
    app.config.update(config)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> tuple[str, dict[str, str]]:
        runs["page"] += 1
        headers = {}
        if "cc" in request.args:
            headers["Cache-Control"] = request.args["cc"]
        if "expires" in request.args:
            headers["Expires"] = request.args["expires"]
        return f"page {runs['page']}", headers

    return app, cache, runs


@pytest.mark.parametrize(
    "query",
    [
        {"cc": "no-cache"},
        {"cc": "No-Cache, public"},
        {"cc": "max-age=0"},
        {"cc": "s-maxage=0, max-age=600"},
        {"cc": "max-age=banana"},
        {"expires": "Thu, 01 Jan 1970 00:00:00 GMT"},
        {"expires": "not a date"},
    ],
)
def test_a_response_that_is_stale_at_once_is_not_stored(query: dict[str, str]) -> None:
    app, cache, runs = freshness_app()
    client = app.test_client()
    for _ in range(3):
        client.get("/page", query_string=query)
    assert runs["page"] == 3
    with app.app_context():
        assert sum(cache.stats.total.skips.values()) == 3


@pytest.mark.parametrize(("cc", "lifetime"), [("max-age=10", 10), ("s-maxage=5, max-age=600", 5)])
def test_s_maxage_and_max_age_cap_the_decorators_timeout(cc: str, lifetime: int) -> None:
    app, cache, runs = freshness_app()
    client = app.test_client()
    state = cache.state(app)
    start = state.clock()
    client.get("/page", query_string={"cc": cc})
    state.clock = lambda: start + lifetime - 1
    client.get("/page", query_string={"cc": cc})
    assert runs["page"] == 1  # still within the response's lifetime
    state.clock = lambda: start + lifetime + 1
    client.get("/page", query_string={"cc": cc})
    assert runs["page"] == 2  # gone after it, although the decorator said 60 s


def test_an_expires_in_the_future_caps_the_lifetime() -> None:
    import time

    app, cache, runs = freshness_app()
    client = app.test_client()
    query = {"expires": http_date(time.time() + 20)}
    client.get("/page", query_string=query)
    client.get("/page", query_string=query)
    assert runs["page"] == 1
    state = cache.state(app)
    now = state.clock()
    state.clock = lambda: now + 30
    client.get("/page", query_string=query)
    assert runs["page"] == 2


def test_a_request_with_no_store_has_its_answer_not_stored() -> None:
    app, _, runs = freshness_app()
    client = app.test_client()
    client.get("/page", headers={"Cache-Control": "no-store"})
    client.get("/page")
    assert runs["page"] == 2  # the first answer was not kept


def test_a_client_cannot_defeat_the_cache_with_no_cache_by_default() -> None:
    app, _, runs = freshness_app()
    client = app.test_client()
    client.get("/page")
    for headers in ({"Cache-Control": "no-cache"}, {"Pragma": "no-cache"}):
        assert client.get("/page", headers=headers).text == "page 1"
    assert runs["page"] == 1


def test_honoring_request_no_cache_is_a_setting() -> None:
    app, _, _ = freshness_app(CACHE_HONOR_REQUEST_NO_CACHE=True)
    client = app.test_client()
    client.get("/page")
    assert client.get("/page", headers={"Cache-Control": "no-cache"}).text == "page 2"
    assert client.get("/page").text == "page 2"  # the recomputed page replaced the old


def test_the_freshness_rules_can_be_turned_off() -> None:
    app, _, runs = freshness_app(CACHE_HONOR_FRESHNESS=False)
    client = app.test_client()
    for _ in range(3):
        client.get("/page", query_string={"cc": "no-cache"})
    assert runs["page"] == 1  # no-cache meant for browsers; the server keeps a copy
    client.get("/page", query_string={"cc": "no-store"})
    client.get("/page", query_string={"cc": "no-store"})
    assert runs["page"] == 3  # no-store and private always hold
