"""An app for the cross-process stampede test; importable by spawned processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from flask import Flask

from flask_stash import Cache


def make_app(url: str, prefix: str, log: Path) -> Flask:
    """A view that takes 0.3 s and appends a line to *log* each time it runs."""
    app = Flask(__name__)
    app.config.update(CACHE_URL=url, CACHE_KEY_PREFIX=prefix, SECRET_KEY="stampede")
    cache = Cache(app)

    @app.route("/slow")
    @cache.cached(timeout=60)
    def slow() -> str:
        with log.open("a") as out:
            out.write("ran\n")
        time.sleep(0.3)
        return "computed once"

    return app


def fire(url: str, prefix: str, log: str, threads: int, start_at: float, results: str) -> None:
    """Send *threads* concurrent requests at *start_at* (wall clock); write bodies to *results*."""
    app = make_app(url, prefix, Path(log))
    bodies: list[str] = []

    def one() -> None:
        client = app.test_client()
        time.sleep(max(0.0, start_at - time.time()))
        bodies.append(client.get("/slow").text)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with open(results, "a") as out:
        out.write("".join(body + "\n" for body in bodies))
    for state in app.extensions["flask_stash"].values():
        state.store.close()
