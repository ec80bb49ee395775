"""The scenarios of our product notes, run against Flask-Stash."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, request

from flask_stash import Cache

from .notes_cachewarp import CacheWarp


def test_simple_cache_view_runs_once() -> None:
    app = Flask(__name__)
    cache = Cache(config={"CACHE_TYPE": "simple"})
    cache.init_app(app)
    runs = []

    @app.route("/")
    @cache.cached(timeout=50)
    def index() -> str:
        runs.append(1)
        return "hello world!"

    client = app.test_client()
    assert [client.get("/").text for _ in range(5)] == ["hello world!"] * 5
    assert len(runs) == 1


def test_parameterised_view_without_a_subclass() -> None:
    app = Flask(__name__)
    cache = Cache(config={"CACHE_TYPE": "simple"})
    cache.init_app(app)
    cnt = 0

    @app.route("/", methods=["GET"])
    @cache.cached(timeout=50)
    def index() -> str:
        nonlocal cnt
        cnt += 1
        return "hello world!%s" % request.args.get("name")

    client = app.test_client()
    assert client.get("/?name=alice").text == "hello world!alice"
    assert client.get("/?name=bob").text == "hello world!bob"
    assert client.get("/?name=alice").text == "hello world!alice"
    assert cnt == 2


def test_cache_subclass_with_its_own_cached_runs_unchanged(capsys: Any) -> None:
    app = Flask(__name__)
    cache = CacheWarp(config={"CACHE_TYPE": "simple"})
    cache.init_app(app)
    cnt = 0

    @app.route("/", methods=["GET"])
    @cache.cached(timeout=50)  # type: ignore[no-untyped-call, untyped-decorator]
    def index() -> str:
        nonlocal cnt
        cnt += 1
        return "hello world!%s" % request.args.get("name")

    client = app.test_client()
    assert client.get("/?name=alice").text == "hello world!alice"
    assert client.get("/?name=bob").text == "hello world!bob"
    assert client.get("/?name=alice").text == "hello world!alice"
    assert cnt == 2
    printed = capsys.readouterr().out.split()
    assert len(printed) == 3
    assert printed[0] == printed[2] != printed[1]


def test_blueprint_hook_runs_after_the_app_hook_on_hits_too() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    project = Blueprint("project", __name__)
    order: list[str] = []

    @project.before_request
    def project_design() -> None:
        order.append("before blueprint")

    @app.before_request
    def app_hook() -> None:
        order.append("before app")

    @project.route("/design")
    @cache.cached(timeout=50)
    def design() -> str:
        order.append("view")
        return "design"

    app.register_blueprint(project)
    client = app.test_client()
    client.get("/design")
    client.get("/design")
    assert order == ["before app", "before blueprint", "view", "before app", "before blueprint"]


def test_app_auth_hook_still_blocks_after_an_authenticated_user_filled_the_cache() -> None:
    app = Flask(__name__)
    cache = Cache(app)
    project = Blueprint("project", __name__)
    runs = []

    @project.route("/report")
    @cache.cached(timeout=50)
    def report() -> tuple[str, dict[str, str]]:
        runs.append(1)
        # The same for every authenticated user, so a shared cache may keep
        # it for requests with Authorization (RFC 9111, section 3.5).
        return "secret report", {"Cache-Control": "public"}

    app.register_blueprint(project)

    # Registered after the cached view, as an auth hook often is.
    @app.before_request
    def require_login() -> None:
        if request.headers.get("Authorization") != "Bearer good":
            abort(401)

    client = app.test_client()
    ok = client.get("/report", headers={"Authorization": "Bearer good"})
    assert (ok.status_code, ok.text) == (200, "secret report")
    assert client.get("/report", headers={"Authorization": "Bearer good"}).text == "secret report"
    assert len(runs) == 1
    denied = client.get("/report")
    assert denied.status_code == 401
    assert "secret report" not in denied.text
