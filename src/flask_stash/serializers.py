"""Turning cached values into bytes and back, for stores outside this process.

Integers are written as ASCII digits so that memcached ``incr`` and Redis
``INCRBY`` work on the same keys that ``get``/``set`` use. Everything else is
pickled. Pickle output (protocol 2 and later) always starts with ``0x80``,
so the two forms never overlap and no marker byte is needed.
"""

from __future__ import annotations

import pickle
from typing import Any, Protocol

from .errors import SerializationError

__all__ = ["PickleSerializer", "Serializer"]


class Serializer(Protocol):
    """What a store needs to turn values into bytes and back."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """Pickle for arbitrary values, plain digits for integers."""

    protocol = pickle.HIGHEST_PROTOCOL

    def dumps(self, value: Any) -> bytes:
        # type() rather than isinstance(): bool is an int subclass and must
        # round-trip as a bool, not as 1 or 0.
        if type(value) is int:
            return str(value).encode("ascii")
        try:
            return pickle.dumps(value, self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            raise SerializationError(
                f"cannot cache a value of type {type(value).__qualname__}: {err}"
            ) from err

    def loads(self, data: bytes) -> Any:
        if data[:1] == b"\x80":
            return pickle.loads(data)
        return int(data)
