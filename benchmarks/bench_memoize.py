"""Cost of a ``@memoize`` hit, in microseconds, side by side in one run.

Memory store, for a function returning an int and one returning a dict
(which both libraries keep pickled, so each hit unpickles a new copy):
- (p) the plain function, called directly;
- (s) Flask-Stash ``@memoize``, a hit;
- (c) Flask-Caching ``@memoize`` on ``SimpleCache``, a hit.
Target: (s) <= 1 µs.

memcached and Redis (real local servers, when installed):
- (r) one raw client get of the same pickled value: the least a remote hit can cost;
- (s) Flask-Stash ``@memoize``, a hit;
- (c) Flask-Caching ``@memoize``, a hit.
Target: (s)/(r) <= 1.05.

Each call runs inside an app context, as in a request.
"""

from __future__ import annotations

import argparse
import functools
import logging
import pickle
import shutil
import sys
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_caching import Cache as FlaskCachingCache

from flask_stash import Cache

from .bench_remote import memcached_argv, redis_argv, server
from .common import interleaved, report

VALUE = {"user": 42, "name": "alice", "roles": ["admin", "editor"]}


def total(a: int, b: int) -> dict[str, Any]:
    return {**VALUE, "sum": a + b}


def add(a: int, b: int) -> int:
    return a + b


@functools.cache
def bench_app() -> Flask:
    """One app for every case, its context pushed for good (on first use).

    Both libraries keep their state per cache object, side by side in
    ``app.extensions``.
    """
    app = Flask("bench_memoize")
    app.config["CACHE_SECRET_KEY"] = "bench"
    app.app_context().push()
    return app


def memoized(cache: Any, plain: Callable[..., Any]) -> Callable[[], object]:
    """A hit of ``@cache.memoize`` on *plain*."""
    function = cache.memoize(timeout=300)(plain)
    function(20, 22)
    function(20, 22)
    return lambda: function(20, 22)


def stash_call(config: dict[str, Any], plain: Callable[..., Any] = total) -> Callable[[], object]:
    return memoized(Cache(bench_app(), config=config), plain)


def flask_caching_call(
    config: dict[str, Any], plain: Callable[..., Any] = total
) -> Callable[[], object]:
    return memoized(FlaskCachingCache(bench_app(), config=config), plain)


def bench_memory(rounds: int, number: int) -> None:
    ours, theirs = {"CACHE_TYPE": "memory"}, {"CACHE_TYPE": "SimpleCache"}
    cases = {
        "(p) plain call, int result": lambda: add(20, 22),
        "(s) flask-stash hit, int result": stash_call(ours, add),
        "(c) flask-caching hit, int result": flask_caching_call(theirs, add),
        "(s) flask-stash hit, dict result": stash_call(ours),
        "(c) flask-caching hit, dict result": flask_caching_call(theirs),
    }
    medians = interleaved(cases, rounds, number)
    report("@memoize hit, memory store", medians, "(p) plain call, int result", digits=3)
    for result in ("int", "dict"):
        micro = medians[f"(s) flask-stash hit, {result} result"] * 1e6
        met = "met" if micro <= 1 else "MISSED"
        print(f"  flask-stash hit, {result} result = {micro:.3f} µs; target <= 1 µs: {met}")


def bench_remote(
    title: str, raw_get: Callable[[], object], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    cases = {
        "(r) raw client get": raw_get,
        "(s) flask-stash hit": stash_call(ours),
        "(c) flask-caching hit": flask_caching_call(theirs),
    }
    medians = interleaved(cases, 9, 1000)
    report(title, medians, "(r) raw client get", digits=3)
    ratio = medians["(s) flask-stash hit"] / medians["(r) raw client get"]
    met = "met" if ratio <= 1.05 else "MISSED"
    print(f"  flask-stash / raw get = {ratio:.3f}; target <= 1.05: {met}")


def bench_memcached() -> None:
    from pymemcache.client.base import Client

    with server(memcached_argv) as memcached:
        raw = Client(("127.0.0.1", memcached.port), no_delay=True)
        raw.set("raw-value", pickle.dumps(total(20, 22)))
        servers = [memcached.address]
        bench_remote(
            "@memoize hit on memcached (loopback)",
            lambda: pickle.loads(raw.get("raw-value")),
            {"CACHE_TYPE": "memcached", "CACHE_MEMCACHED_SERVERS": servers},
            {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": servers},
        )


def bench_redis() -> None:
    import redis

    with server(redis_argv) as redis_server:
        url = f"redis://{redis_server.address}/0"
        raw = redis.Redis.from_url(url)
        raw.set("raw-value", pickle.dumps(total(20, 22)))
        bench_remote(
            "@memoize hit on Redis (loopback)",
            lambda: pickle.loads(raw.get("raw-value")),  # type: ignore[arg-type]
            {"CACHE_TYPE": "redis", "CACHE_REDIS_URL": url},
            {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url},
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--number", type=int, default=20000)
    options = parser.parse_args(argv)
    logging.getLogger("flask_caching").setLevel(logging.ERROR)
    bench_memory(options.rounds, options.number)
    for binary, bench in (("memcached", bench_memcached), ("redis-server", bench_redis)):
        if shutil.which(binary) is None:
            print(f"\n{binary} is not installed: skipped", file=sys.stderr)
            continue
        bench()


if __name__ == "__main__":
    main()
