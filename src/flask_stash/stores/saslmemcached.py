"""The memcached store with a login, on python-binary-memcached.

SASL needs memcached's binary protocol, which pymemcache does not speak.
Keys, sizes, the namespace version and counters work as in
:mod:`flask_stash.stores.memcached` (the logic lives in ``_memcached_common``).
Several servers are spread by consistent hashing (the library's
``DistributedClient``, not its default client, which would copy every write
to every server and so could not make ``add`` atomic). There is no failover:
a node that fails raises for its keys, like a single node.

The library reports a lost connection as a miss (``None``/``False``); here
it raises :class:`MemcachedError` instead, so the Flask layer sees a failing
store rather than an empty one. ``timeout`` is the socket timeout, applied
to the connection and to every read; the library has no separate connect
timeout.

A refused login is logged once, as an error naming the server and the user.
Every call then raises :class:`MemcachedAuthError` at once, without asking
the server, for ``auth_retry`` seconds; then the next call tries again. A
wrong password is a deployment error: one clear line in the log beats one
per request.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from ..serializers import Serializer
from ._memcached_common import (
    DEFAULT_MAX_ITEM_SIZE,
    IncrRefusedError,
    MemcachedAuthError,
    MemcachedError,
    NamespacedMemcache,
    config_kwargs,
    credentials_from_url,
    logger,
    parse_servers,
)
from .base import BaseStore, StoreConfig

try:
    from bmemcached import DistributedClient
    from bmemcached.exceptions import MemcachedException
    from bmemcached.protocol import Protocol
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "the saslmemcached store needs python-binary-memcached: "
        "pip install 'flask-stash[memcached]'"
    ) from err

__all__ = ["MemcachedAuthError", "MemcachedError", "SASLMemcachedStore"]

SETTINGS = {
    "memcached_servers": "servers",
    "memcached_username": "username",
    "memcached_password": "password",
    "memcached_timeout": "timeout",
    "memcached_max_item_size": "max_item_size",
}

# Binary protocol status codes.
_NOT_FOUND = 0x01
_TOO_LARGE = 0x03
_NOT_NUMERIC = 0x06
#: An exptime telling ``incr`` to fail on a missing key rather than create it.
_NO_CREATE = 0xFFFFFFFF


class _ServerState:
    """What every thread's connection to one server shares: the login state and the sockets.

    The library keeps one connection per thread. Its sockets are listed
    here so that ``close()`` reaches all of them, and a thread's socket is
    closed when that thread is gone instead of being left to the garbage
    collector.
    """

    def __init__(self, server: str, username: str | None, retry_after: float) -> None:
        self.server = server
        self.username = username
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._refused_at: float | None = None
        self._reason = ""
        #: Each open socket, with the finalizer that closes it when its thread is gone.
        self._sockets: dict[socket.socket, weakref.finalize[Any, Any]] = {}

    # -- the login ---------------------------------------------------------------

    def _error(self) -> MemcachedAuthError:
        return MemcachedAuthError(
            f"memcached at {self.server} refused the login of user {self.username!r} "
            f"({self._reason}); check CACHE_MEMCACHED_USERNAME and CACHE_MEMCACHED_PASSWORD"
        )

    def check(self) -> None:
        """Raise at once while a refusal is recent, rather than ask the server again."""
        refused_at = self._refused_at
        if refused_at is not None and time.monotonic() - refused_at < self.retry_after:
            raise self._error()

    def refused(self, reason: object) -> MemcachedAuthError:
        with self._lock:
            first = self._refused_at is None
            self._refused_at = time.monotonic()
            self._reason = str(reason)
        error = self._error()
        if first:
            logger.error("%s", error)
        return error

    def accepted(self) -> None:
        with self._lock:
            was_refused = self._refused_at is not None
            self._refused_at = None
        if was_refused:
            logger.info("memcached at %s accepted user %r again", self.server, self.username)

    # -- the sockets -------------------------------------------------------------

    def opened(self, sock: socket.socket) -> None:
        finalizer = weakref.finalize(threading.current_thread(), self.release, sock)
        with self._lock:
            self._sockets[sock] = finalizer

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            finalizer = self._sockets.pop(sock, None)
        if finalizer is not None:
            finalizer.detach()
        sock.close()

    def close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, {}
        for sock, finalizer in sockets.items():
            finalizer.detach()
            sock.close()


class _Protocol(Protocol):  # type: ignore[misc]
    """One server's connection (one per thread), raising where the library hides errors."""

    connection: Any

    def __init__(self, server: str, state: _ServerState, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._state = state

    def _open_connection(self) -> None:
        before = self.connection
        if before is None:
            self._state.check()
        try:
            super()._open_connection()
        finally:
            if self.connection is not None and self.connection is not before:
                self._state.opened(self.connection)

    def _send_authentication(self) -> bool:
        try:
            accepted: bool = super()._send_authentication()
        except MemcachedException as err:
            self.disconnect()
            raise self._state.refused(err) from err
        if accepted:
            self._state.accepted()
        return accepted

    def _connection_error(self, exception: Exception) -> None:
        self.disconnect()
        reason = str(exception) or type(exception).__name__
        raise MemcachedError(f"memcached at {self.server}: {reason}") from exception

    def disconnect(self) -> None:
        if self.connection is not None:
            self._state.release(self.connection)
        self.connection = None


class _Client(DistributedClient):  # type: ignore[misc]
    """``DistributedClient`` building :class:`_Protocol` connections, bytes in and out."""

    def __init__(self, servers: list[str], auth_retry: float, **kwargs: Any) -> None:
        self._auth_retry = auth_retry  # read by set_servers, which the base calls
        self.states: list[_ServerState] = []
        super().__init__(servers, raw_data=True, **kwargs)

    def set_servers(self, servers: list[str]) -> None:
        self.states = [_ServerState(server, self.username, self._auth_retry) for server in servers]
        self._servers = [
            _Protocol(
                state.server,
                state,
                username=self.username,
                password=self.password,
                socket_timeout=self.socket_timeout,
                pickle_protocol=self.pickle_protocol,
                pickler=self.pickler,
                unpickler=self.unpickler,
                raw_data=True,
            )
            for state in self.states
        ]


class SASLMemcachedStore(NamespacedMemcache):
    """Memcached with a SASL PLAIN login; see the module docstring."""

    name = "saslmemcached"

    def __init__(
        self,
        servers: str | Iterable[str] = ("127.0.0.1:11211",),
        default_timeout: int = 300,
        key_prefix: str = "",
        *,
        username: str | None = None,
        password: str | None = None,
        serializer: Serializer | None = None,
        timeout: float = 0.5,
        max_item_size: int = DEFAULT_MAX_ITEM_SIZE,
        auth_retry: float = 30.0,
    ) -> None:
        super().__init__(default_timeout, key_prefix, serializer, max_item_size)
        if timeout <= 0:
            raise ValueError("timeout must be more than 0 seconds")
        self.servers = parse_servers(servers)
        self.username = username
        self._client = _Client(
            self.servers,
            auth_retry,
            username=username,
            password=password,
            socket_timeout=timeout,
        )

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        """Credentials from the settings, else from CACHE_URL's ``user:pass@``."""
        kwargs = config_kwargs(config, SETTINGS)
        username, password = credentials_from_url(config.url)
        if username is not None:
            kwargs.setdefault("username", username)
        if password is not None:
            kwargs.setdefault("password", password)
        return cls(default_timeout=config.default_timeout, key_prefix=config.key_prefix, **kwargs)

    def describe(self) -> str:
        user = f" as {self.username!r}" if self.username else ""
        return f"saslmemcached {', '.join(self.servers)}{user}"

    def close(self) -> None:
        for state in self._client.states:
            state.close_all()

    # -- primitives ----------------------------------------------------------

    def _fetch(self, names: list[str]) -> dict[str, bytes]:
        return dict(self._client.get_multi(names))

    def _store(self, items: dict[str, bytes], expire: int) -> list[str]:
        if len(items) > 1:  # pipelined, but it does not say why a key failed
            return list(self._client.set_multi(items, time=expire))
        [(name, data)] = items.items()
        try:
            stored = self._client.set(name, data, time=expire)
        except MemcachedException as err:
            if err.code != _TOO_LARGE:
                raise
            self._too_large(name, len(data))
            stored = False
        return [] if stored else [name]

    def _add(self, name: str, data: bytes, expire: int) -> bool:
        try:
            return bool(self._client.add(name, data, time=expire))
        except MemcachedException as err:
            if err.code != _TOO_LARGE:
                raise
            self._too_large(name, len(data))
            return False

    def _remove(self, name: str) -> bool:
        # The library's delete answers True for a missing key too.
        existed = name in self._fetch([name])
        self._client.delete(name)
        return existed

    def _remove_many(self, names: list[str]) -> None:
        self._client.delete_multi(names)

    def _incr(self, name: str, delta: int) -> int | None:
        try:
            return int(self._client.incr(name, delta, default=0, time=_NO_CREATE))
        except MemcachedException as err:
            if err.code == _NOT_FOUND:
                return None
            if err.code == _NOT_NUMERIC:
                raise IncrRefusedError(str(err)) from err
            raise

    def _bump(self, name: str, delta: int) -> int:
        """Increment, or create at *delta*: one atomic binary-protocol command."""
        try:
            return int(self._client.incr(name, delta, default=delta, time=0))
        except MemcachedException as err:
            if err.code == _NOT_NUMERIC:
                raise IncrRefusedError(str(err)) from err
            raise

    def _gets(self, name: str) -> tuple[bytes | None, Any]:
        data, token = self._client.gets(name)
        return data, token

    def _cas(self, name: str, data: bytes, token: Any) -> bool:
        return bool(self._client.cas(name, data, token, time=0))
