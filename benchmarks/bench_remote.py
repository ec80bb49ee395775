"""Cost of a cached view hit on memcached and on Redis, on real local servers.

For each server, side by side in one run:
- (a) a bare Flask view returning a constant 2 KiB body;
- (r) the same view plus one raw client get of the same bytes
  (pymemcache or redis-py): the least a remote hit can cost;
- (s) Flask-Stash ``@cached``, a hit;
- (c) Flask-Caching ``@cached(query_string=True)`` on the same server, a hit.
Target: (s)/(r) <= 1.05.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask_caching import Cache as FlaskCachingCache
from tests.servers import ServerProcess, free_port

from flask_stash import Cache

from .bench_views import bare_app
from .common import environ_for, interleaved, report, wsgi_call

BODY = "x" * 2048
QUERY = "name=alice&page=2"


@contextmanager
def server(argv: Callable[[int], list[str]]) -> Iterator[ServerProcess]:
    port = free_port()
    process = ServerProcess(argv(port), port).start()
    try:
        yield process
    finally:
        process.stop()


def memcached_argv(port: int) -> list[str]:
    return ["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0"]


def redis_argv(port: int) -> list[str]:
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]


def raw_get_app(get: Callable[[], Any]) -> Flask:
    app = Flask("raw")

    @app.route("/page")
    def page() -> str:
        get()
        return BODY

    return app


def stash_app(config: dict[str, Any]) -> Flask:
    app = Flask("stash")
    # Entries in shared stores are signed. CACHE_SECRET_KEY rather than
    # SECRET_KEY, so Flask's sessions stay off as in the other apps measured.
    app.config["CACHE_SECRET_KEY"] = "bench"
    cache = Cache(app, config=config)
    return view_app_with(app, cache.cached(timeout=300))


def flask_caching_app(config: dict[str, Any]) -> Flask:
    app = Flask("flask_caching")
    cache = FlaskCachingCache(app, config=config)
    return view_app_with(app, cache.cached(timeout=300, query_string=True))


def view_app_with(app: Flask, decorator: Callable[[Any], Any]) -> Flask:
    @app.route("/page")
    @decorator
    def page() -> str:
        return BODY

    return app


def measure(title: str, apps: dict[str, Flask], rounds: int, number: int) -> dict[str, float]:
    environ = environ_for("/page", QUERY)
    for app in apps.values():
        assert wsgi_call(app, environ) == BODY.encode()
        assert wsgi_call(app, environ) == BODY.encode()
    cases = {name: functools.partial(wsgi_call, app, environ) for name, app in apps.items()}
    medians = interleaved(cases, rounds, number)
    report(title, medians, "(a) bare view")
    return medians


def verdict(medians: dict[str, float], stash: str, raw: str) -> None:
    ratio = medians[stash] / medians[raw]
    print(
        f"  flask-stash / (bare + raw get) = {ratio:.3f}; target <= 1.05: "
        f"{'met' if ratio <= 1.05 else 'MISSED'}"
    )


def bench_memcached(rounds: int, number: int) -> None:
    from pymemcache.client.base import Client

    with server(memcached_argv) as memcached:
        raw = Client(("127.0.0.1", memcached.port), no_delay=True)
        raw.set("raw-body", BODY.encode())
        apps = {
            "(a) bare view": bare_app(),
            "(r) bare + raw pymemcache get": raw_get_app(lambda: raw.get("raw-body")),
            "(s) flask-stash hit": stash_app(
                {"CACHE_TYPE": "memcached", "CACHE_MEMCACHED_SERVERS": [memcached.address]}
            ),
            "(c) flask-caching hit": flask_caching_app(
                {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": [memcached.address]}
            ),
        }
        medians = measure("view hit on memcached (loopback)", apps, rounds, number)
        verdict(medians, "(s) flask-stash hit", "(r) bare + raw pymemcache get")


def bench_redis(rounds: int, number: int) -> None:
    import redis

    with server(redis_argv) as redis_server:
        url = f"redis://{redis_server.address}/0"
        raw = redis.Redis.from_url(url)
        raw.set("raw-body", BODY.encode())
        apps = {
            "(a) bare view": bare_app(),
            "(r) bare + raw redis-py get": raw_get_app(lambda: raw.get("raw-body")),
            "(s) flask-stash hit": stash_app({"CACHE_TYPE": "redis", "CACHE_REDIS_URL": url}),
            "(c) flask-caching hit": flask_caching_app(
                {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url}
            ),
        }
        medians = measure("view hit on Redis (loopback)", apps, rounds, number)
        verdict(medians, "(s) flask-stash hit", "(r) bare + raw redis-py get")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--number", type=int, default=1000)
    options = parser.parse_args(argv)
    logging.getLogger("flask_caching").setLevel(logging.ERROR)
    for binary, bench in (("memcached", bench_memcached), ("redis-server", bench_redis)):
        if shutil.which(binary) is None:
            print(f"\n{binary} is not installed: skipped", file=sys.stderr)
            continue
        bench(options.rounds, options.number)


if __name__ == "__main__":
    main()
