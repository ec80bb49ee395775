"""A store in a directory, shared by every worker process on one machine.

It sits on ``diskcache`` (SQLite with write-ahead logging, plus one file per
large value), which already locks correctly across processes, survives a
restart and evicts by size; this module only maps the store contract onto it.

- Keys get the store's prefix, and every entry is tagged with that prefix, so
  ``clear()`` evicts exactly this namespace: other apps sharing the directory
  keep their entries, and a prefix ``"a"`` never clears the keys of ``"ab"``.
- Plain ``int`` values of 64 bits (counters) are stored as SQLite integers
  so that ``inc`` can use diskcache's atomic ``incr``; everything else goes
  through the serializer and is stored as bytes, so a value read back is
  always a fresh copy and an unpicklable value fails with
  ``SerializationError``, as on a remote store.
  The serializer is handed the prefixed key, the one diskcache stores the
  entry under, so a signed entry copied to another key reads as a miss.
- Eviction is least-recently-stored: reads stay plain SELECTs that never take
  the write lock, where least-recently-used would turn every ``get`` into a
  write serialized across all workers.
- ``max_bytes`` bounds the whole directory (diskcache culls a few entries on
  each write once over it). ``threshold``, if given, bounds the entry count;
  checking it costs one small read per write. Both are properties of the
  directory: diskcache keeps them in the database, the last store opened wins.
- Expiry uses the wall clock, as diskcache does; it cannot take another clock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote

from ..serializers import COUNTER_MAX, COUNTER_MIN, PickleSerializer, Serializer, is_counter
from .base import BaseStore, StoreConfig

try:
    import diskcache
    from diskcache.core import MODE_PICKLE
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        "the disk store needs diskcache; install it with pip install 'flask-stash[disk]'"
    ) from err

__all__ = ["DiskStore"]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class _PlainDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's ``Disk``, except that it never unpickles what it reads.

    The store writes only str keys, ints and bytes, which diskcache keeps as
    they are. A row holding a pickle was written by someone else, and
    unpickling it could run their code: its value reads as missing, its key
    as the raw bytes (so ``threshold`` cannot evict it, but counts it).
    """

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_PICKLE:
            # diskcache reads an OSError from fetch as a missing entry.
            raise OSError("the disk store never unpickles a value")
        return super().fetch(mode, filename, value, read)

    def get(self, key: Any, raw: bool) -> Any:
        return super().get(key, raw) if raw else bytes(key)


def directory_from_url(url: SplitResult | None) -> str | None:
    """Return the directory a ``file:///path`` or ``disk:///path`` URL names."""
    if url is None:
        return None
    if url.netloc not in ("", "localhost") or not url.path:
        raise ValueError(
            f"CACHE_URL {url.geturl()!r} must name an absolute directory, "
            "like file:///var/cache/app"
        )
    return unquote(url.path)


#: Seconds an open waits for other processes opening the same directory.
OPEN_WAIT = 10.0


class DiskStore(BaseStore):
    """A size-bounded, cross-process cache in *directory*, built on diskcache."""

    name = "disk"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        default_timeout: int = 300,
        key_prefix: str = "",
        max_bytes: int = DEFAULT_MAX_BYTES,
        threshold: int | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(default_timeout, key_prefix)
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be 1 or more, got {max_bytes}")
        if threshold is not None and threshold < 1:
            raise ValueError(f"threshold must be 1 or more, got {threshold}")
        self.directory = Path(directory).expanduser().absolute()
        self.max_bytes = max_bytes
        self.threshold = threshold
        self.serializer = serializer or PickleSerializer()
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"cache directory {self.directory} exists but is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = self._open(max_bytes)
        except (OSError, sqlite3.Error) as err:
            raise ValueError(f"cache directory {self.directory} is not usable: {err}") from err

    def _open(self, max_bytes: int) -> diskcache.Cache:
        """Open the directory's database, waiting out other processes that open it too.

        Workers of one server start together, and SQLite refuses a second
        process setting up the same database at that moment ("database is
        locked") rather than waiting; the open is tried again for up to
        OPEN_WAIT seconds before that counts as a failure.
        """
        deadline = time.monotonic() + OPEN_WAIT
        pause = 0.01
        while True:
            try:
                return diskcache.Cache(
                    str(self.directory),
                    size_limit=max_bytes,
                    eviction_policy="least-recently-stored",
                    tag_index=True,
                    disk=_PlainDisk,
                    # Stop the write-ahead log from staying at its largest size.
                    sqlite_journal_size_limit=min(max_bytes, 4 * 1024 * 1024),
                )
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        setting, from_url = config.settings.get("dir"), directory_from_url(config.url)
        if setting and from_url and Path(setting) != Path(from_url):
            raise ValueError(f"CACHE_DIR {setting!r} and CACHE_URL {from_url!r} disagree")
        options: dict[str, Any] = {
            "directory": setting or from_url,
            "serializer": config.serializer,
        }
        if config.threshold is not None:
            options["threshold"] = config.threshold
        if config.settings.get("max_bytes") is not None:
            options["max_bytes"] = config.settings["max_bytes"]
        options.update(config.options)
        if not options["directory"]:
            raise ValueError("the disk store needs CACHE_DIR or CACHE_URL=file:///path/to/dir")
        return cls(default_timeout=config.default_timeout, key_prefix=config.key_prefix, **options)

    def _expire(self, timeout: int | None) -> float | None:
        return self._timeout(timeout) or None

    def _encode(self, name: str, value: Any) -> Any:
        # A counter fits an SQLite integer; a bool must come back as a bool,
        # and a larger integer would be pickled by diskcache, which reads
        # back as missing (see _PlainDisk), so both go through the serializer.
        return value if is_counter(value) else self.serializer.dumps(value, name)

    def _decode(self, name: str, stored: Any) -> Any:
        return self.serializer.loads(stored, name) if isinstance(stored, bytes) else stored

    def _bound_count(self) -> None:
        """Evict the oldest entries while the directory holds over ``threshold``."""
        if self.threshold is None or len(self._cache) <= self.threshold:
            return
        with self._cache.transact():  # one writer at a time, so no over-eviction
            self._cache.expire()
            excess = len(self._cache) - self.threshold
            for key in list(islice(self._cache, max(excess, 0))):
                self._cache.delete(key)

    def get(self, key: str) -> Any:
        name = self.key_prefix + key
        return self._decode(name, self._cache.get(name))

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        name = self.key_prefix + key
        expire, stored = self._expire(timeout), self._encode(name, value)
        if isinstance(stored, bytes) and len(stored) > self.max_bytes:
            return False
        self._cache.set(name, stored, expire=expire, tag=self.key_prefix)
        self._bound_count()
        return True

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        name = self.key_prefix + key
        expire, stored = self._expire(timeout), self._encode(name, value)
        if isinstance(stored, bytes) and len(stored) > self.max_bytes:
            return False
        added: bool = self._cache.add(name, stored, expire=expire, tag=self.key_prefix)
        if added:
            self._bound_count()
        return added

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(self.key_prefix + key))

    def clear(self) -> bool:
        self._cache.evict(self.key_prefix)
        return True

    def has(self, key: str) -> bool:
        return self.key_prefix + key in self._cache

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add *delta* in one transaction; a key that holds no counter restarts at *delta*.

        It counts from what :meth:`get` reads there. A native integer is
        incremented in place, keeping its expiry; anything else is replaced,
        with no expiry, like a new counter.
        """
        name = self.key_prefix + key
        with self._cache.transact():
            stored = self._cache.get(name)
            current = self._decode(name, stored)
            if is_counter(current) and COUNTER_MIN <= current + delta <= COUNTER_MAX:
                if type(stored) is int:
                    result: int = self._cache.incr(name, delta)
                else:  # digits someone else wrote as bytes
                    result = current + delta
                    self._cache.set(name, result, tag=self.key_prefix)
            else:
                # set, not incr: incr would create a missing key untagged,
                # out of clear()'s reach.
                result = delta
                self._cache.set(name, result, tag=self.key_prefix)
        self._bound_count()
        return result

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """Unexpired keys of this namespace (its tag) matching *pattern*, sorted.

        Read from diskcache's table directly: its own key iteration knows
        neither tags nor expiry, and a prefix "a" must not list the keys of "ab".
        """
        rows = self._cache._sql(
            "SELECT key FROM Cache WHERE tag = ? AND raw = 1"
            " AND (expire_time IS NULL OR expire_time > ?)",
            (self.key_prefix, time.time()),
        ).fetchall()
        cut = len(self.key_prefix)
        names = (str(name)[cut:] for (name,) in rows if isinstance(name, str))
        return iter(sorted(name for name in names if fnmatchcase(name, pattern)))

    def figures(self) -> dict[str, int]:
        """Unexpired entries of this namespace, rows of the whole directory, its bytes on disk."""
        ((entries,),) = self._cache._sql(
            "SELECT COUNT(*) FROM Cache WHERE tag = ? AND (expire_time IS NULL OR expire_time > ?)",
            (self.key_prefix, time.time()),
        ).fetchall()
        return {
            "entries": int(entries),
            "entries_in_directory": len(self._cache),
            "bytes_on_disk": int(self._cache.volume()),
            "max_bytes": self.max_bytes,
        }

    def close(self) -> None:
        self._cache.close()

    def describe(self) -> str:
        return f"disk ({self.directory}, at most {self.max_bytes} bytes)"
