"""CACHE_FAST_LANE: fresh pages answered before Flask builds a request context, only when safe.

A request the lane answers runs no teardown function, which is how these
tests tell the two paths apart.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from flask import Flask, request, session
from flask.signals import request_started
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_stash import Cache


def lane_app(**config: Any) -> tuple[Flask, Cache, Counter[str]]:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "lane", "CACHE_X_CACHE_HEADER": True, "CACHE_FAST_LANE": True})
    app.config.update(config)
    cache = Cache(app)
    seen: Counter[str] = Counter()

    @app.teardown_request
    def count(exc: BaseException | None) -> None:
        seen["flask"] += 1

    @app.route("/page", methods=["GET", "HEAD", "POST"])
    @cache.cached(timeout=300)
    def page() -> str:
        seen["view"] += 1
        return f"page {request.args.get('q')} v{seen['POST']}"

    @app.route("/vary")
    @cache.cached(timeout=300)
    def vary() -> tuple[str, dict[str, str]]:
        return "varies", {"Vary": "Accept-Language"}

    @app.route("/anon")
    @cache.cached(timeout=300)
    def anon() -> str:
        return f"hello {session.get('user', 'stranger')}"

    @app.after_request
    def bump(response: Any) -> Any:
        return response

    app.after_request_funcs.clear()  # the hook above only proved it could be added
    return app, cache, seen


def test_a_repeated_page_is_answered_without_flask_and_as_flask_would() -> None:
    app, _, seen = lane_app()
    client = app.test_client()
    assert client.get("/page?q=1").headers["X-Cache"] == "MISS"
    assert seen["flask"] == 1
    fast = client.get("/page?q=1")
    assert seen["flask"] == 1  # no request context: the lane answered
    assert (fast.status_code, fast.text, fast.headers["X-Cache"]) == (200, "page 1 v0", "HIT")
    assert fast.headers["Content-Length"] == str(len("page 1 v0"))
    assert fast.headers["ETag"]
    head = client.head("/page?q=1")
    assert (head.data, head.headers["Content-Length"]) == (b"", str(len("page 1 v0")))
    assert seen["view"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer x"},
        {"If-None-Match": '"abc"'},
        {"Cache-Control": "no-cache"},
    ],
)
def test_requests_that_may_need_flask_go_through_it(headers: dict[str, str]) -> None:
    app, _, seen = lane_app()
    client = app.test_client()
    client.get("/page")
    client.get("/page", headers=headers)
    assert seen["flask"] == 2


def test_a_request_with_cookies_goes_through_flask() -> None:
    app, _, seen = lane_app()
    client = app.test_client()
    client.get("/page")
    client.set_cookie("theme", "dark")
    client.get("/page")
    assert seen["flask"] == 2


def test_varying_and_session_pages_go_through_flask() -> None:
    app, _, seen = lane_app()
    client = app.test_client()
    for url in ("/vary", "/anon"):
        client.get(url)
        client.get(url)
    assert seen["flask"] == 4


def test_a_post_through_flask_drops_the_page_the_lane_serves() -> None:
    app, _, seen = lane_app()
    client = app.test_client()
    client.get("/page")
    assert client.get("/page").text == "page None v0"
    assert client.post("/page").status_code == 200
    seen["POST"] += 1
    page = client.get("/page")  # the lane finds the URL's tag changed
    assert (page.text, page.headers["X-Cache"]) == ("page None v1", "MISS")


def test_an_app_with_hooks_or_request_signals_is_never_answered_early() -> None:
    app, _, seen = lane_app()

    @app.before_request
    def hook() -> None:
        pass

    client = app.test_client()
    client.get("/page")
    client.get("/page")
    assert seen["flask"] == 2

    app, _, seen = lane_app()
    client = app.test_client()
    client.get("/page")

    def started(sender: Flask, **extra: object) -> None:
        pass

    request_started.connect(started, app)
    try:
        client.get("/page")
    finally:
        request_started.disconnect(started, app)
    assert seen["flask"] == 2


def test_the_lane_is_off_by_default() -> None:
    app, _, seen = lane_app(CACHE_FAST_LANE=False)
    client = app.test_client()
    for _ in range(3):
        client.get("/page")
    assert seen["flask"] == 3


def test_middleware_applied_before_init_app_turns_the_lane_off_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Flask(__name__)
    app.config.update(CACHE_FAST_LANE=True)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        Cache(app)
    assert "CACHE_FAST_LANE is off" in caplog.text
    assert isinstance(app.wsgi_app, ProxyFix)


def test_middleware_applied_after_init_app_rewrites_what_the_lane_reads() -> None:
    app, _, seen = lane_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    client = app.test_client()
    client.get("/page", headers={"X-Forwarded-Proto": "https"})
    plain = client.get("/page")  # another scheme: another page, made by Flask
    assert plain.headers["X-Cache"] == "MISS"
    assert client.get("/page", headers={"X-Forwarded-Proto": "https"}).headers["X-Cache"] == "HIT"
    assert seen["flask"] == 2
