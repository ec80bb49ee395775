"""The store contract every backend follows, and the null store.

A store is framework-free: it never imports Flask. It owns the key prefix
(so two apps sharing a server never see each other's keys) and the timeout
rules, and it turns values into whatever its server keeps.

Required methods: ``get``, ``set``, ``add``, ``delete`` and ``clear``.
``add`` must be atomic (set only if absent, as one operation on the server):
cross-process locks are built on it. Everything else has a working default
built on those five, which a store overrides when its server does better
(one round trip for ``get_many``, an atomic ``inc``).

Timeouts are in seconds. ``None`` means the store's default, ``0`` means
no expiry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult

from ..serializers import PickleSerializer, Serializer

__all__ = ["BaseStore", "NullStore", "StoreConfig"]


@dataclass(frozen=True)
class StoreConfig:
    """What ``init_app`` hands a store class to build itself from.

    ``settings`` holds every ``CACHE_*`` key, lower-cased and without the
    prefix (``CACHE_MEMCACHED_SERVERS`` is ``settings["memcached_servers"]``).
    ``options`` is ``CACHE_OPTIONS``: keyword arguments for the constructor.
    ``serializer`` turns values into bytes for stores outside this process.
    """

    default_timeout: int = 300
    key_prefix: str = ""
    threshold: int | None = None
    url: SplitResult | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    serializer: Serializer = field(default_factory=PickleSerializer)


class BaseStore:
    """Base class of all stores; see the module docstring for the contract."""

    #: A short name for logs and ``flask cache ping``.
    name = "base"
    #: Whether other processes see this store's entries. Cross-process locks
    #: and entry signing apply only to stores that are shared.
    shared = True

    def __init__(self, default_timeout: int = 300, key_prefix: str = "") -> None:
        if default_timeout < 0:
            raise ValueError(f"default_timeout must be 0 or more, got {default_timeout}")
        self.default_timeout = default_timeout
        self.key_prefix = key_prefix

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        """Build the store from ``init_app``'s view of the config."""
        return cls(
            default_timeout=config.default_timeout,
            key_prefix=config.key_prefix,
            **dict(config.options),
        )

    def _timeout(self, timeout: int | float | None) -> float:
        """Return the effective timeout in seconds; 0 means no expiry."""
        if timeout is None:
            return self.default_timeout
        if timeout < 0:
            raise ValueError(f"timeout must be 0 or more, got {timeout}")
        return timeout

    # -- the five required methods -------------------------------------------

    def get(self, key: str) -> Any:
        """Return the value stored under *key*, or ``None`` on a miss."""
        raise NotImplementedError

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        """Store *value* under *key*; return whether it was stored."""
        raise NotImplementedError

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        """Store *value* only if *key* is absent, atomically; return whether it was."""
        raise NotImplementedError

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it existed."""
        raise NotImplementedError

    def clear(self) -> bool:
        """Remove every entry of this store's namespace, and nobody else's."""
        raise NotImplementedError

    # -- defaults built on the five ------------------------------------------

    def get_many(self, *keys: str) -> list[Any]:
        """Return the values of *keys*, in order, ``None`` for each miss."""
        return [self.get(key) for key in keys]

    def get_dict(self, *keys: str) -> dict[str, Any]:
        """Return ``{key: value}`` for *keys*, ``None`` for each miss."""
        return dict(zip(keys, self.get_many(*keys), strict=True))

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None = None) -> list[str]:
        """Store every item of *mapping*; return the keys that were stored."""
        return [key for key, value in mapping.items() if self.set(key, value, timeout)]

    def delete_many(self, *keys: str) -> list[str]:
        """Remove *keys*; return those that existed."""
        return [key for key in keys if self.delete(key)]

    def unlink(self, *keys: str) -> list[str]:
        """Remove *keys* like :meth:`delete_many`; Redis frees their memory later."""
        return self.delete_many(*keys)

    def has(self, key: str) -> bool:
        """Return whether *key* holds a value."""
        return self.get(key) is not None

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add *delta* to the counter at *key* (0 if absent); return the result.

        A counter is an integer in the signed 64-bit range, the most memcached
        ``incr`` and Redis ``INCRBY`` hold. A key that holds anything else (a
        value of another type, bytes that are no integer, more digits than 64
        bits hold), or whose sum would leave that range, counts as absent: the
        counter starts again at *delta*, replacing what was there. So junk
        that someone else wrote under a key never makes ``inc`` fail, which
        would count against the store.

        This default is not atomic; stores whose server can do better override it.
        """
        value = self.get(key)
        result = (value if isinstance(value, int) else 0) + delta
        return result if self.set(key, result, timeout=0) else None

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Subtract *delta* from the counter at *key*; return the result (see :meth:`inc`)."""
        return self.inc(key, -delta)

    def close(self) -> None:
        """Release connections and files. The store is not used afterwards."""

    def describe(self) -> str:
        """Say where the store keeps its data, for logs and ``flask cache ping``."""
        return self.name

    # -- inspection (flask cache keys, flask cache stats) --------------------

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """The keys of this store's namespace matching the glob *pattern*, without the prefix.

        For inspection only: a store walks everything it holds to answer.
        Raises NotImplementedError where the store cannot list its keys.
        """
        raise NotImplementedError(f"the {self.name} store cannot list its keys")

    def figures(self) -> dict[str, int]:
        """What the store itself counts (entries, bytes, its server's hits...), by name.

        Unlike the extension's counters these are the store's own, so they
        cover every process using it. Empty when the store keeps none.
        """
        return {}


class NullStore(BaseStore):
    """Stores nothing: every read is a miss. Useful to switch caching off."""

    name = "null"
    shared = False

    def get(self, key: str) -> Any:
        return None

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        self._timeout(timeout)
        return True

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        self._timeout(timeout)
        return True

    def delete(self, key: str) -> bool:
        return False

    def clear(self) -> bool:
        return True

    def has(self, key: str) -> bool:
        return False

    def inc(self, key: str, delta: int = 1) -> int | None:
        return delta

    def keys(self, pattern: str = "*") -> Iterator[str]:
        return iter(())
