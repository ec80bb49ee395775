"""Reading and checking the ``CACHE_*`` configuration.

Every key is checked here, once, at ``init_app``: a typo or a wrong type
fails at start-up with a message that says what is accepted, never later
on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
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

__all__ = ["DEFAULTS", "Settings", "load_settings"]

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


def _number(values: Mapping[str, Any], key: str, minimum: float, *, integer: bool = True) -> Any:
    value = values[key]
    kinds = (int,) if integer else (int, float)
    if type(value) is bool or not isinstance(value, kinds) or value < minimum:
        what = "a whole number" if integer else "a number"
        raise ConfigurationError(f"{key} must be {what} of at least {minimum}, got {value!r}")
    return value


def load_settings(*sources: Mapping[str, Any] | None) -> Settings:
    """Merge *sources* (later ones win) over the defaults, and check them."""
    merged: dict[str, Any] = dict(DEFAULTS)
    for source in sources:
        if source:
            merged.update(source)

    for old, new in _LOOKALIKES.items():
        if merged.get(old) is not None and new not in merged:
            logger.warning("%s is read as %s; rename it to silence this warning", old, new)
            merged[new] = merged[old]
    for key, why in _UNSUPPORTED.items():
        if merged.get(key):
            logger.warning("%s is not read by Flask-Stash: %s", key, why)

    namespace = {
        key[len("CACHE_") :].lower(): value
        for key, value in merged.items()
        if key.startswith("CACHE_")
    }

    store_type: str | type[BaseStore] | None = merged["CACHE_TYPE"]
    url_text = merged["CACHE_URL"]
    url = None
    if url_text is not None:
        if not isinstance(url_text, str):
            raise ConfigurationError(f"CACHE_URL must be a string, got {url_text!r}")
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
    if not isinstance(store_type, (str, type)):
        raise ConfigurationError(
            f"CACHE_TYPE must be a string or a store class, got {store_type!r}"
        )

    key_prefix = merged["CACHE_KEY_PREFIX"]
    if key_prefix is None:
        key_prefix = ""
    if not isinstance(key_prefix, str):
        raise ConfigurationError(f"CACHE_KEY_PREFIX must be a string, got {key_prefix!r}")

    options = merged["CACHE_OPTIONS"] or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            f"CACHE_OPTIONS must be a dict of keyword arguments for the store, got {options!r}"
        )

    statuses = merged["CACHE_CACHEABLE_STATUSES"]
    if isinstance(statuses, (str, bytes)) or not all(
        type(code) is int and 100 <= code <= 599 for code in statuses
    ):
        raise ConfigurationError(
            f"CACHE_CACHEABLE_STATUSES must be a collection of HTTP status codes, got {statuses!r}"
        )
    for key in (
        "CACHE_SEND_CACHE_CONTROL",
        "CACHE_X_CACHE_HEADER",
        "CACHE_FAST_LANE",
        "CACHE_ENABLE_SIGNALS",
        "CACHE_HONOR_FRESHNESS",
        "CACHE_HONOR_REQUEST_NO_CACHE",
        "CACHE_SOURCE_CHECK",
        "CACHE_IGNORE_ERRORS",
        "CACHE_NO_NULL_WARNING",
    ):
        if type(merged[key]) is not bool:
            raise ConfigurationError(f"{key} must be True or False, got {merged[key]!r}")

    return Settings(
        store_type=store_type,
        url=url,
        default_timeout=_number(merged, "CACHE_DEFAULT_TIMEOUT", 0),
        key_prefix=key_prefix,
        threshold=_number(merged, "CACHE_THRESHOLD", 1),
        options=dict(options),
        failure_threshold=_number(merged, "CACHE_FAILURE_THRESHOLD", 1),
        retry_interval=_number(merged, "CACHE_RETRY_INTERVAL", 0, integer=False),
        serializer=_serializer(merged, resolve_store_class(store_type).shared)
        if factory is None
        else _serializer(merged, False),
        cacheable_statuses=frozenset(statuses),
        send_cache_control=merged["CACHE_SEND_CACHE_CONTROL"],
        x_cache_header=merged["CACHE_X_CACHE_HEADER"],
        fast_lane=merged["CACHE_FAST_LANE"],
        lock_timeout=_number(merged, "CACHE_LOCK_TIMEOUT", 1),
        lock_wait=_number(merged, "CACHE_LOCK_WAIT", 0, integer=False),
        near_ttl=_number(merged, "CACHE_NEAR_TTL", 0, integer=False)
        if merged["CACHE_NEAR_TTL"] is not None
        else None,
        near_max_entries=_number(merged, "CACHE_NEAR_MAX_ENTRIES", 1),
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
        raise ConfigurationError("CACHE_SECRET_KEY must be a string or bytes")
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
