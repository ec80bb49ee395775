"""Turning cached values into bytes and back, for stores outside this process.

Integers are written as ASCII digits so that memcached ``incr`` and Redis
``INCRBY`` work on the same keys that ``get``/``set`` use. Those are
counters, and a counter is a signed 64-bit integer, the most either server
counts with. A digit string longer than 19 digits, or outside that range,
is nobody's counter: it reads as a miss, and is never parsed. A larger
integer is written by the format like any other value. Everything else
goes through a format: pickle by default, JSON or msgpack for users who
cache only plain data, or an object of the user's with ``dumps`` and
``loads`` methods.

With a secret, every non-integer value carries an HMAC of the key it is
stored under and of its payload, checked before the bytes are decoded:
bytes that anyone else wrote into a shared server, or that were copied from
another key, read as a miss and are never unpickled. The algorithm is fixed
by configuration and never named in the payload, so a forged payload cannot
choose it.

Without a secret, pickle (the default) gives way on a shared store to plain
data only, as JSON, read back by a decoder that runs no code but its own and
checks the shape of every record: bytes written by anyone read as that data
or as a miss. A value that would need pickle is refused with a
:class:`~flask_stash.SerializationError` that says which setting to add.

Reading never raises: whatever the bytes, ``loads`` returns a value or None.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
import pickle
from collections.abc import Callable
from typing import Any, Protocol, TypeGuard

from .entries import FrozenResponse, MemoEntry, VaryIndex, well_formed
from .errors import ConfigurationError, SerializationError
from .keys import BoundedMemo

__all__ = [
    "COUNTER_MAX",
    "COUNTER_MIN",
    "FORMATS",
    "CustomFormat",
    "Format",
    "JSONSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "SignedSerializer",
    "UnsignedSerializer",
    "is_counter",
    "make_format",
    "make_serializer",
    "read_counter",
]

logger = logging.getLogger("flask_stash")

_PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


class Serializer(Protocol):
    """What a store needs to turn values into bytes and back.

    *key* is the store key: the name the server keeps the entry under
    (key prefix included, and for memcached the namespace version and any
    hashing too). A store passes the same key to ``dumps`` and ``loads``;
    the signed serializer binds the entry to it. ``loads`` returns None for
    bytes it refuses (a bad signature, a malformed entry): a miss.
    """

    def dumps(self, value: Any, key: str) -> bytes: ...

    def loads(self, data: bytes, key: str) -> Any: ...


class Format(Protocol):
    """A way to write values as bytes that ignores the key: pickle, JSON, msgpack, a user's.

    The key is optional, so a format is a serializer too, for stores whose
    entries nobody else writes. :func:`make_format` builds them.
    """

    def dumps(self, value: Any, key: str = ...) -> bytes: ...

    def loads(self, data: bytes, key: str = ...) -> Any: ...


#: The range of a counter: what memcached ``incr`` and Redis ``INCRBY`` both hold.
COUNTER_MIN = -(2**63)
COUNTER_MAX = 2**63 - 1
_COUNTER_DIGITS = 19


def is_counter(value: Any) -> TypeGuard[int]:
    """Whether *value* is an integer that every store can count with."""
    # type() rather than isinstance(): bool is an int subclass and must
    # round-trip as a bool, not as 1 or 0.
    return type(value) is int and COUNTER_MIN <= value <= COUNTER_MAX


def _is_digits(data: bytes) -> bool:
    """Whether *data* is written like a counter: an optional minus sign, then ASCII digits."""
    return (data[1:] if data[:1] == b"-" else data).isdigit()


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError as err:  # past Python's limit on digits in int-to-str conversion
        raise SerializationError(f"cannot cache an integer this large: {err}") from err


def _counter_bytes(value: int) -> bytes | None:
    """The digits of a counter, or None for an integer outside 64 bits: the format writes it."""
    if COUNTER_MIN <= value <= COUNTER_MAX:
        return b"%d" % value
    _int_text(value)  # every serializer refuses what Python cannot write in decimal
    return None


def _counter(data: bytes) -> int | None:
    """The counter in *data*, which holds only digits (and maybe a minus sign).

    More digits than 64 bits hold is nobody's counter, and is not parsed:
    converting thousands of digits is slow, and past Python's limit it raises.
    """
    if len(data) - (data[:1] == b"-") > _COUNTER_DIGITS:
        return None
    value = int(data)
    return value if COUNTER_MIN <= value <= COUNTER_MAX else None


def read_counter(data: bytes) -> int | None:
    """The counter that *data* holds, or None if it holds anything else."""
    return _counter(data) if _is_digits(data) else None


class PickleSerializer:
    """Pickle for arbitrary values, plain digits for integers."""

    protocol = pickle.HIGHEST_PROTOCOL

    def dumps(self, value: Any, key: str = "") -> bytes:
        if type(value) is int and (digits := _counter_bytes(value)) is not None:
            return digits
        try:
            return pickle.dumps(value, self.protocol)
        except _PICKLE_ERRORS as err:
            raise SerializationError(
                f"cannot cache a value of type {type(value).__qualname__}: {err}"
            ) from err

    def loads(self, data: bytes, key: str = "") -> Any:
        if _is_digits(data):
            return _counter(data)
        try:
            return pickle.loads(data)
        except Exception:  # truncated or foreign bytes raise almost anything
            logger.debug("cache entry is not a pickle; read as a miss")
            return None


# -- plain-data formats --------------------------------------------------------
#
# Plain data is written as JSON (or msgpack) values in which every object is
# tagged: {"__dict__": {...}} for a str-keyed dict, {"__items__": [[k, v],
# ...]} for any other dict, {"__tuple__": [...]}, {"__bytes__": "base64"},
# {"__datetime__": "iso"} and its kin, {"__int__": "digits"} for an integer
# outside 64 bits (msgpack cannot hold one, and as bare JSON it would read as
# a counter's digits), and {"__record__": name, "fields": [...]} for the
# decorators' records. An untagged or unknown object is malformed. The
# reader builds nothing but these types and checks each record's field
# types, so whatever the bytes say, it returns plain data or reports them
# malformed.

_RECORDS: dict[str, type[tuple[Any, ...]]] = {
    cls.__name__: cls for cls in (FrozenResponse, MemoEntry, VaryIndex)
}


class _MalformedError(ValueError):
    """Bytes that do not decode to plain data: read as a miss."""


# What the readers may raise on bytes they did not write: the parsers'
# errors and bad base64 or dates are ValueErrors; a nesting deeper than the
# stack is a RecursionError; an unhashable dict key is a TypeError.
_READ_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


def _to_plain(value: Any, binary: bool) -> Any:
    """Encode tuples, bytes, dicts, dates and the decorators' records as tagged plain data."""
    kind = type(value)
    if kind is int:
        return value if COUNTER_MIN <= value <= COUNTER_MAX else {"__int__": _int_text(value)}
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is bytes:
        return value if binary else {"__bytes__": base64.b64encode(value).decode("ascii")}
    if kind is list:
        return [_to_plain(item, binary) for item in value]
    if kind is tuple:
        return {"__tuple__": [_to_plain(item, binary) for item in value]}
    if kind is dict:
        if all(type(key) is str for key in value):
            return {"__dict__": {key: _to_plain(item, binary) for key, item in value.items()}}
        return {
            "__items__": [
                [_to_plain(key, binary), _to_plain(item, binary)] for key, item in value.items()
            ]
        }
    if kind is datetime.datetime or kind is datetime.time:
        # isoformat keeps the microseconds and the UTC offset (a zone becomes
        # its offset at that moment); fold is written only when set.
        tag = "__datetime__" if kind is datetime.datetime else "__time__"
        return {tag: value.isoformat(), "fold": 1} if value.fold else {tag: value.isoformat()}
    if kind is datetime.date:
        return {"__date__": value.isoformat()}
    if kind is datetime.timedelta:
        return {"__timedelta__": [value.days, value.seconds, value.microseconds]}
    if _RECORDS.get(kind.__name__) is kind:
        return {"__record__": kind.__name__, "fields": [_to_plain(v, binary) for v in value]}
    raise SerializationError(
        f"cannot cache a value of type {kind.__qualname__} with a plain-data serializer"
    )


def _dump_plain(value: Any, binary: bool) -> Any:
    try:
        return _to_plain(value, binary)
    except RecursionError as err:
        raise SerializationError("cannot cache a value nested this deeply") from err


def _check(condition: bool) -> None:
    if not condition:
        raise _MalformedError


def _moment(value: dict[Any, Any], tag: str, parse: Callable[[str], Any]) -> Any:
    """Decode a datetime or a time: its ISO text, then fold if it is set."""
    text = value[tag]
    _check(type(text) is str)
    if len(value) == 1:
        return parse(text)
    _check(len(value) == 2 and value.get("fold") == 1)
    return parse(text).replace(fold=1)


def _from_plain(value: Any) -> Any:
    """Decode what :func:`_to_plain` wrote; raise _MalformedError for anything else."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is bytes:  # msgpack's own bytes
        return value
    if kind is list:
        return [_from_plain(item) for item in value]
    _check(kind is dict and bool(value))
    tag = next(iter(value))  # the writer puts the tag first
    body = value[tag]
    if tag == "__record__":
        _check(len(value) == 2 and type(body) is str and type(value.get("fields")) is list)
        record = _RECORDS.get(body)
        if record is None:
            raise _MalformedError
        built = record(*(_from_plain(item) for item in value["fields"]))
        _check(well_formed(built))
        return built
    if tag == "__datetime__":
        return _moment(value, tag, datetime.datetime.fromisoformat)
    if tag == "__time__":
        return _moment(value, tag, datetime.time.fromisoformat)
    _check(len(value) == 1)
    if tag == "__dict__":
        _check(type(body) is dict and all(type(key) is str for key in body))
        return {key: _from_plain(item) for key, item in body.items()}
    if tag == "__tuple__":
        _check(type(body) is list)
        return tuple(_from_plain(item) for item in body)
    if tag == "__items__":
        _check(type(body) is list and all(type(pair) is list and len(pair) == 2 for pair in body))
        return {_from_plain(key): _from_plain(item) for key, item in body}
    if tag == "__bytes__":
        _check(type(body) is str)
        return base64.b64decode(body, validate=True)
    if tag == "__date__":
        _check(type(body) is str)
        return datetime.date.fromisoformat(body)
    if tag == "__timedelta__":
        _check(type(body) is list and len(body) == 3 and all(type(part) is int for part in body))
        return datetime.timedelta(*body)
    if tag == "__int__":
        # Past Python's limit on digits, int() raises ValueError: malformed.
        _check(type(body) is str and body.isascii() and _is_digits(body.encode("ascii")))
        return int(body)
    raise _MalformedError


def _dump_json(value: Any) -> bytes:
    return json.dumps(_dump_plain(value, binary=False), separators=(",", ":")).encode()


def _load_json(data: bytes) -> Any:
    try:
        return _from_plain(json.loads(data))
    except _READ_ERRORS:
        logger.debug("cache entry is not plain data written by Flask-Stash; read as a miss")
        return None


class JSONSerializer:
    """JSON for plain data, read without running any code but its own.

    It takes str, numbers, bools, None, bytes, lists, tuples, dicts (with
    keys of any of these types), ``datetime``'s datetime, date, time and
    timedelta, and the decorators' records; a tuple comes back a tuple and
    a bool a bool. Bytes it did not write read as None (a miss).
    """

    def dumps(self, value: Any, key: str = "") -> bytes:
        if type(value) is int and (digits := _counter_bytes(value)) is not None:
            return digits
        return _dump_json(value)

    def loads(self, data: bytes, key: str = "") -> Any:
        if _is_digits(data):
            return _counter(data)
        return _load_json(data)


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

    def dumps(self, value: Any, key: str = "") -> bytes:
        if type(value) is int and (digits := _counter_bytes(value)) is not None:
            return digits
        packed: bytes = self._msgpack.packb(_dump_plain(value, binary=True), use_bin_type=True)
        return b"\x00" + packed  # never a digit, so never read as a counter

    def loads(self, data: bytes, key: str = "") -> Any:
        if _is_digits(data):
            return _counter(data)
        try:
            _check(data[:1] == b"\x00")
            return _from_plain(self._msgpack.unpackb(data[1:], raw=False))
        except (*_READ_ERRORS, self._msgpack.UnpackException):  # OutOfData is not a ValueError
            logger.debug("cache entry is not plain data written by Flask-Stash; read as a miss")
            return None


_RECORD_MARK = b"\x02"


class CustomFormat:
    """An object of the user's with ``dumps(value)`` and ``loads(bytes)``, as a format.

    Such as cachelib's ``JSONSerializer()``, the ``json`` module or the
    ``pickle`` module. Integers are still written as digits, so counters
    work; a ``str`` from ``dumps`` is stored as UTF-8. What it fails to
    write is a :class:`~flask_stash.SerializationError`; what it fails to
    read is a miss. Whether reading bytes that others wrote is safe is
    up to the object.

    The decorators' records (a cached page, a memoized result with its
    times) are written in this module's plain-data JSON, behind a marker
    byte, whenever they hold plain data: most formats would not give them
    back as records (``json`` makes lists) or cannot write a page's bytes.
    A record holding anything else goes to the object like any value. An
    integer too large for a counter is written in that JSON too: ``json``
    would write it as bare digits, which read as a counter's.
    """

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.name = getattr(wrapped, "__name__", None) or type(wrapped).__qualname__

    def dumps(self, value: Any, key: str = "") -> bytes:
        if type(value) is int:
            return _counter_bytes(value) or _RECORD_MARK + _dump_json(value)
        if _RECORDS.get(type(value).__name__) is type(value):
            try:
                return _RECORD_MARK + _dump_json(value)
            except SerializationError:
                pass  # a memoized value that is not plain data: the object's job
        try:
            data = self.wrapped.dumps(value)
        except Exception as err:  # any failure of someone else's code to write a value
            raise SerializationError(
                f"cannot cache a value of type {type(value).__qualname__} with "
                f"CACHE_SERIALIZER {self.name}: {err}"
            ) from err
        if type(data) is str:
            return data.encode("utf-8", "surrogatepass")
        if type(data) is not bytes:
            raise SerializationError(
                f"CACHE_SERIALIZER {self.name} turned a value of type "
                f"{type(value).__qualname__} into {type(data).__qualname__}, not bytes or str"
            )
        return data

    def loads(self, data: bytes, key: str = "") -> Any:
        if _is_digits(data):
            return _counter(data)
        if data[:1] == _RECORD_MARK:
            return _load_json(data[1:])
        try:
            return self.wrapped.loads(data)
        except Exception:  # someone else's code on bytes it may not have written
            logger.debug(
                "CACHE_SERIALIZER %s could not read a cache entry; read as a miss", self.name
            )
            return None


FORMATS: dict[str, Callable[[], Format]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
}

#: Algorithms CACHE_SIGNING_ALGORITHM accepts.
ALGORITHMS = ("sha256", "sha384", "sha512", "blake2b")

_SIGNED = b"\x01"


#: Signed entries up to this many bytes are remembered once verified and
#: decoded, VERIFIED_ENTRIES of them: a few MB at most, beside the decoded records.
VERIFIED_SIZE = 16 * 1024
VERIFIED_ENTRIES = 256
_ATOMS = (str, bytes, int, float, bool, type(None))


def _shareable(value: Any) -> bool:
    """Whether *value* may be handed to every reader: an immutable record of atoms.

    Pages and Vary indexes are; a memoized value only when it is an atom
    itself, since no two callers may share a mutable object.
    """
    kind = type(value)
    if kind is FrozenResponse or kind is VaryIndex or kind in _ATOMS:
        return True
    return kind is MemoEntry and type(value.value) in _ATOMS


class SignedSerializer:
    """Wraps a format so every value carries an HMAC of its key and payload, checked first.

    Bytes that fail the check (written by someone without the secret, under
    an old secret, or copied from another key) read as a miss, and are
    reported to ``on_reject`` with the key they were read under: the
    extension counts them as integrity errors in ``cache.stats``.
    """

    #: Called with the store key of every entry refused.
    on_reject: Callable[[str], None] | None = None

    def __init__(self, inner: Format, secret: bytes, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"CACHE_SIGNING_ALGORITHM {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
            )
        if not secret:
            raise ConfigurationError("the signing secret must not be empty")
        # Derive a key of our own, so the cache never signs with the very
        # bytes the app uses for its session cookies.
        key = hmac.new(secret, b"flask-stash entries", hashlib.sha256).digest()
        # Keyed once; each MAC starts from a copy, which skips re-keying.
        self._keyed = hmac.new(key, digestmod=algorithm)
        self._size = self._keyed.digest_size
        self.inner = inner
        #: (key, bytes) -> the immutable record they decoded to; bounded in
        #: count and in the size of each entry (VERIFIED_ENTRIES, VERIFIED_SIZE).
        self._verified = BoundedMemo(VERIFIED_ENTRIES)

    def _mac(self, key: str, payload: bytes) -> bytes:
        # The store key is covered, so an entry copied to another key fails
        # its check. Its length goes first, so that no other split of the
        # same bytes into key and payload gives the same MAC.
        name = key.encode("utf-8", "surrogatepass")
        mac = self._keyed.copy()
        mac.update(len(name).to_bytes(4, "big"))
        mac.update(name)
        mac.update(payload)
        return mac.digest()

    def dumps(self, value: Any, key: str) -> bytes:
        if type(value) is int and (digits := _counter_bytes(value)) is not None:
            # Counters stay digits so the server can increment them; a
            # forged digit string can only ever read back as an integer.
            return digits
        payload = self.inner.dumps(value)
        return _SIGNED + self._mac(key, payload) + payload

    def loads(self, data: bytes, key: str) -> Any:
        if _is_digits(data):
            return _counter(data)
        # The same bytes under the same key, verified and decoded before,
        # decode to the same immutable record: no HMAC, no unpickling.
        seen = (key, data)
        known = self._verified.get(seen)
        if known is not None:
            return known
        mac, payload = data[1 : 1 + self._size], data[1 + self._size :]
        if data[:1] != _SIGNED or not hmac.compare_digest(mac, self._mac(key, payload)):
            logger.debug("cache entry failed its signature check; read as a miss")
            if self.on_reject is not None:
                self.on_reject(key)
            return None
        value = self.inner.loads(payload)
        if len(data) <= VERIFIED_SIZE and _shareable(value):
            self._verified.remember(seen, value)
        return value


class UnsignedSerializer:
    """What pickle becomes on a shared store without a secret: plain data in JSON.

    Nothing read can run code (see :class:`JSONSerializer`); a value that
    would need pickle is refused, with an error naming the settings that
    would let it be cached, signed.
    """

    def __init__(self) -> None:
        self.inner = JSONSerializer()

    def dumps(self, value: Any, key: str = "") -> bytes:
        try:
            return self.inner.dumps(value)
        except SerializationError as err:
            raise SerializationError(
                f"{err}: entries in a shared store without a secret are unsigned and hold "
                "plain data only; set CACHE_SECRET_KEY (or the app's SECRET_KEY) to cache "
                "other values, pickled and signed"
            ) from err

    def loads(self, data: bytes, key: str = "") -> Any:
        return self.inner.loads(data)


_ACCEPTED = (
    f"it accepts {', '.join(map(repr, FORMATS))}, or an object with dumps(value) and "
    "loads(bytes) methods, such as cachelib's JSONSerializer() or the json module"
)


def make_format(choice: object) -> Format:
    """Return the format ``CACHE_SERIALIZER`` names, or the user's object adapted to one."""
    if isinstance(choice, str):
        if choice not in FORMATS:
            raise ConfigurationError(f"CACHE_SERIALIZER {choice!r} is unknown; {_ACCEPTED}")
        built: Format = FORMATS[choice]()
        return built
    if isinstance(choice, type):
        # A class, as Flask-Caching accepts it: the format is an instance of it.
        cls: type[Any] = choice
        if not (callable(getattr(cls, "dumps", None)) and callable(getattr(cls, "loads", None))):
            raise ConfigurationError(
                f"CACHE_SERIALIZER {cls.__qualname__} is not usable; {_ACCEPTED}"
            )
        try:
            choice = cls()
        except TypeError as err:
            raise ConfigurationError(
                f"CACHE_SERIALIZER {cls.__qualname__} could not be built with no "
                f"arguments ({err}); pass an instance instead ({_ACCEPTED})"
            ) from err
    if callable(getattr(choice, "dumps", None)) and callable(getattr(choice, "loads", None)):
        return CustomFormat(choice)
    raise ConfigurationError(f"CACHE_SERIALIZER {choice!r} is not usable; {_ACCEPTED}")


def make_serializer(
    choice: object, secret: bytes | None, algorithm: str = "sha256", *, shared: bool = True
) -> Serializer:
    """Build the serializer for ``CACHE_SERIALIZER``.

    With a *secret*, the format is wrapped in a signed envelope bound to the
    store key. Without one, a shared store gets plain data in place of
    pickle (:class:`UnsignedSerializer`) and any other format as it is; a
    store in this process (*shared* false) gets the format as it is, since
    it only copies mutable values and nobody else writes to it.
    """
    inner = make_format(choice)
    if secret is not None:
        return SignedSerializer(inner, secret, algorithm)
    if shared and isinstance(inner, PickleSerializer):
        return UnsignedSerializer()
    return inner
