"""Shared stores without a secret: plain data only, read back without running code.

The first half drives the unsigned format directly: every plain type and
the decorators' records round-trip with their types, and bytes it did not
write (pickles, noise, deep nesting, records of the wrong shape) read as a
miss, never as an exception and never through pickle. The second half runs
apps on real memcached, Redis and disk stores with no secret at all, and
then with one, copying signed bytes between keys with the servers' own
clients.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import pickle
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from flask import Flask, Response, request

from flask_stash import Cache, SerializationError
from flask_stash.entries import FrozenResponse, MemoEntry, VaryIndex, well_formed
from flask_stash.serializers import (
    JSONSerializer,
    MsgpackSerializer,
    Serializer,
    UnsignedSerializer,
    make_serializer,
)

from .plugins.saslmemcached import SASL_PASSWORD, SASL_USER
from .servers import ServerProcess, servers_required

# Nothing in these tests may unpickle, except where a test says otherwise.
pytestmark = pytest.mark.usefixtures("no_unpickling")

KEY = "prefix:entry"

UTC = datetime.timezone.utc
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
PST = datetime.timezone(datetime.timedelta(hours=-8))
ODD = datetime.timezone(datetime.timedelta(seconds=-37, microseconds=5))

PLAIN: list[Any] = [
    "text",
    "",
    "\u00e9t\u00e9 \U0001f600 \x00",
    "5",
    0,
    -7,
    2**70,
    1.5,
    -0.0,
    1e300,
    True,
    False,
    None,
    b"",
    b"\x00\x80\xff",
    [],
    [1, [2, [3, ["deep"]]]],
    (),
    (1,),
    ((1, 2), [3, (4,)]),
    {},
    {"a": 1, "b": {"c": (b"d",)}},
    {1: "one", 2: "two"},
    {(1, "a"): [1], ("b",): {"nested": {2: 3}}},
    {None: 0, True: "t", 2.5: "f", b"k": "bytes key", "s": "str key"},
    {datetime.date(2020, 1, 2): "date key"},
    {"__dict__": 1, "__tuple__": [2], "__record__": "MemoEntry", "fields": []},
    [{"__bytes__": "AA=="}, {"__items__": []}, {"__datetime__": "2020-01-01"}],
    datetime.datetime(2024, 2, 29, 23, 59, 58, 999999),
    datetime.datetime(1, 1, 1),
    datetime.datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
    datetime.datetime(2024, 6, 1, 12, 0, 0, 1, tzinfo=IST),
    datetime.datetime(2024, 11, 3, 1, 30, tzinfo=PST),
    datetime.datetime(2024, 1, 1, tzinfo=ODD),
    datetime.datetime(2024, 10, 27, 2, 30, fold=1),
    datetime.date(2024, 2, 29),
    datetime.time(0, 0),
    datetime.time(23, 59, 59, 999999, tzinfo=IST),
    datetime.time(1, 30, fold=1),
    datetime.timedelta(0),
    datetime.timedelta(days=-1, seconds=5, microseconds=7),
    datetime.timedelta(days=999999999, seconds=86399, microseconds=999999),
    {"when": datetime.datetime(2024, 1, 1, tzinfo=UTC), "span": (datetime.timedelta(1),)},
]

RECORDS: list[Any] = [
    FrozenResponse(
        status=203,
        headers=(("Content-Type", "application/x-thing"), ("ETag", '"v1"'), ("X-Empty", "")),
        body=b"\x00\xff<p>body</p>",
        stored_at=1700000000.25,
        fresh_until=1700000300.25,
        stale_until=1700000360,
        versions=("t1", None),
        flags=3,
    ),
    FrozenResponse(404, (), b"", 0, 0.0, 0.0, ()),
    MemoEntry(
        value={1: (datetime.date(2024, 1, 1), b"x"), "rows": [("a", 1.5)]},
        stored_at=10.0,
        fresh_until=20.0,
        stale_until=25.0,
        versions=("v",),
    ),
    MemoEntry(None, 0.0, 0.0, 0.0, ()),
    MemoEntry((VaryIndex(("accept",), 1.0, ()),), 1.0, 2.0, 3.0, ()),
    VaryIndex(names=("accept-language", "cookie"), stored_at=3.5, versions=("x", "y")),
]


def same(back: Any, value: Any) -> None:
    """Assert *back* equals *value* with the same type at every level, offsets and fold too."""
    assert type(back) is type(value), (back, value)
    assert back == value or (back != back and value != value)  # NaN is not equal to itself
    if isinstance(value, (datetime.datetime, datetime.time)):
        assert back.utcoffset() == value.utcoffset()
        assert back.fold == value.fold
    if isinstance(value, (list, tuple)):
        for item_back, item in zip(back, value, strict=True):
            same(item_back, item)
    elif isinstance(value, dict):
        for (key_back, item_back), (key, item) in zip(back.items(), value.items(), strict=True):
            same(key_back, key)
            same(item_back, item)


@pytest.fixture(params=["unsigned", "json", "msgpack"])
def plain(request: pytest.FixtureRequest) -> Serializer:
    """The unsigned format, and the two named plain-data formats that share its reader."""
    if request.param == "unsigned":
        serializer = make_serializer("pickle", None)
        assert type(serializer) is UnsignedSerializer
        return serializer
    return JSONSerializer() if request.param == "json" else MsgpackSerializer()


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything unpickles while it runs."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("something unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


# -- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_data_round_trips_with_its_types(plain: Serializer, value: Any) -> None:
    data = plain.dumps(value, KEY)
    assert isinstance(data, bytes)
    same(plain.loads(data, KEY), value)


@pytest.mark.parametrize("value", RECORDS, ids=lambda value: type(value).__name__)
def test_the_decorators_records_round_trip(plain: Serializer, value: Any) -> None:
    back = plain.loads(plain.dumps(value, KEY), KEY)
    same(back, value)
    assert well_formed(back)


def test_a_zone_becomes_its_offset_at_that_moment(plain: Serializer) -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    summer = datetime.datetime(2024, 7, 1, 12, tzinfo=paris)
    back = plain.loads(plain.dumps(summer, KEY), KEY)
    assert back == summer
    assert back.utcoffset() == datetime.timedelta(hours=2)


def test_the_unsigned_format_is_json() -> None:
    data = make_serializer("pickle", None).dumps(RECORDS[0], KEY)
    assert json.loads(data)["__record__"] == "FrozenResponse"


@pytest.mark.parametrize("value", [0, 5, -3, 2**63 - 1])
def test_counters_are_ascii_digits(plain: Serializer, value: int) -> None:
    assert plain.dumps(value, KEY) == str(value).encode("ascii")
    assert plain.loads(str(value).encode("ascii"), KEY) == value


class Point(NamedTuple):
    x: int


class Opaque:
    pass


class Moment(datetime.datetime):
    pass


NEEDS_PICKLE: list[Any] = [
    Opaque(),
    {1, 2},
    frozenset(),
    Decimal("1.5"),
    Point(1),
    Moment(2024, 1, 1),
    bytearray(b"x"),
    [1, {"a": Opaque()}],
    {frozenset(): 1},
    MemoEntry(Opaque(), 0.0, 0.0, 0.0, ()),
    (x for x in range(2)),
]


@pytest.mark.parametrize("value", NEEDS_PICKLE, ids=lambda value: type(value).__name__)
def test_a_value_that_needs_pickle_is_refused_naming_the_setting(value: Any) -> None:
    unsigned = make_serializer("pickle", None)
    with pytest.raises(SerializationError, match="CACHE_SECRET_KEY") as info:
        unsigned.dumps(value, KEY)
    assert "SECRET_KEY" in str(info.value)


def test_a_value_nested_too_deeply_is_refused_not_crashed() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(SerializationError, match="nested"):
        make_serializer("pickle", None).dumps(value, KEY)


# -- bytes nobody here wrote --------------------------------------------------------

TRAP_HITS: list[str] = []


def record_unpickling(path: str) -> str:
    """Run by pickle when a :class:`Booby` payload is loaded: leaves a file behind."""
    Path(path).touch()
    TRAP_HITS.append(path)
    return "unpickled"


class Booby:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return record_unpickling, (str(self.path),)


def booby_payload(path: Path) -> bytes:
    # Writing a pickle is fine; it is loading one that no_unpickling refuses.
    return pickle.dumps(Booby(path))


def test_the_booby_payload_really_runs_code_when_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # this one test unpickles, on purpose
    trap = tmp_path / "unpickled"
    assert pickle.loads(booby_payload(trap)) == "unpickled"
    assert trap.exists()
    TRAP_HITS.clear()


def test_a_pickle_reads_as_a_miss_and_is_never_loaded(plain: Serializer, tmp_path: Path) -> None:
    trap = tmp_path / "unpickled"
    payload = booby_payload(trap)
    for forged in [
        payload,
        b"\x00" + payload,  # msgpack's marker
        b"\x01" + b"\x00" * 32 + payload,  # the signed envelope's look
        b"!" + payload,  # cachelib's
    ]:
        assert plain.loads(forged, KEY) is None
    # A pickle inside plain data is only ever bytes.
    wrapped = json.dumps({"__bytes__": base64.b64encode(payload).decode()}).encode()
    if type(plain) is not MsgpackSerializer:
        assert plain.loads(wrapped, KEY) == payload
    assert not trap.exists()
    assert TRAP_HITS == []


MALFORMED_JSON: list[Any] = [
    "",
    "{",
    "[1,",
    "\ufeff{}",
    "{}",
    '{"a": 1}',
    '{"__dict__": 1}',
    '{"__dict__": {}, "extra": 1}',
    '{"extra": 1, "__dict__": {}}',
    '{"__tuple__": {"a": 1}}',
    '{"__bytes__": "***"}',
    '{"__bytes__": "\u00e9"}',
    '{"__bytes__": 12}',
    '{"__items__": [[1]]}',
    '{"__items__": [[[1], 2]]}',
    '{"__items__": [[{"__dict__": {}}, 2]]}',
    '{"__items__": {"a": 1}}',
    '{"__datetime__": "yesterday"}',
    '{"__datetime__": 20240101}',
    '{"__datetime__": "2024-01-01T00:00:00", "fold": 2}',
    '{"__datetime__": "2024-01-01T00:00:00", "other": 1}',
    '{"__date__": "2024-02-30"}',
    '{"__time__": "25:00"}',
    '{"__timedelta__": [1, 2]}',
    '{"__timedelta__": [1000000000, 0, 0]}',
    '{"__timedelta__": [1.5, 0, 0]}',
    '{"__timedelta__": [true, 0, 0]}',
    '{"__frozenset__": [1]}',
    '{"__class__": "os.system"}',
    '{"__record__": "Popen", "fields": []}',
    '{"__record__": "FrozenResponse"}',
    '{"__record__": "FrozenResponse", "fields": [200]}',
    '{"__record__": "FrozenResponse", "fields": {"status": 200}}',
    '{"__record__": ["FrozenResponse"], "fields": []}',
    '{"fields": [], "__record__": "VaryIndex"}',
    "[" * 100_000 + "]" * 100_000,
    '{"__tuple__": [' * 20_000 + "]}" * 20_000,
    "NaN-ish",
    "9" * 5000 + "x",
    "1" * 5000,
]


def response_fields(**changes: Any) -> list[Any]:
    """The JSON fields of a good FrozenResponse, with *changes* made to them."""
    fields = {
        "status": 200,
        "headers": {"__tuple__": [{"__tuple__": ["Content-Type", "text/html"]}]},
        "body": {"__bytes__": "aGk="},
        "stored_at": 1.0,
        "fresh_until": 2.0,
        "stale_until": 3.0,
        "versions": {"__tuple__": ["t"]},
        "flags": 0,
    }
    fields.update(changes)
    return list(fields.values())


def forged_response(**changes: Any) -> str:
    return json.dumps({"__record__": "FrozenResponse", "fields": response_fields(**changes)})


WRONG_SHAPES: list[str] = [
    forged_response(status="200"),
    forged_response(status=True),
    forged_response(status=99),
    forged_response(status=1000),
    forged_response(headers=[["Content-Type", "text/html"]]),
    forged_response(headers={"__tuple__": [{"__tuple__": ["Content-Type"]}]}),
    forged_response(headers={"__tuple__": [{"__tuple__": ["X", 1]}]}),
    forged_response(headers={"__tuple__": [{"__tuple__": ["X", "a\r\nSet-Cookie: s=1"]}]}),
    forged_response(headers={"__tuple__": [{"__tuple__": ["X\n", "a"]}]}),
    forged_response(headers={"__tuple__": ["Content-Type: text/html"]}),
    forged_response(body="hi"),
    forged_response(body=None),
    forged_response(stored_at="now"),
    forged_response(fresh_until=None),
    forged_response(stale_until=True),
    forged_response(stored_at=10**400),
    forged_response(versions=["t"]),
    forged_response(versions={"__tuple__": [1]}),
    forged_response(flags=1.5),
    json.dumps({"__record__": "FrozenResponse", "fields": [*response_fields(), 0]}),
    '{"__record__": "MemoEntry", "fields": [1, "now", 2, 3, {"__tuple__": []}]}',
    '{"__record__": "MemoEntry", "fields": [1, 1, 2, 3, []]}',
    '{"__record__": "MemoEntry", "fields": [1, 1, 2, 3]}',
    '{"__record__": "VaryIndex", "fields": [["accept"], 1.0, {"__tuple__": []}]}',
    '{"__record__": "VaryIndex", "fields": [{"__tuple__": [1]}, 1.0, {"__tuple__": []}]}',
    '{"__record__": "VaryIndex", "fields": [{"__tuple__": []}, 1.0]}',
]


@pytest.mark.parametrize("text", MALFORMED_JSON + WRONG_SHAPES, ids=lambda text: text[:60])
def test_malformed_json_reads_as_a_miss(text: str) -> None:
    for serializer in (make_serializer("pickle", None), JSONSerializer()):
        assert serializer.loads(text.encode("utf-8", "surrogatepass"), KEY) is None


@pytest.mark.parametrize("text", ["1e400", '[1e400, "-Infinity"]', "NaN"])
def test_json_numbers_out_of_range_still_read_as_floats(text: str) -> None:
    back = make_serializer("pickle", None).loads(text.encode(), KEY)
    assert type(back) in (float, list)


def test_the_shape_checks_see_the_same_floats_json_writes() -> None:
    unsigned = make_serializer("pickle", None)
    assert unsigned.loads(forged_response(stored_at=float("nan")).encode(), KEY) is None
    assert unsigned.loads(forged_response(fresh_until=float("inf")).encode(), KEY) is None
    assert type(unsigned.loads(forged_response().encode(), KEY)) is FrozenResponse


def test_msgpack_types_this_format_never_writes_read_as_a_miss() -> None:
    msgpack = pytest.importorskip("msgpack")
    serializer = MsgpackSerializer()
    for value in [
        msgpack.ExtType(1, b"x"),
        msgpack.Timestamp(1, 0),
        {b"__dict__": {}},
        {"__dict__": {b"bytes key": 1}},
        [msgpack.ExtType(5, b"")],
    ]:
        assert serializer.loads(b"\x00" + msgpack.packb(value), KEY) is None
    assert serializer.loads(msgpack.packb("no marker"), KEY) is None
    assert serializer.loads(b"\x00\xc1", KEY) is None
    assert serializer.loads(b"\x00" + b"\x91" * 100_000 + b"\x01", KEY) is None


def good_entries() -> list[bytes]:
    unsigned = make_serializer("pickle", None)
    return [unsigned.dumps(value, KEY) for value in [*RECORDS, *PLAIN[20:30]]]


def test_random_and_damaged_bytes_never_escape_as_an_exception(plain: Serializer) -> None:
    rng = random.Random(20240601)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(64))) for _ in range(3000)]
    for data in good_entries():
        samples.extend(data[:cut] for cut in range(len(data)))
        for _ in range(50):
            flipped = bytearray(data)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            samples.append(bytes(flipped))
    for data in samples:
        back = plain.loads(data, KEY)  # must not raise
        if isinstance(back, (FrozenResponse, MemoEntry, VaryIndex)):
            assert well_formed(back)


# -- apps on real stores, no secret anywhere ----------------------------------------

_OPEN: list[tuple[Flask, Cache]] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    yield
    while _OPEN:
        app, cache = _OPEN.pop()
        cache.state(app).store.close()


def store_config(request: pytest.FixtureRequest, kind: str, directory: Path) -> dict[str, Any]:
    """The config of a real *kind* store, with a prefix of its own and no secret."""
    server: ServerProcess
    if kind == "memcached":
        need("pymemcache")
        server = request.getfixturevalue("memcached_server")
        url = f"memcached://{server.address}"
    elif kind == "saslmemcached":
        need("bmemcached")
        server = request.getfixturevalue("saslmemcached_server")
        url = f"memcached://{SASL_USER}:{SASL_PASSWORD}@{server.address}"
    elif kind == "redis":
        need("redis")
        server = request.getfixturevalue("redis_server")
        url = f"redis://127.0.0.1:{server.port}/0"
    else:
        need("diskcache")
        url = (directory / "cache").as_uri()
    return {"CACHE_URL": url, "CACHE_KEY_PREFIX": f"u{uuid.uuid4().hex[:8]}:"}


def need(module: str) -> None:
    if not servers_required():
        pytest.importorskip(module)


@pytest.fixture(params=["memcached", "saslmemcached", "redis", "disk"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return store_config(request, request.param, tmp_path)


class Site(NamedTuple):
    app: Flask
    cache: Cache
    plain_data: Callable[[int], Any]
    needs_pickle: Callable[[int], Opaque]


def make_site(config: dict[str, Any], calls: Counter[str]) -> Site:
    """An app with a page, a page that varies and two memoized functions, counting runs."""
    app = Flask(__name__)
    app.config.update(config)
    cache = Cache(app)
    _OPEN.append((app, cache))

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> Response:
        calls["page"] += 1
        return Response(
            b"\x00\xff genuine",
            status=203,
            headers={"Content-Type": "application/x-thing", "X-Custom": "kept"},
        )

    @app.route("/lang")
    @cache.cached(timeout=60)
    def lang() -> Response:
        calls["lang"] += 1
        language = request.headers.get("Accept-Language", "")
        return Response(f"lang {language}", headers={"Vary": "Accept-Language"})

    @cache.memoize(timeout=60)
    def plain_data(n: int) -> Any:
        calls["plain_data"] += 1
        return memoized_value(n)

    @cache.memoize(timeout=60)
    def needs_pickle(n: int) -> Opaque:
        calls["needs_pickle"] += 1
        return Opaque()

    return Site(app, cache, plain_data, needs_pickle)


def memoized_value(n: int) -> Any:
    return {"n": n, "when": PLAIN[31], 7: (b"x", datetime.date(2024, 1, 1)), "f": [0.5, None]}


def unsigned_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "flask_stash" and "unsigned" in record.getMessage()
    ]


def test_init_app_warns_once_that_entries_are_unsigned(
    shared: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        site = make_site(shared, Counter())
        client = site.app.test_client()
        for _ in range(3):
            assert client.get("/page").status_code == 203
        with site.app.app_context():
            site.plain_data(1)
    [record] = unsigned_warnings(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "CACHE_SECRET_KEY" in message
    assert "SECRET_KEY" in message
    assert "plain data" in message
    assert "pickle" in message


def test_a_cached_page_is_served_by_another_app(shared: dict[str, Any]) -> None:
    calls: Counter[str] = Counter()
    first, second = make_site(shared, calls), make_site(shared, calls)
    made = first.app.test_client().get("/page")
    served = second.app.test_client().get("/page")
    assert calls["page"] == 1
    for response in (made, served):
        assert response.status_code == 203
        assert response.data == b"\x00\xff genuine"
        assert response.headers["Content-Type"] == "application/x-thing"
        assert response.headers["X-Custom"] == "kept"


def test_a_page_that_varies_is_served_by_another_app(shared: dict[str, Any]) -> None:
    calls: Counter[str] = Counter()
    for site in (make_site(shared, calls), make_site(shared, calls)):
        client = site.app.test_client()
        for language in ("fr", "en"):
            response = client.get("/lang", headers={"Accept-Language": language})
            assert response.text == f"lang {language}"
    assert calls["lang"] == 2


def test_memoized_plain_data_is_shared_between_apps(shared: dict[str, Any]) -> None:
    calls: Counter[str] = Counter()
    for site in (make_site(shared, calls), make_site(shared, calls)):
        with site.app.app_context():
            same(site.plain_data(3), memoized_value(3))
    assert calls["plain_data"] == 1


def test_a_result_that_needs_pickle_is_computed_each_call_and_warned_once(
    shared: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    site = make_site(shared, calls)
    with caplog.at_level(logging.WARNING, logger="flask_stash"), site.app.app_context():
        results = [site.needs_pickle(1) for _ in range(3)]
        assert site.cache.stats.total.errors == 0
    assert all(type(result) is Opaque for result in results)
    assert calls["needs_pickle"] == 3
    warned = [record for record in caplog.records if "result not cached" in record.getMessage()]
    assert len(warned) == 1
    assert "CACHE_SECRET_KEY" in warned[0].getMessage()
    assert "Opaque" in warned[0].getMessage()


# -- the stored bytes, through each server's own client ----------------------------


class RawServer:
    """Reads and writes a store's server directly, as anyone with access to it could."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.prefix: str = config["CACHE_KEY_PREFIX"]
        url: str = config["CACHE_URL"]
        self.kind = url.partition(":")[0]
        self.client: Any
        if self.kind == "memcached":
            from pymemcache.client.base import Client

            host, _, port = url.partition("//")[2].rpartition(":")
            self.client = Client((host, int(port)), default_noreply=False)
        elif self.kind == "redis":
            import redis

            self.client = redis.Redis.from_url(url)
        else:
            import diskcache

            self.client = diskcache.Cache(url.partition("file://")[2])

    def name(self, key: str) -> str:
        """The name the server keeps *key* under (see each store's module docstring)."""
        if self.kind == "memcached":
            from flask_stash.stores._memcached_common import memcached_key, namespace_key

            version = int(self.client.get(namespace_key(self.prefix)))
            return memcached_key(f"{self.prefix}{version}:{key}")
        return self.prefix + key

    def get(self, key: str) -> Any:
        return self.client.get(self.name(key))

    def set(self, key: str, data: Any) -> None:
        assert self.client.set(self.name(key), data)

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=["memcached", "redis", "disk"])
def raw_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], RawServer]]:
    config = store_config(request, request.param, tmp_path)
    raw = RawServer(config)
    yield config, raw
    raw.close()


def test_entries_are_json_and_forged_bytes_read_as_a_miss(
    raw_store: tuple[dict[str, Any], RawServer], tmp_path: Path
) -> None:
    config, raw = raw_store
    trap = tmp_path / "unpickled"
    site = make_site(config, Counter())
    with site.app.app_context():
        assert site.cache.set("target", {"a": (1, b"x")})
        assert json.loads(raw.get("target")) == {
            "__dict__": {"a": {"__tuple__": [1, {"__bytes__": "eA=="}]}}
        }
        for forged in [
            booby_payload(trap),
            forged_response(headers={"__tuple__": [{"__tuple__": ["X", "a\r\nb"]}]}).encode(),
            b"\x01" + b"\x00" * 32 + booby_payload(trap),
            b"[" * 100_000,
        ]:
            raw.set("target", forged)
            assert site.cache.get("target") is None
        assert site.cache.stats.total.errors == 0
    assert not trap.exists()
    assert TRAP_HITS == []


def test_a_forged_page_is_recomputed_not_served(
    raw_store: tuple[dict[str, Any], RawServer], tmp_path: Path
) -> None:
    config, raw = raw_store
    calls: Counter[str] = Counter()
    site = make_site(config, calls)
    client = site.app.test_client()
    client.get("/page")
    view: Any = site.app.view_functions["page"]
    with site.app.test_request_context("/page"):
        key: str = view.make_cache_key()
    assert b'"FrozenResponse"' in raw.get(key)
    trap = tmp_path / "unpickled"
    for forged in [
        booby_payload(trap),
        forged_response(status="200").encode(),
        forged_response(headers={"__tuple__": [{"__tuple__": ["Set-Cookie", "a\nb"]}]}).encode(),
    ]:
        raw.set(key, forged)
        response = client.get("/page")
        assert (response.status_code, response.data) == (203, b"\x00\xff genuine")
    assert calls["page"] == 4
    assert not trap.exists()


def test_the_disk_store_never_unpickles_a_row_diskcache_pickled(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config = store_config(request, "disk", tmp_path)
    raw = RawServer(config)
    trap = tmp_path / "unpickled"
    try:
        site = make_site(config, Counter())
        with site.app.app_context():
            assert site.cache.set("target", "genuine")
            raw.set("target", Booby(trap))  # diskcache pickles it into the row
            assert site.cache.get("target") is None
            assert site.cache.stats.total.errors == 0
    finally:
        raw.close()
    assert not trap.exists()


def test_counters_stay_numbers_the_server_can_increment(
    raw_store: tuple[dict[str, Any], RawServer],
) -> None:
    config, raw = raw_store
    site = make_site(config, Counter())
    with site.app.app_context():
        assert site.cache.set("hits", 41)
        assert site.cache.inc("hits") == 42
        assert site.cache.get("hits") == 42
        stored = raw.get("hits")
    # Memcached and Redis keep ASCII digits, which incr and INCRBY work on;
    # the disk store keeps an SQLite integer.
    assert stored == (42 if raw.kind == "file" else b"42")


# -- with a secret: signed entries are bound to their key --------------------------


@pytest.mark.usefixtures("allow_unpickling")
def test_signed_bytes_copied_to_another_key_read_as_a_miss(
    raw_store: tuple[dict[str, Any], RawServer], tmp_path: Path
) -> None:
    config, raw = raw_store
    trap = tmp_path / "unpickled"
    site = make_site({**config, "CACHE_SECRET_KEY": "copy-test"}, Counter())
    with site.app.app_context():
        assert site.cache.set("source", {"v": (1, 2)})
        assert site.cache.set("booby", Booby(trap))
        assert site.cache.set("target", "mine")
        raw.set("target", raw.get("source"))
        assert site.cache.get("target") is None
        raw.set("target", raw.get("booby"))
        assert site.cache.get("target") is None
        assert not trap.exists()
        # The same bytes under their own key still read: the miss is the key's doing.
        raw.set("source", raw.get("source"))
        assert site.cache.get("source") == {"v": (1, 2)}
        assert site.cache.get("booby") == "unpickled"
        assert site.cache.stats.total.errors == 0
    assert trap.exists()
    TRAP_HITS.clear()


@pytest.mark.usefixtures("allow_unpickling")
def test_a_signed_memcached_entry_copied_past_a_clear_stays_cleared(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    config = {**store_config(request, "memcached", tmp_path), "CACHE_SECRET_KEY": "clear-test"}
    raw = RawServer(config)
    try:
        site = make_site(config, Counter())
        with site.app.app_context():
            assert site.cache.set("k", "before the clear")
            before = raw.get("k")
            assert site.cache.clear()
            raw.set("k", before)  # under the new namespace version
            assert site.cache.get("k") is None
    finally:
        raw.close()


@pytest.fixture
def allow_unpickling(no_unpickling: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed entries are pickles, legitimately: undo the module's no_unpickling."""
    monkeypatch.undo()
