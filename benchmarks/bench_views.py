"""Cost of one cached view hit at the WSGI boundary, against a bare view and Flask-Caching.

(a) a bare Flask view returning a constant 2 KiB body;
(b) the same view under Flask-Stash ``@cached``, a hit on the memory store,
    with a query string in the URL;
(c) Flask-Caching ``@cached(query_string=True)`` on SimpleCache, a hit.
Target: (b)/(a) <= 1.10.
"""

from __future__ import annotations

import argparse
import functools
import logging

from flask import Flask
from flask_caching import Cache as FlaskCachingCache

from flask_stash import Cache

from .common import environ_for, interleaved, report, wsgi_call

BODY = "x" * 2048
QUERY = "name=alice&page=2"


def bare_app() -> Flask:
    app = Flask("bare")

    @app.route("/page")
    def page() -> str:
        return BODY

    return app


def stash_app(fast_lane: bool = False) -> Flask:
    app = Flask("stash")
    cache = Cache(app, config={"CACHE_TYPE": "memory", "CACHE_FAST_LANE": fast_lane})

    @app.route("/page")
    @cache.cached(timeout=300)
    def page() -> str:
        return BODY

    return app


def flask_caching_app() -> Flask:
    app = Flask("flask_caching")
    cache = FlaskCachingCache(app, config={"CACHE_TYPE": "SimpleCache"})

    @app.route("/page")
    @cache.cached(timeout=300, query_string=True)
    def page() -> str:
        return BODY

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=2000)
    options = parser.parse_args(argv)
    logging.getLogger("flask_caching").setLevel(logging.ERROR)

    environ = environ_for("/page", QUERY)
    apps = {
        "(a) bare view": bare_app(),
        "(b) flask-stash hit": stash_app(),
        "(c) flask-caching hit": flask_caching_app(),
        "(d) flask-stash hit, CACHE_FAST_LANE": stash_app(fast_lane=True),
    }
    for app in apps.values():
        assert wsgi_call(app, environ) == BODY.encode()  # fill the caches

    cases = {name: functools.partial(wsgi_call, app, environ) for name, app in apps.items()}
    medians = interleaved(cases, options.rounds, options.number)
    report("view hit, memory store, 2 KiB body, query string in URL", medians, "(a) bare view")
    ratio = medians["(b) flask-stash hit"] / medians["(a) bare view"]
    print(f"  target (b)/(a) <= 1.00: {'met' if ratio <= 1.00 else 'MISSED'} ({ratio:.3f})")


if __name__ == "__main__":
    main()
