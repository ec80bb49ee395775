"""The Flask apps the benchmarks serve, in-process, in spawned processes and under gunicorn.

Every app answers ``GET /page`` with the same 2 KiB body. A cached app's
view may sleep *work* seconds first (the page's cost) and call *on_run* each
time it really runs, so a benchmark can count executions.

Gunicorn imports the factories at the bottom, which read their settings
from the environment::

    BENCH_MEMCACHED=127.0.0.1:11211 BENCH_WORK=0.02 \\
        gunicorn -w 2 'benchmarks.apps:stash_app()'

``BENCH_MEMCACHED`` (required for the cached apps) is the memcached
address, shared by every worker; ``BENCH_WORK`` the seconds a miss sleeps
(0.02); ``BENCH_NEAR_TTL`` puts a near cache of that many seconds in front of
memcached (Flask-Stash only); ``BENCH_KEY_PREFIX`` sets Flask-Stash's
``CACHE_KEY_PREFIX``; ``BENCH_COUNT_FILE`` a file that gets one byte
appended per view execution, in any worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_caching import Cache as FlaskCachingCache

from flask_stash import Cache
from flask_stash.config import DEFAULTS
from flask_stash.stores.near import wrap_near

__all__ = [
    "BODY",
    "PATH",
    "QUERY",
    "bare_app",
    "bare_view_app",
    "flask_caching_app",
    "flask_caching_view_app",
    "stash_app",
    "stash_view_app",
]

BODY = "x" * 2048
PATH = "/page"
QUERY = "name=alice&page=2"
#: Signs Flask-Stash's entries in a shared store; any constant will do here.
SECRET = "benchmark-only-secret"
#: Seconds a cached page lives: longer than any benchmark.
TIMEOUT = 300

OnRun = Callable[[], None]


def _view(app: Flask, decorator: Callable[[Any], Any], work: float, on_run: OnRun | None) -> Flask:
    @app.route(PATH)
    @decorator
    def page() -> str:
        if on_run is not None:
            on_run()
        if work:
            time.sleep(work)
        return BODY

    return app


def bare_view_app() -> Flask:
    """A bare Flask view returning the constant body."""
    app = Flask("bare")

    @app.route(PATH)
    def page() -> str:
        return BODY

    return app


def stash_cache(app: Flask, config: dict[str, Any], near_ttl: float | None = None) -> Cache:
    """Set Flask-Stash up on *app*, with a near cache of *near_ttl* seconds if given.

    Uses ``CACHE_NEAR_TTL`` when this version of Flask-Stash reads it, else
    wraps the store the config built by hand.
    """
    if near_ttl and "CACHE_NEAR_TTL" in DEFAULTS:
        return Cache(app, config={**config, "CACHE_NEAR_TTL": near_ttl})
    cache = Cache(app, config=config)
    if near_ttl:
        state = cache.state(app)
        state.store = wrap_near(state.store, ttl=near_ttl)
    return cache


def stash_view_app(
    config: dict[str, Any],
    *,
    work: float = 0.0,
    on_run: OnRun | None = None,
    near_ttl: float | None = None,
) -> Flask:
    """The view under Flask-Stash ``@cached`` (single-flight, its default)."""
    app = Flask("stash")
    cache = stash_cache(app, config, near_ttl)
    return _view(app, cache.cached(timeout=TIMEOUT), work, on_run)


def flask_caching_view_app(
    config: dict[str, Any], *, work: float = 0.0, on_run: OnRun | None = None
) -> Flask:
    """The view under Flask-Caching ``@cached(query_string=True)``, keyed like Flask-Stash's."""
    app = Flask("flask_caching")
    cache = FlaskCachingCache(app, config=config)
    return _view(app, cache.cached(timeout=TIMEOUT, query_string=True), work, on_run)


def stash_memcached_config(address: str) -> dict[str, Any]:
    return {
        "CACHE_TYPE": "memcached",
        "CACHE_MEMCACHED_SERVERS": [address],
        "CACHE_SECRET_KEY": SECRET,
    }


def flask_caching_memcached_config(address: str) -> dict[str, Any]:
    return {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": [address]}


# -- factories for gunicorn ----------------------------------------------------


def _memcached_from_env() -> str:
    address = os.environ.get("BENCH_MEMCACHED")
    if not address:
        raise RuntimeError("set BENCH_MEMCACHED to the memcached address, host:port")
    return address


def _work_from_env() -> float:
    return float(os.environ.get("BENCH_WORK", "0.02"))


def _counter_from_env() -> OnRun | None:
    path = os.environ.get("BENCH_COUNT_FILE")
    if not path:
        return None

    def count() -> None:
        # One byte per run with O_APPEND: atomic, whichever worker writes it.
        with open(path, "ab") as file:
            file.write(b".")

    return count


def bare_app() -> Flask:
    return bare_view_app()


def stash_app() -> Flask:
    near = os.environ.get("BENCH_NEAR_TTL")
    config = stash_memcached_config(_memcached_from_env())
    prefix = os.environ.get("BENCH_KEY_PREFIX")
    if prefix:
        config["CACHE_KEY_PREFIX"] = prefix
    return stash_view_app(
        config,
        work=_work_from_env(),
        on_run=_counter_from_env(),
        near_ttl=float(near) if near else None,
    )


def flask_caching_app() -> Flask:
    return flask_caching_view_app(
        flask_caching_memcached_config(_memcached_from_env()),
        work=_work_from_env(),
        on_run=_counter_from_env(),
    )
