"""Reading and checking the ``CACHE_*`` configuration.

Every key is checked here, once, at ``init_app``: a wrong type fails at
start-up with a message that names the key and says what is accepted, never
later on the first request, and a ``CACHE_*`` key that no setting has (a
typo, most often) draws a :class:`ConfigWarning` naming the nearest setting.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult

from .errors import ConfigurationError
from .http import DEFAULT_CACHEABLE_STATUSES
from .serializers import ALGORITHMS, Serializer, make_serializer
from .stores import (
    BaseStore,
    StoreConfig,
    build_store,
    resolve_factory,
    resolve_store_class,
    type_for_url,
)
from .stores.near import wrap_near

__all__ = ["DEFAULTS", "KNOWN_KEYS", "ConfigWarning", "Settings", "load_settings"]

logger = logging.getLogger("flask_stash")

#: Every key with a default; the store classes read further keys of their own.
DEFAULTS: dict[str, Any] = {
    "CACHE_TYPE": None,
    "CACHE_URL": None,
    "CACHE_DEFAULT_TIMEOUT": 300,
    "CACHE_KEY_PREFIX": "flask_stash:",
    "CACHE_THRESHOLD": 500,
    "CACHE_OPTIONS": None,
    "CACHE_FAILURE_THRESHOLD": 3,
    "CACHE_RETRY_INTERVAL": 10.0,
    "CACHE_SERIALIZER": "pickle",
    "CACHE_SECRET_KEY": None,
    "CACHE_SIGNING_ALGORITHM": "sha256",
    "CACHE_CACHEABLE_STATUSES": DEFAULT_CACHEABLE_STATUSES,
    "CACHE_SEND_CACHE_CONTROL": False,
    "CACHE_X_CACHE_HEADER": False,
    "CACHE_FAST_LANE": False,
    "CACHE_LOCK_TIMEOUT": 30,
    "CACHE_LOCK_WAIT": 10.0,
    "CACHE_NEAR_TTL": None,
    "CACHE_NEAR_MAX_ENTRIES": 1000,
    "CACHE_ENABLE_SIGNALS": False,
    "CACHE_HONOR_FRESHNESS": True,
    "CACHE_HONOR_REQUEST_NO_CACHE": False,
    "CACHE_SOURCE_CHECK": False,
    # Accepted for Flask-Caching configs; a failing delete never raises here anyway.
    "CACHE_IGNORE_ERRORS": False,
    "CACHE_NO_NULL_WARNING": False,
}

# Keys older tutorials use, which no version of the extension ever read. Each
# is read as the key it stands for when that key is not set, with a warning.
_LOOKALIKES = {
    "MEMCACHED_HOST": "CACHE_MEMCACHED_SERVERS",
    "MEMCACHED_SERVERS": "CACHE_MEMCACHED_SERVERS",
    "MEMCACHED_USER": "CACHE_MEMCACHED_USERNAME",
    "MEMCACHED_PWD": "CACHE_MEMCACHED_PASSWORD",
    "MEMCACHED_PASSWORD": "CACHE_MEMCACHED_PASSWORD",
    "REDIS_URL": "CACHE_REDIS_URL",
}


# Flask-Caching keys with no counterpart here, and what to do instead.
_UNSUPPORTED = {
    "CACHE_ARGS": "pass the store's keyword arguments in CACHE_OPTIONS",
    "CACHE_UWSGI_NAME": "the uWSGI cache is not supported; use the disk store",
}


@dataclass(frozen=True)
class Settings:
    """The checked configuration of one Cache on one app."""

    store_type: str | type[BaseStore]
    url: SplitResult | None
    default_timeout: int
    key_prefix: str
    threshold: int
    options: Mapping[str, Any]
    failure_threshold: int
    retry_interval: float
    serializer: Serializer
    cacheable_statuses: frozenset[int] = DEFAULT_CACHEABLE_STATUSES
    send_cache_control: bool = False
    x_cache_header: bool = False
    fast_lane: bool = False
    lock_timeout: int = 30
    lock_wait: float = 10.0
    near_ttl: float | None = None
    near_max_entries: int = 1000
    namespace: Mapping[str, Any] = field(default_factory=dict)
    #: Send Flask-Caching's signals (``cache_view_hit`` ...) too.
    enable_signals: bool = False
    #: Follow a response's no-cache, max-age, s-maxage and Expires (RFC 9111).
    honor_freshness: bool = True
    #: Let a request's ``Cache-Control: no-cache`` recompute the page.
    honor_request_no_cache: bool = False
    #: The default of the decorators' ``source_check``.
    source_check: bool = False
    #: A function ``(app, config, args, options)`` that builds the store
    #: (Flask-Caching's factory form of ``CACHE_TYPE``), if one was named.
    factory: Callable[..., Any] | None = None
    merged: Mapping[str, Any] = field(default_factory=dict)

    def store_config(self) -> StoreConfig:
        return StoreConfig(
            default_timeout=self.default_timeout,
            key_prefix=self.key_prefix,
            threshold=self.threshold,
            url=self.url,
            options=self.options,
            settings=self.namespace,
            serializer=self.serializer,
        )

    def build_store(self, app: object = None) -> BaseStore:
        if self.factory is not None:
            options = {"default_timeout": self.default_timeout, **self.options}
            store: BaseStore = self.factory(app, dict(self.merged), [], options)
            if not isinstance(store, BaseStore):
                raise ConfigurationError(
                    f"CACHE_TYPE {self.store_type!r} returned {store!r}, not a store: a "
                    "factory must return an instance of a flask_stash.stores.BaseStore subclass"
                )
            return store
        store = build_store(self.store_type, self.store_config())
        if not self.near_ttl:
            return store
        try:
            return wrap_near(store, self.near_ttl, self.near_max_entries)
        except ValueError as err:
            store.close()
            raise ConfigurationError(f"CACHE_NEAR_TTL: {err}") from err


class ConfigWarning(UserWarning):
    """A ``CACHE_*`` key that Flask-Stash does not read: most likely a typo."""


#: A check takes a key and its value, raises ConfigurationError if the value
#: is not accepted, and returns the value in the form the rest of the code reads.
Check = Callable[[str, Any], Any]

#: How much of a wrong value's repr a message shows.
_SHOWN_LENGTH = 80


def _shown(key: str, value: Any) -> str:
    """The value for an error message: its repr, cut short; a secret only by type."""
    if key.endswith(("PASSWORD", "SECRET_KEY")):
        return f"a value of type {type(value).__qualname__} (not shown: it is a secret)"
    text = repr(value)
    if len(text) > _SHOWN_LENGTH:
        text = text[: _SHOWN_LENGTH - 3] + "..."
    return text


def _refuse(key: str, value: Any, accepted: str) -> ConfigurationError:
    return ConfigurationError(f"{key} must be {accepted}; got {_shown(key, value)}")


def _whole(minimum: int) -> Check:
    """An int of at least *minimum*; a bool or a string of digits is refused."""

    def check(key: str, value: Any) -> Any:
        if type(value) is bool or not isinstance(value, int) or value < minimum:
            raise _refuse(key, value, f"a whole number of at least {minimum}")
        return value

    return check


def _number(minimum: float, *, above: bool = False) -> Check:
    """An int or float of at least *minimum* (more than it, when *above*); NaN is refused."""
    accepted = f"a number {'more than' if above else 'of at least'} {minimum:g}"

    def check(key: str, value: Any) -> Any:
        if type(value) is bool or not isinstance(value, (int, float)):
            raise _refuse(key, value, accepted)
        if not (value > minimum if above else value >= minimum):
            raise _refuse(key, value, accepted)
        return value

    return check


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(key: str, value: Any) -> bool:
    """A bool; also 1/0 and the strings an environment variable would hold."""
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    raise _refuse(
        key,
        value,
        'True or False (or one of the strings "true"/"false", "yes"/"no", "on"/"off", "1"/"0")',
    )


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _refuse(key, value, "a string")
    return value


def _path(key: str, value: Any) -> Any:
    if not isinstance(value, (str, os.PathLike)):
        raise _refuse(key, value, "a string or a path (os.PathLike)")
    return value


def _choice(*choices: str) -> Check:
    """One of *choices*, case-insensitively; returned in lower case."""

    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise _refuse(key, value, "one of " + ", ".join(map(repr, choices)))
        return value.strip().lower()

    return check


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _refuse(key, value, "a dict of keyword arguments for the store")
    return value


def _list(key: str, value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        raise _refuse(key, value, "a list")
    return value


def _callable(key: str, value: Any) -> Any:
    if not callable(value):
        raise _refuse(key, value, "a callable, such as hashlib.sha256")
    return value


def _secret(key: str, value: Any) -> Any:
    if not isinstance(value, (str, bytes)):
        raise _refuse(key, value, "a string or bytes")
    return value


def _store_type(key: str, value: Any) -> Any:
    # Which names and paths exist is checked when the store is resolved.
    if not isinstance(value, (str, type)):
        raise _refuse(key, value, "a store name, an import path or a store class")
    return value


def _statuses(key: str, value: Any) -> frozenset[int]:
    accepted = "a collection of HTTP status codes (whole numbers from 100 to 599)"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _refuse(key, value, accepted)
    codes = list(value)
    if not all(type(code) is int and 100 <= code <= 599 for code in codes):
        raise _refuse(key, value, accepted)
    return frozenset(codes)


def _addresses(key: str, value: Any) -> Any:
    """Servers as a comma-separated string, or a list of ``"host:port"`` and ``(host, port)``.

    Pairs, as Flask-Caching and pymemcache users write them, become
    ``"host:port"`` strings (``"[host]:port"`` for IPv6), the one form every
    store parses.
    """
    if isinstance(value, str):
        return value
    accepted = 'a list of "host:port" strings or (host, port) pairs (or one comma-separated string)'
    if not isinstance(value, (list, tuple)):
        raise _refuse(key, value, accepted)
    found: list[str] = []
    for entry in value:
        if isinstance(entry, str):
            found.append(entry)
            continue
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise _refuse(key, value, accepted)
        host, port = entry
        if type(port) is not int and not (isinstance(port, str) and port.isdigit()):
            raise _refuse(key, value, accepted)
        if not isinstance(host, str) or not host or not 0 < int(port) < 65536:
            raise _refuse(key, value, accepted)
        found.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return found


def _settled(key: str, value: Any) -> Any:
    """A value checked where it is used, with a message of its own (see _serializer)."""
    return value


_NUMBER = _number(0)
_SECONDS = _number(0, above=True)

#: Every key Flask-Stash reads (or accepts from a Flask-Caching config), and its check.
_CHECKS: dict[str, Check] = {
    "CACHE_TYPE": _store_type,
    "CACHE_URL": _text,
    "CACHE_DEFAULT_TIMEOUT": _whole(0),
    "CACHE_KEY_PREFIX": _text,
    "CACHE_THRESHOLD": _whole(1),
    "CACHE_MAX_BYTES": _whole(1),
    "CACHE_OPTIONS": _mapping,
    "CACHE_FAILURE_THRESHOLD": _whole(1),
    "CACHE_RETRY_INTERVAL": _NUMBER,
    "CACHE_SERIALIZER": _settled,
    "CACHE_SECRET_KEY": _secret,
    "CACHE_SIGNING_ALGORITHM": _settled,
    "CACHE_CACHEABLE_STATUSES": _statuses,
    "CACHE_SEND_CACHE_CONTROL": _flag,
    "CACHE_X_CACHE_HEADER": _flag,
    "CACHE_FAST_LANE": _flag,
    "CACHE_LOCK_TIMEOUT": _whole(1),
    "CACHE_LOCK_WAIT": _NUMBER,
    "CACHE_NEAR_TTL": _NUMBER,
    "CACHE_NEAR_MAX_ENTRIES": _whole(1),
    "CACHE_ENABLE_SIGNALS": _flag,
    "CACHE_HONOR_FRESHNESS": _flag,
    "CACHE_HONOR_REQUEST_NO_CACHE": _flag,
    "CACHE_SOURCE_CHECK": _flag,
    "CACHE_DIR": _path,
    "CACHE_MEMCACHED_SERVERS": _addresses,
    "CACHE_MEMCACHED_USERNAME": _text,
    "CACHE_MEMCACHED_PASSWORD": _text,
    "CACHE_MEMCACHED_TIMEOUT": _SECONDS,
    "CACHE_MEMCACHED_CONNECT_TIMEOUT": _SECONDS,
    "CACHE_MEMCACHED_MAX_ITEM_SIZE": _whole(1),
    "CACHE_MEMCACHED_USE_POOLING": _flag,
    "CACHE_MEMCACHED_MAX_POOL_SIZE": _whole(1),
    "CACHE_MEMCACHED_RETRY_ATTEMPTS": _whole(0),
    "CACHE_MEMCACHED_RETRY_TIMEOUT": _NUMBER,
    "CACHE_MEMCACHED_DEAD_TIMEOUT": _NUMBER,
    "CACHE_REDIS_URL": _text,
    "CACHE_REDIS_HOST": _text,
    "CACHE_REDIS_PORT": _whole(1),
    "CACHE_REDIS_DB": _whole(0),
    "CACHE_REDIS_USERNAME": _text,
    "CACHE_REDIS_PASSWORD": _text,
    "CACHE_REDIS_MODE": _choice("standalone", "sentinel", "cluster"),
    "CACHE_REDIS_SENTINELS": _addresses,
    "CACHE_REDIS_SENTINEL_MASTER": _text,
    "CACHE_REDIS_SENTINEL_USERNAME": _text,
    "CACHE_REDIS_SENTINEL_PASSWORD": _text,
    "CACHE_REDIS_CLUSTER": _addresses,
    "CACHE_REDIS_SOCKET_TIMEOUT": _SECONDS,
    "CACHE_REDIS_CONNECT_TIMEOUT": _SECONDS,
    "CACHE_REDIS_ALLOW_FLUSH": _flag,
    "CACHE_REDIS_CLIENT_CACHE": _flag,
    "CACHE_REDIS_CLIENT_CACHE_MAX_SIZE": _whole(1),
    # Flask-Caching's keys that are accepted and not read (see _UNSUPPORTED too).
    "CACHE_IGNORE_ERRORS": _flag,
    "CACHE_NO_NULL_WARNING": _flag,
    "CACHE_HASH_METHOD": _callable,
    "CACHE_FILE_HASH_METHOD": _callable,
    "CACHE_ARGS": _list,
    "CACHE_UWSGI_NAME": _text,
}

#: Every ``CACHE_*`` key that does not draw a ConfigWarning.
KNOWN_KEYS: frozenset[str] = frozenset(_CHECKS)

#: Keys whose None means "not set"; any other key set to None is refused.
_MAY_BE_NONE = frozenset(key for key in _CHECKS if DEFAULTS.get(key) is None) | {"CACHE_KEY_PREFIX"}


def _check_values(merged: dict[str, Any]) -> None:
    """Check every known key that is set, and store its value as the code reads it."""
    for key, check in _CHECKS.items():
        if key not in merged or (merged[key] is None and key in _MAY_BE_NONE):
            continue
        merged[key] = check(key, merged[key])


def _outside_caller() -> int:
    """The stacklevel of the first frame outside Flask-Stash: the app's own call."""
    package = os.path.dirname(__file__) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back
        level += 1
    return level


def _warn_unknown(sources: Iterable[Mapping[str, Any]]) -> None:
    """Warn once for each ``CACHE_*`` key that no setting has, with the nearest name."""
    seen: set[str] = set()
    for source in sources:
        for key in source:
            if not isinstance(key, str) or not key.startswith("CACHE_"):
                continue
            if key in KNOWN_KEYS or key in seen:
                continue
            seen.add(key)
            message = f"{key} is not a Flask-Stash setting"
            near = difflib.get_close_matches(
                key[len("CACHE_") :], [name[len("CACHE_") :] for name in KNOWN_KEYS], n=1
            )
            if near:
                message += f"; did you mean CACHE_{near[0]}?"
            warnings.warn(message, ConfigWarning, stacklevel=_outside_caller())


def load_settings(*sources: Mapping[str, Any] | None) -> Settings:
    """Merge *sources* (later ones win) over the defaults, and check them."""
    given = [source for source in sources if source]
    _warn_unknown(given)
    merged: dict[str, Any] = dict(DEFAULTS)
    for source in given:
        merged.update(source)

    for old, new in _LOOKALIKES.items():
        if merged.get(old) is not None and new not in merged:
            logger.warning("%s is read as %s; rename it to silence this warning", old, new)
            merged[new] = merged[old]
    for key, why in _UNSUPPORTED.items():
        if merged.get(key):
            logger.warning("%s is not read by Flask-Stash: %s", key, why)

    _check_values(merged)
    namespace = {
        key[len("CACHE_") :].lower(): value
        for key, value in merged.items()
        if key.startswith("CACHE_")
    }

    store_type: str | type[BaseStore] | None = merged["CACHE_TYPE"]
    url_text: str | None = merged["CACHE_URL"]
    url = None
    if url_text is not None:
        url_type, url = type_for_url(url_text)
        if store_type is not None and resolve_store_class(store_type) is not (
            resolve_store_class(url_type)
        ):
            raise ConfigurationError(
                f"CACHE_TYPE {store_type!r} and CACHE_URL {url_text!r} name different "
                "stores; set only one of them"
            )
        store_type = url_type
    if store_type is None:
        store_type = "memory"
    factory = resolve_factory(store_type)
    if (
        factory is None
        and merged.get("CACHE_MEMCACHED_USERNAME")
        and resolve_store_class(store_type).__name__ == "MemcachedStore"
    ):
        logger.warning(
            "CACHE_TYPE %r does not log in, so CACHE_MEMCACHED_USERNAME %r is not used; "
            "set CACHE_TYPE = 'saslmemcached' to authenticate",
            store_type,
            merged["CACHE_MEMCACHED_USERNAME"],
        )

    return Settings(
        store_type=store_type,
        url=url,
        default_timeout=merged["CACHE_DEFAULT_TIMEOUT"],
        key_prefix=merged["CACHE_KEY_PREFIX"] or "",
        threshold=merged["CACHE_THRESHOLD"],
        options=dict(merged["CACHE_OPTIONS"] or {}),
        failure_threshold=merged["CACHE_FAILURE_THRESHOLD"],
        retry_interval=merged["CACHE_RETRY_INTERVAL"],
        serializer=_serializer(merged, resolve_store_class(store_type).shared)
        if factory is None
        else _serializer(merged, False),
        cacheable_statuses=merged["CACHE_CACHEABLE_STATUSES"],
        send_cache_control=merged["CACHE_SEND_CACHE_CONTROL"],
        x_cache_header=merged["CACHE_X_CACHE_HEADER"],
        fast_lane=merged["CACHE_FAST_LANE"],
        lock_timeout=merged["CACHE_LOCK_TIMEOUT"],
        lock_wait=merged["CACHE_LOCK_WAIT"],
        near_ttl=merged["CACHE_NEAR_TTL"],
        near_max_entries=merged["CACHE_NEAR_MAX_ENTRIES"],
        namespace=namespace,
        enable_signals=merged["CACHE_ENABLE_SIGNALS"],
        honor_freshness=merged["CACHE_HONOR_FRESHNESS"],
        honor_request_no_cache=merged["CACHE_HONOR_REQUEST_NO_CACHE"],
        source_check=merged["CACHE_SOURCE_CHECK"],
        factory=factory,
        merged=merged,
    )


def _serializer(merged: Mapping[str, Any], shared: bool) -> Serializer:
    """Build the serializer: signed with a secret, plain data that runs no code without one."""
    choice = merged["CACHE_SERIALIZER"]
    algorithm = merged["CACHE_SIGNING_ALGORITHM"]
    if algorithm not in ALGORITHMS:
        raise ConfigurationError(
            f"CACHE_SIGNING_ALGORITHM {algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        )
    secret = merged["CACHE_SECRET_KEY"] or merged.get("SECRET_KEY") or None
    if isinstance(secret, str):
        secret = secret.encode()
    if secret is not None and not isinstance(secret, bytes):
        # Only SECRET_KEY can get here: CACHE_SECRET_KEY was checked with the rest.
        raise _refuse("SECRET_KEY", secret, "a string or bytes (it signs the cache's entries)")
    # An in-process store only pickles mutable values to copy them; nobody
    # else can write to it, so there is nothing to sign.
    serializer = make_serializer(choice, secret if shared else None, algorithm, shared=shared)
    if shared and secret is None:
        # load_settings runs once per init_app, so this is said once per app.
        if not isinstance(choice, str):
            name = getattr(choice, "__name__", None) or type(choice).__qualname__
            reads = (
                f"CACHE_SERIALIZER is a format of your own ({name}), which decides for "
                "itself whether reading bytes that others wrote is safe"
            )
        elif choice == "pickle":
            reads = (
                "they hold plain data only (str, numbers, lists, dicts, dates, cached pages), "
                "never pickled objects, and a value that needs pickle is not cached"
            )
        else:
            reads = f"CACHE_SERIALIZER {choice!r} reads them as plain data, never as objects"
        logger.warning(
            "entries in the shared store are unsigned: with neither CACHE_SECRET_KEY nor "
            "SECRET_KEY set, %s. Anyone who can write to the store can still change what "
            "it serves. Set CACHE_SECRET_KEY (or the app's SECRET_KEY) to sign them.",
            reads,
        )
    return serializer
