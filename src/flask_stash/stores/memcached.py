"""The memcached store, on pymemcache (text protocol, no login).

One server: one connection per thread (pymemcache's ``Client`` is not
thread-safe, and a per-thread connection needs no lock on the hit path,
unlike a shared pool), and every error is raised, so the Flask layer
can log it, count it, serve the request uncached and open its circuit
breaker. Several servers: pymemcache's ``HashClient`` spreads keys by
rendezvous hashing, so adding or removing a node moves about 1/N of the
keys. A node that fails is retried ``retry_attempts`` times, ``retry_timeout``
seconds apart, then left out for ``dead_timeout`` seconds; meanwhile its keys
read as misses and then go to the other nodes. Only when every node is out
does a call raise.

The namespace version (see ``_memcached_common``) is a key like any other,
so when the node holding it changes (a node added, removed or dead) the
store starts a new version: one time in N, a topology change empties the
whole cache rather than 1/N of it. The store never serves cleared entries
because of it.

Timeouts are short, for a cache on the same network: 0.25 s to connect and
0.5 s to wait for an answer (``CACHE_MEMCACHED_CONNECT_TIMEOUT``,
``CACHE_MEMCACHED_TIMEOUT``). A cache slower than that is worse than none.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from ..serializers import Serializer
from ._memcached_common import (
    DEFAULT_MAX_ITEM_SIZE,
    IncrRefusedError,
    NamespacedMemcache,
    config_kwargs,
    parse_servers,
    split_address,
)
from .base import BaseStore, StoreConfig

try:
    from pymemcache.client.base import Client
    from pymemcache.client.hash import HashClient
    from pymemcache.exceptions import MemcacheClientError, MemcacheError, MemcacheServerError
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "the memcached store needs pymemcache: pip install 'flask-stash[memcached]'"
    ) from err

__all__ = ["MemcachedStore"]

#: CACHE_MEMCACHED_* settings (lower-cased, without CACHE_) to constructor keywords.
SETTINGS = {
    "memcached_servers": "servers",
    "memcached_connect_timeout": "connect_timeout",
    "memcached_timeout": "timeout",
    "memcached_max_item_size": "max_item_size",
    "memcached_use_pooling": "use_pooling",
    "memcached_max_pool_size": "max_pool_size",
    "memcached_retry_attempts": "retry_attempts",
    "memcached_retry_timeout": "retry_timeout",
    "memcached_dead_timeout": "dead_timeout",
}


class _ClusterClient(HashClient):  # type: ignore[misc]
    """A ``HashClient`` that raises once every node is out.

    It runs with ``ignore_exc=True`` so that one failing node reads as
    misses; but then a cluster that is down entirely would look like an
    empty cache, and the circuit breaker above would never open.
    """

    def _get_client(self, key: Any) -> Any:
        client = super()._get_client(key)
        if client is None:
            raise MemcacheError("every memcached node is marked dead")
        return client


class _ThreadClient(Client):  # type: ignore[misc]
    """A connection owned by one thread, closed when that thread is gone."""

    def __del__(self) -> None:
        self.close()


class _PerThreadClient:
    """A pymemcache ``Client`` for each thread that uses the store."""

    def __init__(self, address: Any, **kwargs: Any) -> None:
        self._address = address
        self._kwargs = kwargs
        self._local = threading.local()
        self._clients: weakref.WeakSet[Client] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _ThreadClient(self._address, **self._kwargs)
            with self._lock:
                self._clients.add(client)
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client(), name)

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()


def _too_large(err: Exception) -> bool:
    return "too large" in str(err)


class MemcachedStore(NamespacedMemcache):
    """Memcached on one node or many; see the module docstring."""

    name = "memcached"

    def __init__(
        self,
        servers: str | Iterable[str] = ("127.0.0.1:11211",),
        default_timeout: int = 300,
        key_prefix: str = "",
        *,
        serializer: Serializer | None = None,
        connect_timeout: float = 0.25,
        timeout: float = 0.5,
        use_pooling: bool = True,
        max_pool_size: int | None = None,
        max_item_size: int = DEFAULT_MAX_ITEM_SIZE,
        retry_attempts: int = 2,
        retry_timeout: float = 1.0,
        dead_timeout: float = 30.0,
    ) -> None:
        super().__init__(default_timeout, key_prefix, serializer, max_item_size)
        if connect_timeout <= 0 or timeout <= 0:
            raise ValueError("connect_timeout and timeout must be more than 0 seconds")
        self.servers = parse_servers(servers)
        common: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "timeout": timeout,
            "no_delay": True,
            # Wait for every reply: add must say whether it stored, errors must surface.
            "default_noreply": False,
        }
        self._client: Any
        if len(self.servers) == 1:
            address = split_address(self.servers[0])
            if use_pooling:
                self._client = _PerThreadClient(address, **common)
            else:
                self._client = Client(address, **common)
        else:
            self._client = _ClusterClient(
                [split_address(server) for server in self.servers],
                use_pooling=use_pooling,
                max_pool_size=max_pool_size,
                retry_attempts=retry_attempts,
                retry_timeout=retry_timeout,
                dead_timeout=dead_timeout,
                ignore_exc=True,
                **common,
            )

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        """Servers from CACHE_MEMCACHED_SERVERS, else CACHE_URL; CACHE_OPTIONS win."""
        return cls(
            default_timeout=config.default_timeout,
            key_prefix=config.key_prefix,
            **config_kwargs(config, SETTINGS),
        )

    def describe(self) -> str:
        return f"memcached {', '.join(self.servers)}"

    def close(self) -> None:
        self._client.close()

    # -- primitives ----------------------------------------------------------

    def _fetch(self, names: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = self._client.get_many(names)
        return found

    def _store(self, items: dict[str, bytes], expire: int) -> list[str]:
        try:
            return list(self._client.set_many(items, expire=expire, noreply=False))
        except MemcacheServerError as err:
            if not _too_large(err):
                raise
            for name, data in items.items():
                self._too_large(name, len(data))
            return list(items)

    def _add(self, name: str, data: bytes, expire: int) -> bool:
        try:
            return bool(self._client.add(name, data, expire=expire, noreply=False))
        except MemcacheServerError as err:
            if not _too_large(err):
                raise
            self._too_large(name, len(data))
            return False

    def _remove(self, name: str) -> bool:
        return bool(self._client.delete(name, noreply=False))

    def _remove_many(self, names: list[str]) -> None:
        self._client.delete_many(names, noreply=False)

    def _incr(self, name: str, delta: int) -> int | None:
        try:
            result = self._client.incr(name, delta, noreply=False)
        except MemcacheClientError as err:  # "cannot increment ... non-numeric value"
            raise IncrRefusedError(str(err)) from err
        if result is False:
            # HashClient swallowed an error: a failing node, or a value that
            # is not a number. The check-and-set path tells them apart.
            raise IncrRefusedError("incr failed")
        return None if result is None else int(result)

    def _gets(self, name: str) -> tuple[bytes | None, Any]:
        found = self._client.gets(name)
        if not found or found[0] is None:  # HashClient returns None on a failing node
            return None, None
        return found[0], found[1]

    def _cas(self, name: str, data: bytes, token: Any) -> bool:
        return bool(self._client.cas(name, data, token, expire=0, noreply=False))
