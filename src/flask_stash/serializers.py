"""Turning cached values into bytes and back, for stores outside this process.

Integers are written as ASCII digits so that memcached ``incr`` and Redis
``INCRBY`` work on the same keys that ``get``/``set`` use. Everything else
goes through a format: pickle by default, or JSON or msgpack for users who
cache only plain data.

With a secret, every non-integer value carries an HMAC, checked before the
bytes are decoded: bytes that anyone else wrote into a shared server read
as a miss and are never unpickled. The algorithm is fixed by configuration
and never named in the payload, so a forged payload cannot choose it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import pickle
from typing import Any, Protocol

from .entries import FrozenResponse, MemoEntry, VaryIndex
from .errors import ConfigurationError, SerializationError

__all__ = [
    "FORMATS",
    "JSONSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "SignedSerializer",
    "make_serializer",
]

logger = logging.getLogger("flask_stash")

_PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


class Serializer(Protocol):
    """What a store needs to turn values into bytes and back.

    ``loads`` returns None for bytes it refuses (a bad signature): a miss.
    """

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _is_counter(value: Any) -> bool:
    # type() rather than isinstance(): bool is an int subclass and must
    # round-trip as a bool, not as 1 or 0.
    return type(value) is int


def _is_digits(data: bytes) -> bool:
    """Whether *data* is a counter: an optional minus sign, then ASCII digits only."""
    return (data[1:] if data[:1] == b"-" else data).isdigit()


class PickleSerializer:
    """Pickle for arbitrary values, plain digits for integers."""

    protocol = pickle.HIGHEST_PROTOCOL

    def dumps(self, value: Any) -> bytes:
        if _is_counter(value):
            return str(value).encode("ascii")
        try:
            return pickle.dumps(value, self.protocol)
        except _PICKLE_ERRORS as err:
            raise SerializationError(
                f"cannot cache a value of type {type(value).__qualname__}: {err}"
            ) from err

    def loads(self, data: bytes) -> Any:
        if _is_digits(data):
            return int(data)
        return pickle.loads(data)


# -- plain-data formats --------------------------------------------------------

_RECORDS: dict[str, type[tuple[Any, ...]]] = {
    cls.__name__: cls for cls in (FrozenResponse, MemoEntry, VaryIndex)
}


def _to_plain(value: Any, binary: bool) -> Any:
    """Encode tuples, bytes and the decorators' records as tagged plain data."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return value
    if kind is bytes:
        return value if binary else {"__bytes__": base64.b64encode(value).decode("ascii")}
    if kind is list:
        return [_to_plain(item, binary) for item in value]
    if kind is tuple:
        return {"__tuple__": [_to_plain(item, binary) for item in value]}
    if kind.__name__ in _RECORDS and _RECORDS[kind.__name__] is kind:
        return {"__record__": kind.__name__, "fields": [_to_plain(v, binary) for v in value]}
    if kind is dict and all(type(key) is str for key in value):
        return {"__dict__": {key: _to_plain(item, binary) for key, item in value.items()}}
    raise SerializationError(
        f"cannot cache a value of type {kind.__qualname__} with a plain-data serializer"
    )


def _from_plain(value: Any) -> Any:
    if type(value) is list:
        return [_from_plain(item) for item in value]
    if type(value) is not dict:
        return value
    if "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    if "__tuple__" in value:
        return tuple(_from_plain(item) for item in value["__tuple__"])
    if "__record__" in value:
        record = _RECORDS[value["__record__"]]
        return record(*(_from_plain(item) for item in value["fields"]))
    return {key: _from_plain(item) for key, item in value["__dict__"].items()}


class JSONSerializer:
    """JSON for plain data: str, numbers, bools, None, lists, tuples, str-keyed dicts, bytes."""

    def dumps(self, value: Any) -> bytes:
        if _is_counter(value):
            return str(value).encode("ascii")
        return json.dumps(_to_plain(value, binary=False), separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        if _is_digits(data):
            return int(data)
        return _from_plain(json.loads(data))


class MsgpackSerializer:
    """msgpack for plain data; like JSON, but compact and with native bytes."""

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as err:
            raise ConfigurationError(
                "CACHE_SERIALIZER 'msgpack' needs msgpack: pip install 'flask-stash[msgpack]'"
            ) from err
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        if _is_counter(value):
            return str(value).encode("ascii")
        packed: bytes = self._msgpack.packb(_to_plain(value, binary=True), use_bin_type=True)
        return b"\x00" + packed  # never a digit, so never read as a counter

    def loads(self, data: bytes) -> Any:
        if _is_digits(data):
            return int(data)
        return _from_plain(self._msgpack.unpackb(data[1:], raw=False))


FORMATS: dict[str, type[Any]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
}

#: Algorithms CACHE_SIGNING_ALGORITHM accepts.
ALGORITHMS = ("sha256", "sha384", "sha512", "blake2b")

_SIGNED = b"\x01"


class SignedSerializer:
    """Wraps a format so every value carries an HMAC, checked before decoding."""

    def __init__(self, inner: Serializer, secret: bytes, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"CACHE_SIGNING_ALGORITHM {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
            )
        if not secret:
            raise ConfigurationError("the signing secret must not be empty")
        # Derive a key of our own, so the cache never signs with the very
        # bytes the app uses for its session cookies.
        self._key = hmac.new(secret, b"flask-stash entries", hashlib.sha256).digest()
        self._algorithm = algorithm
        self._size = hashlib.new(algorithm).digest_size
        self.inner = inner

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, self._algorithm).digest()

    def dumps(self, value: Any) -> bytes:
        if _is_counter(value):
            # Counters stay digits so the server can increment them; a
            # forged digit string can only ever read back as an integer.
            return str(value).encode("ascii")
        payload = self.inner.dumps(value)
        return _SIGNED + self._mac(payload) + payload

    def loads(self, data: bytes) -> Any:
        if _is_digits(data):
            return int(data)
        mac, payload = data[1 : 1 + self._size], data[1 + self._size :]
        if data[:1] != _SIGNED or not hmac.compare_digest(mac, self._mac(payload)):
            logger.debug("cache entry failed its signature check; read as a miss")
            return None
        return self.inner.loads(payload)


def make_serializer(name: str, secret: bytes | None, algorithm: str = "sha256") -> Serializer:
    """Build the serializer ``CACHE_SERIALIZER`` names, signed when there is a secret."""
    if name not in FORMATS:
        raise ConfigurationError(
            f"CACHE_SERIALIZER {name!r} is unknown; it accepts {', '.join(FORMATS)}"
        )
    inner: Serializer = FORMATS[name]()
    return SignedSerializer(inner, secret, algorithm) if secret is not None else inner
