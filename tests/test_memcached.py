"""The memcached stores against real memcached processes: what the suite cannot show.

Keys memcached refuses, values over its size limit, node failures, slow
servers, logins, and that clear() leaves everybody else's data alone.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from flask_stash.stores import BaseStore, StoreConfig

from .plugins.saslmemcached import SASL_PASSWORD, SASL_USER
from .servers import ServerProcess, SilentServer

pytest.importorskip("pymemcache")
pytest.importorskip("bmemcached")

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError

from flask_stash.stores._memcached_common import (
    MAX_KEY_LENGTH,
    MemcachedAuthError,
    MemcachedError,
    memcached_key,
    namespace_key,
    parse_servers,
)
from flask_stash.stores.memcached import MemcachedStore
from flask_stash.stores.saslmemcached import SASLMemcachedStore

MemcachedFactory = Callable[..., MemcachedStore]
SASLFactory = Callable[..., SASLMemcachedStore]
Processes = Callable[[int], list[ServerProcess]]

#: Either store, built on the session's server with a fresh prefix.
STORE_KINDS = ["memcached", "saslmemcached"]

AWKWARD_KEYS = [
    "a" * 300,
    "a" * 300 + "b",
    "with space",
    "tab\tkey",
    "new\nline",
    "ctrl\x01\x7f",
    "ünïcödé",
    "日本語",
    "emoji 😀",
    "lone \ud800 surrogate",
    "hash#mark",
    "",
    "plain:key",
]


@pytest.fixture(params=STORE_KINDS)
def any_store(request: pytest.FixtureRequest) -> BaseStore:
    harness = request.getfixturevalue(f"{request.param}_harness")
    store: BaseStore = harness.make(f"t{uuid.uuid4().hex[:8]}:")
    return store


def raw_client(server: ServerProcess) -> Client:
    return Client(("127.0.0.1", server.port), connect_timeout=1, timeout=1, default_noreply=False)


def spread_namespace(prefix: str, servers: list[ServerProcess]) -> None:
    """Copy the namespace version to every node, so a topology change keeps it."""
    key = namespace_key(prefix)
    clients = [raw_client(server) for server in servers]
    try:
        version = next(value for c in clients if (value := c.get(key)) is not None)
        for client in clients:
            client.set(key, version)
    finally:
        for client in clients:
            client.close()


def holder_of(key: str, servers: list[ServerProcess]) -> ServerProcess:
    for server in servers:
        client = raw_client(server)
        try:
            if client.get(key) is not None:
                return server
        finally:
            client.close()
    raise AssertionError(f"no server holds {key!r}")


def crash(server: ServerProcess) -> None:
    """Kill the server as a crash would (keeping it restartable)."""
    server.stop()


# -- keys ---------------------------------------------------------------------


def test_valid_key_is_kept_as_it_is() -> None:
    assert memcached_key("flask_stash:view//index?page=2") == "flask_stash:view//index?page=2"


@pytest.mark.parametrize("key", AWKWARD_KEYS[:-1], ids=repr)
def test_awkward_key_becomes_a_valid_deterministic_key(key: str) -> None:
    mangled = memcached_key(key)
    assert mangled == memcached_key(key)
    assert len(mangled.encode()) <= MAX_KEY_LENGTH
    assert mangled.isascii()
    assert not any(char.isspace() or ord(char) < 0x21 or ord(char) == 0x7F for char in mangled)


def test_mangled_keys_are_distinct_and_never_equal_a_plain_key() -> None:
    mangled = {memcached_key(key) for key in AWKWARD_KEYS}
    assert len(mangled) == len(AWKWARD_KEYS)
    # Someone who knows the hashed form of a key cannot choose it as a key.
    hashed = memcached_key("a" * 300)
    assert memcached_key(hashed) != hashed


def test_long_key_keeps_a_readable_start() -> None:
    assert memcached_key("flask_stash:view/" + "x" * 300).startswith("flask_stash:view/xxx")


def test_awkward_keys_round_trip_and_stay_distinct(any_store: BaseStore) -> None:
    values = {key: f"value {index}" for index, key in enumerate(AWKWARD_KEYS)}
    for key, value in values.items():
        assert any_store.set(key, value) is True
    for key, value in values.items():
        assert any_store.get(key) == value
    assert any_store.get_many(*values) == list(values.values())
    assert any_store.add("日本語", "again") is False
    assert any_store.delete("a" * 300) is True
    assert any_store.get("a" * 300 + "b") == values["a" * 300 + "b"]


# -- item size ----------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "flask_stash" and r.levelno == logging.WARNING]


def test_oversized_value_is_skipped_with_a_warning(
    any_store: BaseStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_stash")
    big = b"x" * (2 * 1024 * 1024)
    assert any_store.set("big", big) is False
    assert any_store.add("big", big) is False
    assert any_store.get("big") is None
    assert any_store.set_many({"big": big, "small": b"ok"}) == ["small"]
    assert any_store.get("small") == b"ok"
    assert len(_warnings(caplog)) == 3
    assert "'big'" in _warnings(caplog)[0].getMessage()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_configured_item_size_limit(
    kind: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_stash")
    store = _store_on_session_server(request, kind, max_item_size=10_000)
    assert store.set("fits", b"x" * 5_000) is True
    assert store.set("over", b"x" * 10_000) is False
    assert store.get("fits") == b"x" * 5_000
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_server_refusing_a_value_is_a_warning_not_an_error(
    kind: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    # The store thinks 4 MiB is fine; the server (-I 1m) disagrees.
    caplog.set_level(logging.WARNING, logger="flask_stash")
    store = _store_on_session_server(request, kind, max_item_size=4 * 1024 * 1024)
    big = b"x" * (2 * 1024 * 1024)
    assert store.set("big", big) is False
    assert store.add("big", big) is False
    assert len(_warnings(caplog)) == 2
    assert store.set("after", "fine") is True
    assert store.get("after") == "fine"


def _store_on_session_server(request: pytest.FixtureRequest, kind: str, **kwargs: Any) -> BaseStore:
    server: ServerProcess = request.getfixturevalue(f"{kind}_server")
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    if kind == "memcached":
        factory: MemcachedFactory = request.getfixturevalue("memcached_store_factory")
        return factory([server.address], key_prefix=prefix, **kwargs)
    sasl: SASLFactory = request.getfixturevalue("saslmemcached_store_factory")
    return sasl(
        [server.address], key_prefix=prefix, username=SASL_USER, password=SASL_PASSWORD, **kwargs
    )


# -- the namespace --------------------------------------------------------------


def test_clear_never_touches_other_prefixes_or_foreign_keys(
    memcached_server: ServerProcess, memcached_store_factory: MemcachedFactory
) -> None:
    foreign = raw_client(memcached_server)
    try:
        foreign.set("someone-elses-key", b"theirs")
        mine = memcached_store_factory([memcached_server.address], key_prefix="clear-mine:")
        other = memcached_store_factory([memcached_server.address], key_prefix="clear-other:")
        mine.set("k", "mine")
        other.set("k", "other")
        for _ in range(3):
            assert mine.clear() is True
        assert mine.get("k") is None
        assert other.get("k") == "other"
        assert foreign.get("someone-elses-key") == b"theirs"
    finally:
        foreign.close()


def test_write_after_another_instance_cleared_lands_in_the_new_namespace(
    any_store: BaseStore, request: pytest.FixtureRequest
) -> None:
    kind = "memcached" if isinstance(any_store, MemcachedStore) else "saslmemcached"
    other = request.getfixturevalue(f"{kind}_harness").make(any_store.key_prefix)
    any_store.set("a", 1)
    other.clear()
    assert any_store.set("b", 2) is True  # no read in between
    assert other.get("b") == 2
    assert any_store.get("a") is None


def test_evicted_namespace_version_reads_as_cleared(
    memcached_server: ServerProcess, memcached_store_factory: MemcachedFactory
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = memcached_store_factory([memcached_server.address], key_prefix=prefix)
    store.set("k", "v")
    client = raw_client(memcached_server)
    try:
        client.delete(namespace_key(prefix))
    finally:
        client.close()
    assert store.get("k") is None
    store.set("k", "new")
    assert store.get("k") == "new"


# -- counters -------------------------------------------------------------------


def test_dec_goes_below_zero_like_every_other_store(any_store: BaseStore) -> None:
    assert any_store.dec("n") == -1
    assert any_store.dec("n", 4) == -5
    assert any_store.inc("n", 7) == 2
    assert any_store.get("n") == 2
    any_store.set("m", -3)
    assert any_store.inc("m") == -2


def test_inc_of_a_value_that_is_not_a_counter_restarts_it(any_store: BaseStore) -> None:
    any_store.set("s", "text")
    assert any_store.inc("s", 3) == 3  # not a counter: read as absent
    assert any_store.dec("s") == 2
    any_store.set("t", "text")
    assert any_store.dec("t", 2) == -2


def test_concurrent_inc_and_dec_from_threads_lose_nothing(any_store: BaseStore) -> None:
    def work() -> None:
        for _ in range(40):
            any_store.inc("c", 3)
            any_store.dec("c", 1)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert any_store.get("c") == 6 * 40 * 2


def test_long_timeouts_become_unix_timestamps(memcached_store_factory: MemcachedFactory) -> None:
    store = memcached_store_factory(["127.0.0.1:1"])
    assert store._expire(0) == 0
    assert store._expire(0.2) == 1
    assert store._expire(30 * 24 * 3600) == 30 * 24 * 3600
    assert abs(store._expire(40 * 24 * 3600) - (time.time() + 40 * 24 * 3600)) < 5


# -- several nodes ------------------------------------------------------------------


def test_adding_a_node_moves_about_a_quarter_of_the_keys(
    memcached_processes: Processes, memcached_store_factory: MemcachedFactory
) -> None:
    servers = memcached_processes(4)
    prefix = "grow:"
    three = memcached_store_factory([s.address for s in servers[:3]], key_prefix=prefix)
    keys = [f"page-{index}" for index in range(2000)]
    assert len(three.set_many({key: key for key in keys})) == len(keys)
    spread_namespace(prefix, servers)

    four = memcached_store_factory([s.address for s in servers], key_prefix=prefix)
    moved = sum(value is None for value in four.get_many(*keys)) / len(keys)
    assert 0.18 < moved < 0.32  # rendezvous hashing: 1/4 expected

    two = memcached_store_factory([s.address for s in servers[:2]], key_prefix=prefix)
    moved = sum(value is None for value in two.get_many(*keys)) / len(keys)
    assert 0.26 < moved < 0.41  # removing one of three: 1/3 expected


@pytest.mark.parametrize("victim", ["another node", "the namespace node"])
def test_one_dead_node_of_three_leaves_the_others_serving(
    victim: str, memcached_processes: Processes, memcached_store_factory: MemcachedFactory
) -> None:
    servers = memcached_processes(3)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    store = memcached_store_factory(
        [s.address for s in servers],
        key_prefix=prefix,
        retry_attempts=1,
        retry_timeout=0.05,
        dead_timeout=60,
    )
    keys = [f"k{index}" for index in range(300)]
    store.set_many({key: key for key in keys})
    holder = holder_of(namespace_key(prefix), servers)
    dead = holder if victim == "the namespace node" else next(s for s in servers if s is not holder)
    crash(dead)

    # Through the retry window and the ejection: never an exception.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for key in keys[:30]:
            store.get(key)
            store.set(key, key)

    if victim == "another node":  # keys on the living nodes are still there
        kept = sum(value is not None for value in store.get_many(*keys[30:])) / len(keys[30:])
        assert 0.5 < kept < 0.85
    assert len(store.set_many({key: key for key in keys})) == len(keys)
    assert store.get_many(*keys) == keys
    assert store.inc("counter") == 1
    assert store.clear() is True


def test_every_node_dead_raises(
    memcached_processes: Processes, memcached_store_factory: MemcachedFactory
) -> None:
    servers = memcached_processes(2)
    store = memcached_store_factory(
        [s.address for s in servers], retry_attempts=0, retry_timeout=0, dead_timeout=60
    )
    store.set("k", "v")
    for server in servers:
        crash(server)

    def hammer() -> None:
        for _ in range(10):
            store.get("k")
            store.set("k", "v")

    with pytest.raises((OSError, MemcacheError, MemcachedError)):
        hammer()


def test_single_node_errors_propagate_and_it_recovers_after_restart(
    memcached_processes: Processes, memcached_store_factory: MemcachedFactory
) -> None:
    [server] = memcached_processes(1)
    store = memcached_store_factory([server.address])
    assert store.set("k", "v") is True
    crash(server)
    for operation in (
        lambda: store.get("k"),
        lambda: store.set("k", "v2"),
        lambda: store.add("other", 1),
        lambda: store.inc("n"),
        lambda: store.clear(),
    ):
        with pytest.raises((OSError, MemcacheError)):
            operation()
    server.start()
    assert store.get("k") is None  # a restarted memcached is empty
    assert store.set("k", "v3") is True
    assert store.get("k") == "v3"


# -- timeouts ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_unresponsive_server_fails_each_call_within_the_timeout(
    kind: str, silent_server: SilentServer, request: pytest.FixtureRequest
) -> None:
    timeout = 0.3
    store: BaseStore
    if kind == "memcached":
        config = StoreConfig(
            url=urlsplit(f"memcached://{silent_server.address}"),
            settings={"memcached_timeout": timeout, "memcached_connect_timeout": timeout},
        )
        store = MemcachedStore.from_config(config)
        request.addfinalizer(store.close)
    else:
        factory: SASLFactory = request.getfixturevalue("saslmemcached_store_factory")
        store = factory([silent_server.address], username="u", password="p", timeout=timeout)
    calls: list[Callable[[], object]] = [
        lambda: store.get("k"),
        lambda: store.get_many("a", "b"),
        lambda: store.set("k", "v"),
        lambda: store.add("k", "v"),
        lambda: store.delete("k"),
        lambda: store.inc("n"),
        lambda: store.clear(),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises((OSError, MemcacheError, MemcachedError)):
            call()
        assert time.monotonic() - started < timeout + 0.25


# -- logins -----------------------------------------------------------------------


@pytest.mark.parametrize("auth_retry", [30.0, 0.0], ids=["fail-fast", "asks-every-time"])
def test_wrong_password_logs_one_error_naming_server_and_user(
    auth_retry: float,
    saslmemcached_server: ServerProcess,
    saslmemcached_store_factory: SASLFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_stash")
    store = saslmemcached_store_factory(
        [saslmemcached_server.address],
        username=SASL_USER,
        password="not-the-password",
        auth_retry=auth_retry,
    )
    for _ in range(10):
        with pytest.raises(MemcachedAuthError):
            store.get("k")
        with pytest.raises(MemcachedAuthError):
            store.set("k", "v")
    errors = [r for r in caplog.records if r.name == "flask_stash" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert saslmemcached_server.address in message
    assert repr(SASL_USER) in message
    assert "not-the-password" not in message


def test_right_password_works_from_the_url(saslmemcached_server: ServerProcess) -> None:
    url = urlsplit(f"memcached://{SASL_USER}:{SASL_PASSWORD}@{saslmemcached_server.address}")
    store = SASLMemcachedStore.from_config(StoreConfig(key_prefix="url:", url=url))
    try:
        assert store.set("k", {"a": 1}) is True
        assert store.get("k") == {"a": 1}
        assert store.describe() == f"saslmemcached {saslmemcached_server.address} as 'stash'"
    finally:
        store.close()


def test_sasl_server_refuses_a_store_without_login(
    saslmemcached_server: ServerProcess, saslmemcached_store_factory: SASLFactory
) -> None:
    store = saslmemcached_store_factory([saslmemcached_server.address])
    with pytest.raises(Exception, match=r"[Aa]uth"):
        store.get("k")


# -- configuration ------------------------------------------------------------------


def test_servers_from_settings_url_and_options(memcached_store_factory: MemcachedFactory) -> None:
    from_settings = MemcachedStore.from_config(
        StoreConfig(settings={"memcached_servers": "10.0.0.1, 10.0.0.2:11212"})
    )
    assert from_settings.describe() == "memcached 10.0.0.1:11211, 10.0.0.2:11212"
    from_url = MemcachedStore.from_config(
        StoreConfig(url=urlsplit("memcached://h1:11211,h2,[::1]:11300"))
    )
    assert from_url.describe() == "memcached h1:11211, h2:11211, [::1]:11300"
    from_options = MemcachedStore.from_config(
        StoreConfig(
            url=urlsplit("memcached://h1"),
            settings={"memcached_servers": ["h2"]},
            options={"servers": ["h3:1"]},
        )
    )
    assert from_options.describe() == "memcached h3:1"
    for store in (from_settings, from_url, from_options):
        store.close()


def test_sasl_credentials_from_settings_win_over_the_url() -> None:
    store = SASLMemcachedStore.from_config(
        StoreConfig(
            url=urlsplit("memcached://url-user:p%40ss@h1,h2:11300"),
            settings={"memcached_username": "settings-user"},
        )
    )
    assert store.describe() == "saslmemcached h1:11211, h2:11300 as 'settings-user'"
    store.close()


@pytest.mark.parametrize("bad", ["", " , ", "host:port"])
def test_bad_server_lists_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="server"):
        parse_servers(bad)


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.partition(".")[0] == "pymemcache"]:
        monkeypatch.setitem(sys.modules, name, None)
    spec = importlib.util.find_spec("flask_stash.stores.memcached")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"flask-stash\[memcached\]"):
        spec.loader.exec_module(module)
