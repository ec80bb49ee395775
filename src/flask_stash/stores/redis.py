"""The Redis store: one server, a primary found through Sentinel, or a Cluster.

Errors are not caught here. The Flask layer above logs them, counts them,
serves the request uncached and runs a circuit breaker; a store that hid a
failure would keep that breaker from ever opening.

The default timeouts are short (0.25 s to connect, 0.5 s per read) because
a cache is worth having only when it is faster than the work it saves; on a
LAN a healthy server answers in well under a millisecond. Only a connection
error is retried, once and at once: that is what a pooled connection left
over from a restarted server needs. A timeout is not retried, so a call to a
hung server fails after about one timeout instead of a multiple of it.

redis-py uses its hiredis parser whenever the ``hiredis`` package is
installed. This store never passes ``parser_class``, so that choice stands.

Which of the three modes is used is decided from, in order: the ``mode``
argument (``CACHE_REDIS_MODE``: ``standalone``, ``sentinel`` or
``cluster``), the URL scheme (``redis+sentinel://``, ``redis+cluster://``),
then whether Sentinel addresses or Cluster nodes were given. The mode has to
be worked out this way because the store never learns which ``CACHE_TYPE``
alias (``RedisSentinelCache``, ``RedisClusterCache``...) named it.

Client-side caching (``CACHE_REDIS_CLIENT_CACHE``) keeps a copy of hot
entries in the process and lets the server say when one changed; see
:class:`InvalidationWatcher` for why this store does it itself rather than
through redis-py's own client cache.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.retry import Retry
    from redis.sentinel import Sentinel
except ImportError as err:
    raise ImportError(
        f"the Redis store needs the redis package ({err}); "
        "install it with pip install 'flask-stash[redis]'"
    ) from err

from ..serializers import PickleSerializer, Serializer
from .base import BaseStore, StoreConfig

__all__ = ["InvalidationWatcher", "RedisStore"]

logger = logging.getLogger("flask_stash")

MODES = ("standalone", "sentinel", "cluster")
_URL_MODES = {
    "redis": "standalone",
    "rediss": "standalone",
    "unix": "standalone",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
}
_DEFAULT_PORTS = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}
_SCAN_BATCH = 500
#: What ``figures`` reads from INFO.
_INFO_FIGURES = ("used_memory", "keyspace_hits", "keyspace_misses", "evicted_keys")

#: Increment, or, if the key holds no counter (another type, bytes that are
#: not a 64-bit integer, or a sum past 64 bits), start it again at the delta.
#: One script, so that of two clients finding the same junk only one
#: replaces it, and the other's increment counts on top.
_RESTART_COUNTER = """
local result = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(result) == 'table' and result.err then
    redis.call('SET', KEYS[1], ARGV[1])
    return ARGV[1]
end
return result
"""
#: What INCRBY answers for a key that holds no counter, or that would overflow.
_NOT_A_COUNTER = ("not an integer", "would overflow", "WRONGTYPE")

Address = tuple[str, int]


def parse_addresses(value: str | Iterable[Any], default_port: int) -> tuple[Address, ...]:
    """Read ``"h1:p1,h2:p2"``, a list of ``"host:port"``, or ``(host, port)`` pairs.

    Several config styles are in use for the same thing (Flask-Caching takes
    a comma-separated string for Cluster and pairs for Sentinel), so all of
    them are accepted. An IPv6 address goes in brackets: ``[::1]:6379``.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    found: list[Address] = []
    for item in items:
        if isinstance(item, str):
            text = item.strip()
            if not text:
                continue
            if text.startswith("["):
                host, _, rest = text[1:].partition("]")
                port_text = rest.removeprefix(":")
            elif text.count(":") == 1:
                host, _, port_text = text.partition(":")
            else:
                host, port_text = text, ""
            try:
                port = int(port_text) if port_text else default_port
            except ValueError:
                raise ValueError(f"{item!r} is not host:port") from None
            found.append((host, port))
        else:
            host, port = item
            found.append((str(host), int(port)))
    if not found:
        raise ValueError(f"no host:port address in {value!r}")
    return tuple(found)


def _glob_escape(text: str) -> str:
    """Escape *text* for a SCAN MATCH pattern, so a prefix is taken literally."""
    for char in "\\*?[]":
        text = text.replace(char, "\\" + char)
    return text


def _flag(value: Any) -> bool:
    """Read a boolean setting that may come from an environment variable."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@dataclass(frozen=True)
class _Target:
    """Where the data lives, worked out from the URL and the arguments."""

    mode: str
    addresses: tuple[Address, ...]
    db: int
    username: str | None
    password: str | None
    master: str
    tls: bool = False
    url: str | None = None  # a standalone URL, handed to redis-py whole

    def describe(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.addresses)
        if self.mode == "sentinel":
            return f"redis sentinel master {self.master!r} via {hosts}, db {self.db}"
        if self.mode == "cluster":
            return f"redis cluster via {hosts}"
        if self.url is not None:
            parts = urlsplit(self.url)
            address = parts.netloc.rpartition("@")[2]
            return f"{parts.scheme}://{address}{parts.path}"
        return f"{'rediss' if self.tls else 'redis'}://{hosts}/{self.db}"


def _target_from_url(parts: SplitResult, mode: str | None, fallback: _Target) -> _Target:
    """Read a Redis URL; what it leaves out is taken from *fallback*."""
    url_mode = _URL_MODES.get(parts.scheme.lower())
    if url_mode is None:
        schemes = ", ".join(f"{scheme}://" for scheme in _URL_MODES)
        raise ValueError(f"the Redis URL must start with one of {schemes}")
    wanted = mode or url_mode
    # A plain redis:// URL may name one node of a cluster; nothing else mixes.
    if wanted != url_mode and not (wanted == "cluster" and parts.scheme in ("redis", "rediss")):
        raise ValueError(f"mode {wanted!r} does not fit a {parts.scheme}:// URL")
    if url_mode == "standalone" and wanted == "standalone":
        return _Target(
            "standalone",
            (),
            fallback.db,
            fallback.username,
            fallback.password,
            fallback.master,
            # Not geturl(): it drops the "//" of unix:///path, which redis-py needs.
            url=f"{parts.scheme}://{parts.netloc}{parts.path}"
            + (f"?{parts.query}" if parts.query else ""),
        )
    if parts.query:
        raise ValueError("put Sentinel and Cluster options in CACHE_OPTIONS, not the URL query")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    master, db = fallback.master, fallback.db
    if wanted == "sentinel":
        if len(segments) > 2:
            raise ValueError("a Sentinel URL path is /master_name/db")
        master = segments[0] if segments else master
        db = int(segments[1]) if len(segments) > 1 else db
    elif segments:
        if len(segments) > 1:
            raise ValueError("a Cluster URL path can only be /0")
        db = int(segments[0])
    return _Target(
        wanted,
        parse_addresses(hosts, _DEFAULT_PORTS[wanted]),
        db,
        unquote(username) if username else fallback.username,
        unquote(password) if password else fallback.password,
        master,
        tls=parts.scheme == "rediss",
    )


def _text(value: Any) -> str:
    """Read a reply field that is bytes, or str under ``decode_responses``."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class InvalidationWatcher:
    """A connection of its own on which the server reports changed keys.

    It turns on client tracking in broadcast mode for one key prefix
    (``CLIENT TRACKING ON BCAST PREFIX <prefix> REDIRECT <its own id>``) and
    subscribes to ``__redis__:invalidate``; from then on the server sends it
    the name of every key under the prefix that is written, deleted, expired
    or evicted, by any client, and ``None`` for a FLUSHDB. A thread reads the
    messages and hands the keys, without the prefix, to ``on_change``.

    Why not redis-py's own client-side cache (``protocol=3`` with
    ``cache_config``): redis-py refuses to use it with a server older than
    Redis 7.4, or one that does not call itself "redis", and many servers in
    use are older (Debian 12 ships 7.0). Broadcast tracking over RESP2 works
    with Redis 6.0 and later. Broadcast mode is needed because reads go
    through pooled connections: tracking what each connection read would
    need tracking turned on for every one of them.

    ``on_change(None)`` also means "anything may have changed": it is sent
    when the watcher starts hearing (so copies taken before are dropped) and
    when its connection is lost (messages may have been missed). ``live`` is
    true only in between. The connection is pinged after ``health_interval``
    idle seconds, so a link that died silently is noticed within about
    ``health_interval`` plus the read timeout; it is then opened again, with
    a growing pause between tries.

    A forked child inherits this object but not its thread; ``live`` notices
    the new process id and starts a thread for the child.
    """

    CHANNEL = "__redis__:invalidate"
    _POLL = 0.05  # seconds between checks for close(); also bounds its wait
    _RETRY_FIRST = 0.1
    _RETRY_MAX = 5.0

    def __init__(
        self,
        connect: Callable[[], Any],
        prefix: str,
        on_change: Callable[[list[str] | None], None],
        *,
        read_timeout: float = 1.0,
        health_interval: float = 1.0,
    ) -> None:
        self._connect = connect
        self.prefix = prefix
        self._on_change = on_change
        self._read_timeout = read_timeout
        self._health_interval = health_interval
        self._start_lock = threading.Lock()
        self._pid = -1
        self._live = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid() or self._stop.is_set():
                return
            self._pid = os.getpid()
            # Fresh events: a forked child must not trust its parent's state.
            self._live = threading.Event()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="flask-stash-redis-invalidations", daemon=True
            )
            self._thread.start()

    @property
    def live(self) -> bool:
        """Whether every change under the prefix is being heard right now."""
        if self._pid != os.getpid():
            self._start()
            return False
        return self._live.is_set()

    def wait_live(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for the watcher to be hearing changes."""
        self.live  # noqa: B018 - starts the thread in a forked child
        return self._live.wait(timeout)

    def close(self) -> None:
        """Stop the thread and close its connection."""
        with self._start_lock:
            self._stop.set()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._read_timeout + 2 * self._POLL)

    def _notify(self, keys: list[str] | None) -> None:
        try:
            self._on_change(keys)
        except Exception:  # a broken callback must not end the watcher
            logger.exception("Redis invalidation handler failed")

    def _run(self) -> None:
        delay = self._RETRY_FIRST
        was_live = False
        while not self._stop.is_set():
            connection: Any = None
            try:
                connection = self._connect()
                self._subscribe(connection)
                self._notify(None)  # copies taken before now were not watched
                self._live.set()
                if not was_live:
                    logger.info("hearing Redis invalidations for prefix %r", self.prefix)
                was_live, delay = True, self._RETRY_FIRST
                self._listen(connection)
            except Exception as err:
                if was_live or delay == self._RETRY_FIRST:
                    logger.warning(
                        "Redis invalidations for prefix %r are not heard (%s); retrying",
                        self.prefix,
                        err,
                    )
                was_live = False
            finally:
                if self._live.is_set():
                    self._live.clear()
                    self._notify(None)  # messages may have been missed
                if connection is not None:
                    connection.disconnect()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._RETRY_MAX)

    def _subscribe(self, connection: Any) -> None:
        """Turn on broadcast tracking, sent to this same connection's subscription."""
        timeout = self._read_timeout
        connection.send_command("CLIENT", "ID")
        client_id = connection.read_response(timeout=timeout)
        tracking: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
        if self.prefix:
            tracking += ["PREFIX", self.prefix]
        connection.send_command(*tracking)
        connection.read_response(timeout=timeout)
        connection.send_command("SUBSCRIBE", self.CHANNEL)
        connection.read_response(timeout=timeout)

    def _listen(self, connection: Any) -> None:
        idle_since = time.monotonic()
        while not self._stop.is_set():
            if connection.can_read(timeout=self._POLL):
                self._handle(connection.read_response(timeout=self._read_timeout))
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= self._health_interval:
                # A dead link fails the PING, or times out the read below.
                connection.send_command("PING")
                while not self._handle(connection.read_response(timeout=self._read_timeout)):
                    pass
                idle_since = time.monotonic()

    def _handle(self, reply: Any) -> bool:
        """Act on one message; return whether it was the answer to a PING."""
        if not isinstance(reply, list) or not reply:
            return False
        kind = _text(reply[0])
        if kind == "pong":
            return True
        if kind == "message" and len(reply) == 3 and _text(reply[1]) == self.CHANNEL:
            names = reply[2]
            if names is None:
                self._notify(None)
            else:
                cut = len(self.prefix)
                self._notify([_text(name)[cut:] for name in names])
        return False


class RedisStore(BaseStore):
    """A store on Redis, through redis-py and its connection pool.

    ``url`` is a ``redis://``, ``rediss://`` (TLS), ``unix://``,
    ``redis+sentinel://[user:pass@]host:port,host:port/master/db`` or
    ``redis+cluster://[user:pass@]host:port,host:port`` URL; without one,
    ``host``/``port``/``db`` name a single server, ``sentinels`` plus
    ``sentinel_master`` a Sentinel-managed primary, and ``cluster_nodes`` the
    startup nodes of a Cluster. Keyword arguments this class does not know
    go to the redis-py client (``ssl_ca_certs``, ``max_connections``,
    ``retry``...).

    ``clear()`` deletes the keys that start with ``key_prefix`` and nothing
    else. With an empty prefix that would be every key, so it then runs
    FLUSHDB only if ``allow_flush`` is true and raises ValueError otherwise:
    a cache sharing its database with other data must not wipe it by
    accident.

    ``inc`` and ``dec`` use INCRBY/DECRBY, so they expect the serializer to
    write integers as ASCII digits, as the default one does.

    ``CACHE_REDIS_CLIENT_CACHE = True`` (or ``client_cache`` in
    ``CACHE_OPTIONS``) makes :meth:`from_config` return this store behind a
    :class:`~flask_stash.stores.near.NearStore` that the server keeps
    current (see :meth:`watch_invalidations`): hot entries are read from the
    process, and a write by any client drops the copy within milliseconds,
    so no staleness bound (ttl) is needed. ``CACHE_REDIS_CLIENT_CACHE_MAX_SIZE``
    (``client_cache_max_size``, default 1000) bounds the number of copies.
    It works with a standalone server only; Sentinel and Cluster are refused.
    """

    name = "redis"

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        *,
        default_timeout: int = 300,
        key_prefix: str = "",
        username: str | None = None,
        url: str | SplitResult | None = None,
        mode: str | None = None,
        sentinels: str | Iterable[Any] | None = None,
        sentinel_master: str = "mymaster",
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        cluster_nodes: str | Iterable[Any] | None = None,
        socket_timeout: float = 0.5,
        socket_connect_timeout: float = 0.25,
        allow_flush: bool = False,
        serializer: Serializer | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__(default_timeout, key_prefix)
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        target = _Target("standalone", ((host, port),), db, username, password, sentinel_master)
        if url is not None:
            target = _target_from_url(
                url if isinstance(url, SplitResult) else urlsplit(url), mode, target
            )
        elif mode == "sentinel" or (mode is None and sentinels):
            if not sentinels:
                raise ValueError(
                    "Sentinel mode needs the Sentinel addresses (CACHE_REDIS_SENTINELS)"
                )
            addresses = parse_addresses(sentinels, _DEFAULT_PORTS["sentinel"])
            target = _Target("sentinel", addresses, db, username, password, sentinel_master)
        elif mode == "cluster" or (mode is None and cluster_nodes):
            addresses = parse_addresses(cluster_nodes or [(host, port)], _DEFAULT_PORTS["cluster"])
            target = _Target("cluster", addresses, db, username, password, sentinel_master)
        if target.mode == "cluster" and target.db != 0:
            raise ValueError(f"Redis Cluster has only database 0, not {target.db}")
        self.target = target
        self.allow_flush = allow_flush
        self.serializer = serializer or PickleSerializer()
        self.sentinel_auth = {"username": sentinel_username, "password": sentinel_password}
        self.client_options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **client_options,
        }
        self._sentinel: Sentinel | None = None
        self._lock = threading.Lock()
        # A Cluster client reads the topology as it is built; waiting for the
        # first call keeps a cluster that is down at startup from failing init_app.
        self._client: redis.Redis | RedisCluster | None = (
            None if target.mode == "cluster" else self._connect()
        )

    @classmethod
    def from_config(cls, config: StoreConfig) -> BaseStore:
        """Build the store from ``CACHE_URL`` or ``CACHE_REDIS_*``, then ``CACHE_OPTIONS``.

        Settings read: ``redis_url``, ``redis_host``, ``redis_port``,
        ``redis_db``, ``redis_username``, ``redis_password``, ``redis_mode``,
        ``redis_sentinels``, ``redis_sentinel_master``,
        ``redis_sentinel_username``, ``redis_sentinel_password``,
        ``redis_cluster``, ``redis_socket_timeout``, ``redis_connect_timeout``,
        ``redis_allow_flush``, ``redis_client_cache`` and
        ``redis_client_cache_max_size``. ``CACHE_URL`` wins over ``redis_url``.
        """
        settings = config.settings
        readers: dict[str, tuple[str, Any]] = {
            "redis_url": ("url", str),
            "redis_host": ("host", str),
            "redis_port": ("port", int),
            "redis_db": ("db", int),
            "redis_username": ("username", str),
            "redis_password": ("password", str),
            "redis_mode": ("mode", lambda value: str(value).strip().lower()),
            "redis_sentinels": ("sentinels", lambda value: value),
            "redis_sentinel_master": ("sentinel_master", str),
            "redis_sentinel_username": ("sentinel_username", str),
            "redis_sentinel_password": ("sentinel_password", str),
            "redis_cluster": ("cluster_nodes", lambda value: value),
            "redis_socket_timeout": ("socket_timeout", float),
            "redis_connect_timeout": ("socket_connect_timeout", float),
            "redis_allow_flush": ("allow_flush", _flag),
        }
        kwargs: dict[str, Any] = {}
        for setting, (argument, read) in readers.items():
            if settings.get(setting) is not None:
                kwargs[argument] = read(settings[setting])
        if config.url is not None:
            kwargs["url"] = config.url
        kwargs["serializer"] = config.serializer
        kwargs.update(config.options)
        # Not constructor arguments: they choose what wraps the store.
        client_cache = _flag(kwargs.pop("client_cache", settings.get("redis_client_cache")))
        max_size = int(
            kwargs.pop("client_cache_max_size", None)
            or settings.get("redis_client_cache_max_size")
            or 1000
        )
        store = cls(default_timeout=config.default_timeout, key_prefix=config.key_prefix, **kwargs)
        if not client_cache:
            return store
        from .near import NearStore

        try:
            return NearStore(store, None, max_entries=max_size, track=True)
        except BaseException:
            store.close()
            raise

    # -- the client ------------------------------------------------------------

    def _retry(self) -> Retry:
        return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))

    def _connect(self) -> redis.Redis | RedisCluster:
        """Build the redis-py client for the target; only Cluster connects here."""
        target = self.target
        options = {"retry": self._retry(), **self.client_options}
        auth: dict[str, Any] = {"username": target.username, "password": target.password}
        if target.mode == "cluster":
            nodes = [
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in target.addresses
            ]
            if target.tls:
                options.setdefault("ssl", True)
            return RedisCluster(startup_nodes=nodes, **auth, **options)
        if target.mode == "sentinel":
            sentinel_options = {
                key: options[key] for key in ("socket_timeout", "socket_connect_timeout")
            }
            sentinel_options["retry"] = self._retry()
            sentinel_options.update((k, v) for k, v in self.sentinel_auth.items() if v is not None)
            # redis.sentinel has no annotations, hence the ignores.
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.addresses), sentinel_kwargs=sentinel_options, **options
            )
            self._sentinel = sentinel
            client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
                target.master, db=target.db, **auth
            )
            return client
        if target.url is not None:
            defaults: dict[str, Any] = {k: v for k, v in auth.items() if v is not None}
            return redis.Redis.from_url(target.url, db=target.db, **defaults, **options)
        host, port = target.addresses[0]
        return redis.Redis(host=host, port=port, db=target.db, **auth, **options)

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client, built on first use in Cluster mode."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
        return client

    @property
    def is_cluster(self) -> bool:
        return self.target.mode == "cluster"

    def _primaries(self) -> list[redis.Redis]:
        """One client per primary: every server that holds a share of the keys."""
        client = self.client
        if isinstance(client, RedisCluster):
            nodes = client.get_primaries()  # type: ignore[no-untyped-call]
            return [client.get_redis_connection(node) for node in nodes]
        return [client]

    def watch_invalidations(
        self, on_change: Callable[[list[str] | None], None]
    ) -> InvalidationWatcher:
        """Start hearing which keys under this store's prefix change; see InvalidationWatcher.

        *on_change* gets the changed keys without the prefix, or None when any
        key may have changed. The caller closes the watcher; closing the
        store does not. Only a standalone server can be watched: Sentinel
        would need the watcher to follow a failover and Cluster one watcher
        per primary, which this store does not do.
        """
        if self.target.mode != "standalone":
            raise ValueError(
                "Redis client-side caching (server invalidation) is supported for a "
                "standalone server only (redis://, rediss://, unix:// or host/port), "
                f"not in {self.target.mode} mode"
            )
        client = self.client
        if not isinstance(client, redis.Redis):  # pragma: no cover - mode checked above
            raise TypeError(f"expected a standalone client, got {type(client).__qualname__}")
        pool = client.connection_pool

        def connect() -> Any:
            # RESP2 whatever the pool speaks: invalidations then arrive as
            # plain pub/sub messages, readable with any parser.
            return pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})

        read_timeout = self.client_options.get("socket_timeout") or 1.0
        return InvalidationWatcher(
            connect, self.key_prefix, on_change, read_timeout=float(read_timeout)
        )

    # -- helpers ---------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.key_prefix + key

    def _expiry(self, timeout: int | None) -> tuple[int | None, int | None]:
        """Return SET's ``(ex, px)``: whole seconds as EX, fractions as PX."""
        seconds = self._timeout(timeout)
        if not seconds:
            return None, None
        if float(seconds).is_integer():
            return int(seconds), None
        return None, max(1, round(seconds * 1000))

    # The serializer is handed the Redis key (prefix included), so a signed
    # entry copied to another key reads as a miss.

    def _load(self, data: Any, name: str) -> Any:
        return None if data is None else self.serializer.loads(data, name)

    # -- the store contract ----------------------------------------------------

    def get(self, key: str) -> Any:
        name = self._name(key)
        try:
            data = self.client.get(name)
        except ResponseError as err:
            # A list or hash that someone else put here: a miss, as MGET
            # reports it, and the next set replaces it.
            if not str(err).startswith("WRONGTYPE"):
                raise
            return None
        return self._load(data, name)

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        ex, px = self._expiry(timeout)
        name = self._name(key)
        blob = self.serializer.dumps(value, name)
        return bool(self.client.set(name, blob, ex=ex, px=px))

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        ex, px = self._expiry(timeout)
        name = self._name(key)
        blob = self.serializer.dumps(value, name)
        return bool(self.client.set(name, blob, ex=ex, px=px, nx=True))

    def delete(self, key: str) -> bool:
        return bool(self.client.delete(self._name(key)))

    def has(self, key: str) -> bool:
        return bool(self.client.exists(self._name(key)))

    def get_many(self, *keys: str) -> list[Any]:
        if not keys:
            return []
        names = [self._name(key) for key in keys]
        client = self.client
        # Plain MGET refuses keys in different hash slots of a cluster.
        values = (
            client.mget_nonatomic(names) if isinstance(client, RedisCluster) else client.mget(names)
        )
        return [self._load(value, name) for value, name in zip(values, names, strict=True)]

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None = None) -> list[str]:
        ex, px = self._expiry(timeout)
        # Serialize everything first, so a value that cannot be stored stores nothing.
        blobs: dict[str, tuple[str, bytes]] = {}
        for key, value in mapping.items():
            name = self._name(key)
            blobs[key] = name, self.serializer.dumps(value, name)
        if not blobs:
            return []
        # A cluster transaction must stay in one hash slot, so there it is a plain pipeline.
        pipe = self.client.pipeline(transaction=not self.is_cluster)
        for name, blob in blobs.values():
            pipe.set(name, blob, ex=ex, px=px)
        results = pipe.execute()
        return [key for key, stored in zip(blobs, results, strict=True) if stored]

    def delete_many(self, *keys: str) -> list[str]:
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        names = [self._name(key) for key in unique]
        pipe = self.client.pipeline(transaction=not self.is_cluster)
        if self.is_cluster:
            # Multi-key DEL cannot cross slots; the pipeline still sends one batch per node.
            for name in names:
                pipe.delete(name)
            existed = pipe.execute()
        else:
            # EXISTS for each key, then one DEL, all in one MULTI/EXEC round trip.
            for name in names:
                pipe.exists(name)
            pipe.delete(*names)
            existed = pipe.execute()[:-1]
        return [key for key, hit in zip(unique, existed, strict=True) if hit]

    def unlink(self, *keys: str) -> list[str]:
        """Remove *keys* with UNLINK: the server frees their memory in the background."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return []
        if self.is_cluster:
            return self.delete_many(*unique)  # multi-key UNLINK cannot cross slots
        names = [self._name(key) for key in unique]
        pipe = self.client.pipeline(transaction=True)
        for name in names:
            pipe.exists(name)
        pipe.unlink(*names)
        existed = pipe.execute()[:-1]
        return [key for key, hit in zip(unique, existed, strict=True) if hit]

    @property
    def _write_client(self) -> Any:
        """The redis-py client, under the name Flask-Caching code reaches for."""
        return self.client

    @property
    def _read_client(self) -> Any:
        return self.client

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add *delta* with INCRBY; a key that holds no counter restarts at *delta*.

        The plain INCRBY is one round trip. Only when the server refuses it
        does a script run, which tries INCRBY again and, if it is still
        refused, sets the key to *delta*, with no expiry, like a new counter.
        """
        name = self._name(key)
        client = self.client
        try:
            return int(client.incrby(name, delta))
        except ResponseError as err:
            if not any(reason in str(err) for reason in _NOT_A_COUNTER):
                raise
        return int(client.eval(_RESTART_COUNTER, 1, name, delta))

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self.inc(key, -delta)

    def clear(self) -> bool:
        if not self.key_prefix:
            if not self.allow_flush:
                raise ValueError(
                    "clear() with an empty key_prefix would delete every key in the "
                    "database; set CACHE_KEY_PREFIX, or CACHE_REDIS_ALLOW_FLUSH = True "
                    "if the database holds nothing but this cache"
                )
            for primary in self._primaries():
                primary.flushdb()
            return True
        pattern = _glob_escape(self.key_prefix) + "*"
        for primary in self._primaries():
            batch: list[Any] = []
            for name in primary.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    self._unlink(primary, batch)
                    batch = []
            if batch:
                self._unlink(primary, batch)
        return True

    def _unlink(self, primary: redis.Redis, names: list[Any]) -> None:
        """Delete *names*, all found on *primary*, without blocking the server."""
        if not self.is_cluster:
            primary.unlink(*names)
            return
        # Keys of one cluster node may sit in different slots: one UNLINK each.
        pipe = primary.pipeline(transaction=False)
        for name in names:
            pipe.unlink(name)
        pipe.execute()

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """Keys of this namespace matching the glob *pattern*, by SCAN (never KEYS).

        SCAN walks the keyspace in small batches, so the server keeps
        answering other clients meanwhile; a key written during the walk may
        or may not be listed. On a cluster every primary is walked.
        """
        match = _glob_escape(self.key_prefix) + pattern
        cut = len(self.key_prefix)
        for primary in self._primaries():
            for name in primary.scan_iter(match=match, count=_SCAN_BATCH):
                yield _text(name)[cut:]

    def figures(self) -> dict[str, int]:
        """From INFO and DBSIZE, summed over a cluster's primaries."""
        totals = dict.fromkeys(("db_keys", *_INFO_FIGURES), 0)
        for primary in self._primaries():
            info = primary.info()
            for name in _INFO_FIGURES:
                totals[name] += int(info.get(name, 0))
            totals["db_keys"] += int(primary.dbsize())
        return totals

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            sentinel, self._sentinel = self._sentinel, None
        if client is not None:
            client.close()
        if sentinel is not None:
            for connection in sentinel.sentinels:
                connection.close()

    def describe(self) -> str:
        return self.target.describe()
