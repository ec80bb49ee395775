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
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
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

__all__ = ["RedisStore"]

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
        ``redis_cluster``, ``redis_socket_timeout``, ``redis_connect_timeout``
        and ``redis_allow_flush``. ``CACHE_URL`` wins over ``redis_url``.
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
        return cls(default_timeout=config.default_timeout, key_prefix=config.key_prefix, **kwargs)

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

    def _load(self, data: Any) -> Any:
        return None if data is None else self.serializer.loads(data)

    # -- the store contract ----------------------------------------------------

    def get(self, key: str) -> Any:
        return self._load(self.client.get(self._name(key)))

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        ex, px = self._expiry(timeout)
        blob = self.serializer.dumps(value)
        return bool(self.client.set(self._name(key), blob, ex=ex, px=px))

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        ex, px = self._expiry(timeout)
        blob = self.serializer.dumps(value)
        return bool(self.client.set(self._name(key), blob, ex=ex, px=px, nx=True))

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
        return [self._load(value) for value in values]

    def set_many(self, mapping: Mapping[str, Any], timeout: int | None = None) -> list[str]:
        ex, px = self._expiry(timeout)
        # Serialize everything first, so a value that cannot be stored stores nothing.
        blobs = {key: self.serializer.dumps(value) for key, value in mapping.items()}
        if not blobs:
            return []
        # A cluster transaction must stay in one hash slot, so there it is a plain pipeline.
        pipe = self.client.pipeline(transaction=not self.is_cluster)
        for key, blob in blobs.items():
            pipe.set(self._name(key), blob, ex=ex, px=px)
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

    def inc(self, key: str, delta: int = 1) -> int | None:
        try:
            return int(self.client.incrby(self._name(key), delta))
        except ResponseError as err:
            if "not an integer" in str(err):
                raise TypeError(f"cannot increment {key!r}: it does not hold an integer") from err
            raise

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
