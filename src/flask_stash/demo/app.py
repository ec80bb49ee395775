"""A small app that shows what Flask-Stash does, and counts it live.

- ``/?name=alice``: a cached view whose query string is part of its key;
- ``/slow``: about half a second of work, cached for 30 seconds;
- ``/shop/``: a blueprint with app-level and blueprint-level
  ``before_request`` hooks, which run on every request, hits included
  (the ``X-Hooks`` header and the statistics page show their order);
- ``/fragment``: a page rendered on every request, with a slow part kept
  by the ``{% cache %}`` template tag;
- ``/stats``: hits, misses, stores, skips and errors per view, and the hit
  ratio over the last five minutes as a chart, fed by ``/stats/history.json``
  (``/stats.json`` has the counters);
- ``/metrics``: the counters for Prometheus, when prometheus-client is installed.

Every response says what the cache did (``X-Cache``, ``Age``,
``Cache-Control``), and every page shows it in its status line: hit or
miss, its age and its key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from flask_stash import Cache

cache = Cache()

shop = Blueprint("shop", __name__, url_prefix="/shop")

#: Where a page shows what the cache did for it (see ``show_cache_status``).
STATUS_MARK = "<!-- cache status -->"

#: The order the hooks ran in on the last shop request; shown on /stats.
HOOK_TRACE: list[str] = []


@shop.before_request
def blueprint_hook() -> None:
    g.hooks.append("blueprint before_request")


@shop.route("/")
@cache.cached(timeout=60)
def shop_index() -> str:
    g.hooks.append("view")
    return render_template("shop.html", computed_at=time.strftime("%H:%M:%S"))


def primes(n: int) -> list[int]:
    """The first *n* primes, slowly: the work a cached fragment saves."""
    time.sleep(0.3)
    found: list[int] = []
    candidate = 2
    while len(found) < max(0, min(n, 1000)):
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
        candidate += 1
    return found


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the demo app; *config* overrides its defaults (tests use this)."""
    app = Flask(__name__)
    # X-Cache and Cache-Control make what the cache did visible to curl -i.
    app.config.update(
        CACHE_TYPE="memory",
        CACHE_DEFAULT_TIMEOUT=60,
        CACHE_X_CACHE_HEADER=True,
        CACHE_SEND_CACHE_CONTROL=True,
    )
    if config:
        app.config.update(config)
    cache.init_app(app)

    @app.before_request
    def app_hook() -> None:
        g.hooks = ["app before_request"]

    @app.after_request
    def show_hooks(response: Any) -> Any:
        # after_request runs after the cached view, so this is fresh on hits.
        if request.blueprint == "shop":
            HOOK_TRACE[:] = g.hooks
            response.headers["X-Hooks"] = ", ".join(g.hooks)
        # One sample of the running totals per second, for the chart on /stats.
        cache.stats.history.sample()
        return show_cache_status(response)

    def show_cache_status(response: Response) -> Response:
        """Write what the cache did for this response into the page's status line.

        The stored page keeps the placeholder: this runs after the cache, on
        hits too, so each visit shows its own outcome, age and key.
        """
        if response.mimetype != "text/html" or response.direct_passthrough:
            return response
        body = response.get_data(as_text=True)
        if STATUS_MARK not in body:
            return response
        outcome = response.headers.get("X-Cache")
        make_key = getattr(app.view_functions.get(request.endpoint or ""), "make_cache_key", None)
        if outcome is None or make_key is None:
            status = Markup("not cached: made for this request")
        else:
            status = Markup("{} · age {} s · key <code>{}</code>").format(
                outcome, response.headers.get("Age", "0"), make_key()
            )
        response.set_data(body.replace(STATUS_MARK, status, 1))
        if "ETag" in response.headers:
            response.add_etag(overwrite=True)  # the page sent is not the one stored
        return response

    @app.route("/")
    @cache.cached(timeout=60)
    def index() -> str:
        name = request.args.get("name", "world")
        return render_template("index.html", name=name, computed_at=time.strftime("%H:%M:%S"))

    @app.route("/slow")
    @cache.cached(timeout=30)
    def slow() -> str:
        started = time.perf_counter()
        time.sleep(0.5)
        took = time.perf_counter() - started
        return render_template("slow.html", took=took, computed_at=time.strftime("%H:%M:%S"))

    @app.route("/fragment")
    def fragment() -> str:
        n = request.args.get("n", 10, type=int)
        return render_template(
            "fragment.html", n=n, primes=primes, now=lambda: time.strftime("%H:%M:%S")
        )

    @app.route("/stats")
    def stats() -> str:
        return render_template(
            "stats.html", stats=cache.stats, store=cache.cache.describe(), hook_trace=HOOK_TRACE
        )

    @app.route("/stats.json")
    def stats_json() -> ResponseReturnValue:
        return jsonify(store=cache.cache.describe(), **cache.stats.as_dict())

    @app.route("/stats/history.json")
    def stats_history() -> ResponseReturnValue:
        """Hits and misses per second over the last five minutes, for the chart."""
        return jsonify(cache.stats.history.as_dict())

    try:
        from flask_stash.metrics import mount_metrics
    except ImportError:  # the prometheus extra is not installed
        pass
    else:
        mount_metrics(app, cache)

    app.register_blueprint(shop)
    return app
