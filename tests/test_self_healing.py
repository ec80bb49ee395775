"""Junk where a store reads is a miss, and is replaced: a sick store never stalls the site.

Each test writes bytes with the server's own client (pymemcache,
python-binary-memcached, redis-py, diskcache) exactly where a store reads:
the memcached namespace version, an entry's key, a counter's key, a tag's
key. The store must read a miss without raising and work again at once,
and a Flask app on it must serve and cache its pages with no store error
counted (an error would open the circuit breaker).
"""

from __future__ import annotations

import pickle
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache
from flask_stash.serializers import PickleSerializer, Serializer, make_serializer
from flask_stash.stores import BaseStore, MemoryStore
from flask_stash.stores.disk import DiskStore

from .plugins.saslmemcached import SASL_PASSWORD, SASL_USER
from .servers import ServerProcess

pytest.importorskip("pymemcache")
pytest.importorskip("bmemcached")
pytest.importorskip("redis")

import bmemcached
import diskcache
import redis
from bmemcached.exceptions import MemcachedException
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from flask_stash.stores._memcached_common import memcached_key, namespace_key

SHARED = ["memcached", "saslmemcached", "redis", "disk"]
MEMCACHED = ["memcached", "saslmemcached"]
SERIALIZERS = ["unsigned", "signed", "pickle"]

#: Bytes no store wrote; fixed, so that every run feeds the same ones.
RANDOM = random.Random(20240601).randbytes(64)

#: What no store can take for an entry.
ENTRY_JUNK = {
    "5000 digits": b"9" * 5000,
    "25 digits": b"1" * 25,
    "minus and 25 digits": b"-" + b"1" * 25,
    "19 digits past 64 bits": b"9223372036854775808",
    "random bytes": RANDOM,
    "truncated pickle": pickle.dumps({"a": [1, 2, 3]})[:-4],
    "empty": b"",
}

#: What no store can take for a namespace version.
VERSION_JUNK = {
    "text": b"junk",
    "5000 digits": b"9" * 5000,
    "25 digits": b"1" * 25,
    "past 64 bits": b"18446744073709551616",
    "zero": b"0",
    "negative": b"-5",
    "fraction": b"1.5",
    "empty": b"",
    "random bytes": RANDOM,
}

#: What no store can count on.
COUNTER_JUNK = {
    "text": b"junk",
    "5000 digits": b"9" * 5000,
    "25 digits": b"1" * 25,
    "minus and 25 digits": b"-" + b"1" * 25,
    "random bytes": RANDOM,
    "a pickled value": pickle.dumps("text"),
}
#: A counter that one more would carry past 64 bits.
FULL_COUNTER = {"the 64-bit maximum": b"9223372036854775807"}


def new_prefix() -> str:
    return f"heal{uuid.uuid4().hex[:8]}:"


def serializer_named(name: str) -> Serializer:
    """What init_app builds for a shared store (with a secret or not), or what a bare store has."""
    if name == "pickle":
        return PickleSerializer()
    return make_serializer("pickle", b"s3cret" if name == "signed" else None)


@dataclass
class Site:
    """A store, the URL naming its data, and a raw client on the same data."""

    kind: str
    store: BaseStore
    url: str
    prefix: str
    put: Callable[[str, bytes], object]
    fetch: Callable[[str], bytes | None]
    remove: Callable[[str], object]
    #: Another instance on the same data and prefix, as another worker would have.
    make: Callable[[], BaseStore]

    @property
    def namespace(self) -> str:
        """The key of the memcached namespace version."""
        return namespace_key(self.prefix)

    def key(self, key: str) -> str:
        """The name the server keeps *key* under, as the store reads it now."""
        if self.kind not in MEMCACHED:
            return self.prefix + key
        raw = self.fetch(self.namespace)
        if raw is None:
            self.store.get(key)  # the first read creates the namespace version
            raw = self.fetch(self.namespace)
        assert raw is not None
        assert raw.isdigit()
        return memcached_key(f"{self.prefix}{int(raw)}:{key}")


SiteFactory = Callable[..., Site]
Closers = list[Callable[[], object]]


def memcached_site(request: pytest.FixtureRequest, serializer: str, closers: Closers) -> Site:
    server: ServerProcess = request.getfixturevalue("memcached_server")
    factory = request.getfixturevalue("memcached_store_factory")
    prefix = new_prefix()

    def build() -> BaseStore:
        store: BaseStore = factory(
            [server.address], key_prefix=prefix, serializer=serializer_named(serializer)
        )
        return store

    client = Client(("127.0.0.1", server.port), connect_timeout=1, timeout=1, default_noreply=False)
    closers.append(client.close)
    url = f"memcached://{server.address}"
    return Site("memcached", build(), url, prefix, client.set, client.get, client.delete, build)


def sasl_site(request: pytest.FixtureRequest, serializer: str, closers: Closers) -> Site:
    server: ServerProcess = request.getfixturevalue("saslmemcached_server")
    factory = request.getfixturevalue("saslmemcached_store_factory")
    prefix = new_prefix()

    def build() -> BaseStore:
        store: BaseStore = factory(
            [server.address],
            key_prefix=prefix,
            username=SASL_USER,
            password=SASL_PASSWORD,
            serializer=serializer_named(serializer),
        )
        return store

    binary = bmemcached.Client([server.address], SASL_USER, SASL_PASSWORD, raw_data=True)
    closers.append(binary.disconnect_all)
    url = f"memcached://{SASL_USER}:{SASL_PASSWORD}@{server.address}"
    return Site("saslmemcached", build(), url, prefix, binary.set, binary.get, binary.delete, build)


def redis_site(request: pytest.FixtureRequest, serializer: str, closers: Closers) -> Site:
    server: ServerProcess = request.getfixturevalue("redis_server")
    factory = request.getfixturevalue("redis_store_factory")
    prefix = new_prefix()

    def build() -> BaseStore:
        store: BaseStore = factory(
            host="127.0.0.1",
            port=server.port,
            key_prefix=prefix,
            serializer=serializer_named(serializer),
        )
        return store

    plain = redis.Redis(host="127.0.0.1", port=server.port)
    closers.append(plain.close)

    def fetch(name: str) -> bytes | None:
        found = plain.get(name)
        assert found is None or isinstance(found, bytes)
        return found

    url = f"redis://127.0.0.1:{server.port}/0"
    return Site("redis", build(), url, prefix, plain.set, fetch, plain.delete, build)


def disk_site(directory: Path, serializer: str, closers: Closers) -> Site:
    prefix = new_prefix()

    def build() -> BaseStore:
        store = DiskStore(directory, key_prefix=prefix, serializer=serializer_named(serializer))
        closers.append(store.close)
        return store

    first = build()  # creates the directory the raw client opens
    raw = diskcache.Cache(str(directory))
    closers.append(raw.close)
    return Site("disk", first, directory.as_uri(), prefix, raw.set, raw.get, raw.delete, build)


@pytest.fixture
def make_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SiteFactory]:
    """Build a Site of a kind: on the session's server, or in this test's directory."""
    closers: Closers = []

    def make(kind: str, serializer: str = "unsigned") -> Site:
        if kind == "memcached":
            return memcached_site(request, serializer, closers)
        if kind == "saslmemcached":
            return sasl_site(request, serializer, closers)
        if kind == "redis":
            return redis_site(request, serializer, closers)
        assert kind == "disk"
        return disk_site(tmp_path / "disk-cache", serializer, closers)

    yield make
    for close in reversed(closers):
        close()


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in *count* threads released at once; return the results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as err:  # reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


# -- the memcached namespace version ----------------------------------------------


@pytest.mark.parametrize("junk", VERSION_JUNK.values(), ids=VERSION_JUNK)
@pytest.mark.parametrize("kind", MEMCACHED)
def test_a_junk_namespace_version_reads_as_a_miss_and_is_replaced(
    kind: str, junk: bytes, make_site: SiteFactory
) -> None:
    site = make_site(kind)
    warm = site.store
    assert warm.set("k", "old") is True  # warm now guesses the version on each read
    site.put(site.namespace, junk)
    cold = site.make()  # a worker that has never read the version

    assert warm.get("k") is None
    assert cold.get_many("k", "other") == [None, None]
    assert cold.set("k", "new") is True
    assert cold.get("k") == "new"
    assert warm.get("k") == "new"  # both on the one version that replaced the junk
    version = site.fetch(site.namespace)
    assert version is not None
    assert version.isdigit()
    assert int(version) > 0


@pytest.mark.parametrize("junk", VERSION_JUNK.values(), ids=VERSION_JUNK)
@pytest.mark.parametrize("kind", MEMCACHED)
def test_clear_over_a_junk_namespace_version_moves_to_a_fresh_one(
    kind: str, junk: bytes, make_site: SiteFactory
) -> None:
    site = make_site(kind)
    other = site.make()
    assert site.store.set("k", "old") is True
    site.put(site.namespace, junk)

    assert site.store.clear() is True
    assert site.store.get("k") is None
    assert site.store.set("k", "new") is True
    assert other.get("k") == "new"
    assert other.clear() is True  # the fresh version increments as usual
    assert site.store.get("k") is None


def test_memcached_refuses_to_increment_junk_and_clear_replaces_it(
    make_site: SiteFactory, memcached_server: ServerProcess
) -> None:
    site = make_site("memcached")
    site.put(site.namespace, b"junk")
    client = Client(("127.0.0.1", memcached_server.port), default_noreply=False)
    try:
        with pytest.raises(MemcacheClientError, match="non-numeric"):
            client.incr(site.namespace, 1)
    finally:
        client.close()
    assert site.store.clear() is True
    assert site.store.set("k", "v") is True
    assert site.store.get("k") == "v"


@pytest.mark.parametrize("start", ["junk", "missing"])
@pytest.mark.parametrize("kind", MEMCACHED)
def test_workers_replacing_the_version_at_once_all_land_on_one(
    kind: str, start: str, make_site: SiteFactory
) -> None:
    site = make_site(kind)
    workers = [site.make() for _ in range(8)]
    for attempt in range(5):
        if start == "junk":
            site.put(site.namespace, b"junk")
        else:
            site.remove(site.namespace)
        keys = [f"k{attempt}-{index}" for index in range(len(workers))]

        def write(index: int, keys: list[str] = keys) -> bool:
            return workers[index].set(keys[index], index)

        stored = run_together(len(workers), write)

        assert stored == [True] * len(workers)
        # Had two versions each won for a while, some of these writes would
        # sit in a namespace that nobody reads.
        assert site.make().get_many(*keys) == list(range(len(workers)))
        assert [worker.get(keys[-1]) for worker in workers] == [len(workers) - 1] * len(workers)


# -- entries ----------------------------------------------------------------------


@pytest.mark.parametrize("junk", ENTRY_JUNK.values(), ids=ENTRY_JUNK)
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("kind", SHARED)
def test_junk_under_an_entry_reads_as_a_miss_and_is_replaced(
    kind: str, serializer: str, junk: bytes, make_site: SiteFactory
) -> None:
    site = make_site(kind, serializer)
    store = site.store
    assert store.set("other", "fine") is True
    site.put(site.key("entry"), junk)

    assert store.get("entry") is None
    assert store.get_many("entry", "other") == [None, "fine"]
    assert store.set("entry", "fresh") is True
    assert store.get("entry") == "fresh"
    assert store.add("entry", "again") is False


@pytest.mark.parametrize("kind", SHARED)
def test_digit_strings_are_counters_up_to_64_bits_only(kind: str, make_site: SiteFactory) -> None:
    site = make_site(kind)
    for digits, value in [
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"00000000000000000001", None),  # 20 digits, whatever their value
        (b"0000000000000000001", 1),
    ]:
        site.put(site.key("n"), digits)
        assert site.store.get("n") == value, digits


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**70, 10**30])
@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("kind", SHARED)
def test_an_integer_past_64_bits_is_cached_as_a_value_not_as_digits(
    kind: str, serializer: str, value: int, make_site: SiteFactory
) -> None:
    site = make_site(kind, serializer)
    assert site.store.set("big", value) is True
    assert site.store.get("big") == value
    stored = site.fetch(site.key("big"))
    assert stored != str(value).encode()


# -- counters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "junk", [*COUNTER_JUNK.values(), *FULL_COUNTER.values()], ids=[*COUNTER_JUNK, *FULL_COUNTER]
)
@pytest.mark.parametrize("kind", SHARED)
def test_inc_on_junk_starts_the_counter_again(
    kind: str, junk: bytes, make_site: SiteFactory
) -> None:
    site = make_site(kind)
    site.put(site.key("hits"), junk)
    assert site.store.inc("hits") == 1
    assert site.store.get("hits") == 1
    assert site.store.inc("hits", 5) == 6
    assert site.store.dec("hits", 2) == 4
    assert site.store.get("hits") == 4


@pytest.mark.parametrize("junk", COUNTER_JUNK.values(), ids=COUNTER_JUNK)
@pytest.mark.parametrize("kind", SHARED)
def test_dec_on_junk_starts_the_counter_again(
    kind: str, junk: bytes, make_site: SiteFactory
) -> None:
    site = make_site(kind)
    site.put(site.key("left"), junk)
    assert site.store.dec("left", 3) == -3
    assert site.store.get("left") == -3


@pytest.mark.parametrize("value", ["text", 1.5, True, [1, 2], 2**70, -(2**70)])
@pytest.mark.parametrize("kind", [*SHARED, "memory"])
def test_inc_on_a_value_that_is_not_a_counter_replaces_it(
    kind: str, value: Any, make_site: SiteFactory
) -> None:
    store = MemoryStore() if kind == "memory" else make_site(kind).store
    assert store.set("n", value) is True
    assert store.inc("n", 2) == 2
    assert store.get("n") == 2
    assert store.inc("n") == 3


@pytest.mark.parametrize("kind", [*SHARED, "memory"])
def test_inc_past_64_bits_starts_the_counter_again(kind: str, make_site: SiteFactory) -> None:
    store = MemoryStore() if kind == "memory" else make_site(kind).store
    assert store.set("up", 2**63 - 2) is True
    assert store.inc("up") == 2**63 - 1
    assert store.inc("up") == 1
    assert store.set("down", -(2**63) + 1) is True
    assert store.dec("down") == -(2**63)
    assert store.dec("down") == -1


@pytest.mark.parametrize("kind", [*SHARED, "memory"])
def test_workers_incrementing_junk_at_once_lose_no_increment(
    kind: str, make_site: SiteFactory
) -> None:
    if kind == "memory":
        store: BaseStore = MemoryStore()
        store.set("hits", "junk")
        workers = [store] * 8
    else:
        site = make_site(kind)
        site.put(site.key("hits"), b"junk")
        workers = [site.make() for _ in range(8)]
    results = run_together(len(workers), lambda index: workers[index].inc("hits"))
    assert sorted(results) == list(range(1, len(workers) + 1))
    assert workers[0].get("hits") == len(workers)


def test_redis_refuses_incrby_on_junk_and_the_store_starts_again(
    make_site: SiteFactory, redis_server: ServerProcess
) -> None:
    site = make_site("redis")
    plain = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        plain.set(site.key("c"), b"junk")
        with pytest.raises(redis.ResponseError, match="not an integer"):
            plain.incrby(site.key("c"), 1)
        assert site.store.inc("c") == 1
        plain.set(site.key("full"), b"9223372036854775807")
        with pytest.raises(redis.ResponseError, match="overflow"):
            plain.incrby(site.key("full"), 1)
        assert site.store.inc("full") == 1
        plain.rpush(site.key("list"), b"x")  # another type altogether
        assert site.store.get("list") is None
        assert site.store.inc("list") == 1
        plain.rpush(site.key("list2"), b"x")
        assert site.store.set("list2", "v") is True
        assert site.store.get("list2") == "v"
    finally:
        plain.close()


@pytest.mark.parametrize("kind", MEMCACHED)
def test_memcached_refuses_incr_on_junk_and_the_store_starts_again(
    kind: str, make_site: SiteFactory, request: pytest.FixtureRequest
) -> None:
    site = make_site(kind)
    name = site.key("c")
    site.put(name, b"junk")
    if kind == "memcached":
        server: ServerProcess = request.getfixturevalue("memcached_server")
        client = Client(("127.0.0.1", server.port), default_noreply=False)
        try:
            with pytest.raises(MemcacheClientError, match="non-numeric"):
                client.incr(name, 1)
        finally:
            client.close()
    else:
        server = request.getfixturevalue("saslmemcached_server")
        binary = bmemcached.Client([server.address], SASL_USER, SASL_PASSWORD, raw_data=True)
        try:
            with pytest.raises(MemcachedException):
                binary.incr(name, 1)
        finally:
            binary.disconnect_all()
    assert site.store.inc("c") == 1
    assert site.store.inc("c") == 2


# -- a Flask app on the store -----------------------------------------------------

#: Where the junk goes: an entry, a tag version, and on memcached the namespace version.
WHERE = [
    *((kind, where) for kind in SHARED for where in ("entry", "tag")),
    *((kind, "namespace") for kind in MEMCACHED),
]
FLASK_JUNK = {"5000 digits": b"9" * 5000, "random bytes": RANDOM}


def write_junk(site: Site, where: str, junk: bytes) -> None:
    if where == "entry":
        site.put(site.key("page"), junk)
    elif where == "tag":
        site.put(site.key("tag:url:localhost/"), junk)  # the tag every page of "/" carries
    else:
        site.put(site.namespace, junk)


@pytest.mark.parametrize("junk", FLASK_JUNK.values(), ids=FLASK_JUNK)
@pytest.mark.parametrize("secret", [None, "s3cret"], ids=["unsigned", "signed"])
@pytest.mark.parametrize("when", ["before the first request", "once the page was cached"])
@pytest.mark.parametrize(("kind", "where"), WHERE)
def test_a_page_is_served_and_cached_after_junk_was_written(
    kind: str, where: str, when: str, secret: str | None, junk: bytes, make_site: SiteFactory
) -> None:
    site = make_site(kind)
    app = Flask(__name__)
    app.config.update(CACHE_URL=site.url, CACHE_KEY_PREFIX=site.prefix, SECRET_KEY=secret)
    cache = Cache(app)
    runs: Counter[str] = Counter()

    @app.route("/")
    @cache.cached(key_prefix="page", source_check=False)
    def index() -> str:
        runs["index"] += 1
        return f"page {runs['index']}"

    client = app.test_client()
    hits = 0
    if when == "once the page was cached":
        assert client.get("/").data == client.get("/").data == b"page 1"
        hits = 1
    write_junk(site, where, junk)
    runs.clear()
    first, second = client.get("/"), client.get("/")

    assert first.status_code == second.status_code == 200
    assert first.data == second.data == b"page 1"  # the view ran once for the two
    assert runs["index"] == 1
    with app.app_context():
        assert cache.stats.total.errors == 0
        assert cache.stats.total.hits == hits + 1
