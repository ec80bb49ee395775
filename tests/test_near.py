"""The near cache in front of real memcached and Redis servers.

The staleness bound is checked exactly: the near store's clock is a fake one
moved by hand, while a second, plain store writes to the same server behind
its back. Redis server invalidation is checked with real timing, since the
server pushes its messages on its own schedule.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from flask_stash.errors import ConfigurationError, SerializationError
from flask_stash.stores import BaseStore, MemoryStore, StoreConfig, build_store
from flask_stash.stores.near import NearStore, wrap_near
from flask_stash.stores.redis import InvalidationWatcher, RedisStore

from .plugins.memcached import start_memcached
from .plugins.memory import FakeClock
from .plugins.redis import redis_argv, redis_binary
from .servers import ServerProcess, free_port

TTL = 5.0
#: How long a pushed invalidation may take to arrive. Locally it takes well
#: under a millisecond; the margin is for a loaded CI machine.
PUSH_DEADLINE = 1.0

MakeRemote = Callable[[str], BaseStore]
MakeNear = Callable[..., NearStore]


def prefix() -> str:
    return f"n{uuid.uuid4().hex[:8]}:"


@pytest.fixture(params=["memcached", "redis"])
def make_remote(request: pytest.FixtureRequest) -> MakeRemote:
    """Build plain stores on one real server; the plugin closes them."""
    make: MakeRemote = request.getfixturevalue(f"{request.param}_harness").make
    return make


@pytest.fixture
def make_near(clock: FakeClock) -> Iterator[MakeNear]:
    """Build near stores on the fake clock; each is closed when the test ends."""
    made: list[NearStore] = []

    def make(remote: BaseStore, ttl: float | None = TTL, **kwargs: Any) -> NearStore:
        kwargs.setdefault("clock", clock)
        store = NearStore(remote, ttl, **kwargs)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def pair(make_remote: MakeRemote, make_near: MakeNear) -> tuple[NearStore, BaseStore]:
    """A near store, and a plain store on the same data as another process would have."""
    namespace = prefix()
    return make_near(make_remote(namespace)), make_remote(namespace)


def live_watcher(near: NearStore) -> InvalidationWatcher:
    """The near store's Redis watcher, once it hears the server."""
    watcher = near.watcher
    assert isinstance(watcher, InvalidationWatcher)
    assert watcher.wait_live(5.0)
    return watcher


def settled(near: NearStore, *keys: str) -> None:
    """Read *keys* until their copies are held and stay held.

    The server echoes this process's own writes back as invalidations, which
    may drop a copy taken just before the echo arrived.
    """

    def held() -> bool:
        near.get_many(*keys)
        if not all(near.local.has(key) for key in keys):
            return False
        time.sleep(0.05)
        return all(near.local.has(key) for key in keys)

    wait_for(held, timeout=3.0)


def wait_for(check: Callable[[], bool], timeout: float = PUSH_DEADLINE) -> float:
    """Poll *check* until it holds; return how long that took, or fail."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not seen within {timeout}s")
        time.sleep(0.002)
    return time.monotonic() - started


# -- the staleness bound -------------------------------------------------------


def test_copy_hides_another_writer_for_exactly_ttl(
    pair: tuple[NearStore, BaseStore], clock: FakeClock
) -> None:
    near, other = pair
    near.set("k", "v1")
    assert near.get("k") == "v1"  # copied now
    other.set("k", "v2")
    assert near.get("k") == "v1"  # served from the process, not the server
    clock.advance(TTL - 0.01)
    assert near.get("k") == "v1"
    clock.advance(0.01)
    assert near.get("k") == "v2"  # ttl seconds after the copy: read again
    other.delete("k")
    clock.advance(TTL - 0.01)
    assert near.get("k") == "v2"
    clock.advance(0.01)
    assert near.get("k") is None


def test_get_many_copies_are_bounded_too(
    pair: tuple[NearStore, BaseStore], clock: FakeClock
) -> None:
    near, other = pair
    other.set_many({"a": 1, "b": 2})
    assert near.get_many("a", "b") == [1, 2]
    other.set_many({"a": 10, "b": 20})
    assert near.get_many("a", "b") == [1, 2]
    assert near.has("a") is True
    clock.advance(TTL)
    assert near.get_many("a", "b") == [10, 20]


def test_misses_are_not_copied(pair: tuple[NearStore, BaseStore]) -> None:
    near, other = pair
    assert near.get("k") is None
    assert near.get_many("k", "j") == [None, None]
    other.set("k", "v")
    other.set("j", "w")
    assert near.get("k") == "v"
    assert near.get_many("k", "j") == ["v", "w"]
    assert len(near.local) == 2


def test_local_hit_never_touches_the_server_and_failures_propagate(
    make_near: MakeNear, clock: FakeClock, memcached_store_factory: Callable[..., BaseStore]
) -> None:
    """With the server gone, copies are still served until their ttl, then reads fail."""
    from pymemcache.exceptions import MemcacheError

    server = start_memcached()
    try:
        near = make_near(memcached_store_factory([server.address], key_prefix=prefix()))
        near.set_many({"a": "A", "b": "B"})
        assert near.get_many("a", "b") == ["A", "B"]
        server.stop()
        assert near.get("a") == "A"
        assert near.get_many("b", "a") == ["B", "A"]
        with pytest.raises((OSError, MemcacheError)):
            near.get("c")  # not copied: goes to the server
        clock.advance(TTL)
        with pytest.raises((OSError, MemcacheError)):
            near.get("a")
    finally:
        server.stop()


def test_failed_write_still_drops_the_copy(
    make_near: MakeNear, redis_store_factory: Callable[..., RedisStore]
) -> None:
    port = free_port()
    server = ServerProcess(redis_argv(redis_binary(), port), port)
    try:
        server.start()
        near = make_near(redis_store_factory(host="127.0.0.1", port=port, key_prefix=prefix()))
        near.set("k", "v")
        assert near.get("k") == "v"
        server.stop()
        with pytest.raises(redis.ConnectionError):
            near.set("k", "new")
        assert len(near.local) == 0  # the write may have landed: the copy is gone
    finally:
        server.stop()


class PausingRedisStore(RedisStore):
    """A real Redis store whose next ``get`` stops after the server answered.

    It holds a read between the server's answer and its return, so a test
    can put a write exactly there; the race it opens is otherwise too narrow
    to hit on purpose.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered = threading.Event()
        self.proceed = threading.Event()
        self.pausing = False

    def get(self, key: str) -> Any:
        value = super().get(key)
        if self.pausing:
            self.pausing = False
            self.answered.set()
            self.proceed.wait(5.0)
        return value


@pytest.mark.parametrize("track", [False, True], ids=["ttl", "tracked"])
def test_read_overlapping_a_write_does_not_leave_a_stale_copy(
    redis_server: ServerProcess, make_near: MakeNear, track: bool
) -> None:
    remote = PausingRedisStore(host="127.0.0.1", port=redis_server.port, key_prefix=prefix())
    near = make_near(remote, TTL, track=track)
    if track:
        live_watcher(near)
    near.set("k", "old")
    remote.pausing = True
    results: list[Any] = []
    reader = threading.Thread(target=lambda: results.append(near.get("k")))
    reader.start()
    try:
        assert remote.answered.wait(5.0)
        near.set("k", "new")  # lands while the read is out
    finally:
        remote.proceed.set()
        reader.join(5.0)
    assert results == ["old"]  # served as read...
    assert near.get("k") == "new"  # ...but not copied over the newer write


# -- this process's own writes -------------------------------------------------


def test_own_writes_and_deletes_are_seen_at_once(pair: tuple[NearStore, BaseStore]) -> None:
    near, other = pair
    near.set("k", "one")
    assert near.get("k") == "one"
    near.set("k", "two")
    assert near.get("k") == "two"
    assert near.add("k", "three") is False
    assert near.delete("k") is True
    assert near.get("k") is None
    assert near.add("k", "four") is True
    assert near.get("k") == "four"
    assert other.get("k") == "four"

    near.set("n", 1)
    assert near.get("n") == 1
    assert near.inc("n", 5) == 6
    assert near.get("n") == 6
    assert near.dec("n", 2) == 4
    assert near.get("n") == 4

    near.set_many({"a": "A", "b": "B"})
    assert near.get_many("a", "b") == ["A", "B"]
    near.set_many({"a": "A2", "b": "B2"})
    assert near.get_many("a", "b") == ["A2", "B2"]
    assert sorted(near.delete_many("a", "b", "missing")) == ["a", "b"]
    assert near.get_many("a", "b") == [None, None]


def test_get_many_serves_local_copies_and_fetches_the_rest(
    pair: tuple[NearStore, BaseStore],
) -> None:
    near, other = pair
    near.set_many({"a": "A", "b": "B"})
    assert near.get("a") == "A"  # only "a" is copied
    other.set_many({"a": "A2", "b": "B2", "c": "C2"})
    assert near.get_many("a", "b", "missing", "c", "a") == ["A", "B2", None, "C2", "A"]
    assert near.get_dict("a", "b") == {"a": "A", "b": "B2"}
    other.set("b", "B3")
    assert near.get("b") == "B2"  # the fetched values were copied


def test_clear_empties_the_namespace_and_the_copies(
    make_remote: MakeRemote, make_near: MakeNear
) -> None:
    namespace = prefix()
    near, other = make_near(make_remote(namespace)), make_remote(namespace)
    neighbour = make_remote(prefix())
    near.set("k", "v")
    neighbour.set("k", "theirs")
    assert near.get("k") == "v"
    assert near.clear() is True
    assert len(near.local) == 0
    assert near.get("k") is None
    assert other.get("k") is None
    assert neighbour.get("k") == "theirs"


def test_values_read_from_the_copy_are_not_shared(pair: tuple[NearStore, BaseStore]) -> None:
    near, _ = pair
    near.set("k", {"items": [1, 2]})
    first = near.get("k")
    first["items"].append(3)
    second = near.get("k")
    assert second == {"items": [1, 2]}
    second["items"].clear()
    assert near.get_many("k") == [{"items": [1, 2]}]


# -- the store contract, through a near store -----------------------------------


@pytest.mark.parametrize(
    "value",
    ["text", b"\x00\xffbytes", 0, 42, -7, 3.5, True, False, (1, "a"), [1, {"a": (2, 3)}]],
    ids=repr,
)
def test_values_round_trip_from_server_and_copy(
    pair: tuple[NearStore, BaseStore], value: object
) -> None:
    near, _ = pair
    assert near.set("k", value) is True
    for _ in range(2):  # from the server, then from the copy
        got = near.get("k")
        assert got == value
        assert type(got) is type(value)


def test_contract_errors_come_from_the_remote(pair: tuple[NearStore, BaseStore]) -> None:
    near, _ = pair
    with pytest.raises(ValueError, match="timeout"):
        near.set("k", "v", timeout=-1)
    with pytest.raises(SerializationError):
        near.set("k", (x for x in range(3)))
    assert near.get("k") is None
    near.set("s", "text")
    assert near.inc("s", 4) == 4  # the remote's rule: not a counter reads as absent


def test_shared_describe_and_close(make_near: MakeNear, redis_harness: Any) -> None:
    remote = redis_harness.make(prefix())
    near = make_near(remote, 2.5)
    assert near.shared is remote.shared is True
    assert near.key_prefix == remote.key_prefix
    assert near.default_timeout == remote.default_timeout
    assert near.describe() == f"near cache (ttl=2.5s) in front of {remote.describe()}"
    near.set("k", "v")
    assert near.get("k") == "v"
    near.close()
    assert len(near.local) == 0
    assert remote._client is None  # closed


# -- wrap_near and refused configurations ---------------------------------------


def test_wrap_near(make_remote: MakeRemote, clock: FakeClock) -> None:
    remote = make_remote(prefix())
    assert wrap_near(remote, None, 100) is remote
    assert wrap_near(remote, 0, 100) is remote
    near = wrap_near(remote, 1.5, 7, 4096, clock=clock)
    try:
        assert isinstance(near, NearStore)
        assert near.remote is remote
        assert near.ttl == 1.5
        assert near.local.threshold == 7
        assert near.local.max_bytes == 4096
        with pytest.raises(ValueError, match="already a near cache"):
            wrap_near(near, 1.0, 100)
    finally:
        near.close()


def test_wrap_near_refuses_the_memory_store() -> None:
    memory = MemoryStore()
    assert wrap_near(memory, None, 100) is memory
    with pytest.raises(ValueError, match="memory store"):
        wrap_near(memory, 5.0, 100)


def test_bad_near_configurations(make_remote: MakeRemote) -> None:
    remote = make_remote(prefix())
    with pytest.raises(ValueError, match="0 or more"):
        NearStore(remote, -1.0)
    with pytest.raises(ValueError, match="needs a ttl"):
        NearStore(remote, None)


def test_near_store_is_not_a_cache_type_of_its_own() -> None:
    with pytest.raises(ConfigurationError, match="in front of a remote store"):
        build_store("flask_stash.stores.near:NearStore", StoreConfig())


def test_tracking_needs_a_standalone_redis(memcached_harness: Any) -> None:
    with pytest.raises(ValueError, match="track=True needs"):
        NearStore(memcached_harness.make(prefix()), None, track=True)
    for url in ("redis+sentinel://127.0.0.1:1/mymaster/0", "redis+cluster://127.0.0.1:1"):
        remote = RedisStore(url=url, key_prefix=prefix())
        try:
            with pytest.raises(ValueError, match="standalone server only"):
                NearStore(remote, None, track=True)
        finally:
            remote.close()


# -- Redis: server invalidation ---------------------------------------------------


@pytest.fixture
def tracked(redis_harness: Any, make_near: MakeNear) -> Callable[..., tuple[NearStore, BaseStore]]:
    """A near store kept current by the server, and a plain store on the same data."""

    def make(ttl: float | None = None) -> tuple[NearStore, BaseStore]:
        namespace = prefix()
        near = make_near(redis_harness.make(namespace), ttl, track=True)
        live_watcher(near)
        return near, redis_harness.make(namespace)

    return make


@pytest.mark.parametrize("ttl", [None, 3600.0], ids=["no-ttl", "long-ttl"])
def test_another_clients_writes_are_seen_at_once(
    tracked: Callable[..., tuple[NearStore, BaseStore]], ttl: float | None
) -> None:
    """The fake clock never moves, so only the server's message can end a copy."""
    near, other = tracked(ttl)
    near.set("k", "v1")
    near.set("j", "w1")
    settled(near, "k", "j")
    assert near.get_many("k", "j") == ["v1", "w1"]

    other.set("k", "v2")
    assert wait_for(lambda: near.get("k") == "v2") < PUSH_DEADLINE
    assert near.get("j") == "w1"
    assert near.local.has("j")  # only the changed key's copy went

    other.delete("k")
    wait_for(lambda: near.get("k") is None)
    other.set_many({"k": "v3", "j": "w3"})
    wait_for(lambda: near.get_many("k", "j") == ["v3", "w3"])
    other.inc("n")
    settled(near, "n")
    assert near.get("n") == 1
    other.inc("n")
    wait_for(lambda: near.get("n") == 2)
    other.clear()
    wait_for(lambda: near.get_many("k", "j", "n") == [None, None, None])


def test_expiry_on_the_server_ends_the_copy(
    tracked: Callable[..., tuple[NearStore, BaseStore]],
) -> None:
    near, _ = tracked()
    near.set("k", "v", timeout=1)
    settled(near, "k")
    wait_for(lambda: near.get("k") is None, timeout=1.0 + 2.0)  # the server expires it


def test_another_namespace_does_not_disturb_the_copies(
    tracked: Callable[..., tuple[NearStore, BaseStore]], redis_harness: Any
) -> None:
    near, _ = tracked()
    neighbour = redis_harness.make(prefix())
    near.set("k", "v")
    settled(near, "k")
    neighbour.set("k", "theirs")
    neighbour.clear()
    time.sleep(0.05)
    assert near.local.has("k")


@pytest.fixture
def private_redis() -> Iterator[ServerProcess]:
    """A server of the test's own, which it may flush, stop and restart."""
    port = free_port()
    server = ServerProcess(redis_argv(redis_binary(), port), port)
    try:
        yield server.start()
    finally:
        server.stop()


def test_flushdb_drops_every_copy(
    private_redis: ServerProcess,
    make_near: MakeNear,
    redis_store_factory: Callable[..., RedisStore],
) -> None:
    remote = redis_store_factory(host="127.0.0.1", port=private_redis.port, key_prefix=prefix())
    near = make_near(remote, None, track=True)
    live_watcher(near)
    near.set_many({"a": 1, "b": 2})
    settled(near, "a", "b")
    client = remote.client
    assert isinstance(client, redis.Redis)
    client.flushdb()
    wait_for(lambda: len(near.local) == 0)
    assert near.get_many("a", "b") == [None, None]


def test_lost_server_drops_copies_and_tracking_recovers(
    private_redis: ServerProcess,
    make_near: MakeNear,
    redis_store_factory: Callable[..., RedisStore],
) -> None:
    namespace = prefix()
    near = make_near(
        redis_store_factory(host="127.0.0.1", port=private_redis.port, key_prefix=namespace),
        None,
        track=True,
    )
    other = redis_store_factory(host="127.0.0.1", port=private_redis.port, key_prefix=namespace)
    watcher = live_watcher(near)
    near.set("k", "v")
    settled(near, "k")

    private_redis.stop()
    wait_for(lambda: not watcher.live, timeout=3.0)
    assert len(near.local) == 0  # messages may have been missed: nothing is trusted
    with pytest.raises(redis.ConnectionError):
        near.get("k")

    private_redis.start()
    assert watcher.wait_live(10.0)
    near.set("k", "back")
    assert near.get("k") == "back"
    other.set("k", "changed")
    wait_for(lambda: near.get("k") == "changed")


def test_forked_child_hears_invalidations_of_its_own(
    tracked: Callable[..., tuple[NearStore, BaseStore]],
) -> None:
    """A child inherits the copies but not the watcher's thread; it must not trust them."""
    near, other = tracked()
    near.set("k", "v1")
    settled(near, "k")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            watcher = near.watcher
            assert isinstance(watcher, InvalidationWatcher)
            other.set("k", "v2")  # the inherited copy says v1
            ok = near.get("k") == "v2" and watcher.wait_live(5.0)
            near.get("k")
            other.set("k", "v3")
            deadline = time.monotonic() + PUSH_DEADLINE
            while ok and near.get("k") != "v3":
                ok = time.monotonic() < deadline
                time.sleep(0.002)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    wait_for(lambda: near.get("k") == "v3")  # the parent's watcher still works


# -- Redis: the client cache settings ---------------------------------------------


def test_client_cache_setting_builds_a_tracked_near_store(redis_harness: Any) -> None:
    port = int(redis_harness.url.rsplit(":", 1)[1].split("/")[0])
    base = {"redis_host": "127.0.0.1", "redis_port": port}
    config = StoreConfig(
        key_prefix=prefix(),
        settings={**base, "redis_client_cache": "true", "redis_client_cache_max_size": 5},
    )
    store = build_store("redis", config)
    try:
        assert isinstance(store, NearStore)
        assert isinstance(store.remote, RedisStore)
        assert store.ttl is None
        assert store.local.threshold == 5
        assert store.describe() == (
            f"near cache (invalidated by the server) in front of redis://127.0.0.1:{port}/0"
        )
        live_watcher(store)
        store.set("k", "v")
        assert store.get("k") == "v"
    finally:
        store.close()

    from_options = build_store(
        "redis",
        StoreConfig(key_prefix=prefix(), settings=base, options={"client_cache": True}),
    )
    plain = build_store(
        "redis", StoreConfig(key_prefix=prefix(), settings={**base, "redis_client_cache": "no"})
    )
    try:
        assert isinstance(from_options, NearStore)
        assert from_options.local.threshold == 1000
        assert isinstance(plain, RedisStore)
    finally:
        from_options.close()
        plain.close()


@pytest.mark.parametrize(
    "url", ["redis+sentinel://127.0.0.1:1/mymaster/0", "redis+cluster://127.0.0.1:1"]
)
def test_client_cache_setting_refuses_sentinel_and_cluster(url: str) -> None:
    from flask_stash.stores import type_for_url

    _, parts = type_for_url(url)
    config = StoreConfig(key_prefix=prefix(), url=parts, settings={"redis_client_cache": True})
    with pytest.raises(ConfigurationError, match="standalone server only"):
        build_store("redis", config)
