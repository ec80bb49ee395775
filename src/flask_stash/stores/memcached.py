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

import socket
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from ..serializers import Serializer
from ._memcached_common import (
    DEFAULT_MAX_ITEM_SIZE,
    IncrRefusedError,
    MemcachedError,
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


#: First words of a line by which memcached refuses a command.
_REFUSALS = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR", b"BADCLASS")
#: What the LRU crawler answers while another crawl runs; tried again.
_BUSY = b"BUSY"
_BUSY_TRIES = 50
_BUSY_PAUSE = 0.1
#: The ``stats`` figures ``figures`` reports, summed over the servers.
_STATS_FIGURES = ("curr_items", "bytes", "get_hits", "get_misses", "evictions", "limit_maxbytes")


class _RefusedError(Exception):
    """Memcached refused a text command; the first word of its answer is in ``line``."""

    def __init__(self, line: bytes) -> None:
        super().__init__(line.decode("ascii", "replace"))
        self.line = line


def _converse(address: str, command: bytes, connect_timeout: float, timeout: float) -> list[bytes]:
    """Send one text-protocol command on a connection of its own; the lines before END.

    A connection of its own, because a metadump answer is longer than any
    pymemcache reply and must not be left half read on a pooled connection.
    """
    target = split_address(address)
    if isinstance(target, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        sock.connect(target)
    else:
        sock = socket.create_connection(target, timeout=connect_timeout)
    with sock:
        sock.settimeout(timeout)
        sock.sendall(command + b"\r\n")
        lines: list[bytes] = []
        rest = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise MemcachedError(f"memcached {address} closed the connection mid-answer")
            *complete, rest = (rest + chunk).split(b"\n")
            for raw in complete:
                line = raw.rstrip(b"\r")
                if line == b"END":
                    return lines
                if line.split(b" ", 1)[0] in (*_REFUSALS, _BUSY):
                    raise _RefusedError(line)
                lines.append(line)


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
        self._timeouts = (connect_timeout, timeout)
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

    def _ask(self, address: str, command: bytes) -> list[bytes]:
        connect_timeout, timeout = self._timeouts
        return _converse(address, command, connect_timeout, timeout)

    def _dump(self, address: str) -> list[bytes]:
        """Every item the LRU crawler finds on one server (memcached 1.4.31 and later)."""
        for _ in range(_BUSY_TRIES):
            try:
                return self._ask(address, b"lru_crawler metadump all")
            except _RefusedError as refused:
                if not refused.line.startswith(_BUSY):
                    raise NotImplementedError(
                        f"memcached {address} cannot list keys: it answered {str(refused)!r} "
                        "to 'lru_crawler metadump all' (memcached 1.4.31 and later can, "
                        "unless its LRU crawler is turned off)"
                    ) from None
            time.sleep(_BUSY_PAUSE)
        raise MemcachedError(f"memcached {address}: the LRU crawler stayed busy")

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """Keys of this namespace matching the glob *pattern*, from the LRU crawler.

        ``lru_crawler metadump all`` walks every item on each server, so this
        is for inspection, not for requests. Memcached never lists keys by
        any other means: a server without the crawler raises NotImplementedError.
        """
        names: list[str] = []
        for address in self.servers:
            for line in self._dump(address):
                field = line.split(b" ", 1)[0]
                if field.startswith(b"key="):
                    names.append(unquote(field[4:].decode("ascii", "replace")))
        return self._listed(names, pattern)

    def figures(self) -> dict[str, int]:
        """From each server's ``stats``, summed: items, bytes, hits, misses, evictions."""
        totals = dict.fromkeys(_STATS_FIGURES, 0)
        for address in self.servers:
            try:
                lines = self._ask(address, b"stats")
            except _RefusedError as refused:
                raise MemcachedError(f"memcached {address} refused stats: {refused}") from None
            for line in lines:
                parts = line.split(b" ")
                if len(parts) == 3 and parts[0] == b"STAT":
                    name = parts[1].decode("ascii", "replace")
                    if name in totals and parts[2].isdigit():
                        totals[name] += int(parts[2])
        return totals

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
