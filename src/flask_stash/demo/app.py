"""A small app that shows what Flask-Stash does, and counts it live.

- ``/?name=alice``: a cached view whose query string is part of its key;
- ``/slow``: about half a second of work, cached for 30 seconds;
- ``/shop/``: a blueprint with app-level and blueprint-level
  ``before_request`` hooks, which run on every request, hits included
  (the ``X-Hooks`` header and the statistics page show their order);
- ``/stats``: hits, misses, stores and errors per view (``/stats.json`` too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from flask_stash import Cache

cache = Cache()

shop = Blueprint("shop", __name__, url_prefix="/shop")

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


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the demo app; *config* overrides its defaults (tests use this)."""
    app = Flask(__name__)
    app.config.update(CACHE_TYPE="memory", CACHE_DEFAULT_TIMEOUT=60)
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

    @app.route("/stats")
    def stats() -> str:
        return render_template(
            "stats.html", stats=cache.stats, store=cache.cache.describe(), hook_trace=HOOK_TRACE
        )

    @app.route("/stats.json")
    def stats_json() -> ResponseReturnValue:
        return jsonify(store=cache.cache.describe(), **cache.stats.as_dict())

    app.register_blueprint(shop)
    return app
