"""What code written for Flask-Caching relies on, checked on Flask-Stash itself."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
from flask import Flask, abort, render_template, render_template_string, request
from flask.views import MethodView

import flask_stash
from flask_stash import Cache, cache_memoize_hit, cache_memoize_miss, cache_view_hit
from flask_stash.stores import MemoryStore

from .servers import ServerProcess


def move_clock(cache: Cache, seconds: float) -> None:
    state = cache.state()
    now = state.clock()
    state.clock = lambda: now + seconds


# -- @cached on plain functions inside a request ---------------------------------


def test_plain_function_in_a_request_caches_its_value_not_a_page(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @cache.cached(cache_none=True)
    def nothing(n: int) -> None:
        calls["nothing"] += 1

    @cache.cached(key_prefix="numbers")
    def numbers() -> dict[str, int]:
        calls["numbers"] += 1
        return {"a": 1}

    @app.route("/")
    def index() -> str:
        return f"{nothing(1)} {numbers()['a']}"

    client = app.test_client()
    assert client.get("/").text == client.get("/").text == "None 1"
    assert calls == {"nothing": 1, "numbers": 1}


def test_class_based_view_is_cached_as_a_page(app: Flask, cache: Cache) -> None:
    seen: list[int] = []

    class Things(MethodView):
        @cache.cached(timeout=60)
        def get(self) -> tuple[str, int, dict[str, str]]:
            seen.append(1)
            return "things", 200, {"Set-Cookie": "a=1"}

    app.add_url_rule("/things", view_func=Things.as_view("things"))
    client = app.test_client()
    client.get("/things")
    client.get("/things")
    # A page rule applied (Set-Cookie is never stored): it is a page, not a value.
    assert seen == [1, 1]


# -- HTTP exceptions ---------------------------------------------------------------


def test_abort_with_a_cacheable_status_is_cached_through_the_error_handler(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.errorhandler(404)
    def missing(error: Exception) -> tuple[str, int]:
        return "handled", 404

    @app.route("/gone")
    @cache.cached(timeout=60)
    def gone() -> str:
        calls["gone"] += 1
        abort(404)

    client = app.test_client()
    first, second = client.get("/gone"), client.get("/gone")
    assert (first.status_code, first.text) == (second.status_code, second.text) == (404, "handled")
    assert calls["gone"] == 1


def test_abort_503_is_not_cached_and_the_filter_sees_its_response(app: Flask, cache: Cache) -> None:
    seen: list[int] = []

    def only_ok(response: Any) -> bool:
        seen.append(response.status_code)
        return True

    @app.route("/down")
    @cache.cached(timeout=60, response_filter=only_ok)
    def down() -> str:
        abort(503)

    client = app.test_client()
    assert [client.get("/down").status_code for _ in range(2)] == [503, 503]
    assert seen == [503, 503]


# -- arguments -------------------------------------------------------------------------


def test_is_stale_recomputes_a_hit(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    stale = {"now": False}

    @app.route("/")
    @cache.cached(timeout=60, is_stale=lambda response: stale["now"])
    def index() -> str:
        calls["index"] += 1
        return str(calls["index"])

    @cache.memoize(timeout=60, is_stale=lambda value, n: value < n)
    def grow(n: int) -> int:
        calls["grow"] += 1
        return calls["grow"]

    client = app.test_client()
    assert client.get("/").text == client.get("/").text == "1"
    stale["now"] = True
    assert client.get("/").text == "2"
    with app.app_context():
        assert grow(2) == 1  # a miss: computed
        assert grow(2) == 2  # 1 < 2: stale, recomputed
        assert grow(2) == 2  # 2 is not < 2: a hit
    assert calls["grow"] == 2


def test_forced_update_and_unless_get_the_arguments_when_they_take_them(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @cache.memoize(forced_update=lambda n: n == 2, unless=lambda f, n: n == 3)
    def f(n: int) -> int:
        calls[str(n)] += 1
        return n

    with app.app_context():
        for n in (1, 2, 3):
            f(n), f(n)
    assert calls == {"1": 1, "2": 2, "3": 2}


def test_timedelta_timeouts(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(timeout=datetime.timedelta(minutes=1))
    def f() -> int:
        calls["f"] += 1
        return 1

    with app.app_context():
        f()
        move_clock(cache, 59)
        f()
        move_clock(cache, 61)
        f()
        assert cache.set("k", "v", timeout=datetime.timedelta(seconds=30))
        assert cache.get("k") == "v"
    assert calls["f"] == 2


def test_response_hit_indication(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached(timeout=60, response_hit_indication=True)
    def index() -> str:
        return "hi"

    client = app.test_client()
    assert client.get("/").headers.get("hit_cache") is None
    assert client.get("/").headers.get("hit_cache") == "True"


# -- keys outside a request, and delete_cached -------------------------------------------


def test_make_cache_key_outside_a_request_matches_the_requests_key(
    app: Flask, cache: Cache
) -> None:
    @app.route("/works")
    @cache.cached()
    def works() -> str:
        return "w"

    @app.route("/user/<name>")
    @cache.cached()
    def user(name: str) -> str:
        return name

    works_: Any = works
    user_: Any = user
    with app.test_request_context("/works?b=2&a=1"):
        in_request = works_.make_cache_key()
    with app.test_request_context("/user/bob"):
        in_request_user = user_.make_cache_key()
    app.config["SERVER_NAME"] = "localhost"
    with app.app_context():
        assert works_.make_cache_key(path="/works", query_args={"a": 1, "b": 2}) == in_request
        assert works_.make_cache_key(path="/works", query_args=[("a", "1"), ("b", "2")]) == (
            in_request
        )
        assert user_.make_cache_key(name="bob") == in_request_user


def test_delete_cached_drops_one_url_only(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/works")
    @cache.cached()
    def works() -> str:
        calls[request.query_string.decode()] += 1
        return "w"

    client = app.test_client()
    for query in ("limit=15", "limit=20", "limit=15", "limit=20"):
        client.get(f"/works?{query}")
    assert cache.delete_cached(works, "/works", "limit=20")
    client.get("/works?limit=15")
    client.get("/works?limit=20")
    assert calls == {"limit=15": 1, "limit=20": 2}


def test_a_custom_key_caches_a_post(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/search", methods=["POST"])
    @cache.cached(make_cache_key=lambda: "search:" + request.get_data(as_text=True))
    def search() -> str:
        calls[request.get_data(as_text=True)] += 1
        return "found"

    client = app.test_client()
    for body in ("a", "a", "b"):
        client.post("/search", data=body)
    assert calls == {"a": 1, "b": 1}


# -- delete_memoized -------------------------------------------------------------------


class Adder:
    def __init__(self, base: int) -> None:
        self.base = base


def test_delete_memoized_of_a_bound_method_drops_that_instances_entries(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    class Counted(Adder):
        @cache.memoize()
        def add(self, n: int) -> int:
            calls[f"{self.base}+{n}"] += 1
            return self.base + n

    one, two = Counted(1), Counted(2)
    with app.app_context():
        one.add(3), two.add(3)
        cache.delete_memoized(one.add)
        one.add(3), two.add(3)
        assert calls == {"1+3": 2, "2+3": 1}
        cache.delete_memoized(one.add, 3)  # the bound method supplies self
        cache.delete_memoized(Counted.add, two, 3)  # through the class, self is given
        one.add(3), two.add(3)
        assert calls == {"1+3": 3, "2+3": 2}
        cache.delete_memoized(one.add, n=3)
        one.add(3)
        assert calls["1+3"] == 4
        with pytest.raises(ValueError, match="missing a required argument"):
            cache.delete_memoized(Counted.add, n=3)
        cache.delete_memoized(Counted.add)  # every instance
        one.add(3), two.add(3)
        assert calls == {"1+3": 5, "2+3": 3}


# -- source_check ------------------------------------------------------------------------


def test_source_check_keys_are_the_same_in_every_process(tmp_path: Path) -> None:
    module = tmp_path / "keyed.py"
    module.write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from flask_stash import Cache

            app = Flask(__name__)
            cache = Cache(app)

            @cache.memoize(source_check=True)
            def f(x):
                inner = [lambda y: y for _ in range(2)]
                return {"a", "b", "c"} & {x} or inner

            # Without source (as in a REPL), the compiled code is hashed instead.
            namespace = {}
            exec(compile(
                "def g(x):\\n    return [lambda y: y, {'a', 'b', 'c'}]",
                "<no file>",
                "exec",
            ), namespace)
            g = cache.memoize(source_check=True)(namespace["g"])

            print(f.make_cache_key(1), g.make_cache_key(1))
            """
        )
    )

    def key(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, str(module)], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert key("1") == key("2") == key("3")


# -- subclasses, signals, names ------------------------------------------------------------


class RecordingCache(Cache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[str] = []
        super().__init__(*args, **kwargs)

    def get(self, key: str) -> Any:
        self.calls.append("get")
        return super().get(key)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        self.calls.append("set")
        return super().set(key, value, timeout)


def test_subclass_sees_the_decorators_store_calls(app: Flask) -> None:
    cache = RecordingCache(app)

    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "hi"

    @cache.memoize()
    def f(n: int) -> int:
        return n

    client = app.test_client()
    client.get("/")
    assert cache.calls == ["get", "set"]
    cache.calls.clear()
    assert client.get("/").text == "hi"
    assert cache.calls == ["get"]
    cache.calls.clear()
    with app.app_context():
        assert f(1) == f(1) == 1
        key = f.make_cache_key(1)  # type: ignore[attr-defined]
        assert cache.get(key) == 1  # the low-level API still unwraps
    assert cache.calls == ["get", "set", "get", "get"]


def test_no_override_means_no_routing(app: Flask, cache: Cache) -> None:
    state = cache.state()
    assert state.entries is state.guard


def test_flask_caching_signals_with_their_payloads(app: Flask) -> None:
    app.config["CACHE_ENABLE_SIGNALS"] = True
    cache = Cache(app)
    seen: list[tuple[str, dict[str, Any]]] = []

    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "hi"

    @cache.memoize()
    def add(a: int, b: int = 0) -> int:
        return a + b

    def recorder(name: str) -> Any:
        def receive(sender: object, **payload: Any) -> None:
            seen.append((name, payload))

        return receive

    hit, mhit, mmiss = recorder("view hit"), recorder("memo hit"), recorder("memo miss")
    with (
        cache_view_hit.connected_to(hit),
        cache_memoize_hit.connected_to(mhit),
        cache_memoize_miss.connected_to(mmiss),
    ):
        app.test_client().get("/")
        app.test_client().get("/")
        with app.app_context():
            add(1, b=2), add(1, b=2)
    names = [name for name, _ in seen]
    assert names == ["view hit", "memo miss", "memo hit"]
    assert seen[0][1]["cache"] is cache
    assert seen[0][1]["args"] == ()
    assert seen[2][1]["f"] is add.uncached  # type: ignore[attr-defined]
    assert (seen[2][1]["args"], seen[2][1]["kwargs"]) == ((1,), {"b": 2})
    assert seen[1][1]["cache_key"] == seen[2][1]["cache_key"]


def test_flask_caching_names_are_importable() -> None:
    for name in (
        "SUPPORTED_HASH_FUNCTIONS",
        "function_namespace",
        "make_template_fragment_key",
        "cache_view_hit",
        "cache_view_miss",
        "cache_memoize_hit",
        "cache_memoize_miss",
    ):
        assert name in flask_stash.__all__
        assert hasattr(flask_stash, name)


def test_config_by_position_and_no_jinja_extension() -> None:
    app = Flask(__name__)
    cache = Cache(app, {"CACHE_KEY_PREFIX": "p:"})
    assert cache.state().settings.key_prefix == "p:"
    other = Flask(__name__)
    Cache(other, False, {"CACHE_KEY_PREFIX": "q:"})
    with other.app_context(), pytest.raises(jinja2.TemplateSyntaxError):
        render_template_string("{% cache 10 %}x{% endcache %}")


def test_a_factory_builds_the_store(app: Flask) -> None:
    app.config["CACHE_TYPE"] = f"{__name__}.make_store"
    cache = Cache(app)
    assert type(cache.state().store) is Built
    assert cache.set("k", 1)
    assert cache.get("k") == 1


class Built(MemoryStore):
    pass


def make_store(app: Flask, config: dict[str, Any], args: list[Any], options: Any) -> Built:
    return Built(*args, **options)


# -- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def redis_cache(redis_server: ServerProcess) -> Iterator[Cache]:
    pytest.importorskip("redis")
    app = Flask(__name__)
    app.config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_PORT=redis_server.port)
    cache = Cache(app)
    yield cache
    cache.state(app).store.close()


def test_unlink_and_the_raw_client_on_redis(redis_cache: Cache) -> None:
    assert redis_cache.set("a", "x")
    assert redis_cache.set("b", "y")
    assert sorted(redis_cache.unlink("a", "b", "never")) == ["a", "b"]
    assert redis_cache.get("a") is None
    raw: Any = redis_cache.cache
    assert raw._write_client.ping() is True


def test_low_level_get_of_a_page_gives_what_the_view_returned(app: Flask, cache: Cache) -> None:
    @app.route("/text")
    @cache.cached()
    def text() -> str:
        return "plain"

    @app.route("/made")
    @cache.cached()
    def made() -> tuple[str, int, dict[str, str]]:
        return "made", 203, {"X-Kind": "made"}

    client = app.test_client()
    client.get("/text")
    client.get("/made")
    text_: Any = text
    made_: Any = made
    with app.test_request_context("/text"):
        assert cache.get(text_.make_cache_key()) == "plain"
    with app.test_request_context("/made"):
        page = cache.get(made_.make_cache_key())
    assert (page.status_code, page.get_data(as_text=True)) == (203, "made")
    assert page.headers["X-Kind"] == "made"


def test_unnamed_fragments_of_two_templates_never_share(app: Flask, cache: Cache) -> None:
    fragment = "{% cache 60 %}{{ v }}{% endcache %}"
    app.jinja_loader = jinja2.DictLoader({"a.html": fragment, "b.html": fragment})
    with app.test_request_context():
        assert render_template("a.html", v="A") == "A"
        assert render_template("b.html", v="B") == "B"
        assert render_template("a.html", v="changed") == "A"
        assert cache.get(flask_stash.make_template_fragment_key("a.html:1")) == "A"
        # From a string there is no template name: Flask-Caching's name.
        assert render_template_string(fragment, v="S") == "S"
        assert cache.get(flask_stash.make_template_fragment_key("None1")) == "S"
