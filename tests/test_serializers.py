"""Serializers: plain-data formats, the decorators' records, and signed entries."""

from __future__ import annotations

import pickle
from collections import namedtuple
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from flask_stash import ConfigurationError, SerializationError
from flask_stash.entries import FrozenResponse, MemoEntry, VaryIndex
from flask_stash.serializers import (
    ALGORITHMS,
    JSONSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    SignedSerializer,
    make_serializer,
)

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
    {1: "int key"},
    {("a",): "tuple key"},
    _Elsewhere(1, 2),
    FrozenResponseLookalike(200),
    [1, Opaque()],
    {"a": {"b": {3}}},
    bytearray(b"x"),
    1 + 2j,
    Path("/tmp"),
]


def plain_formats() -> list[Serializer]:
    return [JSONSerializer(), MsgpackSerializer()]


@pytest.fixture(params=["json", "msgpack"])
def plain(request: pytest.FixtureRequest) -> Serializer:
    return JSONSerializer() if request.param == "json" else MsgpackSerializer()


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=repr)
def test_plain_formats_round_trip_plain_data(plain: Serializer, value: Any) -> None:
    data = plain.dumps(value)
    assert isinstance(data, bytes)
    back = plain.loads(data)
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [1.5, -0.25, 1e300, 3.0])
def test_plain_formats_round_trip_floats_inside_containers(plain: Serializer, value: float) -> None:
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
def test_plain_formats_round_trip_the_decorators_records(plain: Serializer, value: Any) -> None:
    back = plain.loads(plain.dumps(value))
    assert back == value
    if isinstance(value, tuple):
        assert type(back) is type(value)
        for field_back, field in zip(back, value, strict=True):
            assert type(field_back) is type(field)


def test_records_keep_their_field_types(plain: Serializer) -> None:
    record = RECORDS[0]
    back = plain.loads(plain.dumps(record))
    assert type(back) is FrozenResponse
    assert type(back.headers) is tuple
    assert all(type(pair) is tuple for pair in back.headers)
    assert type(back.body) is bytes
    assert type(back.versions) is tuple


@pytest.mark.parametrize("value", UNPLAIN_VALUES, ids=lambda value: type(value).__name__)
def test_plain_formats_refuse_arbitrary_objects(plain: Serializer, value: Any) -> None:
    with pytest.raises(SerializationError, match="plain-data serializer"):
        plain.dumps(value)


def test_serialization_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        JSONSerializer().dumps(Opaque())


@pytest.mark.parametrize("value", [0, 1, -1, 10**30, -(10**30)])
def test_integers_are_written_as_digits_by_every_format(value: int) -> None:
    secret = SignedSerializer(PickleSerializer(), b"secret")
    for serializer in [PickleSerializer(), *plain_formats(), secret]:
        data = serializer.dumps(value)
        assert data == str(value).encode("ascii")
        assert serializer.loads(data) == value


@pytest.mark.parametrize("value", [True, False])
def test_bools_stay_bools(value: bool) -> None:
    secret = SignedSerializer(JSONSerializer(), b"secret")
    for serializer in [PickleSerializer(), *plain_formats(), secret]:
        back = serializer.loads(serializer.dumps(value))
        assert back is value


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
        data = signed.dumps(value)
        assert signed.loads(data) == value


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_signs_and_checks(algorithm: str) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret", algorithm)
    assert signed.loads(signed.dumps(RECORDS[0])) == RECORDS[0]


def test_signed_entries_carry_an_hmac_not_the_bare_payload() -> None:
    inner = PickleSerializer()
    payload = inner.dumps(RECORDS[0])
    data = SignedSerializer(inner, b"secret").dumps(RECORDS[0])
    assert data != payload
    assert data.endswith(payload)
    assert len(data) > len(payload) + 16


def test_unsigned_pickle_is_refused_and_never_unpickled(trap: Path) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    assert signed.loads(pickle.dumps(Booby(trap))) is None
    assert not trap.exists()


def test_pickle_signed_with_another_key_is_refused_and_never_unpickled(trap: Path) -> None:
    theirs = SignedSerializer(PickleSerializer(), b"their secret")
    mine = SignedSerializer(PickleSerializer(), b"my secret")
    forged = theirs.dumps(Booby(trap))
    assert not trap.exists()
    assert mine.loads(forged) is None
    assert not trap.exists()
    theirs.loads(forged)  # the same bytes are unpickled under the right key
    assert trap.exists()


def test_tampered_payload_is_refused(trap: Path) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    data = signed.dumps(RECORDS[0])
    good_payload = data[-len(pickle.dumps(RECORDS[0], pickle.HIGHEST_PROTOCOL)) :]
    swapped = data[: len(data) - len(good_payload)] + pickle.dumps(Booby(trap))
    assert signed.loads(swapped) is None
    flipped = bytearray(data)
    flipped[-1] ^= 1
    assert signed.loads(bytes(flipped)) is None
    assert signed.loads(data[:-1]) is None
    assert signed.loads(data[:5]) is None
    assert signed.loads(b"") is None
    assert not trap.exists()


def test_algorithm_is_fixed_by_configuration_not_by_the_payload() -> None:
    short = SignedSerializer(PickleSerializer(), b"secret", "sha256")
    long = SignedSerializer(PickleSerializer(), b"secret", "sha512")
    assert long.loads(short.dumps("value")) is None
    assert short.loads(long.dumps("value")) is None


def test_unknown_algorithm_or_empty_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="CACHE_SIGNING_ALGORITHM 'md5'"):
        SignedSerializer(PickleSerializer(), b"secret", "md5")
    with pytest.raises(ConfigurationError, match="secret"):
        SignedSerializer(PickleSerializer(), b"")


def test_make_serializer_signs_only_with_a_secret() -> None:
    assert type(make_serializer("json", None)) is JSONSerializer
    assert type(make_serializer("msgpack", None)) is MsgpackSerializer
    assert type(make_serializer("pickle", None)) is PickleSerializer
    with pytest.raises(ConfigurationError, match="CACHE_SERIALIZER 'yaml'"):
        make_serializer("yaml", b"secret")


@pytest.mark.parametrize("forged", [b"9abc", b"-1x", b"12 34", b"1.5"])
def test_forged_bytes_starting_with_a_digit_read_as_a_miss(forged: bytes) -> None:
    signed = SignedSerializer(PickleSerializer(), b"secret")
    assert signed.loads(forged) is None
