"""An app for the multiprocess metrics tests: ``gunicorn 'tests.metrics_app:create_app()'``.

Each response names the worker process that answered (``X-Pid``), and
``/metrics`` serves the cache's counters summed over every worker.
"""

from __future__ import annotations

import os

from flask import Flask, Response

from flask_stash import Cache
from flask_stash.metrics import mount_metrics


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(CACHE_TYPE="memory", CACHE_X_CACHE_HEADER=True)
    cache = Cache(app)

    @app.after_request
    def name_the_worker(response: Response) -> Response:
        response.headers["X-Pid"] = str(os.getpid())
        return response

    @app.route("/")
    @cache.cached(timeout=300)
    def index() -> str:
        return "hello"

    @app.route("/other")
    @cache.cached(timeout=300)
    def other() -> str:
        return "other"

    # Copied often, so that a test sees the other worker's counts soon.
    mount_metrics(app, cache, sync_interval=0.2)
    return app
