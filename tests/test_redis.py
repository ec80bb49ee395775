"""The Redis store against real servers: auth, TLS, Sentinel, Cluster, failures.

The contract itself is covered by test_store_conformance.py; this module
covers what only Redis has. Sentinel and Cluster are started once for the
module because a cluster takes a few seconds to form.
"""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis._parsers import _HiredisParser

from flask_stash.errors import ConfigurationError
from flask_stash.serializers import PickleSerializer
from flask_stash.stores import StoreConfig, build_store, type_for_url
from flask_stash.stores.redis import RedisStore, parse_addresses

from .plugins.redis import redis_argv, redis_binary
from .servers import ServerProcess, SilentServer, free_port, require_binary

Factory = Callable[..., RedisStore]


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def raw(port: int, db: int = 0, **kwargs: Any) -> redis.Redis:
    """A plain client, to look at the server behind the store's back."""
    return redis.Redis(host="127.0.0.1", port=port, db=db, **kwargs)


def standalone(store: RedisStore) -> redis.Redis:
    client = store.client
    assert isinstance(client, redis.Redis)
    return client


def from_settings(**settings: Any) -> RedisStore:
    store = build_store("redis", StoreConfig(key_prefix=prefix(), settings=settings))
    assert isinstance(store, RedisStore)
    return store


def from_url(url: str, **options: Any) -> RedisStore:
    store_type, parts = type_for_url(url)
    store = build_store(store_type, StoreConfig(key_prefix=prefix(), url=parts, options=options))
    assert isinstance(store, RedisStore)
    return store


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


# -- configuration --------------------------------------------------------------


def test_config_from_url_selects_host_port_and_db(redis_server: ServerProcess) -> None:
    store = from_url(f"redis://127.0.0.1:{redis_server.port}/2")
    try:
        assert store.describe() == f"redis://127.0.0.1:{redis_server.port}/2"
        store.set("k", "v")
        assert store.get("k") == "v"
        assert raw(redis_server.port, db=2).exists(store.key_prefix + "k") == 1
        assert raw(redis_server.port, db=0).exists(store.key_prefix + "k") == 0
    finally:
        store.close()


def test_config_from_unix_socket_url(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("sock") / "redis.sock"
    port = free_port()
    argv = redis_argv(redis_binary(), port, "--unixsocket", str(path))
    server = ServerProcess(argv, port)
    try:
        server.start()
        store = from_url(f"unix://{path}?db=5")
        assert store.describe() == f"unix://{path}"
        store.set("k", "over a socket")
        assert store.get("k") == "over a socket"
        assert raw(port, db=5).exists(store.key_prefix + "k") == 1
        store.close()
    finally:
        server.stop()


def test_config_from_settings_keys(redis_server: ServerProcess) -> None:
    store = from_settings(
        redis_host="127.0.0.1",
        redis_port=str(redis_server.port),  # as it would come from the environment
        redis_db=3,
        redis_socket_timeout="0.75",
        redis_connect_timeout=0.1,
    )
    try:
        assert store.describe() == f"redis://127.0.0.1:{redis_server.port}/3"
        store.set("k", 7)
        assert raw(redis_server.port, db=3).get(store.key_prefix + "k") == b"7"
        kwargs = standalone(store).connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.75
        assert kwargs["socket_connect_timeout"] == 0.1
    finally:
        store.close()


def test_redis_url_setting_and_options_reach_the_client(redis_server: ServerProcess) -> None:
    config = StoreConfig(
        settings={"redis_url": f"redis://127.0.0.1:{redis_server.port}/4"},
        options={"max_connections": 3, "client_name": "stash-test"},
    )
    store = build_store("RedisCache", config)
    assert isinstance(store, RedisStore)
    try:
        pool = standalone(store).connection_pool
        assert pool.max_connections == 3
        store.set("k", "v")
        names = [client["name"] for client in raw(redis_server.port).client_list()]
        assert "stash-test" in names
    finally:
        store.close()


def test_defaults_are_lan_timeouts_and_the_config_serializer() -> None:
    serializer = PickleSerializer()
    store = build_store("redis", StoreConfig(serializer=serializer))
    assert isinstance(store, RedisStore)
    kwargs = standalone(store).connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.5
    assert kwargs["socket_connect_timeout"] == 0.25
    assert store.serializer is serializer
    store.close()


def test_hiredis_parser_is_in_use(
    redis_server: ServerProcess, redis_store_factory: Factory
) -> None:
    pytest.importorskip("hiredis")
    store = redis_store_factory(host="127.0.0.1", port=redis_server.port)
    store.set("k", "v")
    pool = standalone(store).connection_pool
    connection = pool.get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
    finally:
        pool.release(connection)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "replicated"}, "mode must be one of"),
        ({"url": "redis+cluster://127.0.0.1:7000/3"}, "only database 0"),
        ({"url": "redis+sentinel://127.0.0.1:26379/m/0?x=1"}, "CACHE_OPTIONS"),
        ({"url": "redis://127.0.0.1:6379/0", "mode": "sentinel"}, "does not fit"),
        ({"url": "memcached://127.0.0.1:11211"}, "must start with"),
        ({"mode": "sentinel"}, "Sentinel addresses"),
        ({"sentinels": "h1:port"}, "not host:port"),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisStore(**kwargs)


def test_bad_settings_become_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="Sentinel addresses"):
        build_store("RedisSentinelCache", StoreConfig(settings={"redis_mode": "sentinel"}))


def test_addresses_in_every_accepted_form() -> None:
    assert parse_addresses("a:1, b:2,c", 26379) == (("a", 1), ("b", 2), ("c", 26379))
    assert parse_addresses([("a", "1"), "[::1]:7000", "[::1]"], 6379) == (
        ("a", 1),
        ("::1", 7000),
        ("::1", 6379),
    )


def test_describe_never_shows_the_password() -> None:
    store = RedisStore(url="redis+sentinel://u:secret@h1:1,h2/primary/2")
    assert store.describe() == "redis sentinel master 'primary' via h1:1,h2:26379, db 2"
    assert store.target.password == "secret"
    assert store.target.username == "u"
    cluster = RedisStore(url="redis+cluster://:secret@n1:7000,n2:7001")
    assert cluster.describe() == "redis cluster via n1:7000,n2:7001"
    plain = RedisStore(url="rediss://:secret@cache.lan:6380/1")
    assert plain.describe() == "rediss://cache.lan:6380/1"
    for made in (store, cluster, plain):
        made.close()


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "flask_stash.stores.redis")
    with pytest.raises(ImportError, match=r"flask-stash\[redis\]"):
        importlib.import_module("flask_stash.stores.redis")
    with pytest.raises(ConfigurationError, match=r"flask-stash\[redis\]"):
        build_store("redis", StoreConfig())


# -- behaviour beyond the conformance suite -------------------------------------------


def test_timeouts_become_expiry_on_the_server(
    redis_server: ServerProcess, redis_store_factory: Factory
) -> None:
    store = redis_store_factory(
        host="127.0.0.1", port=redis_server.port, key_prefix=prefix(), default_timeout=300
    )
    server = raw(redis_server.port)
    store.set("default", 1)
    store.set("never", 1, timeout=0)
    store.set("fraction", 1, timeout=1.5)  # type: ignore[arg-type]
    store.add("added", 1, timeout=20)
    assert 290 <= server.ttl(store.key_prefix + "default") <= 300
    assert server.ttl(store.key_prefix + "never") == -1
    assert 0 < server.pttl(store.key_prefix + "fraction") <= 1500
    assert 10 <= server.ttl(store.key_prefix + "added") <= 20


def test_inc_on_a_non_integer_restarts_the_counter(
    redis_server: ServerProcess, redis_store_factory: Factory
) -> None:
    store = redis_store_factory(host="127.0.0.1", port=redis_server.port, key_prefix=prefix())
    store.set("text", "not a number")
    assert store.inc("text", 5) == 5  # not a counter: read as absent
    assert store.inc("text") == 6


def test_clear_takes_the_prefix_literally(
    redis_server: ServerProcess, redis_store_factory: Factory
) -> None:
    ns = uuid.uuid4().hex[:8]
    port = redis_server.port
    # Unescaped, the pattern "<ns>a?*" would also match "<ns>ab..." and "<ns>a[...".
    mine = redis_store_factory(host="127.0.0.1", port=port, key_prefix=f"{ns}a?")
    others = [
        redis_store_factory(host="127.0.0.1", port=port, key_prefix=f"{ns}{tail}")
        for tail in ("ab", "a[", "a\\", "")
    ]
    mine.set_many({f"k{i}": i for i in range(1200)})  # more than one SCAN batch
    for other in others:
        other.set("k1", "kept")
    assert mine.clear() is True
    assert mine.get_many("k1", "k1199") == [None, None]
    assert raw(port).keys(f"{ns}a[?]*") == []
    assert [other.get("k1") for other in others] == ["kept"] * len(others)


def test_clear_with_empty_prefix_needs_allow_flush(
    redis_server: ServerProcess, redis_store_factory: Factory
) -> None:
    port = redis_server.port
    bystander = redis_store_factory(host="127.0.0.1", port=port, db=0, key_prefix=prefix())
    bystander.set("k", "kept")
    careful = redis_store_factory(host="127.0.0.1", port=port, db=9)
    careful.set("k", "v")
    with pytest.raises(ValueError, match="CACHE_REDIS_ALLOW_FLUSH"):
        careful.clear()
    assert careful.get("k") == "v"
    settings = {"redis_port": port, "redis_db": 9, "redis_allow_flush": "true"}
    flushing = build_store("redis", StoreConfig(key_prefix="", settings=settings))
    try:
        assert flushing.clear() is True
    finally:
        flushing.close()
    assert careful.get("k") is None
    assert bystander.get("k") == "kept"


# -- passwords ------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server() -> Iterator[ServerProcess]:
    port = free_port()
    server = ServerProcess(redis_argv(redis_binary(), port, "--requirepass", "s3cret"), port)
    try:
        yield server.start()
    finally:
        server.stop()


def test_password_from_settings(auth_server: ServerProcess) -> None:
    store = from_settings(
        redis_host="127.0.0.1", redis_port=auth_server.port, redis_password="s3cret", redis_db=1
    )
    try:
        store.set("k", "v")
        assert store.get("k") == "v"
        assert raw(auth_server.port, db=1, password="s3cret").exists(store.key_prefix + "k")
    finally:
        store.close()


def test_password_and_username_from_url(auth_server: ServerProcess) -> None:
    store = from_url(f"redis://default:s3cret@127.0.0.1:{auth_server.port}/0")
    try:
        store.set("k", "v")
        assert store.get("k") == "v"
        assert "s3cret" not in store.describe()
    finally:
        store.close()


def test_password_setting_completes_a_url_without_one(auth_server: ServerProcess) -> None:
    config = StoreConfig(
        url=urlsplit(f"redis://127.0.0.1:{auth_server.port}/0"),
        settings={"redis_password": "s3cret"},
    )
    store = build_store("redis", config)
    try:
        assert store.set("k", "v") is True
    finally:
        store.close()


@pytest.mark.parametrize("password", ["wrong", None])
def test_wrong_or_missing_password_fails_clearly(
    auth_server: ServerProcess, redis_store_factory: Factory, password: str | None
) -> None:
    store = redis_store_factory(host="127.0.0.1", port=auth_server.port, password=password)
    with pytest.raises(redis.AuthenticationError):
        store.get("k")
    with pytest.raises(redis.AuthenticationError):
        store.set("k", "v")


# -- TLS --------------------------------------------------------------------------


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl."""
    openssl = require_binary("openssl")
    files = {name: directory / name for name in ("ca.key", "ca.crt", "server.key", "server.crt")}
    csr, extensions = directory / "server.csr", directory / "server.ext"
    extensions.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)

    run("req", "-x509", *key, "-days", "2", "-subj", "/CN=stash test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", files["ca.key"], "-out", files["ca.crt"])  # fmt: skip
    run("req", *key, "-subj", "/CN=127.0.0.1", "-keyout", files["server.key"], "-out", csr)
    run("x509", "-req", "-in", csr, "-days", "2", "-CAcreateserial",
        "-CA", files["ca.crt"], "-CAkey", files["ca.key"],
        "-extfile", extensions, "-out", files["server.crt"])  # fmt: skip
    return files


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    binary = redis_binary()
    files = make_certificates(tmp_path_factory.mktemp("tls"))
    port = free_port()
    argv = [
        binary,
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--tls-cert-file",
        str(files["server.crt"]),
        "--tls-key-file",
        str(files["server.key"]),
        "--tls-ca-cert-file",
        str(files["ca.crt"]),
        "--tls-auth-clients",
        "no",
    ]
    server = ServerProcess(argv, port)
    try:
        try:
            server.start()
        except RuntimeError as err:
            signs = ("Bad directive", "not supported", "TLS support")
            if any(sign in str(err) for sign in signs):
                pytest.skip(f"this redis-server was built without TLS: {err}")
            raise
        yield server, files["ca.crt"]
    finally:
        server.stop()


def test_tls_with_rediss_url(tls_server: tuple[ServerProcess, Path]) -> None:
    server, ca = tls_server
    store = from_url(f"rediss://127.0.0.1:{server.port}/0", ssl_ca_certs=str(ca))
    try:
        assert store.describe() == f"rediss://127.0.0.1:{server.port}/0"
        store.set("k", {"secure": True})
        assert store.get("k") == {"secure": True}
    finally:
        store.close()


def test_tls_refuses_a_server_it_cannot_verify(tls_server: tuple[ServerProcess, Path]) -> None:
    server, _ = tls_server
    store = from_url(f"rediss://127.0.0.1:{server.port}/0")  # system CAs only
    try:
        with pytest.raises(redis.ConnectionError):
            store.get("k")
    finally:
        store.close()


# -- Sentinel -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentinel(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """A primary and one Sentinel that monitors it as ``mymaster``."""
    binary = redis_binary()
    primary_port, sentinel_port = free_port(), free_port()
    primary = ServerProcess(redis_argv(binary, primary_port), primary_port)
    directory = tmp_path_factory.mktemp("sentinel")
    config = directory / "sentinel.conf"  # Sentinel rewrites it, so it must be writable
    config.write_text(
        f"port {sentinel_port}\n"
        "bind 127.0.0.1\n"
        "loglevel warning\n"
        f"dir {directory}\n"
        f"sentinel monitor mymaster 127.0.0.1 {primary_port} 1\n"
        "sentinel down-after-milliseconds mymaster 60000\n"
    )
    watcher = ServerProcess([binary, str(config), "--sentinel"], sentinel_port, cwd=directory)
    probe = raw(sentinel_port)

    def primary_known() -> bool:
        state: dict[str, Any] = probe.sentinel_master("mymaster")  # type: ignore[assignment]
        return state["is_master"] is True

    try:
        primary.start()
        watcher.start()
        try:
            wait_until(primary_known, "Sentinel to report the primary")
        finally:
            probe.close()
        yield primary, watcher
    finally:
        watcher.stop()
        primary.stop()


def test_sentinel_url(sentinel: tuple[ServerProcess, ServerProcess]) -> None:
    primary, watcher = sentinel
    store = from_url(f"redis+sentinel://127.0.0.1:{watcher.port}/mymaster/1")
    try:
        assert store.describe() == (
            f"redis sentinel master 'mymaster' via 127.0.0.1:{watcher.port}, db 1"
        )
        store.set("k", "through sentinel")
        assert store.get("k") == "through sentinel"
        assert raw(primary.port, db=1).exists(store.key_prefix + "k") == 1
        assert store.clear() is True
        assert store.get("k") is None
    finally:
        store.close()


def test_sentinel_settings(sentinel: tuple[ServerProcess, ServerProcess]) -> None:
    primary, watcher = sentinel
    store = from_settings(
        redis_sentinels=[f"127.0.0.1:{watcher.port}"], redis_sentinel_master="mymaster"
    )
    try:
        assert store.set_many({"a": 1, "b": 2}) == ["a", "b"]
        assert store.get_many("a", "b") == [1, 2]
        assert raw(primary.port).get(store.key_prefix + "a") == b"1"
    finally:
        store.close()


# -- Cluster --------------------------------------------------------------------


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    """Three primaries and no replicas, formed with redis-cli."""
    binary = redis_binary()
    cli = require_binary("redis-cli", "/usr/bin/redis-cli")
    nodes: list[ServerProcess] = []
    try:
        for _ in range(3):
            port = cluster_port()
            argv = redis_argv(binary, port, "--cluster-enabled", "yes")
            argv += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"]
            cwd = tmp_path_factory.mktemp("cluster")
            node = ServerProcess(argv, port, cwd=cwd)
            nodes.append(node)  # before start(), so a half-started node is stopped too
            node.start()
        create = [cli, "--cluster", "create", *(node.address for node in nodes)]
        subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        probes = [raw(node.port) for node in nodes]
        try:
            wait_until(
                lambda: all(probe.cluster("INFO")["cluster_state"] == "ok" for probe in probes),
                "cluster_state:ok",
            )
        finally:
            for probe in probes:
                probe.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_cluster_spreads_keys_and_clears_every_primary(cluster: list[ServerProcess]) -> None:
    store = from_url(f"redis+cluster://{cluster[0].address}")
    other = from_url(f"redis+cluster://{cluster[1].address}")
    try:
        assert store.describe() == f"redis cluster via {cluster[0].address}"
        items = {f"key{i}": i for i in range(60)}
        assert sorted(store.set_many(items)) == sorted(items)
        other.set_many(items)
        holders = [raw(node.port).keys(store.key_prefix + "*") for node in cluster]
        assert all(holders), "60 keys should land on every one of 3 primaries"
        assert store.get_many(*items) == list(items.values())
        assert store.get_dict("key1", "missing") == {"key1": 1, "missing": None}
        assert store.add("key1", "again") is False
        assert store.inc("key1", 10) == 11
        assert sorted(store.delete_many("key2", "key3", "missing")) == ["key2", "key3"]
        assert store.has("key2") is False
        assert store.clear() is True
        assert [raw(node.port).keys(store.key_prefix + "*") for node in cluster] == [[], [], []]
        assert other.get_many(*items) == list(items.values())
    finally:
        store.close()
        other.close()


def test_cluster_from_settings(cluster: list[ServerProcess]) -> None:
    nodes = ",".join(node.address for node in cluster)
    store = from_settings(redis_cluster=nodes)
    try:
        assert store.target.mode == "cluster"
        store.set("k", "v", timeout=30)
        assert store.get("k") == "v"
        assert store.delete("k") is True
    finally:
        store.close()


def test_cluster_mode_with_a_plain_node_url(cluster: list[ServerProcess]) -> None:
    store = from_settings(redis_url=f"redis://{cluster[2].address}", redis_mode="cluster")
    try:
        assert store.describe() == f"redis cluster via {cluster[2].address}"
        assert store.set("k", 1) is True
        assert store.get("k") == 1
    finally:
        store.close()


# -- failures -------------------------------------------------------------------


def test_dead_server_raises_and_restarted_server_is_used_again(
    redis_store_factory: Factory,
) -> None:
    port = free_port()
    server = ServerProcess(redis_argv(redis_binary(), port), port)
    try:
        server.start()
        store = redis_store_factory(host="127.0.0.1", port=port, key_prefix=prefix())
        store.set("k", "v")
        server.stop()
        with pytest.raises(redis.ConnectionError):
            store.get("k")
        with pytest.raises(redis.ConnectionError):
            store.set("k", "v")
        server.start()
        assert store.get("k") is None  # nothing persisted across the crash
        assert store.set("k", "back") is True
        assert store.get("k") == "back"
    finally:
        server.stop()


def test_server_that_never_answers_times_out_each_call(
    silent_server: SilentServer, redis_store_factory: Factory
) -> None:
    timeout = 0.3
    store = redis_store_factory(
        host="127.0.0.1", port=silent_server.port, key_prefix=prefix(), socket_timeout=timeout
    )
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get("k"),
        "set": lambda: store.set("k", "v"),
        "add": lambda: store.add("k", "v"),
        "inc": lambda: store.inc("n"),
        "get_many": lambda: store.get_many("a", "b"),
        "set_many": lambda: store.set_many({"a": 1}),
        "delete_many": lambda: store.delete_many("a"),
        "clear": store.clear,
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            call()
        elapsed = time.monotonic() - started
        assert timeout * 0.8 <= elapsed < timeout + 0.5, f"{name} took {elapsed:.2f}s"
