"""The app the fault benchmark serves under gunicorn, and the pages it must answer.

Every page is cached and its body is a function of the page, the user and
the language only, so the client can tell a right answer from a page served
to the wrong user or in the wrong language. Both extensions cache the same
set of pages, each the way it can do so safely:

- Flask-Stash: ``GET /page/<n>?lang=xx`` and ``GET /account?lang=xx`` with
  ``Authorization: Bearer <user>``, cached with ``per_user=True``;
- Flask-Caching: the same paths with the user in the query as well
  (``?lang=xx&user=<user>``), cached with ``query_string=True``, since it
  has no per-user entries.

Every response says which gunicorn worker answered, in ``X-Worker``.

Gunicorn builds the app with ``benchmarks.faults_app:create_app()``, which
reads its settings from the environment:

``FAULTS_LIBRARY``
    ``flask-stash`` or ``flask-caching``.
``FAULTS_STORE`` and ``FAULTS_ADDRESS``
    ``memcached`` or ``redis``, and the server's ``host:port``.
``FAULTS_TIMEOUT`` and ``FAULTS_CONNECT_TIMEOUT``
    Seconds the store client waits for a reply, and to connect.
``FAULTS_RETRY_INTERVAL``
    Seconds a store that failed is left alone (python-memcached's
    ``dead_retry`` for Flask-Caching; Flask-Stash's ``CACHE_RETRY_INTERVAL``).
``FAULTS_VIEW_TIME`` and ``FAULTS_PAGE_TIMEOUT``
    Seconds a view sleeps when it really runs, and seconds a page is cached.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from flask_caching import Cache as FlaskCachingCache

from flask_stash import Cache

__all__ = [
    "COLD_PAGES",
    "LANGS",
    "LIBRARIES",
    "PAGES",
    "USERS",
    "Page",
    "Traffic",
    "create_app",
    "expected_body",
    "is_hit",
    "page_for",
]

STASH = "flask-stash"
CACHING = "flask-caching"
LIBRARIES = (STASH, CACHING)
#: Hot numbered pages; with the account page, each user sees 5 pages in 3 languages.
PAGES = 4
#: Cold numbered pages, after the hot ones.
COLD_PAGES = 5000
USERS = tuple(f"user{index}" for index in range(1, 9))
LANGS = ("en", "de", "fr")
#: Signs Flask-Stash's entries in the shared store; any constant will do here.
SECRET = "fault-benchmark-only-secret"


def expected_body(what: str, user: str, lang: str) -> bytes:
    """The body *user* must get for page *what* (``page/3``, ``account``) in *lang*."""
    head = f"{what} for {user} in {lang}\n"
    # About 2 KiB that differ for every page, user and language.
    filler = hashlib.sha256(head.encode()).hexdigest() * 32
    return (head + filler + "\n").encode()


@dataclass(frozen=True)
class Page:
    """One request the client sends, and the body it must get back."""

    path: str
    headers: dict[str, str]
    body: bytes


def page_for(library: str, what: str, user: str, lang: str) -> Page:
    """The request *user* sends to *library*'s app for page *what* in *lang*."""
    if library == STASH:
        path, headers = f"/{what}?lang={lang}", {"Authorization": f"Bearer {user}"}
    else:
        path, headers = f"/{what}?lang={lang}&user={user}", {}
    return Page(path, headers, expected_body(what, user, lang))


class Traffic:
    """What the client asks for: mostly a few hot pages, and a share of cold ones.

    The hot pages (:data:`PAGES` numbered pages and the account page, for
    every user and language) are nearly always hits. A cold page is one of
    :data:`COLD_PAGES` more, picked at random, so it is nearly always a miss:
    the view runs and the page is written, which keeps the miss path (and
    its store writes) busy in every phase.
    """

    def __init__(self, library: str, cold_share: float) -> None:
        self.library = library
        self.cold_share = cold_share
        whats = [f"page/{n}" for n in range(1, PAGES + 1)] + ["account"]
        self.hot = [
            page_for(library, what, user, lang)
            for what in whats
            for user in USERS
            for lang in LANGS
        ]

    def pick(self, rng: random.Random) -> Page:
        if rng.random() >= self.cold_share:
            return rng.choice(self.hot)
        n = rng.randint(PAGES + 1, PAGES + COLD_PAGES)
        return page_for(self.library, f"page/{n}", rng.choice(USERS), rng.choice(LANGS))


def is_hit(library: str, headers: dict[str, str]) -> bool:
    """Whether a response (its headers, names lower-cased) came from the cache."""
    if library == STASH:
        return headers.get("x-cache") in ("HIT", "STALE")
    return headers.get("hit_cache") == "True"


def _stash_user() -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ")


def _query_user() -> str:
    return request.args.get("user", "")


def _routes(app: Flask, decorator: Callable[[Any], Any], user_of: Callable[[], str]) -> Flask:
    view_time = float(os.environ.get("FAULTS_VIEW_TIME", "0.01"))

    def render(what: str) -> bytes:
        time.sleep(view_time)
        return expected_body(what, user_of(), request.args.get("lang", ""))

    @app.after_request
    def worker(response: Response) -> Response:
        # After the cache, so hits carry it too: which worker answered.
        response.headers["X-Worker"] = str(os.getpid())
        return response

    @app.route("/page/<int:n>")
    @decorator
    def page(n: int) -> bytes:
        return render(f"page/{n}")

    @app.route("/account")
    @decorator
    def account() -> bytes:
        return render("account")

    return app


def stash_config(
    store: str, address: str, timeout: float, connect_timeout: float
) -> dict[str, Any]:
    """Flask-Stash on *store*, with the client's timeouts set explicitly."""
    config: dict[str, Any] = {
        "CACHE_SECRET_KEY": SECRET,
        "CACHE_X_CACHE_HEADER": True,
        "CACHE_KEY_PREFIX": "faults:",
    }
    if store == "memcached":
        config.update(
            CACHE_TYPE="memcached",
            CACHE_MEMCACHED_SERVERS=[address],
            CACHE_MEMCACHED_TIMEOUT=timeout,
            CACHE_MEMCACHED_CONNECT_TIMEOUT=connect_timeout,
        )
    else:
        config.update(
            CACHE_TYPE="redis",
            CACHE_REDIS_URL=f"redis://{address}/0",
            CACHE_REDIS_SOCKET_TIMEOUT=timeout,
            CACHE_REDIS_CONNECT_TIMEOUT=connect_timeout,
        )
    return config


def flask_caching_config(
    store: str, address: str, timeout: float, connect_timeout: float, retry_interval: float
) -> dict[str, Any]:
    """Flask-Caching on *store*, its client's timeouts as close to Flask-Stash's as it allows."""
    config: dict[str, Any] = {"CACHE_KEY_PREFIX": "faults:"}
    if store == "memcached":
        import memcache  # type: ignore[import-untyped]  # python-memcached

        # cachelib builds memcache.Client(servers) with its 3 s default; a
        # client passed in place of the server list is used as it is. One
        # timeout covers connecting and reading.
        client = memcache.Client([address], socket_timeout=timeout, dead_retry=retry_interval)
        config.update(CACHE_TYPE="MemcachedCache", CACHE_MEMCACHED_SERVERS=client)
    else:
        # With CACHE_REDIS_URL, CACHE_OPTIONS go to redis.from_url; redis-py
        # keeps its own retry policy (3 retries with backoff).
        config.update(
            CACHE_TYPE="RedisCache",
            CACHE_REDIS_URL=f"redis://{address}/0",
            CACHE_OPTIONS={"socket_timeout": timeout, "socket_connect_timeout": connect_timeout},
        )
    return config


def create_app() -> Flask:
    """The app gunicorn serves, set up from the ``FAULTS_*`` environment variables."""
    library = os.environ.get("FAULTS_LIBRARY", STASH)
    store = os.environ.get("FAULTS_STORE", "memcached")
    address = os.environ["FAULTS_ADDRESS"]
    timeout = float(os.environ.get("FAULTS_TIMEOUT", "0.5"))
    connect_timeout = float(os.environ.get("FAULTS_CONNECT_TIMEOUT", "0.25"))
    page_timeout = int(os.environ.get("FAULTS_PAGE_TIMEOUT", "30"))
    if library == STASH:
        app = Flask("faults_stash")
        cache = Cache(app, config=stash_config(store, address, timeout, connect_timeout))
        return _routes(app, cache.cached(timeout=page_timeout, per_user=True), _stash_user)
    if library == CACHING:
        retry_interval = float(os.environ.get("FAULTS_RETRY_INTERVAL", "10"))
        app = Flask("faults_flask_caching")
        config = flask_caching_config(store, address, timeout, connect_timeout, retry_interval)
        caching = FlaskCachingCache(app, config=config)
        decorator = caching.cached(
            timeout=page_timeout, query_string=True, response_hit_indication=True
        )
        return _routes(app, decorator, _query_user)
    raise ValueError(f"FAULTS_LIBRARY must be one of {', '.join(LIBRARIES)}, not {library!r}")
