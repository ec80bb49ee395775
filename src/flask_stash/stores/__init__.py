"""Stores, and how ``CACHE_TYPE`` and ``CACHE_URL`` name them.

Store classes are imported only when a config names them, so the client
library of a store nobody uses never needs to be installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ..errors import ConfigurationError
from .base import BaseStore, NullStore, StoreConfig
from .memory import MemoryStore

__all__ = [
    "BaseStore",
    "MemoryStore",
    "NullStore",
    "StoreConfig",
    "accepted_types",
    "build_store",
    "resolve_factory",
    "resolve_store_class",
    "type_for_url",
]

_MEMORY = "flask_stash.stores.memory:MemoryStore"
_NULL = "flask_stash.stores.base:NullStore"
_DISK = "flask_stash.stores.disk:DiskStore"
_MEMCACHED = "flask_stash.stores.memcached:MemcachedStore"
_SASL = "flask_stash.stores.saslmemcached:SASLMemcachedStore"
_REDIS = "flask_stash.stores.redis:RedisStore"

#: Short names, then Flask-Caching's class names, each to an import path.
STORE_TYPES: dict[str, str] = {
    "memory": _MEMORY,
    "simple": _MEMORY,
    "null": _NULL,
    "filesystem": _DISK,
    "disk": _DISK,
    "memcached": _MEMCACHED,
    "saslmemcached": _SASL,
    "redis": _REDIS,
    "redissentinel": _REDIS,
    "rediscluster": _REDIS,
    "spreadsaslmemcached": _SASL,
    "SimpleCache": _MEMORY,
    "NullCache": _NULL,
    "FileSystemCache": _DISK,
    "MemcachedCache": _MEMCACHED,
    "SASLMemcachedCache": _SASL,
    "SpreadSASLMemcachedCache": _SASL,
    "RedisCache": _REDIS,
    "RedisSentinelCache": _REDIS,
    "RedisClusterCache": _REDIS,
    "MemoryStore": _MEMORY,
    "NullStore": _NULL,
    "DiskStore": _DISK,
    "MemcachedStore": _MEMCACHED,
    "SASLMemcachedStore": _SASL,
    "RedisStore": _REDIS,
}

#: URL schemes accepted by ``CACHE_URL``, each to a short store name.
URL_SCHEMES: dict[str, str] = {
    "memory": "memory",
    "simple": "memory",
    "null": "null",
    "file": "filesystem",
    "disk": "filesystem",
    "memcached": "memcached",
    "redis": "redis",
    "rediss": "redis",
    "redis+sentinel": "redis",
    "redis+cluster": "redis",
    "unix": "redis",
}

_INSTALL_HINT = {
    _DISK: "flask-stash[disk]",
    _MEMCACHED: "flask-stash[memcached]",
    _SASL: "flask-stash[memcached]",
    _REDIS: "flask-stash[redis]",
}


def accepted_types() -> str:
    """Describe what ``CACHE_TYPE`` accepts, for error messages."""
    short = sorted(name for name in STORE_TYPES if name.islower())
    long = sorted(name for name in STORE_TYPES if not name.islower() and not name.endswith("Store"))
    return (
        f"a short name ({', '.join(short)}), a Flask-Caching class name "
        f"({', '.join(long)}), or an import path 'package.module:StoreClass' "
        "to a subclass of flask_stash.stores.BaseStore"
    )


def type_for_url(url: str) -> tuple[str, SplitResult]:
    """Return the store type a ``CACHE_URL`` names, and the parsed URL."""
    try:
        parts = urlsplit(url)
        if "," not in parts.netloc:  # several hosts are parsed by their store
            parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as err:
        raise ConfigurationError(f"CACHE_URL {url!r} is malformed: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES or "://" not in url:
        schemes = ", ".join(f"{name}://" for name in URL_SCHEMES)
        raise ConfigurationError(
            f"CACHE_URL {url!r} is not understood: it must start with one of {schemes}"
        )
    store_type = URL_SCHEMES[scheme]
    if store_type == "memcached" and parts.username:
        store_type = "saslmemcached"
    return store_type, parts


def _import(path: str, shown_as: str) -> object:
    module_name, _, attr = path.partition(":")
    if not attr:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        hint = _INSTALL_HINT.get(path)
        if hint and hint in str(err):
            # The store's own message already names its extra: say it once.
            raise ConfigurationError(f"CACHE_TYPE {shown_as!r}: {err}") from err
        extra = f"; install it with pip install '{hint}'" if hint else ""
        raise ConfigurationError(
            f"CACHE_TYPE {shown_as!r} needs {module_name!r}, which could not be "
            f"imported ({err}){extra}"
        ) from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigurationError(
            f"CACHE_TYPE {shown_as!r}: module {module_name!r} has no {attr!r}"
        ) from None


def resolve_factory(store_type: object) -> Callable[..., Any] | None:
    """The function a ``CACHE_TYPE`` import path names, if it names one, not a class.

    Flask-Caching accepts ``"package.module.make_store"``, called as
    ``make_store(app, config, args, options)`` to build the store.
    """
    if not isinstance(store_type, str):
        return None
    name = store_type.strip()
    if name in STORE_TYPES or name.lower() in STORE_TYPES or not ("." in name or ":" in name):
        return None
    if name.rpartition(".")[2] in STORE_TYPES:
        return None
    found = _import(name, store_type)
    if callable(found) and not isinstance(found, type):
        return found
    return None


def resolve_store_class(store_type: str | type[BaseStore]) -> type[BaseStore]:
    """Return the store class that a ``CACHE_TYPE`` value names."""
    if isinstance(store_type, type):
        found: object = store_type
        shown = store_type.__qualname__
    else:
        shown = store_type
        name = store_type.strip()
        # Flask-Caching also accepts "flask_caching.backends.SimpleCache".
        tail = name.rpartition(".")[2]
        path = STORE_TYPES.get(name) or STORE_TYPES.get(name.lower()) or STORE_TYPES.get(tail)
        if path is None and ("." in name or ":" in name):
            path = name
        if path is None:
            raise ConfigurationError(
                f"CACHE_TYPE {store_type!r} is unknown. It accepts {accepted_types()}."
            )
        found = _import(path, shown)
    if not (isinstance(found, type) and issubclass(found, BaseStore)):
        raise ConfigurationError(
            f"CACHE_TYPE {shown!r} is not a store: it must be a subclass of "
            "flask_stash.stores.BaseStore"
        )
    return found


def build_store(store_type: str | type[BaseStore], config: StoreConfig) -> BaseStore:
    """Build the store, turning its constructor's complaints into config errors."""
    cls = resolve_store_class(store_type)
    try:
        return cls.from_config(config)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigurationError(f"{cls.__qualname__} could not be configured: {err}") from err
