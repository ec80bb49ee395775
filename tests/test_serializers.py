"""Serializers: plain-data formats, the decorators' records, signed entries, custom formats."""

from __future__ import annotations

import datetime
import json
import logging
import pickle
from collections import namedtuple
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from flask import Flask

from flask_stash import Cache, ConfigurationError, SerializationError
from flask_stash.entries import FrozenResponse, MemoEntry, VaryIndex
from flask_stash.serializers import (
    ALGORITHMS,
    CustomFormat,
    Format,
    JSONSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    SignedSerializer,
    UnsignedSerializer,
    make_format,
    make_serializer,
)

#: The store key signed entries are written under in these tests.
KEY = "prefix:entry"

PLAIN_VALUES: list[Any] = [
    "text",
    "",
    "5 starts with a digit",
    "-1 starts with a minus",
    "\u00e9t\u00e9 \U0001f600",
    0,
    7,
    -42,
    2**70,
    True,
    False,
    None,
    b"",
    b"\x00\x01\xff bytes",
    [1, "a", None, [2.5, b"x"]],
    (1, "a", (2, (3,))),
    (),
    [],
    {"a": 1, "b": [1, 2], "c": {"d": (b"e",)}},
    {},
    {"__bytes__": "not bytes", "__tuple__": [1], "__record__": "FrozenResponse"},
    [{"__dict__": 1}],
    {1: "int key", 2: [3]},
    {("a", 1): "tuple key", None: b"none key", 2.5: "float key", True: "bool key"},
    {"text": 1, 7: "mixed keys"},
    datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
    datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc),
    datetime.date(1999, 12, 31),
    datetime.time(8, 30, 0, 5),
    datetime.timedelta(days=-3, seconds=7, microseconds=11),
]

RECORDS: list[Any] = [
    FrozenResponse(
        status=200,
        headers=(("Content-Type", "text/html; charset=utf-8"), ("ETag", '"abc"')),
        body=b"<p>hello</p>\x00\xff",
        stored_at=1000.25,
        fresh_until=1300.25,
        stale_until=1360.0,
        versions=("token-1", "token-2"),
        flags=3,
    ),
    FrozenResponse(404, (), b"", 1.0, 0.0, 0.0, ()),
    MemoEntry(
        value={"rows": [(1, "a"), (2, "b")], "raw": b"\x01"},
        stored_at=5.0,
        fresh_until=10.0,
        stale_until=12.5,
        versions=("v",),
    ),
    MemoEntry(None, 0.0, 0.0, 0.0, ()),
    VaryIndex(names=("accept-language", "cookie"), stored_at=3.5, versions=("x", "y")),
    [VaryIndex(("accept-language",), 1.0, ())],
    {"nested": MemoEntry((b"x",), 1.0, 2.0, 3.0, ("t",))},
]

_Elsewhere = namedtuple("_Elsewhere", ["a", "b"])


class FrozenResponseLookalike(NamedTuple):
    """Shaped like a record, but not one of the decorators' record classes."""

    status: int


FrozenResponseLookalike.__name__ = "FrozenResponse"


class Opaque:
    pass


UNPLAIN_VALUES: list[Any] = [
    Opaque(),
    object(),
    {1, 2},
    frozenset({"a"}),
    {frozenset({1}): "frozenset key"},
    _Elsewhere(1, 2),
    FrozenResponseLookalike(200),
    [1, Opaque()],
    {"a": {"b": {3}}},
    bytearray(b"x"),
    1 + 2j,
    Path("/tmp"),
]


def plain_formats() -> list[Format]:
    return [JSONSerializer(), MsgpackSerializer()]


@pytest.fixture(params=["json", "msgpack"])
def plain(request: pytest.FixtureRequest) -> Format:
    return JSONSerializer() if request.param == "json" else MsgpackSerializer()


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=repr)
def test_plain_formats_round_trip_plain_data(plain: Format, value: Any) -> None:
    data = plain.dumps(value)
    assert isinstance(data, bytes)
    back = plain.loads(data)
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [1.5, -0.25, 1e300, 3.0])
def test_plain_formats_round_trip_floats_inside_containers(plain: Format, value: float) -> None:
    back = plain.loads(plain.dumps([value, {"f": value}]))
    assert back == [value, {"f": value}]
    assert type(back[0]) is float


def test_msgpack_round_trips_a_float_on_its_own() -> None:
    serializer = MsgpackSerializer()
    assert serializer.loads(serializer.dumps(2.5)) == 2.5


@pytest.mark.parametrize("value", [2.5, -1.5])
def test_json_round_trips_a_float_on_its_own(value: float) -> None:
    serializer = JSONSerializer()
    assert serializer.loads(serializer.dumps(value)) == value


@pytest.mark.parametrize("value", RECORDS, ids=lambda value: type(value).__name__)
def test_plain_formats_round_trip_the_decorators_records(plain: Format, value: Any) -> None:
    back = plain.loads(plain.dumps(value))
    assert back == value
    if isinstance(value, tuple):
        assert type(back) is type(value)
        for field_back, field in zip(back, value, strict=True):
            assert type(field_back) is type(field)


def test_records_keep_their_field_types(plain: Format) -> None:
    record = RECORDS[0]
    back = plain.loads(plain.dumps(record))
    assert type(back) is FrozenResponse
    assert type(back.headers) is tuple
    assert all(type(pair) is tuple for pair in back.headers)
    assert type(back.body) is bytes
    assert type(back.versions) is tuple


@pytest.mark.parametrize("value", UNPLAIN_VALUES, ids=lambda value: type(value).__name__)
def test_plain_formats_refuse_arbitrary_objects(plain: Format, value: Any) -> None:
    with pytest.raises(SerializationError, match="plain-data serializer"):
        plain.dumps(value)


def test_serialization_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        JSONSerializer().dumps(Opaque())


def every_serializer() -> list[Serializer]:
    return [
        PickleSerializer(),
        *plain_formats(),
        SignedSerializer(PickleSerializer(), b"secret"),
        SignedSerializer(JSONSerializer(), b"secret"),
        UnsignedSerializer(),
        CustomFormat(json),
        SignedSerializer(CustomFormat(json), b"secret"),
    ]


@pytest.mark.parametrize("value", [0, 1, -1, 2**63 - 1, -(2**63)])
def test_integers_are_written_as_digits_by_every_serializer(value: int) -> None:
    for serializer in every_serializer():
        data = serializer.dumps(value, KEY)
        assert data == str(value).encode("ascii")
        assert serializer.loads(data, KEY) == value


@pytest.mark.parametrize("value", [True, False])
def test_bools_stay_bools(value: bool) -> None:
    for serializer in every_serializer():
        back = serializer.loads(serializer.dumps(value, KEY), KEY)
        assert back is value


def test_a_counter_too_long_to_convert_reads_as_a_miss() -> None:
    digits = b"7" * 5000  # over Python's limit on digits in int-from-str conversion
    for serializer in every_serializer():
        assert serializer.loads(digits, KEY) is None


def test_an_integer_too_large_to_write_is_a_serialization_error() -> None:
    for serializer in every_serializer():
        with pytest.raises(SerializationError, match="integer"):
            serializer.dumps(10**5000, KEY)


def test_pickle_refuses_what_it_cannot_pickle() -> None:
    import threading

    with pytest.raises(SerializationError, match="lock"):
        PickleSerializer().dumps({"lock": threading.Lock()})


# -- signed entries ---------------------------------------------------------------

UNPICKLED: list[str] = []


def record_unpickling(path: str) -> str:
    """Called by pickle when a :class:`Booby` payload is unpickled."""
    Path(path).touch()
    UNPICKLED.append(path)
    return "unpickled"


class Booby:
    """Pickles to a payload whose unpickling touches *path*."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return record_unpickling, (str(self.path),)


@pytest.fixture
def trap(tmp_path: Path) -> Path:
    return tmp_path / "unpickled"


def test_the_booby_payload_really_records_unpickling(trap: Path) -> None:
    assert pickle.loads(pickle.dumps(Booby(trap))) == "unpickled"
    assert trap.exists()


@pytest.mark.parametrize("inner", ["pickle", "json", "msgpack"])
def test_signed_round_trip(inner: str) -> None:
    signed = make_serializer(inner, b"secret")
    assert isinstance(signed, SignedSerializer)
    for value in ["text", {"a": [1, (2, b"3")]}, RECORDS[0], RECORDS[4], None, 2**70]:
        data = signed.dumps(value, KEY)
        assert signed.loads(data, KEY) == value


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_signs_and_checks(algorithm: str) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret", algorithm)
    assert signed.loads(signed.dumps(RECORDS[0], KEY), KEY) == RECORDS[0]


def test_signed_entries_carry_an_hmac_not_the_bare_payload() -> None:
    inner = PickleSerializer()
    payload = inner.dumps(RECORDS[0])
    data = SignedSerializer(inner, b"secret").dumps(RECORDS[0], KEY)
    assert data != payload
    assert data.endswith(payload)
    assert len(data) > len(payload) + 16


def test_unsigned_pickle_is_refused_and_never_unpickled(trap: Path) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    assert signed.loads(pickle.dumps(Booby(trap)), KEY) is None
    assert not trap.exists()


def test_pickle_signed_with_another_key_is_refused_and_never_unpickled(trap: Path) -> None:
    theirs = SignedSerializer(PickleSerializer(), b"their secret")
    mine = SignedSerializer(PickleSerializer(), b"my secret")
    forged = theirs.dumps(Booby(trap), KEY)
    assert not trap.exists()
    assert mine.loads(forged, KEY) is None
    assert not trap.exists()
    theirs.loads(forged, KEY)  # the same bytes are unpickled under the right key
    assert trap.exists()


def test_tampered_payload_is_refused(trap: Path) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    data = signed.dumps(RECORDS[0], KEY)
    good_payload = data[-len(pickle.dumps(RECORDS[0], pickle.HIGHEST_PROTOCOL)) :]
    swapped = data[: len(data) - len(good_payload)] + pickle.dumps(Booby(trap))
    assert signed.loads(swapped, KEY) is None
    flipped = bytearray(data)
    flipped[-1] ^= 1
    assert signed.loads(bytes(flipped), KEY) is None
    assert signed.loads(data[:-1], KEY) is None
    assert signed.loads(data[:5], KEY) is None
    assert signed.loads(b"", KEY) is None
    assert not trap.exists()


def test_algorithm_is_fixed_by_configuration_not_by_the_payload() -> None:
    short = SignedSerializer(PickleSerializer(), b"secret", "sha256")
    long = SignedSerializer(PickleSerializer(), b"secret", "sha512")
    assert long.loads(short.dumps("value", KEY), KEY) is None
    assert short.loads(long.dumps("value", KEY), KEY) is None


# -- signed entries are bound to their key ----------------------------------------


@pytest.mark.parametrize(
    "other", ["prefix:entrx", "prefix:entr", "prefix:entry2", "Prefix:entry", "", "pr\u00e9fix"]
)
def test_a_signed_entry_read_under_another_key_is_a_miss_and_never_unpickled(
    trap: Path, other: str
) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    data = signed.dumps(Booby(trap), KEY)
    assert signed.loads(data, other) is None
    assert not trap.exists()
    assert signed.loads(data, KEY) == "unpickled"  # under its own key it is read


class Raw:
    """A format whose payload is the bytes themselves, so a test can line them up."""

    def dumps(self, value: bytes) -> bytes:
        return value

    def loads(self, data: bytes) -> bytes:
        return data


def test_key_and_payload_cannot_be_split_another_way() -> None:
    signed = SignedSerializer(CustomFormat(Raw()), b"secret")
    data = signed.dumps(b"abc", "k")
    mac = data[: len(data) - 3]
    # "k" + "abc" and "ka" + "bc" are the same bytes; the key's length tells them apart.
    assert signed.loads(mac + b"bc", "ka") is None
    assert signed.loads(mac + b"abc", "k") == b"abc"


def test_keys_that_are_not_valid_utf8_can_still_be_signed() -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    key = "lone \udc80 surrogate"
    assert signed.loads(signed.dumps("value", key), key) == "value"
    assert signed.loads(signed.dumps("value", key), "lone \udc81 surrogate") is None


def test_unknown_algorithm_or_empty_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="CACHE_SIGNING_ALGORITHM 'md5'"):
        SignedSerializer(PickleSerializer(), b"secret", "md5")
    with pytest.raises(ConfigurationError, match="secret"):
        SignedSerializer(PickleSerializer(), b"")


def test_make_serializer_signs_only_with_a_secret() -> None:
    assert type(make_serializer("json", None)) is JSONSerializer
    assert type(make_serializer("msgpack", None)) is MsgpackSerializer
    assert type(make_serializer("pickle", None, shared=False)) is PickleSerializer
    for name in FORMATS_BY_NAME:
        assert type(make_serializer(name, b"secret")) is SignedSerializer
    with pytest.raises(ConfigurationError, match="CACHE_SERIALIZER 'yaml'"):
        make_serializer("yaml", b"secret")


def test_pickle_without_a_secret_becomes_plain_data_on_a_shared_store() -> None:
    unsigned = make_serializer("pickle", None)
    assert type(unsigned) is UnsignedSerializer
    assert unsigned.dumps({"a": (1, b"x")}, KEY).startswith(b"{")
    with pytest.raises(SerializationError, match="CACHE_SECRET_KEY") as info:
        unsigned.dumps(Opaque(), KEY)
    assert "SECRET_KEY" in str(info.value)
    assert "Opaque" in str(info.value)


def test_plain_formats_name_no_setting_that_would_not_help() -> None:
    # With json chosen, a secret would still not let an object be cached.
    with pytest.raises(SerializationError) as info:
        make_serializer("json", None).dumps(Opaque(), KEY)
    assert "SECRET_KEY" not in str(info.value)


@pytest.mark.parametrize("forged", [b"9abc", b"-1x", b"12 34", b"1.5"])
def test_forged_bytes_starting_with_a_digit_read_as_a_miss(forged: bytes) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    assert signed.loads(forged, KEY) is None


# -- formats of the user's own --------------------------------------------------------

FORMATS_BY_NAME = ["pickle", "json", "msgpack"]


def cachelib_json() -> Any:
    serializers = pytest.importorskip("cachelib.serializers")
    return serializers.JSONSerializer()


class NeedsArguments:
    def __init__(self, level: int) -> None:
        self.level = level

    def dumps(self, value: Any) -> bytes:
        return b""

    def loads(self, data: bytes) -> Any:
        return None


def test_make_format_builds_a_format_class_as_flask_caching_does() -> None:
    serializers = pytest.importorskip("cachelib.serializers")
    built = make_format(serializers.JSONSerializer)
    assert type(built) is CustomFormat
    assert type(built.wrapped) is serializers.JSONSerializer
    assert built.loads(built.dumps({"a": "b"})) == {"a": "b"}


def test_make_format_accepts_objects_with_dumps_and_loads() -> None:
    for choice in [json, pickle, cachelib_json(), Raw()]:
        built = make_format(choice)
        assert type(built) is CustomFormat
        assert built.wrapped is choice


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        (NeedsArguments, r"NeedsArguments could not be built with no arguments"),
        (dict, "CACHE_SERIALIZER dict is not usable"),
        (42, "CACHE_SERIALIZER 42 is not usable"),
        (object(), "is not usable"),
        ("yaml", "CACHE_SERIALIZER 'yaml' is unknown"),
        (None, "CACHE_SERIALIZER None is not usable"),
    ],
)
def test_make_format_says_what_it_accepts(choice: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        make_format(choice)
    assert "'pickle', 'json', 'msgpack'" in str(info.value)
    assert "dumps(value)" in str(info.value)


@pytest.mark.parametrize("module", [json, pickle])
def test_a_module_as_format_round_trips_and_keeps_counters_as_digits(module: Any) -> None:
    custom = CustomFormat(module)
    assert custom.loads(custom.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    assert custom.dumps(41) == b"41"
    assert custom.loads(b"41") == 41


def test_cachelib_serializer_as_format() -> None:
    custom = make_format(cachelib_json())
    assert custom.loads(custom.dumps({"a": "b"})) == {"a": "b"}
    signed = make_serializer(cachelib_json(), b"secret")
    assert type(signed) is SignedSerializer
    data = signed.dumps(["x", 1], KEY)
    assert signed.loads(data, KEY) == ["x", 1]
    assert signed.loads(data, "another key") is None


def test_a_str_from_dumps_is_stored_as_utf8() -> None:
    assert CustomFormat(json).dumps("\u00e9") == json.dumps("\u00e9").encode()


class Broken:
    def dumps(self, value: Any) -> Any:
        if value == "not bytes":
            return 12.5
        raise RuntimeError("cannot write that")

    def loads(self, data: bytes) -> Any:
        raise RuntimeError("cannot read that")


def test_a_custom_format_that_fails_to_write_is_a_serialization_error() -> None:
    custom = CustomFormat(Broken())
    with pytest.raises(SerializationError, match="cannot write that"):
        custom.dumps("anything")
    with pytest.raises(SerializationError, match="float, not bytes or str"):
        custom.dumps("not bytes")


def test_a_custom_format_that_fails_to_read_reads_as_a_miss() -> None:
    assert CustomFormat(Broken()).loads(b"{}") is None
    assert CustomFormat(json).loads(b"\xff not json") is None


def test_without_a_secret_a_custom_format_is_used_as_it_is() -> None:
    serializer = make_serializer(json, None)
    assert type(serializer) is CustomFormat
    assert serializer.dumps({"a": 1}, KEY) == b'{"a": 1}'


# -- CACHE_SERIALIZER at init_app -------------------------------------------------------


def app_on(tmp_path: Path | None, **config: Any) -> tuple[Flask, Cache]:
    """An app on the disk store in *tmp_path*, or on the memory store without one."""
    app = Flask(__name__)
    if tmp_path is not None:
        pytest.importorskip("diskcache")
        app.config["CACHE_URL"] = (tmp_path / "cache").as_uri()
    app.config.update(config)
    return app, Cache(app)


def close(app: Flask, cache: Cache) -> None:
    cache.state(app).store.close()


@pytest.mark.parametrize("choice", [json, pickle, "cachelib"])
def test_a_serializer_object_signs_entries_on_a_shared_store(
    tmp_path: Path, choice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if choice == "cachelib":
        choice = cachelib_json()
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        app, cache = app_on(tmp_path, CACHE_SERIALIZER=choice, CACHE_SECRET_KEY="s")
    try:
        serializer = cache.state(app).settings.serializer
        assert type(serializer) is SignedSerializer
        assert type(serializer.inner) is CustomFormat
        assert serializer.inner.wrapped is choice
        with app.app_context():
            assert cache.set("k", {"a": [1, 2]})
            assert cache.get("k") == {"a": [1, 2]}
        assert "unsigned" not in caplog.text
    finally:
        close(app, cache)


def test_a_serializer_object_without_a_secret_is_used_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        app, cache = app_on(tmp_path, CACHE_SERIALIZER=json)
    try:
        assert type(cache.state(app).settings.serializer) is CustomFormat
        with app.app_context():
            assert cache.set("k", ["x"])
            assert cache.get("k") == ["x"]
    finally:
        close(app, cache)
    [warning] = [record.getMessage() for record in caplog.records if "unsigned" in record.msg]
    assert "format of your own (json)" in warning
    assert "CACHE_SECRET_KEY" in warning


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_a_named_plain_format_without_a_secret_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        app, cache = app_on(tmp_path, CACHE_SERIALIZER=name)
    close(app, cache)
    [warning] = [record.getMessage() for record in caplog.records if "unsigned" in record.msg]
    assert f"CACHE_SERIALIZER {name!r} reads them as plain data" in warning


@pytest.mark.parametrize(
    ("choice", "message"),
    [(42, "CACHE_SERIALIZER 42 is not usable"), (NeedsArguments, "pass an instance")],
)
def test_an_unusable_serializer_fails_at_init_app(choice: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        app_on(None, CACHE_SERIALIZER=choice)


def test_an_empty_secret_counts_as_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        app, cache = app_on(tmp_path, CACHE_SECRET_KEY="", SECRET_KEY="")
    close(app, cache)
    assert type(cache.state(app).settings.serializer) is UnsignedSerializer
    assert "unsigned" in caplog.text


@pytest.mark.parametrize("choice", [json, "json", "pickle"])
def test_the_memory_store_copies_mutable_values_whatever_the_serializer(choice: Any) -> None:
    app, cache = app_on(None, CACHE_SERIALIZER=choice)
    with app.app_context():
        value = {"items": [1, 2], "when": (datetime.date(2024, 1, 1),)}
        assert cache.set("k", value)
        got = cache.get("k")
        got["items"].append(3)
        assert cache.get("k") == value
        assert cache.set("opaque", Opaque())  # pickled to copy it, as before
        assert type(cache.get("opaque")) is Opaque


@pytest.mark.parametrize("module", [json, pickle])
def test_the_decorators_records_stay_records_with_a_custom_format(module: Any) -> None:
    custom = CustomFormat(module)
    for record in [RECORDS[0], RECORDS[2], RECORDS[4]]:
        data = custom.dumps(record)
        assert data.startswith(b"\x02")  # written as this module's plain data
        back = custom.loads(data)
        assert back == record
        assert type(back) is type(record)


def test_a_record_holding_an_object_goes_to_the_custom_format() -> None:
    entry = MemoEntry(Path("/tmp"), 1.0, 2.0, 3.0, ())
    assert CustomFormat(pickle).loads(CustomFormat(pickle).dumps(entry)) == entry
    with pytest.raises(SerializationError, match="CACHE_SERIALIZER json"):
        CustomFormat(json).dumps(entry)


def test_pages_and_results_are_cached_with_the_json_module_as_format(tmp_path: Path) -> None:
    app, cache = app_on(tmp_path, CACHE_SERIALIZER=json, CACHE_SECRET_KEY="s")
    runs: list[str] = []

    @app.route("/")
    @cache.cached()
    def index() -> str:
        runs.append("page")
        return "hi"

    @cache.memoize()
    def double(n: int) -> dict[str, int]:
        runs.append("double")
        return {"n": n * 2}

    try:
        client = app.test_client()
        assert [client.get("/").text for _ in range(2)] == ["hi", "hi"]
        with app.app_context():
            assert [double(2), double(2)] == [{"n": 4}, {"n": 4}]
        assert runs == ["page", "double"]
    finally:
        close(app, cache)
