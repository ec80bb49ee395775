"""The ``{% cache %}`` template tag: rendered once, varied, and safe when the store fails."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from flask import Flask, render_template_string
from jinja2 import DictLoader, TemplateSyntaxError

from flask_stash import Cache, MemoryStore, make_template_fragment_key
from flask_stash.jinja import CacheExtension

from .servers import ServerProcess, servers_required


class RecordingStore(MemoryStore):
    """Remembers the timeout of every write."""

    timeouts: ClassVar[list[int | None]] = []

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        type(self).timeouts.append(timeout)
        return super().set(key, value, timeout)


class BrokenStore(MemoryStore):
    """Every read and write fails, as with a server that went away."""

    def get(self, key: str) -> Any:
        raise ConnectionRefusedError("store is down")

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        raise ConnectionRefusedError("store is down")


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.config["CACHE_TYPE"] = RecordingStore
    RecordingStore.timeouts = []
    Cache(app)
    return app


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


def render(app: Flask, source: str, **context: Any) -> str:
    with app.test_request_context("/"):
        return render_template_string(source, **context)


def counting(calls: Counter[str], name: str = "body") -> Callable[[], str]:
    def work() -> str:
        calls[name] += 1
        return f"{name} #{calls[name]}"

    return work


def test_fragment_is_rendered_once_then_served_from_the_cache(
    app: Flask, calls: Counter[str]
) -> None:
    source = 'before {% cache 60, "part" %}[{{ work() }}]{% endcache %} after {{ n }}'
    assert render(app, source, work=counting(calls), n=1) == "before [body #1] after 1"
    assert render(app, source, work=counting(calls), n=2) == "before [body #1] after 2"
    assert calls["body"] == 1
    stats = app.extensions["flask_stash"]
    counters = next(iter(stats.values())).stats.by_name["fragment:part"]
    assert (counters.hits, counters.misses, counters.stores) == (1, 1, 1)


def test_vary_values_split_the_entries(app: Flask, calls: Counter[str]) -> None:
    source = '{% cache 60, "user", user, lang %}{{ user }}/{{ lang }} {{ work() }}{% endcache %}'
    work = counting(calls)
    assert render(app, source, work=work, user=1, lang="en") == "1/en body #1"
    assert render(app, source, work=work, user=2, lang="en") == "2/en body #2"
    assert render(app, source, work=work, user=1, lang="fr") == "1/fr body #3"
    assert render(app, source, work=work, user=1, lang="en") == "1/en body #1"
    assert render(app, source, work=work, user=2, lang="en") == "2/en body #2"
    assert calls["body"] == 3


def test_names_split_the_entries_and_are_shared_across_templates(
    app: Flask, calls: Counter[str]
) -> None:
    work = counting(calls)
    assert render(app, '{% cache 60, "a" %}{{ work() }}{% endcache %}', work=work) == "body #1"
    assert render(app, '{% cache 60, "b" %}{{ work() }}{% endcache %}', work=work) == "body #2"
    other = 'elsewhere: {% cache 60, "a" %}{{ work() }}{% endcache %}'
    assert render(app, other, work=work) == "elsewhere: body #1"


def test_without_a_name_each_tag_has_its_own_entry(app: Flask, calls: Counter[str]) -> None:
    tags = "{% cache 60 %}{{ a() }}{% endcache %}\n{% cache 60 %}{{ b() }}{% endcache %}"
    app.jinja_loader = DictLoader({"page.html": tags})
    context = {"a": counting(calls, "a"), "b": counting(calls, "b")}
    with app.test_request_context("/"):
        first = app.jinja_env.get_template("page.html").render(**context)
        second = app.jinja_env.get_template("page.html").render(**context)
    assert first == second == "a #1\nb #1"
    assert calls == Counter(a=1, b=1)


def test_timeouts_none_means_the_default_and_numbers_pass_through(app: Flask) -> None:
    render(app, '{% cache None, "default" %}x{% endcache %}')
    render(app, '{% cache 5, "five" %}x{% endcache %}')
    render(app, '{% cache 0, "forever" %}x{% endcache %}')
    render(app, '{% cache 60 * 5, "expression" %}x{% endcache %}')
    assert RecordingStore.timeouts == [None, 5, 0, 300]


@pytest.mark.parametrize("timeout", ["-1", "'soon'", "True"])
def test_an_unusable_timeout_is_an_error(app: Flask, timeout: str) -> None:
    with pytest.raises(TypeError, match="timeout must be"):
        render(app, f'{{% cache {timeout}, "bad" %}}x{{% endcache %}}')


def test_del_drops_the_entry_and_renders_afresh(app: Flask, calls: Counter[str]) -> None:
    work = counting(calls)
    source = '{% cache 60, "part" %}{{ work() }}{% endcache %}'
    assert render(app, source, work=work) == "body #1"
    assert render(app, '{% cache "del", "part" %}{{ work() }}{% endcache %}', work=work) == (
        "body #2"
    )
    assert render(app, source, work=work) == "body #3"
    assert render(app, source, work=work) == "body #3"


def test_a_failing_store_renders_the_fragment_uncached(calls: Counter[str]) -> None:
    app = Flask(__name__)
    app.config.update(CACHE_TYPE=BrokenStore, CACHE_FAILURE_THRESHOLD=100)
    cache = Cache(app)
    work = counting(calls)
    source = 'a {% cache 60, "part" %}{{ work() }}{% endcache %} b'
    assert render(app, source, work=work) == "a body #1 b"
    assert render(app, source, work=work) == "a body #2 b"
    counters = cache.state(app).stats.by_name["fragment:part"]
    # The read fails; the write of the same render leaves the store alone.
    assert (counters.errors, counters.skips["store unavailable"]) == (2, 2)
    assert counters.hits == 0


def test_an_open_breaker_renders_uncached_without_touching_the_store(calls: Counter[str]) -> None:
    app = Flask(__name__)
    app.config.update(CACHE_TYPE=BrokenStore, CACHE_FAILURE_THRESHOLD=1, CACHE_RETRY_INTERVAL=60)
    cache = Cache(app)
    work = counting(calls)
    source = '{% cache 60, "part" %}{{ work() }}{% endcache %}'
    for n in range(1, 4):
        assert render(app, source, work=work) == f"body #{n}"
    counters = cache.state(app).stats.by_name["fragment:part"]
    assert counters.errors == 1
    assert counters.skips["store unavailable"] >= 2


def test_autoescaped_markup_is_escaped_exactly_once(app: Flask) -> None:
    source = '{% cache 60, "html" %}<p>{{ text }}</p>{% endcache %}'
    first = render(app, source, text="<b>&")
    second = render(app, source, text="ignored")
    assert first == second == "<p>&lt;b&gt;&amp;</p>"


def test_keys_suit_every_store() -> None:
    pattern = re.compile(r"[!-~]{1,200}")  # printable ASCII, no spaces, short
    cases: list[tuple[str, list[Any]]] = [
        ("sidebar", []),
        ("with spaces and ünïcödé", ["x y", 3]),
        ("x" * 1000, [{"a": [1, 2]}, None, "z" * 1000]),
        ("tab\tand\nnewline", [b"bytes"]),
    ]
    for name, vary in cases:
        key = make_template_fragment_key(name, vary)
        assert pattern.fullmatch(key), key
        assert key.startswith("fragment:")
    assert make_template_fragment_key("sidebar", [1, "a"]).startswith("fragment:sidebar:")
    assert make_template_fragment_key("sidebar") == make_template_fragment_key("sidebar", [])
    assert make_template_fragment_key("n", [1]) != make_template_fragment_key("n", ["1"])
    assert make_template_fragment_key("n", [{"a": 1, "b": 2}]) == make_template_fragment_key(
        "n", [{"b": 2, "a": 1}]
    )


def test_make_template_fragment_key_finds_the_entry(app: Flask, calls: Counter[str]) -> None:
    source = '{% cache 60, "card", 7 %}{{ work() }}{% endcache %}'
    render(app, source, work=counting(calls))
    cache = next(iter(app.extensions["flask_stash"]))
    with app.app_context():
        assert cache.get(make_template_fragment_key("card", [7])) == "body #1"
        assert cache.delete(make_template_fragment_key("card", vary_on=[7]))
    assert render(app, source, work=counting(calls)) == "body #2"


def test_the_first_cache_of_the_app_serves_the_tag(app: Flask) -> None:
    second = Cache(app, config={"CACHE_KEY_PREFIX": "second:"})
    render(app, '{% cache 60, "part" %}x{% endcache %}')
    first_state, second_state = list(app.extensions["flask_stash"].values())
    assert "fragment:part" in first_state.stats.by_name
    assert "fragment:part" not in second_state.stats.by_name
    assert second.state(app) is second_state


def test_registered_in_jinja_options_so_later_options_still_apply() -> None:
    app = Flask(__name__)
    Cache(app)
    app.jinja_options = {**app.jinja_options, "trim_blocks": True}
    assert app.jinja_env.trim_blocks
    assert CacheExtension.identifier in app.jinja_env.extensions


def test_added_to_an_environment_that_already_exists() -> None:
    app = Flask(__name__)
    environment = app.jinja_env
    Cache(app)
    Cache(app)
    assert app.jinja_env is environment
    assert CacheExtension.identifier in environment.extensions
    assert render(app, '{% cache 1, "p" %}ok{% endcache %}') == "ok"


def test_an_app_without_a_cache_has_no_tag() -> None:
    app = Flask(__name__)
    with pytest.raises(TemplateSyntaxError):
        render(app, '{% cache 60, "part" %}x{% endcache %}')


@pytest.fixture
def memcached_app(memcached_server: ServerProcess) -> Iterator[Flask]:
    if not servers_required():
        pytest.importorskip("pymemcache")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="jinja-tests",
        CACHE_TYPE="memcached",
        CACHE_MEMCACHED_SERVERS=[memcached_server.address],
        CACHE_KEY_PREFIX=f"{uuid.uuid4().hex[:8]}:",
    )
    cache = Cache(app)
    yield app
    cache.state(app).store.close()


def test_awkward_names_and_values_are_cached_on_memcached(
    memcached_app: Flask, calls: Counter[str]
) -> None:
    source = "{% cache 60, name, value %}{{ work() }}{% endcache %}"
    name = "a name with spaces, ünïcödé and " + "x" * 300
    work = counting(calls)
    assert render(memcached_app, source, work=work, name=name, value="v w") == "body #1"
    assert render(memcached_app, source, work=work, name=name, value="v w") == "body #1"
    assert render(memcached_app, source, work=work, name=name, value="other") == "body #2"
    state = next(iter(memcached_app.extensions["flask_stash"].values()))
    assert state.stats.total.errors == 0
