"""Configuration: CACHE_* keys, CACHE_URL, and errors at init_app."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache, ConfigurationError, MemoryStore, NullStore
from flask_stash.config import KNOWN_KEYS, ConfigWarning, load_settings
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


# -- types of values -----------------------------------------------------------

WHOLE = "a whole number of at least"
FLAG = 'True or False (or one of the strings "true"/"false", "yes"/"no", "on"/"off", "1"/"0")'
SERVERS = 'a list of "host:port" strings or (host, port) pairs (or one comma-separated string)'


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        # whole numbers: a bool, a float or a string of digits is not one
        ("CACHE_DEFAULT_TIMEOUT", True, f"{WHOLE} 0"),
        ("CACHE_THRESHOLD", "500", f"{WHOLE} 1"),
        ("CACHE_MAX_BYTES", 1.5, f"{WHOLE} 1"),
        ("CACHE_REDIS_PORT", "6379", f"{WHOLE} 1"),
        ("CACHE_MEMCACHED_RETRY_ATTEMPTS", -1, f"{WHOLE} 0"),
        # numbers
        ("CACHE_LOCK_WAIT", "ten", "a number of at least 0"),
        ("CACHE_RETRY_INTERVAL", float("nan"), "a number of at least 0"),
        ("CACHE_NEAR_TTL", False, "a number of at least 0"),
        ("CACHE_MEMCACHED_TIMEOUT", 0, "a number more than 0"),
        ("CACHE_REDIS_SOCKET_TIMEOUT", "0.5", "a number more than 0"),
        # flags
        ("CACHE_FAST_LANE", "maybe", FLAG),
        ("CACHE_SEND_CACHE_CONTROL", 2, FLAG),
        ("CACHE_HONOR_FRESHNESS", None, FLAG),
        ("CACHE_REDIS_ALLOW_FLUSH", "", FLAG),
        # strings, paths, choices
        ("CACHE_URL", 5, "a string"),
        ("CACHE_REDIS_HOST", ["localhost"], "a string"),
        ("CACHE_MEMCACHED_USERNAME", b"user", "a string"),
        ("CACHE_DIR", 5, "a string or a path (os.PathLike)"),
        ("CACHE_REDIS_MODE", "replicated", "one of 'standalone', 'sentinel', 'cluster'"),
        # server lists
        ("CACHE_MEMCACHED_SERVERS", [123], SERVERS),
        ("CACHE_MEMCACHED_SERVERS", {"host": 11211}, SERVERS),
        ("CACHE_MEMCACHED_SERVERS", [("127.0.0.1", "port")], SERVERS),
        ("CACHE_MEMCACHED_SERVERS", [("127.0.0.1", 11211, 0)], SERVERS),
        ("CACHE_REDIS_SENTINELS", 26379, SERVERS),
        ("CACHE_REDIS_CLUSTER", [("node", 70000)], SERVERS),
        # collections, callables, classes
        ("CACHE_OPTIONS", "threshold=3", "a dict of keyword arguments for the store"),
        ("CACHE_ARGS", "x", "a list"),
        ("CACHE_HASH_METHOD", "sha256", "a callable, such as hashlib.sha256"),
        ("CACHE_CACHEABLE_STATUSES", 200, "a collection of HTTP status codes"),
        ("CACHE_CACHEABLE_STATUSES", [200, "404"], "a collection of HTTP status codes"),
        ("CACHE_TYPE", 5, "a store name, an import path or a store class"),
        ("CACHE_SECRET_KEY", 12345, "a string or bytes"),
    ],
)
def test_wrong_type_fails_at_init_app_naming_key_value_and_accepted(
    key: str, value: object, accepted: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache(make_app(**{key: value}))
    message = str(info.value)
    assert message.startswith(f"{key} must be {accepted}")
    if not key.endswith("SECRET_KEY"):
        assert message.endswith(f"; got {value!r}")


def test_the_message_for_the_reported_servers_case() -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache(make_app(CACHE_TYPE="memcached", CACHE_MEMCACHED_SERVERS=[("127.0.0.1",)]))
    assert str(info.value) == f"CACHE_MEMCACHED_SERVERS must be {SERVERS}; got [('127.0.0.1',)]"


@pytest.mark.parametrize(
    "key", ["CACHE_SECRET_KEY", "CACHE_REDIS_PASSWORD", "CACHE_MEMCACHED_PASSWORD"]
)
def test_a_wrong_secret_is_not_shown(key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache(make_app(**{key: 987654321}))
    assert "987654321" not in str(info.value)
    assert "a value of type int (not shown: it is a secret)" in str(info.value)


def test_a_long_value_is_cut_short() -> None:
    with pytest.raises(ConfigurationError) as info:
        Cache(make_app(CACHE_OPTIONS=list(range(1000))))
    shown = str(info.value).partition("; got ")[2]
    assert shown.startswith("[0, 1, 2")
    assert shown.endswith("...")
    assert len(shown) <= 80


@pytest.mark.parametrize(
    ("key", "value", "read"),
    [
        ("CACHE_DEFAULT_TIMEOUT", 0, 0),
        ("CACHE_RETRY_INTERVAL", 2, 2),
        ("CACHE_LOCK_WAIT", 0.25, 0.25),
        ("CACHE_FAST_LANE", True, True),
        ("CACHE_X_CACHE_HEADER", "true", True),
        ("CACHE_X_CACHE_HEADER", " YES ", True),
        ("CACHE_X_CACHE_HEADER", "on", True),
        ("CACHE_X_CACHE_HEADER", 1, True),
        ("CACHE_HONOR_FRESHNESS", "False", False),
        ("CACHE_HONOR_FRESHNESS", "no", False),
        ("CACHE_HONOR_FRESHNESS", "0", False),
        ("CACHE_HONOR_FRESHNESS", 0, False),
        ("CACHE_REDIS_MODE", " Cluster", "cluster"),
        ("CACHE_CACHEABLE_STATUSES", [200, 404], frozenset({200, 404})),
        ("CACHE_DIR", Path("/tmp/cache"), Path("/tmp/cache")),
        ("CACHE_MEMCACHED_SERVERS", "h1:11211,h2", "h1:11211,h2"),
        ("CACHE_MEMCACHED_SERVERS", ("h1:11211",), ["h1:11211"]),
        ("CACHE_REDIS_SENTINELS", [("s1", 26379), "s2:26380"], ["s1:26379", "s2:26380"]),
        ("CACHE_REDIS_CLUSTER", [["n1", "7000"]], ["n1:7000"]),
        ("CACHE_NEAR_TTL", None, None),
        ("CACHE_REDIS_PASSWORD", None, None),
    ],
)
def test_right_values_are_accepted_and_read(key: str, value: object, read: object) -> None:
    settings = load_settings({key: value})
    assert settings.merged[key] == read
    assert settings.namespace[key[len("CACHE_") :].lower()] == read


def test_flags_reach_the_settings_as_bools() -> None:
    app = make_app(CACHE_X_CACHE_HEADER="yes", CACHE_HONOR_FRESHNESS="false")
    settings = Cache(app).state(app).settings
    assert settings.x_cache_header is True
    assert settings.honor_freshness is False


def test_host_port_pairs_are_accepted_for_memcached() -> None:
    from flask_stash.stores.memcached import MemcachedStore

    servers = [("127.0.0.1", 41083), ("::1", 11211), "cache.internal"]
    app = make_app(CACHE_TYPE="memcached", CACHE_MEMCACHED_SERVERS=servers)
    store = store_of(Cache(app), app)
    assert isinstance(store, MemcachedStore)
    try:
        assert store.servers == [
            "127.0.0.1:41083",
            "[::1]:11211",
            "cache.internal:11211",
        ]
    finally:
        store.close()


# -- unknown keys ----------------------------------------------------------------


def test_a_misspelt_key_warns_with_the_nearest_setting() -> None:
    message = (
        r"^CACHE_DEFAULT_TIMOUT is not a Flask-Stash setting; did you mean CACHE_DEFAULT_TIMEOUT\?$"
    )
    with pytest.warns(ConfigWarning, match=message) as record:
        Cache(make_app(CACHE_DEFAULT_TIMOUT=60))
    # The warning points at the app's own call, not inside Flask-Stash.
    assert [warning.filename for warning in record] == [__file__]


@pytest.mark.parametrize(
    ("key", "nearest"),
    [
        ("CACHE_MEMCACHE_SERVERS", "CACHE_MEMCACHED_SERVERS"),
        ("CACHE_REDIS_PASSWROD", "CACHE_REDIS_PASSWORD"),
        ("CACHE_KEYPREFIX", "CACHE_KEY_PREFIX"),
    ],
)
def test_other_misspellings_get_their_setting(key: str, nearest: str) -> None:
    with pytest.warns(ConfigWarning, match=f"; did you mean {nearest}\\?$"):
        Cache(make_app(**{key: "x"}))


def test_unknown_keys_in_config_mappings_warn_too() -> None:
    app = make_app()
    cache = Cache(config={"CACHE_THRESHHOLD": 10})
    with pytest.warns(ConfigWarning) as record:
        cache.init_app(app, config={"CACHE_X_CACHE_HEADERS": True})
    messages = sorted(str(warning.message) for warning in record)
    assert messages[0] == (
        "CACHE_THRESHHOLD is not a Flask-Stash setting; did you mean CACHE_THRESHOLD?"
    )
    assert messages[1].startswith("CACHE_X_CACHE_HEADERS is not a Flask-Stash setting")
    assert "did you mean CACHE_X_CACHE_HEADER?" in messages[1]


def test_a_key_far_from_every_setting_warns_without_a_guess() -> None:
    with pytest.warns(ConfigWarning, match=r"^CACHE_BANANA_SPLIT is not a Flask-Stash setting$"):
        Cache(make_app(CACHE_BANANA_SPLIT=1))


def test_an_unknown_key_warns_once_even_when_given_twice() -> None:
    app = make_app(CACHE_DEFAULT_TIMOUT=1)
    with pytest.warns(ConfigWarning) as record:
        Cache(app, config={"CACHE_DEFAULT_TIMOUT": 5, "CACHE_DEFAULT_TIMOUT_": 5})
    assert len(record) == 2


FLASK_CACHING_CONFIG: dict[str, Any] = {
    "CACHE_TYPE": "SimpleCache",
    "CACHE_NO_NULL_WARNING": True,
    "CACHE_ARGS": [],
    "CACHE_OPTIONS": None,
    "CACHE_DEFAULT_TIMEOUT": 300,
    "CACHE_IGNORE_ERRORS": False,
    "CACHE_THRESHOLD": 500,
    "CACHE_KEY_PREFIX": "flask_cache_",
    "CACHE_SOURCE_CHECK": False,
    "CACHE_ENABLE_SIGNALS": False,
    "CACHE_SERIALIZER": "pickle",
    "CACHE_UWSGI_NAME": None,
    "CACHE_HASH_METHOD": len,
    "CACHE_FILE_HASH_METHOD": len,
    "CACHE_DIR": None,
    "CACHE_MEMCACHED_SERVERS": None,
    "CACHE_MEMCACHED_USERNAME": None,
    "CACHE_MEMCACHED_PASSWORD": None,
    "CACHE_REDIS_HOST": "localhost",
    "CACHE_REDIS_PORT": 6379,
    "CACHE_REDIS_PASSWORD": None,
    "CACHE_REDIS_DB": 0,
    "CACHE_REDIS_URL": None,
    "CACHE_REDIS_SENTINELS": None,
    "CACHE_REDIS_SENTINEL_MASTER": None,
    "CACHE_REDIS_SENTINEL_PASSWORD": None,
    "CACHE_REDIS_CLUSTER": None,
}


def test_a_flask_caching_config_draws_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        app = make_app(**FLASK_CACHING_CONFIG)
        assert type(store_of(Cache(app), app)) is MemoryStore


def test_keys_outside_the_cache_namespace_are_not_checked() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        Cache(make_app(SECRET_KEY="s", CACHED_THING=1, SESSION_TYPE="redis"))


def test_every_documented_setting_is_known() -> None:
    docs = Path(__file__).parents[1] / "docs" / "configuration.rst"
    documented = set(re.findall(r"^\.\. confval:: (CACHE_\w+)$", docs.read_text(), re.M))
    assert len(documented) > 40
    assert documented <= KNOWN_KEYS
