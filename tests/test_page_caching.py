"""cache.cache_pages: every GET view of an app or a blueprint, behind every before_request hook."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, abort, request

from flask_stash import Cache

from .plugins.memory import FakeClock


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


def make_app(tmp_path: Path | None = None, **config: Any) -> tuple[Flask, Cache, FakeClock]:
    """An app on the memory store, with a clock the test moves."""
    clock = FakeClock()
    if tmp_path is None:
        app = Flask(__name__)
    else:
        app = Flask(__name__, static_folder=str(tmp_path), static_url_path="/static")
    app.config.update(SECRET_KEY="pages", CACHE_OPTIONS={"clock": clock}, **config)
    cache = Cache(app)
    cache.state(app).clock = clock
    return app, cache, clock


def counting_blueprint(name: str, calls: Counter[str], **options: Any) -> Blueprint:
    """A blueprint with a few GET views and a POST view, each counting its runs."""
    blueprint = Blueprint(name, __name__, **options)

    @blueprint.route("/")
    def home() -> str:
        calls[f"{name}.home"] += 1
        return f"{name} home {calls[f'{name}.home']}"

    @blueprint.route("/item/<int:item>")
    def item(item: int) -> str:
        calls[f"{name}.item{item}"] += 1
        return f"{name} item {item} run {calls[f'{name}.item{item}']}"

    @blueprint.route("/form", methods=["GET", "POST"])
    def form() -> str:
        calls[f"{name}.form.{request.method}"] += 1
        return f"{name} form {request.method} {calls[f'{name}.form.{request.method}']}"

    return blueprint


def test_cache_pages_of_a_blueprint_caches_its_get_views_only(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    shop = counting_blueprint("shop", calls, url_prefix="/shop")
    cache.cache_pages(shop, timeout=60)
    app.register_blueprint(shop)
    app.register_blueprint(counting_blueprint("blog", calls, url_prefix="/blog"))

    @app.route("/")
    def index() -> str:
        calls["index"] += 1
        return "index"

    client = app.test_client()
    for _ in range(3):
        for url in ("/shop/", "/shop/item/1", "/shop/item/2", "/shop/form", "/blog/", "/"):
            assert client.get(url).status_code == 200
    assert calls["shop.home"] == calls["shop.item1"] == calls["shop.item2"] == 1
    assert calls["shop.form.GET"] == 1
    assert calls["blog.home"] == 3
    assert calls["index"] == 3


def test_cache_pages_passes_its_options_on(calls: Counter[str]) -> None:
    app, cache, clock = make_app()
    shop = counting_blueprint("shop", calls)
    cache.cache_pages(shop, timeout=5)
    app.register_blueprint(shop)

    client = app.test_client()
    assert client.get("/").text == "shop home 1"
    clock.advance(4)
    assert client.get("/").text == "shop home 1"
    clock.advance(2)
    assert client.get("/").text == "shop home 2"


def test_cache_pages_never_caches_post(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    shop = counting_blueprint("shop", calls)
    cache.cache_pages(shop)
    app.register_blueprint(shop)

    client = app.test_client()
    assert client.get("/form").text == "shop form GET 1"
    assert client.post("/form").text == "shop form POST 1"
    assert client.post("/form").text == "shop form POST 2"
    # A successful POST invalidates the page of its URL.
    assert client.get("/form").text == "shop form GET 2"
    assert client.get("/form").text == "shop form GET 2"


def test_cache_pages_of_a_blueprint_leaves_a_lookalike_name_alone(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    shop = counting_blueprint("shop", calls, url_prefix="/shop")
    cache.cache_pages(shop)
    app.register_blueprint(shop)
    app.register_blueprint(counting_blueprint("shopping", calls, url_prefix="/shopping"))

    client = app.test_client()
    for _ in range(2):
        client.get("/shop/")
        client.get("/shopping/")
    assert calls["shop.home"] == 1
    assert calls["shopping.home"] == 2


def test_cache_pages_of_a_blueprint_covers_its_nested_blueprints(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    parent = Blueprint("parent", __name__, url_prefix="/parent")
    child = counting_blueprint("child", calls, url_prefix="/child")
    parent.register_blueprint(child)
    cache.cache_pages(parent)
    app.register_blueprint(parent)

    client = app.test_client()
    for _ in range(3):
        assert client.get("/parent/child/item/4").text == "child item 4 run 1"
    assert calls["child.item4"] == 1


def test_cache_pages_of_the_app_caches_every_get_view_but_static(
    tmp_path: Path, calls: Counter[str]
) -> None:
    (tmp_path / "site.css").write_text("body { color: red }")
    app, cache, _ = make_app(tmp_path, CACHE_X_CACHE_HEADER=True)
    cache.cache_pages(app)
    app.register_blueprint(counting_blueprint("blog", calls, url_prefix="/blog"))

    @app.route("/")
    def index() -> str:
        calls["index"] += 1
        return f"index {calls['index']}"

    client = app.test_client()
    for _ in range(3):
        assert client.get("/").text == "index 1"
        assert client.get("/blog/item/7").text == "blog item 7 run 1"
    static = client.get("/static/site.css")
    assert static.text == "body { color: red }"
    assert "X-Cache" not in static.headers
    static.close()
    (tmp_path / "site.css").write_text("body { color: blue }")
    static = client.get("/static/site.css")
    assert static.text == "body { color: blue }"
    static.close()
    with app.app_context():
        assert cache.stats.total.errors == 0
        assert {name.rpartition(".")[2] for name in cache.stats.by_name} == {"index", "item"}


def test_exempt_view_is_left_out(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    cache.cache_pages(app)

    @app.route("/cached")
    def cached() -> str:
        calls["cached"] += 1
        return "cached"

    @app.route("/live")
    @cache.exempt
    def live() -> str:
        calls["live"] += 1
        return f"live {calls['live']}"

    @cache.exempt
    @app.route("/also-live")
    def also_live() -> str:
        calls["also_live"] += 1
        return f"also live {calls['also_live']}"

    client = app.test_client()
    for run in (1, 2, 3):
        assert client.get("/cached").text == "cached"
        assert client.get("/live").text == f"live {run}"
        assert client.get("/also-live").text == f"also live {run}"
    assert calls["cached"] == 1


def test_exempt_view_in_a_cached_blueprint_is_left_out(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    shop = Blueprint("shop", __name__)

    @shop.route("/cart")
    @cache.exempt
    def cart() -> str:
        calls["cart"] += 1
        return f"cart {calls['cart']}"

    @shop.route("/catalogue")
    def catalogue() -> str:
        calls["catalogue"] += 1
        return "catalogue"

    cache.cache_pages(shop)
    app.register_blueprint(shop)
    client = app.test_client()
    for run in (1, 2):
        assert client.get("/cart").text == f"cart {run}"
        assert client.get("/catalogue").text == "catalogue"
    assert calls == {"cart": 2, "catalogue": 1}


@pytest.mark.parametrize("target", ["app", "blueprint"])
def test_every_before_request_hook_runs_before_a_cached_page(target: str) -> None:
    app, cache, _ = make_app()
    shop = Blueprint("shop", __name__)
    order: list[str] = []

    @app.before_request
    def app_before() -> None:
        order.append("app-before")

    @shop.before_request
    def shop_before() -> None:
        order.append("shop-before")

    cache.cache_pages(app if target == "app" else shop)

    @app.before_request
    def app_after() -> None:
        order.append("app-after")

    @shop.before_request
    def shop_after() -> None:
        order.append("shop-after")

    @shop.route("/page")
    def page() -> str:
        order.append("view")
        return "page"

    app.register_blueprint(shop)
    client = app.test_client()
    hooks = ["app-before", "app-after", "shop-before", "shop-after"]
    for _ in range(3):
        order.clear()
        assert client.get("/page").text == "page"
        assert [name for name in order if name != "view"] == hooks
    assert "view" not in order  # the last run was a hit


def auth_protected(target: str, calls: Counter[str]) -> Flask:
    """Pages cached by cache_pages, then an auth hook registered after that call."""
    app, cache, _ = make_app()
    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.route("/report")
    def report() -> str:
        calls["report"] += 1
        return "salaries: secret"

    if target == "app":
        cache.cache_pages(app)
    else:
        cache.cache_pages(admin)

    def require_key() -> tuple[str, int] | None:
        if request.headers.get("X-Api-Key") != "let-me-in":
            return "who are you?", 401
        return None

    if target == "app":
        app.before_request(require_key)
    else:
        admin.before_request(require_key)
    app.register_blueprint(admin)
    return app


@pytest.mark.parametrize("target", ["app", "blueprint"])
def test_auth_hook_added_after_cache_pages_still_blocks_a_cached_page(
    target: str, calls: Counter[str]
) -> None:
    app = auth_protected(target, calls)
    client = app.test_client()
    for _ in range(2):
        allowed = client.get("/admin/report", headers={"X-Api-Key": "let-me-in"})
        assert (allowed.status_code, allowed.text) == (200, "salaries: secret")
    assert calls["report"] == 1  # the page is in the cache
    for headers in ({}, {"X-Api-Key": "wrong"}):
        blocked = client.get("/admin/report", headers=headers)
        assert blocked.status_code == 401
        assert "secret" not in blocked.text


def test_hook_that_aborts_runs_before_the_cache_too(calls: Counter[str]) -> None:
    app, cache, _ = make_app()
    cache.cache_pages(app)
    closed = {"now": False}

    @app.route("/")
    def index() -> str:
        calls["index"] += 1
        return "open"

    @app.before_request
    def maintenance() -> None:
        if closed["now"]:
            abort(503)

    client = app.test_client()
    assert client.get("/").text == "open"
    closed["now"] = True
    assert client.get("/").status_code == 503
    closed["now"] = False
    assert client.get("/").text == "open"
    assert calls["index"] == 1


def test_pages_cached_by_cache_pages_follow_the_safety_rules(calls: Counter[str]) -> None:
    from flask import session

    app, cache, _ = make_app()
    cache.cache_pages(app)

    @app.route("/me")
    def me() -> str:
        calls["me"] += 1
        return f"me {session.get('user')}"

    alice, bob = app.test_client(), app.test_client()
    with alice.session_transaction() as sess:
        sess["user"] = "alice"
    with bob.session_transaction() as sess:
        sess["user"] = "bob"
    assert alice.get("/me").text == "me alice"
    assert bob.get("/me").text == "me bob"
    assert alice.get("/me", headers={"Authorization": "Bearer x"}).text == "me alice"
    assert calls["me"] == 3


def test_cache_pages_of_the_app_leaves_blueprint_static_files_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "shop.css").write_text("h1 { color: green }")
    app, cache, _ = make_app()
    cache.cache_pages(app)
    app.register_blueprint(
        Blueprint("shop", __name__, static_folder=str(tmp_path), static_url_path="/shop-static")
    )
    client = app.test_client()
    for _ in range(2):
        static = client.get("/shop-static/shop.css")
        assert static.text == "h1 { color: green }"
        static.close()
    with app.app_context():
        assert cache.stats.by_name == {}
    assert "streamed" not in caplog.text
