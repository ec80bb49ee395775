"""What the two memcached stores share: valid keys, server lists, the namespace.

Keys. Memcached takes keys of at most 250 bytes of printable ASCII without
spaces. A key that already fits is used as it is, so keys stay readable in
``memcached-tool`` dumps. Any other key becomes its safe characters (cut to
fit) followed by ``#`` and a hash of the whole key. A key that fits but
holds ``#`` is hashed too: that way a plain key can never equal the hashed
form of another key, so no caller can pick a key that reads someone else's
entry.

Namespace. Memcached cannot list keys, and ``flush_all`` would wipe every
other application on the server, so ``clear()`` never sends it. Each store
keeps a version number under ``<key_prefix>__ns__`` and puts it in every
real key (``<key_prefix><version>:<key>``). ``clear()`` increments it; the
old entries are never read again and age out under memcached's LRU.

The hit path is one round trip: a read asks for the version *and* for the
key under the version this instance saw last, in one ``get_many``. Only if
another instance cleared in between (the version came back different) does
it read a second time. Writes read the version first (two round trips), so
a write that follows another instance's ``clear()`` never lands in the old
namespace. A version created from scratch (first use, or the counter was
evicted or lived on a node that died) starts at the current time in
microseconds, so it does not reuse a version that older entries carry
(unless the wall clock is set back).

A version is what memcached ``incr`` counts: ASCII digits, from 1 to
2**64 - 1. Anything else under the key (junk someone wrote, a value past
that range, a 0 left by ``incr`` wrapping around) is replaced by a fresh
version at once, as a missing one is: entries under the unreadable version
are lost, which a cache can afford, and caching never stops. Processes that
find it missing race with ``add``; processes that find junk race with
``cas`` on the token they read it with. Either way one write wins, and the
others read the winner's version back.

Signing. The serializer is handed the finished memcached key (prefix,
version and any hashing included), so a signed entry copied to another key,
or from before a ``clear()`` to after it, reads as a miss.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import SplitResult, unquote

from ..errors import StashError
from ..serializers import COUNTER_MAX, COUNTER_MIN, PickleSerializer, Serializer, read_counter
from .base import BaseStore, StoreConfig

__all__ = [
    "DEFAULT_MAX_ITEM_SIZE",
    "MemcachedAuthError",
    "MemcachedError",
    "NamespacedMemcache",
    "memcached_key",
    "namespace_key",
    "parse_servers",
]

logger = logging.getLogger("flask_stash")

DEFAULT_PORT = 11211
MAX_KEY_LENGTH = 250
DEFAULT_MAX_ITEM_SIZE = 1024 * 1024
#: Memcached counts its item header (about 50 bytes) and the key against the
#: item size limit, so a value must leave this much room besides its key.
ITEM_OVERHEAD = 64
#: Memcached reads an expiry above 30 days as a Unix timestamp.
_THIRTY_DAYS = 30 * 24 * 3600
_CAS_ATTEMPTS = 64
#: Tries at writing a fresh namespace version before giving up on the node.
_RENEW_ATTEMPTS = 3
#: The largest namespace version: memcached counts in 64 unsigned bits.
_VERSION_MAX = 2**64 - 1
_VERSION_DIGITS = 20
_HASH_MARK = "#"
_DIGEST_BYTES = 20
_KEEP = MAX_KEY_LENGTH - len(_HASH_MARK) - 2 * _DIGEST_BYTES
# Printable ASCII except space and the hash mark.
_VALID_KEY = re.compile(r'[!-"$-~]*')
_UNSAFE = re.compile(r'[^!-"$-~]')


class MemcachedError(StashError):
    """A memcached store could not do what was asked; the Flask layer counts it as a failure."""


class MemcachedAuthError(MemcachedError):
    """The server refused the store's username and password."""


class IncrRefusedError(Exception):
    """Memcached's own increment could not apply; the caller falls back to check-and-set."""


def memcached_key(key: str) -> str:
    """Return *key* if memcached takes it as it is, else a readable hashed form."""
    if len(key) <= MAX_KEY_LENGTH and _VALID_KEY.fullmatch(key):
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES)
    return _UNSAFE.sub("_", key[:_KEEP]) + _HASH_MARK + digest.hexdigest()


def namespace_key(key_prefix: str) -> str:
    """Return the memcached key that holds the namespace version of *key_prefix*."""
    return memcached_key(f"{key_prefix}__ns__")


def _address(entry: str) -> str:
    """Normalise one server entry to ``host:port`` (or a Unix socket path)."""
    entry = entry.strip()
    if entry.startswith("unix:"):
        entry = entry[len("unix:") :]
    if entry.startswith("/"):
        return entry
    if entry.startswith("["):  # [IPv6] or [IPv6]:port
        host, _, port = entry[1:].partition("]")
        return f"[{host}]:{port.lstrip(':') or DEFAULT_PORT}"
    if entry.count(":") > 1:  # a bare IPv6 address has no room for a port
        return f"[{entry}]:{DEFAULT_PORT}"
    host, _, port = entry.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"memcached server {entry!r} has a port that is not a number")
    return f"{host or '127.0.0.1'}:{port or DEFAULT_PORT}"


def parse_servers(servers: str | Iterable[str]) -> list[str]:
    """Turn ``"h1:11211,h2"`` or ``["h1:11211", "h2"]`` into ``host:port`` strings."""
    entries = servers.split(",") if isinstance(servers, str) else list(servers)
    found = [_address(entry) for entry in entries if entry.strip()]
    if not found:
        raise ValueError("no memcached server given")
    return found


def split_address(address: str) -> tuple[str, int] | str:
    """Return ``(host, port)`` for a TCP address, or the path of a Unix socket."""
    if address.startswith("/"):
        return address
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def servers_from_url(url: SplitResult) -> list[str]:
    """Return the servers of ``memcached://[user:pass@]h1[:port],h2[:port]``."""
    hosts = url.netloc.rpartition("@")[2]
    return parse_servers(hosts or "127.0.0.1")


def credentials_from_url(url: SplitResult | None) -> tuple[str | None, str | None]:
    """Return the username and password a URL carries, decoded."""
    if url is None or "@" not in url.netloc:
        return None, None
    userinfo = url.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) or None


def config_kwargs(config: StoreConfig, names: Mapping[str, str]) -> dict[str, Any]:
    """Collect constructor keywords: the URL's servers, then settings, then CACHE_OPTIONS.

    *names* maps a setting (``memcached_timeout``) to its keyword (``timeout``).
    """
    kwargs: dict[str, Any] = {}
    if config.url is not None:
        kwargs["servers"] = servers_from_url(config.url)
    for setting, keyword in names.items():
        value = config.settings.get(setting)
        if value is not None:
            kwargs[keyword] = value
    kwargs.update(config.options)
    kwargs.setdefault("serializer", config.serializer)
    return kwargs


def _version(raw: bytes | None) -> int | None:
    """The namespace version *raw* holds, or None if it is missing or unusable."""
    if raw is None or len(raw) > _VERSION_DIGITS or not raw.isdigit():
        return None
    version = int(raw)
    return version if 0 < version <= _VERSION_MAX else None


def _fresh_version() -> int:
    """A first namespace version: the time in microseconds.

    A recreated counter (evicted, or moved to another node) must not reuse a
    version that entries still carry. Each clear adds 1, and a clear takes
    a round trip, far longer than a microsecond, so the clock stays ahead.
    """
    return time.time_ns() // 1000


class NamespacedMemcache(BaseStore):
    """The store logic both memcached clients share, on a few client primitives.

    Subclasses provide ``_fetch``, ``_store``, ``_add``, ``_remove``,
    ``_remove_many``, ``_incr``, ``_gets`` and ``_cas``, which work on
    finished memcached keys and bytes; everything about prefixes, versions,
    serializing, sizes and expiry lives here.
    """

    def __init__(
        self,
        default_timeout: int = 300,
        key_prefix: str = "",
        serializer: Serializer | None = None,
        max_item_size: int = DEFAULT_MAX_ITEM_SIZE,
    ) -> None:
        super().__init__(default_timeout, key_prefix)
        if max_item_size < 1:
            raise ValueError(f"max_item_size must be 1 or more, got {max_item_size}")
        self.serializer = serializer or PickleSerializer()
        self.max_item_size = max_item_size
        self._ns_key = namespace_key(key_prefix)
        #: The namespace version this instance saw last: the guess a read makes.
        self._version: int | None = None

    # -- client primitives ---------------------------------------------------

    def _fetch(self, names: list[str]) -> dict[str, bytes]:
        """Return ``{name: data}`` for the names that exist, in one round trip per node."""
        raise NotImplementedError

    def _store(self, items: dict[str, bytes], expire: int) -> list[str]:
        """Set every item; return the names that were not stored."""
        raise NotImplementedError

    def _add(self, name: str, data: bytes, expire: int) -> bool:
        raise NotImplementedError

    def _remove(self, name: str) -> bool:
        raise NotImplementedError

    def _remove_many(self, names: list[str]) -> None:
        raise NotImplementedError

    def _incr(self, name: str, delta: int) -> int | None:
        """Memcached ``incr``: the new value, or None if absent.

        Raises IncrRefusedError when incr cannot apply (the value is not an
        unsigned number, or a multi-node client swallowed the error).
        """
        raise NotImplementedError

    def _gets(self, name: str) -> tuple[bytes | None, Any]:
        """Return the data at *name* and its check-and-set token, or ``(None, None)``."""
        raise NotImplementedError

    def _cas(self, name: str, data: bytes, token: Any) -> bool:
        """Store *data* (no expiry) only if *name* still has *token*."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------

    def _name(self, key: str, version: int) -> str:
        return memcached_key(f"{self.key_prefix}{version}:{key}")

    def _expire(self, timeout: float | None) -> int:
        """Turn a timeout into memcached's exptime: whole seconds, rounded up."""
        seconds = self._timeout(timeout)
        if not seconds:
            return 0
        whole = math.ceil(seconds)
        return whole if whole <= _THIRTY_DAYS else int(time.time()) + whole

    def _fits(self, key: str, name: str, data: bytes) -> bool:
        if len(name) + len(data) + ITEM_OVERHEAD <= self.max_item_size:
            return True
        self._too_large(key, len(data))
        return False

    def _too_large(self, key: str, size: int) -> None:
        logger.warning(
            "%s: not caching %r: its value (%d bytes) is over the item size limit of %d "
            "bytes (CACHE_MEMCACHED_MAX_ITEM_SIZE, and memcached's -I)",
            self.name,
            key,
            size,
            self.max_item_size,
        )

    # -- the namespace version -----------------------------------------------

    def _adopt(self, raw: bytes | None) -> int:
        """Remember the version the server returned, replacing it if it is missing or unusable."""
        version = _version(raw)
        if version is None:
            version = self._renew_version(missing=raw is None)
        self._version = version
        return version

    def _current_version(self) -> int:
        return self._adopt(self._fetch([self._ns_key]).get(self._ns_key))

    def _renew_version(self, missing: bool) -> int:
        """Write a fresh version in place of a missing or unusable one, or adopt a rival's.

        *missing* says the key was absent when read, so the first try is an
        ``add`` without reading it again.
        """
        data: bytes | None = None
        token: Any = None
        for attempt in range(_RENEW_ATTEMPTS):
            if attempt or not missing:
                data, token = self._gets(self._ns_key)
                version = _version(data)
                if version is not None:
                    return version
            fresh = self._write_fresh_version(data, token)
            if fresh is not None:
                return fresh
        # Neither readable nor writable: the node holding it is failing. A
        # multi-node client keeps working on the version it saw last.
        if self._version is not None:
            return self._version
        raise MemcachedError(f"{self.describe()}: cannot read or create the namespace version")

    def _write_fresh_version(self, data: bytes | None, token: Any) -> int | None:
        """Put a fresh version where *data* (None: nothing) was read; None if that lost a race.

        ``add`` for a missing key and ``cas`` on the token of junk both fail
        once anyone else has written there, so of the instances that saw the
        same thing, exactly one replaces it.
        """
        fresh = _fresh_version()
        blob = b"%d" % fresh
        stored = (
            self._add(self._ns_key, blob, 0)
            if data is None
            else self._cas(self._ns_key, blob, token)
        )
        return fresh if stored else None

    def _read(self, keys: Sequence[str]) -> list[Any]:
        """Return the values at *keys*, None for each miss."""
        guess = self._version
        if guess is not None:
            names = [self._name(key, guess) for key in keys]
            found = self._fetch([self._ns_key, *names])
            version = self._adopt(found.get(self._ns_key))
            if version == guess:
                return self._load(names, found)
        else:
            version = self._current_version()
        names = [self._name(key, version) for key in keys]
        return self._load(names, self._fetch(names))

    def _load(self, names: list[str], found: dict[str, bytes]) -> list[Any]:
        loads = self.serializer.loads
        return [None if (data := found.get(name)) is None else loads(data, name) for name in names]

    def _listed(self, names: Iterable[str], pattern: str) -> Iterator[str]:
        """The keys, without prefix and version, that *names* (memcached keys) hold.

        Only names under the current namespace version are this store's live
        keys; a missing version means there are none. A key memcached could
        not take as it is was hashed when written and cannot be read back
        from its name: it is listed in that hashed form (its safe characters,
        ``#`` and the hash).
        """
        version = _version(self._fetch([self._ns_key]).get(self._ns_key))
        if version is None:
            return
        lead = f"{self.key_prefix}{version}:"
        hashed_lead = _UNSAFE.sub("_", lead)
        for name in names:
            if _HASH_MARK in name:
                if not name.startswith(hashed_lead):
                    continue
                key = name[len(hashed_lead) :]
            elif name.startswith(lead):
                key = name[len(lead) :]
            else:
                continue
            if fnmatchcase(key, pattern):
                yield key

    # -- the store contract --------------------------------------------------

    def get(self, key: str) -> Any:
        return self._read([key])[0]

    def get_many(self, *keys: str) -> list[Any]:
        if not keys:
            return []
        return self._read(keys)

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        expire = self._expire(timeout)
        name = self._name(key, self._current_version())
        data = self.serializer.dumps(value, name)
        if not self._fits(key, name, data):
            return False
        return not self._store({name: data}, expire)

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        expire = self._expire(timeout)
        name = self._name(key, self._current_version())
        data = self.serializer.dumps(value, name)
        if not self._fits(key, name, data):
            return False
        return self._add(name, data, expire)

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None = None) -> list[str]:
        expire = self._expire(timeout)
        if not mapping:
            return []
        version = self._current_version()
        # Serialize everything before storing anything, so a value that
        # cannot be stored stores nothing.
        encoded: dict[str, tuple[str, bytes]] = {}
        for key, value in mapping.items():
            name = self._name(key, version)
            encoded[name] = key, self.serializer.dumps(value, name)
        items: dict[str, bytes] = {}
        keys: dict[str, str] = {}
        for name, (key, data) in encoded.items():
            if self._fits(key, name, data):
                items[name] = data
                keys[name] = key
        if not items:
            return []
        failed = set(self._store(items, expire))
        return [key for name, key in keys.items() if name not in failed]

    def delete(self, key: str) -> bool:
        return self._remove(self._name(key, self._current_version()))

    def delete_many(self, *keys: str) -> list[str]:
        """Remove *keys*; return those that existed.

        Memcached's pipelined delete does not say which keys existed, so this
        reads them first: three round trips however many keys there are.
        """
        if not keys:
            return []
        version = self._current_version()
        names = {self._name(key, version): key for key in keys}
        found = self._fetch(list(names))
        if found:
            self._remove_many(list(found))
        return [key for name, key in names.items() if name in found]

    def clear(self) -> bool:
        """Move to a new namespace version; entries of the old one are never read again.

        Never ``flush_all``: other applications share the server. A version
        that is missing or unusable is replaced by a fresh one, which moves
        to a new namespace just as well.
        """
        for _ in range(_RENEW_ATTEMPTS):
            try:
                version = self._incr(self._ns_key, 1)
            except IncrRefusedError:  # not a number (or a failing node, on several)
                version = None
            if version is not None and 0 < version <= _VERSION_MAX:
                self._version = version
                return True
            data, token = self._gets(self._ns_key)
            if _version(data) is not None:
                continue  # someone else wrote one since: increment theirs
            fresh = self._write_fresh_version(data, token)
            if fresh is not None:
                self._version = fresh
                return True
        raise MemcachedError(
            f"{self.describe()}: cannot clear: the namespace version is unreachable"
        )

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add *delta* atomically; a missing key, or one that holds no counter, counts as 0.

        A positive delta uses memcached's ``incr``. Memcached's ``decr``
        stops at 0 and ``incr`` refuses negative numbers, but every other
        store counts below zero, so a negative delta (and any delta on a
        negative counter, or on a value that is not a counter) runs a
        check-and-set loop instead: read with ``gets``, write with ``cas``,
        retry if another client wrote between. That is atomic as well, but
        the counter it writes has no expiry.
        """
        name = self._name(key, self._current_version())
        if delta >= 0:
            try:
                result = self._bump(name, delta)
            except IncrRefusedError:
                pass
            else:
                # Memcached counts on to 2**64 - 1; past 2**63 - 1 the value
                # is no counter to get or to any other store, so it restarts.
                if result <= COUNTER_MAX:
                    return result
        return self._adjust(name, delta)

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Subtract *delta*; unlike memcached's ``decr``, the result may go below 0."""
        return self.inc(key, -delta)

    def _bump(self, name: str, delta: int) -> int:
        """Increment with memcached ``incr``; create the counter with ``add`` if absent.

        Two clients may both find it absent; the one whose ``add`` loses
        increments the winner's counter on the next pass.
        """
        for _ in range(3):
            result = self._incr(name, delta)
            if result is not None:
                return result
            if self._add(name, b"%d" % delta, 0):
                return delta
        raise MemcachedError(f"{self.describe()}: counter {name!r} keeps vanishing")

    def _adjust(self, name: str, delta: int) -> int:
        """Add *delta* by check-and-set; a non-counter, or an overflow, restarts at *delta*."""
        for attempt in range(_CAS_ATTEMPTS):
            if attempt:  # lost a race: back off a little, with jitter, before the next try
                time.sleep(random.uniform(0, min(0.005, 0.0002 * attempt)))
            data, token = self._gets(name)
            if data is None:
                if self._add(name, b"%d" % delta, 0):
                    return delta
                continue
            current = read_counter(data)
            result = delta if current is None else current + delta
            if not COUNTER_MIN <= result <= COUNTER_MAX:
                result = delta
            if self._cas(name, b"%d" % result, token):
                return result
        raise MemcachedError(f"{self.describe()}: counter {name!r} could not be updated")
