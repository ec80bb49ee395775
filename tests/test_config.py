"""Configuration: CACHE_* keys, CACHE_URL, and errors at init_app."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache, ConfigurationError, MemoryStore, NullStore
from flask_stash.stores import BaseStore


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def store_of(cache: Cache, app: Flask) -> BaseStore:
    return cache.state(app).store


def test_no_config_gives_the_memory_store() -> None:
    app = make_app()
    cache = Cache(app)
    assert type(store_of(cache, app)) is MemoryStore


@pytest.mark.parametrize(
    "name", ["simple", "memory", "SimpleCache", "MEMORY", "flask_caching.backends.SimpleCache"]
)
def test_memory_store_names(name: str) -> None:
    app = make_app(CACHE_TYPE=name)
    assert type(store_of(Cache(app), app)) is MemoryStore


@pytest.mark.parametrize("name", ["null", "NullCache"])
def test_null_store_names(name: str) -> None:
    app = make_app(CACHE_TYPE=name)
    assert type(store_of(Cache(app), app)) is NullStore


class CustomStore(MemoryStore):
    """A user's own store, named by import path."""


@pytest.mark.parametrize("path", [f"{__name__}:CustomStore", f"{__name__}.CustomStore"])
def test_import_path_to_own_store(path: str) -> None:
    app = make_app(CACHE_TYPE=path)
    assert type(store_of(Cache(app), app)) is CustomStore


def test_store_class_itself_is_accepted() -> None:
    app = make_app(CACHE_TYPE=CustomStore)
    assert type(store_of(Cache(app), app)) is CustomStore


def test_unknown_type_fails_at_init_app_and_lists_accepted_names() -> None:
    app = make_app(CACHE_TYPE="memcache")
    with pytest.raises(ConfigurationError) as info:
        Cache(app)
    message = str(info.value)
    assert "'memcache'" in message
    for accepted in ("simple", "memcached", "saslmemcached", "redis", "filesystem", "RedisCache"):
        assert accepted in message


def test_import_path_that_is_not_a_store_fails() -> None:
    app = make_app(CACHE_TYPE="collections:OrderedDict")
    with pytest.raises(ConfigurationError, match=r"subclass of flask_stash\.stores\.BaseStore"):
        Cache(app)


def test_import_path_that_does_not_import_fails() -> None:
    app = make_app(CACHE_TYPE="no_such_module_here:Store")
    with pytest.raises(ConfigurationError, match="could not be imported"):
        Cache(app)


@pytest.mark.parametrize("url", ["memory://", "simple://"])
def test_memory_url(url: str) -> None:
    app = make_app(CACHE_URL=url)
    assert type(store_of(Cache(app), app)) is MemoryStore


@pytest.mark.parametrize(
    "url", ["localhost:11211", "mongodb://db", "memcached//h", "redis://h:notaport", "", "://x"]
)
def test_malformed_url_fails_with_accepted_schemes(url: str) -> None:
    app = make_app(CACHE_URL=url)
    with pytest.raises(ConfigurationError) as info:
        Cache(app)
    assert "CACHE_URL" in str(info.value)


def test_unknown_scheme_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache(make_app(CACHE_URL="mongodb://db"))
    for scheme in ("memory://", "memcached://", "redis://", "file://"):
        assert scheme in str(info.value)


def test_type_and_url_naming_different_stores_fail() -> None:
    with pytest.raises(ConfigurationError, match="set only one"):
        Cache(make_app(CACHE_TYPE="null", CACHE_URL="memory://"))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("CACHE_DEFAULT_TIMEOUT", -1, "CACHE_DEFAULT_TIMEOUT must be a whole number"),
        ("CACHE_DEFAULT_TIMEOUT", "300", "CACHE_DEFAULT_TIMEOUT must be a whole number"),
        ("CACHE_THRESHOLD", 0, "CACHE_THRESHOLD must be a whole number of at least 1"),
        ("CACHE_KEY_PREFIX", 5, "CACHE_KEY_PREFIX must be a string"),
        ("CACHE_OPTIONS", ["x"], "CACHE_OPTIONS must be a dict"),
        ("CACHE_OPTIONS", {"no_such_option": 1}, "MemoryStore could not be configured"),
        ("CACHE_RETRY_INTERVAL", -2, "CACHE_RETRY_INTERVAL must be a number"),
    ],
)
def test_bad_values_fail_at_init_app(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        Cache(make_app(**{key: value}))


def test_config_from_a_config_class() -> None:
    class Development:
        CACHE_TYPE = "simple"
        CACHE_DEFAULT_TIMEOUT = 50
        CACHE_KEY_PREFIX = "dev:"
        CACHE_THRESHOLD = 7

    app = Flask(__name__)
    app.config.from_object(Development)
    store = store_of(Cache(app), app)
    assert isinstance(store, MemoryStore)
    assert store.default_timeout == 50
    assert store.key_prefix == "dev:"
    assert store.threshold == 7


def test_options_and_max_bytes_reach_the_store() -> None:
    app = make_app(CACHE_MAX_BYTES=4096, CACHE_OPTIONS={"threshold": 3})
    store = store_of(Cache(app), app)
    assert isinstance(store, MemoryStore)
    assert (store.max_bytes, store.threshold) == (4096, 3)


def test_constructor_config_overrides_app_config() -> None:
    app = make_app(CACHE_TYPE="null")
    assert type(store_of(Cache(app, config={"CACHE_TYPE": "simple"}), app)) is MemoryStore


def test_init_app_config_overrides_constructor_config() -> None:
    app = make_app()
    cache = Cache(config={"CACHE_TYPE": "simple"})
    cache.init_app(app, config={"CACHE_TYPE": "null"})
    assert type(store_of(cache, app)) is NullStore


def test_state_lives_in_app_extensions() -> None:
    app = make_app()
    cache = Cache(app)
    assert app.extensions["flask_stash"][cache] is cache.state(app)
    # Where code written for Flask-Caching looks for the store:
    assert app.extensions["cache"][cache] is cache.state(app).store
    assert cache.app is app


def test_one_cache_on_several_apps_keeps_them_apart() -> None:
    first, second = make_app(), make_app()
    cache = Cache()
    cache.init_app(first)
    cache.init_app(second)
    with first.app_context():
        cache.set("k", "first")
    with second.app_context():
        assert cache.get("k") is None
        cache.set("k", "second")
    with first.app_context():
        assert cache.get("k") == "first"


def test_several_caches_on_one_app() -> None:
    app = make_app()
    pages = Cache(app, config={"CACHE_TYPE": "simple"})
    nothing = Cache(app, config={"CACHE_TYPE": "null"})
    with app.app_context():
        pages.set("k", "v")
        nothing.set("k", "v")
        assert pages.get("k") == "v"
        assert nothing.get("k") is None


def test_use_without_init_app_says_what_to_do() -> None:
    app = make_app()
    cache = Cache()
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        cache.get("k")


def test_use_outside_app_context_with_one_app_uses_it() -> None:
    app = make_app()
    cache = Cache(app)
    assert cache.set("k", "v")
    with app.app_context():
        assert cache.get("k") == "v"


def test_use_outside_app_context_with_several_apps_says_what_to_do() -> None:
    cache = Cache()
    apps = [make_app(), make_app()]  # held: the Cache keeps only weak references
    for app in apps:
        cache.init_app(app)
    with pytest.raises(RuntimeError, match="application context"):
        cache.get("k")


def test_lookalike_memcached_keys_are_pointed_out(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(MEMCACHED_HOST="127.0.0.1:11299", CACHE_TYPE="memcached")
    cache = Cache(app)
    assert "MEMCACHED_HOST is read as CACHE_MEMCACHED_SERVERS" in caplog.text
    assert "127.0.0.1:11299" in cache.state(app).store.describe()
