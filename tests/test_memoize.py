"""@cache.memoize: argument binding, methods, deletion and arguments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask(__name__)
    with app.app_context():
        yield app


def test_equivalent_calls_share_one_entry(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def add(a: int, b: int, c: int = 3) -> int:
        calls["add"] += 1
        return a + b + c

    assert add(1, 2) == 6
    assert add(1, b=2) == 6
    assert add(a=1, b=2) == 6
    assert add(1, 2, 3) == 6
    assert add(b=2, a=1, c=3) == 6
    assert calls["add"] == 1
    assert add(1, 2, 4) == 7
    assert calls["add"] == 2


def test_kwargs_and_varargs(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def collect(*args: int, **kwargs: int) -> int:
        calls["collect"] += 1
        return sum(args) + sum(kwargs.values())

    assert collect(1, 2, x=1, y=2) == 6
    assert collect(1, 2, y=2, x=1) == 6
    assert calls["collect"] == 1
    assert collect(2, 1, x=1, y=2) == 6
    assert calls["collect"] == 2


def test_returned_value_is_a_copy(cache: Cache) -> None:
    @cache.memoize()
    def items() -> list[int]:
        return [1, 2]

    items().append(3)
    assert items() == [1, 2]


class Shelf:
    """A plain class: default repr, so keyed by class and attributes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0


def test_methods_are_keyed_by_instance_state_not_address(cache: Cache) -> None:
    counter: Counter[str] = Counter()

    class Library(Shelf):
        @cache.memoize()
        def books(self, genre: str) -> str:
            counter[self.name] += 1
            return f"{self.name}:{genre}"

    first, twin, other = Library("north"), Library("north"), Library("south")
    books: Any = Library.books
    assert "0x" not in books.make_cache_key(first, "poetry")
    assert books.make_cache_key(first, "poetry") == books.make_cache_key(twin, "poetry")
    assert first.books("poetry") == "north:poetry"
    assert twin.books("poetry") == "north:poetry"
    assert other.books("poetry") == "south:poetry"
    assert counter == {"north": 1, "south": 1}


def test_caching_id_names_an_instance(cache: Cache, calls: Counter[str]) -> None:
    class Account:
        def __init__(self, ident: int, noise: object) -> None:
            self.ident = ident
            self.noise = noise

        def __caching_id__(self) -> str:
            return f"account-{self.ident}"

        @cache.memoize()
        def balance(self) -> int:
            calls["balance"] += 1
            return self.ident * 10

    assert Account(1, object()).balance() == 10
    assert Account(1, object()).balance() == 10
    assert calls["balance"] == 1


def test_classmethods(cache: Cache, calls: Counter[str]) -> None:
    class Catalog:
        @classmethod
        @cache.memoize()
        def size(cls, scale: int) -> int:
            calls[cls.__name__] += 1
            return scale * 2

    class Bigger(Catalog):
        pass

    assert Catalog.size(2) == 4
    assert Catalog.size(2) == 4
    assert Bigger.size(2) == 4
    assert calls == {"Catalog": 1, "Bigger": 1}


def test_delete_memoized_all_and_one(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize()
    def square(x: int) -> int:
        calls[str(x)] += 1
        return x * x

    square(2), square(3)
    cache.delete_memoized(square, 2)
    square(2), square(3)
    assert calls == {"2": 2, "3": 1}
    cache.delete_memoized(square)
    square(2), square(3)
    assert calls == {"2": 3, "3": 2}


def test_delete_memoized_with_keyword_form_of_the_same_call(
    cache: Cache, calls: Counter[str]
) -> None:
    @cache.memoize()
    def power(base: int, exp: int = 2) -> int:
        calls["power"] += 1
        return int(base**exp)

    power(3)
    cache.delete_memoized(power, base=3, exp=2)
    power(3)
    assert calls["power"] == 2


def test_delete_memoized_of_a_bound_method(cache: Cache, calls: Counter[str]) -> None:
    class Counterpart:
        def __init__(self, name: str) -> None:
            self.name = name

        @cache.memoize()
        def shout(self, word: str) -> str:
            calls[word] += 1
            return word.upper()

    obj = Counterpart("a")
    obj.shout("hi"), obj.shout("yo")
    cache.delete_memoized(obj.shout, "hi")
    obj.shout("hi"), obj.shout("yo")
    assert calls == {"hi": 2, "yo": 1}


def test_delete_memoized_of_an_undecorated_function_warns_and_returns(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    @cache.cached(key_prefix="page")
    def page() -> str:
        return "p"

    assert cache.delete_memoized(len) is False
    assert cache.delete_memoized(page) is False
    assert cache.delete_memoized_verhash(page) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3
    assert all("not decorated with @cache.memoize" in message for message in warnings)


def test_args_to_ignore(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(args_to_ignore=["request_id"])
    def lookup(item: int, request_id: str) -> int:
        calls["lookup"] += 1
        return item

    lookup(1, "r1"), lookup(1, "r2")
    assert calls["lookup"] == 1


def test_make_name(cache: Cache) -> None:
    @cache.memoize(make_name=lambda name: "renamed")
    def f(x: int) -> int:
        return x

    wrapped: Any = f
    assert wrapped.make_cache_key(1).startswith("memoize:renamed:")


def test_cache_none(cache: Cache, calls: Counter[str]) -> None:
    @cache.memoize(cache_none=True)
    def nothing(x: int) -> None:
        calls["cached"] += 1

    @cache.memoize()
    def nothing_uncached(x: int) -> None:
        calls["uncached"] += 1

    for _ in range(3):
        nothing(1)
        nothing_uncached(1)
    assert calls == {"cached": 1, "uncached": 3}


def test_unless_forced_update_and_response_filter(cache: Cache, calls: Counter[str]) -> None:
    state = {"skip": False, "force": False}

    @cache.memoize(
        unless=lambda: state["skip"],
        forced_update=lambda: state["force"],
        response_filter=lambda rv: rv != "bad",
    )
    def value(x: str) -> str:
        calls[x] += 1
        return x

    value("ok"), value("ok")
    assert calls["ok"] == 1
    state["skip"] = True
    value("ok")
    assert calls["ok"] == 2
    state["skip"], state["force"] = False, True
    value("ok")
    assert calls["ok"] == 3
    state["force"] = False
    value("bad"), value("bad")
    assert calls["bad"] == 2


def test_decorated_function_exposes_helpers(cache: Cache, calls: Counter[str]) -> None:
    def double(x: int) -> int:
        calls["double"] += 1
        return 2 * x

    decorated: Any = cache.memoize(timeout=9)(double)
    assert decorated.uncached is double
    assert decorated.cache_timeout == 9
    assert decorated.make_cache_key(1) == decorated.make_cache_key(x=1)
    decorated(1)
    decorated.delete_memoized()
    decorated(1)
    assert calls["double"] == 2


def test_source_check_separates_versions_of_code(cache: Cache) -> None:
    def version_one(x: int) -> int:
        return x

    def version_two(x: int) -> int:
        return x + 1

    one: Any = cache.memoize(make_name=lambda _: "same", source_check=True)(version_one)
    two: Any = cache.memoize(make_name=lambda _: "same", source_check=True)(version_two)
    assert one(1) == 1
    assert two(1) == 2


def test_invalidation_is_seen_by_another_cache_on_the_same_store(app: Flask) -> None:
    from flask_stash.stores import MemoryStore

    shared = MemoryStore()

    class SharedStore(MemoryStore):
        @classmethod
        def from_config(cls, config: Any) -> MemoryStore:
            return shared

    first, second = (
        Cache(app, config={"CACHE_TYPE": SharedStore}),
        Cache(app, config={"CACHE_TYPE": SharedStore}),
    )
    runs: Counter[str] = Counter()

    def compute(x: int) -> int:
        runs["compute"] += 1
        return x

    on_first: Any = first.memoize()(compute)
    on_second: Any = second.memoize()(compute)
    on_first(1)
    on_second(1)
    assert runs["compute"] == 1
    second.delete_memoized(on_second)
    on_first(1)
    assert runs["compute"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": -5}, ValueError),
        ({"unless": "no"}, TypeError),
        ({"make_name": 3}, TypeError),
        ({"args_to_ignore": "request_id"}, TypeError),
    ],
)
def test_bad_arguments_raise_when_applied(
    cache: Cache, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        cache.memoize(**kwargs)


def test_works_outside_an_app_context_with_one_app(calls: Counter[str]) -> None:
    app = Flask(__name__)
    cache = Cache(app)

    @cache.memoize()
    def f(n: int) -> int:
        calls["f"] += 1
        return n

    assert f(1) == f(1) == 1
    assert calls["f"] == 1
    assert cache.delete_memoized(f, 1)
    assert f(1) == 1
    assert calls["f"] == 2


def test_several_apps_and_no_context_asks_for_one() -> None:
    cache = Cache()
    apps = [Flask(__name__), Flask(__name__)]  # held: the Cache keeps only weak references
    for app in apps:
        cache.init_app(app)

    @cache.memoize()
    def f() -> int:
        return 1

    with pytest.raises(RuntimeError, match=r"push one with 'with app\.app_context"):
        f()
