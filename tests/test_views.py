"""@cache.cached on views: keys, methods, attributes, hooks and arguments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, request, stream_with_context

from flask_stash import Cache
from flask_stash.entries import FrozenResponse

from .plugins.memory import FakeClock


def test_query_string_is_part_of_the_key(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/")
    @cache.cached(timeout=50)
    def index() -> str:
        calls["index"] += 1
        return f"hello {request.args.get('name')}"

    client = app.test_client()
    assert client.get("/?name=alice").text == "hello alice"
    assert client.get("/?name=bob").text == "hello bob"
    assert client.get("/?name=alice").text == "hello alice"
    assert calls["index"] == 2


def test_parameter_order_does_not_split_entries(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return request.query_string.decode()

    client = app.test_client()
    first = client.get("/?a=1&b=2").text
    assert client.get("/?b=2&a=1").text == first
    assert calls["index"] == 1


def test_repeated_values_keep_their_order(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return ",".join(request.args.getlist("tag"))

    client = app.test_client()
    assert client.get("/?tag=x&tag=y").text == "x,y"
    assert client.get("/?tag=y&tag=x").text == "y,x"
    assert calls["index"] == 2


def test_blank_value_differs_from_absent(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        return repr("debug" in request.args)

    client = app.test_client()
    assert client.get("/").text == "False"
    assert client.get("/?debug").text == "True"


def test_query_string_false_restores_path_only_keys(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached(query_string=False)
    def index() -> str:
        return f"hello {request.args.get('name')}"

    client = app.test_client()
    assert client.get("/?name=alice").text == "hello alice"
    assert client.get("/?name=bob").text == "hello alice"


def test_hosts_do_not_share_entries(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        return request.host

    client = app.test_client()
    assert client.get("/", headers={"Host": "a.example"}).text == "a.example"
    assert client.get("/", headers={"Host": "b.example"}).text == "b.example"


def test_only_get_and_head_are_cached(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/", methods=["GET", "HEAD", "POST"])
    @cache.cached()
    def index() -> str:
        calls[request.method] += 1
        return f"{request.method} {calls[request.method]}"

    client = app.test_client()
    assert client.post("/").text == "POST 1"
    assert client.post("/").text == "POST 2"
    assert client.get("/").text == "GET 1"
    assert client.get("/").text == "GET 1"
    head = client.head("/")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len("GET 1"))
    assert calls == {"POST": 2, "GET": 1}
    assert client.post("/").text == "POST 3"


def test_unless_without_arguments(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    bypass = {"on": True}

    @app.route("/")
    @cache.cached(unless=lambda: bypass["on"])
    def index() -> str:
        calls["index"] += 1
        return str(calls["index"])

    client = app.test_client()
    assert client.get("/").text == "1"
    assert client.get("/").text == "2"
    bypass["on"] = False
    assert client.get("/").text == "3"
    assert client.get("/").text == "3"


def test_unless_with_function_and_arguments(app: Flask, cache: Cache) -> None:
    seen: list[tuple[Any, ...]] = []

    def unless(f: Any, *args: Any, **kwargs: Any) -> bool:
        seen.append((f.__name__, args, kwargs))
        return False

    @app.route("/items/<int:item>")
    @cache.cached(unless=unless)
    def item(item: int) -> str:
        return str(item)

    app.test_client().get("/items/7")
    assert seen == [("item", (), {"item": 7})]


def test_decorated_view_exposes_uncached_timeout_and_key(app: Flask, cache: Cache) -> None:
    def view() -> str:
        return "v"

    decorated: Any = cache.cached(timeout=42)(view)
    assert decorated.uncached is view
    assert decorated.cache_timeout == 42
    with app.test_request_context("/x?b=2&a=1", headers={"Host": "h.example"}):
        key = decorated.make_cache_key()
    assert "/x" in key
    assert "h.example" in key
    assert key.endswith("a=1&b=2")


def test_cache_timeout_attribute_is_read_on_each_store(app: Flask) -> None:
    clock = FakeClock()
    cache = Cache(app, config={"CACHE_OPTIONS": {"clock": clock}})
    calls: Counter[str] = Counter()

    @app.route("/")
    @cache.cached(timeout=100)
    def index() -> str:
        calls["index"] += 1
        return str(calls["index"])

    index_view: Any = app.view_functions["index"]
    index_view.cache_timeout = 5
    client = app.test_client()
    assert client.get("/").text == "1"
    clock.advance(4)
    assert client.get("/").text == "1"
    clock.advance(2)
    assert client.get("/").text == "2"


def test_blueprint_views_and_url_variables(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.route("/items/<int:item>")
    @cache.cached()
    def item(item: int) -> str:
        calls[str(item)] += 1
        return f"item {item}"

    app.register_blueprint(shop)
    client = app.test_client()
    assert client.get("/shop/items/1").text == "item 1"
    assert client.get("/shop/items/2").text == "item 2"
    assert client.get("/shop/items/1").text == "item 1"
    assert calls == {"1": 1, "2": 1}


def test_every_before_request_hook_runs_before_a_hit(app: Flask, cache: Cache) -> None:
    order: list[str] = []
    shop = Blueprint("shop", __name__)

    @app.before_request
    def app_hook() -> None:
        order.append("app")

    @shop.before_request
    def blueprint_hook() -> None:
        order.append("blueprint")

    @shop.route("/page")
    @cache.cached()
    def page() -> str:
        order.append("view")
        return "page"

    app.register_blueprint(shop)
    client = app.test_client()
    client.get("/page")
    client.get("/page")
    assert order == ["app", "blueprint", "view", "app", "blueprint"]


def test_response_objects_keep_status_and_headers(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        return Response("made", status=203, headers={"X-Made": "yes"}, mimetype="text/plain")

    client = app.test_client()
    client.get("/")
    hit = client.get("/")
    assert (hit.status_code, hit.text, hit.headers["X-Made"]) == (203, "made", "yes")
    assert hit.mimetype == "text/plain"
    assert calls["index"] == 1


def test_tuple_return_values_are_cached(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> tuple[str, int, dict[str, str]]:
        calls["index"] += 1
        return "gone", 404, {"X-Why": "moved"}

    client = app.test_client()
    client.get("/")
    hit = client.get("/")
    assert (hit.status_code, hit.text, hit.headers["X-Why"]) == (404, "gone", "moved")
    assert calls["index"] == 1


def test_forced_update_recomputes_and_stores(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    force = {"on": False}

    @app.route("/")
    @cache.cached(forced_update=lambda: force["on"])
    def index() -> str:
        calls["index"] += 1
        return str(calls["index"])

    client = app.test_client()
    assert client.get("/").text == "1"
    force["on"] = True
    assert client.get("/").text == "2"
    force["on"] = False
    assert client.get("/").text == "2"


def test_response_filter_decides_what_is_stored(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached(response_filter=lambda rv: "error" not in rv)
    def index() -> str:
        calls["index"] += 1
        return "error" if calls["index"] == 1 else "fine"

    client = app.test_client()
    assert client.get("/").text == "error"
    assert client.get("/").text == "fine"
    assert client.get("/").text == "fine"
    assert calls["index"] == 2
    with app.app_context():
        assert cache.stats.total.skips["response_filter"] == 1


def test_fixed_key_prefix_caches_a_plain_function(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @cache.cached(key_prefix="all_comments")
    def comments() -> list[str]:
        calls["comments"] += 1
        return ["a", "b"]

    with app.app_context():
        assert comments() == ["a", "b"]
        assert comments() == ["a", "b"]
        assert cache.get("all_comments") == ["a", "b"]
        cache.delete("all_comments")
        comments()
    assert calls["comments"] == 2


def test_callable_key_prefix_and_make_cache_key(app: Flask, cache: Cache) -> None:
    @app.route("/a")
    @cache.cached(key_prefix=lambda: "fixed-a")
    def a() -> str:
        return "a"

    @app.route("/b/<name>")
    @cache.cached(make_cache_key=lambda name: f"b-{name}")
    def b(name: str) -> str:
        return name

    client = app.test_client()
    client.get("/a")
    client.get("/b/zed")
    with app.app_context():
        for key, body in (("fixed-a", b"a"), ("b-zed", b"zed")):
            entry = cache.cache.get(key)  # the store holds the page itself
            assert type(entry) is FrozenResponse
            assert entry.body == body
            assert cache.get(key) == body.decode()  # what the view returned


def test_cache_none_for_plain_functions(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @cache.cached(key_prefix="nothing", cache_none=True)
    def nothing() -> None:
        calls["nothing"] += 1

    @cache.cached(key_prefix="nothing-uncached")
    def nothing_uncached() -> None:
        calls["uncached"] += 1

    with app.app_context():
        for _ in range(3):
            assert nothing() is None
            assert nothing_uncached() is None
    assert calls == {"nothing": 1, "uncached": 3}


def test_source_check_puts_code_in_the_key(app: Flask, cache: Cache) -> None:
    def one() -> str:
        return "one"

    def two() -> str:
        return "two"

    decorated_one: Any = cache.cached(key_prefix="same", source_check=True)(one)
    decorated_two: Any = cache.cached(key_prefix="same", source_check=True)(two)
    with app.app_context():
        assert decorated_one() == "one"
        assert decorated_two() == "two"
        assert decorated_one.make_cache_key() != decorated_two.make_cache_key()


def test_generator_result_is_consumed_and_cached(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @cache.cached(key_prefix="gen")
    def numbers() -> Iterator[int]:
        calls["numbers"] += 1
        return (n for n in range(3))

    @cache.cached(key_prefix="text")
    def text() -> Iterator[str]:
        calls["text"] += 1
        yield "<p>"
        yield "hi"

    # The cached function returns what was stored, not a generator.
    cached_numbers: Any = numbers
    cached_text: Any = text
    with app.app_context():
        assert cached_numbers() == [0, 1, 2]
        assert cached_numbers() == [0, 1, 2]
        assert cached_text() == "<p>hi"
        assert cached_text() == "<p>hi"
    assert calls == {"numbers": 1, "text": 1}


def test_streamed_response_is_served_not_cached(
    app: Flask, cache: Cache, calls: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    @app.route("/stream")
    @cache.cached()
    def stream() -> Response:
        calls["stream"] += 1

        def chunks() -> Iterator[str]:
            yield "a"
            yield "b"

        return Response(stream_with_context(chunks()))

    client = app.test_client()
    assert client.get("/stream").text == "ab"
    assert client.get("/stream").text == "ab"
    assert calls["stream"] == 2
    assert "stream" in caplog.text
    assert "streamed" in caplog.text


def test_lock_in_result_is_served_not_cached(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    import threading

    @cache.cached(key_prefix="lock")
    def make_lock() -> dict[str, Any]:
        calls["lock"] += 1
        return {"lock": threading.Lock()}

    with app.app_context():
        assert "lock" in make_lock()
        assert "lock" in make_lock()
    assert calls["lock"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": -1}, ValueError, "timeout must be 0"),
        ({"timeout": "50"}, TypeError, "timeout must be a number"),
        ({"unless": True}, TypeError, "unless must be a callable"),
        ({"forced_update": "yes"}, TypeError, "forced_update must be a callable"),
        ({"response_filter": 1}, TypeError, "response_filter must be a callable"),
        ({"make_cache_key": "k"}, TypeError, "make_cache_key must be a callable"),
        ({"key_prefix": 5}, TypeError, "key_prefix must be a string or a callable"),
    ],
)
def test_bad_arguments_raise_when_applied(
    cache: Cache, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        cache.cached(**kwargs)
