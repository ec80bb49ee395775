"""A hot page served from the near cache, at the WSGI boundary, on real local servers.

For memcached and for Redis, side by side in one run, all hits on the same
2 KiB page with a query string:
- (a) a bare Flask view;
- (n) Flask-Stash ``@cached`` with a near cache (ttl 5 s) in front of the
  server: the hit is served from the process;
- (t) Redis only: Flask-Stash's near cache invalidated by the server
  (``CACHE_REDIS_CLIENT_CACHE``, client tracking) instead of a ttl;
- (s) Flask-Stash ``@cached`` on the server alone, no near cache;
- (c) Flask-Caching ``@cached(query_string=True)`` on the same server.
Target: (n)/(a) <= 1.15.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import sys
from typing import Any

from flask import Flask

from flask_stash.stores.near import NearStore

from .apps import (
    BODY,
    PATH,
    QUERY,
    SECRET,
    bare_view_app,
    flask_caching_memcached_config,
    flask_caching_view_app,
    stash_memcached_config,
    stash_view_app,
)
from .bench_remote import memcached_argv, redis_argv, server
from .common import environ_for, interleaved, report, wsgi_call

BARE = "(a) bare view"
NEAR = "(n) flask-stash near-cache hit"
TARGET = 1.15


def near_copies(app: Flask) -> int:
    """How many entries the app's near cache holds (0 without one)."""
    for state in app.extensions.get("flask_stash", {}).values():
        store = getattr(state, "store", None)
        if isinstance(store, NearStore):
            return len(store.local)
    return 0


def measure(title: str, apps: dict[str, Flask], rounds: int, number: int) -> dict[str, float]:
    environ = environ_for(PATH, QUERY)
    for app in apps.values():
        for _ in range(3):  # a miss, the hit that copies into the near cache, a near hit
            assert wsgi_call(app, environ) == BODY.encode()
    cases = {name: functools.partial(wsgi_call, app, environ) for name, app in apps.items()}
    medians = interleaved(cases, rounds, number)
    report(title, medians, BARE)
    for name, app in apps.items():
        copies = near_copies(app)
        if name.startswith(("(n)", "(t)")) and not copies:
            print(f"  {name}: the near cache holds nothing: these were not near hits")
    return medians


def verdict(medians: dict[str, float]) -> None:
    ratio = medians[NEAR] / medians[BARE]
    print(
        f"  near-cache hit / bare view = {ratio:.3f}; target <= {TARGET}: "
        f"{'met' if ratio <= TARGET else 'MISSED'}"
    )


def bench_memcached(rounds: int, number: int, ttl: float) -> None:
    with server(memcached_argv) as memcached:
        address = memcached.address
        apps = {
            BARE: bare_view_app(),
            NEAR: stash_view_app(stash_memcached_config(address), near_ttl=ttl),
            "(s) flask-stash memcached hit": stash_view_app(stash_memcached_config(address)),
            "(c) flask-caching memcached hit": flask_caching_view_app(
                flask_caching_memcached_config(address)
            ),
        }
        medians = measure(
            f"hot page: near cache (ttl {ttl:g} s) in front of memcached (loopback)",
            apps,
            rounds,
            number,
        )
        verdict(medians)


def bench_redis(rounds: int, number: int, ttl: float) -> None:
    with server(redis_argv) as redis_server:
        url = f"redis://{redis_server.address}/0"
        stash: dict[str, Any] = {
            "CACHE_TYPE": "redis",
            "CACHE_REDIS_URL": url,
            "CACHE_SECRET_KEY": SECRET,
        }
        apps = {
            BARE: bare_view_app(),
            NEAR: stash_view_app(stash, near_ttl=ttl),
            "(t) flask-stash near, server-invalidated": stash_view_app(
                {**stash, "CACHE_REDIS_CLIENT_CACHE": True}
            ),
            "(s) flask-stash redis hit": stash_view_app(stash),
            "(c) flask-caching redis hit": flask_caching_view_app(
                {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}
            ),
        }
        try:
            medians = measure(
                f"hot page: near cache (ttl {ttl:g} s) in front of Redis (loopback)",
                apps,
                rounds,
                number,
            )
            verdict(medians)
        finally:
            for app in apps.values():
                for state in app.extensions.get("flask_stash", {}).values():
                    close = getattr(getattr(state, "store", None), "close", None)
                    if close is not None:
                        close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--number", type=int, default=1000)
    parser.add_argument("--ttl", type=float, default=5.0, help="near-cache ttl, seconds")
    options = parser.parse_args(argv)
    logging.getLogger("flask_caching").setLevel(logging.ERROR)
    for binary, bench in (("memcached", bench_memcached), ("redis-server", bench_redis)):
        if shutil.which(binary) is None:
            print(f"\n{binary} is not installed: skipped", file=sys.stderr)
            continue
        bench(options.rounds, options.number, options.ttl)


if __name__ == "__main__":
    main()
