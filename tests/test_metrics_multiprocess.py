"""Prometheus multiprocess mode: the counters of every worker, behind one scrape."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask

from flask_stash import Cache

from .servers import free_port, require_binary, wait_for_port

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client import values  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from flask_stash import metrics  # noqa: E402
from flask_stash.metrics import child_exit, mount_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def sample(text: str, series: str, **labels: str) -> float | None:
    """The value of *series* with *labels* in a scrape, or None."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == series and found.labels == labels:
                return float(found.value)
    return None


# -- in this process ---------------------------------------------------------------


@pytest.fixture
def multiprocess_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Multiprocess mode as prometheus-client sets it up when the variable is set at import."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # type: ignore[no-untyped-call]
    yield tmp_path
    for exporter in list(metrics._exporters):
        exporter.stop()


def make_app() -> tuple[Flask, Cache]:
    app = Flask(__name__)
    cache = Cache(app, config={"CACHE_TYPE": "memory"})

    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "hello"

    return app, cache


def test_counters_are_written_to_the_directory_once(multiprocess_dir: Path) -> None:
    app, cache = make_app()
    mount_metrics(app, cache)
    client = app.test_client()
    for _ in range(4):
        client.get("/")
    first = client.get("/metrics").text
    assert sample(first, "flask_stash_hits_total", name="index") == 3
    assert sample(first, "flask_stash_misses_total", name="index") == 1
    assert sample(first, "flask_stash_errors_total", name="index") == 0  # shown from the start
    assert 'flask_stash_store_info{shared="false",type="memory"} 1.0' in first
    assert list(multiprocess_dir.glob("counter_*.db"))
    # Copied again at each scrape, the counts are not added twice.
    again = client.get("/metrics").text
    assert sample(again, "flask_stash_hits_total", name="index") == 3
    client.get("/")
    assert sample(client.get("/metrics").text, "flask_stash_hits_total", name="index") == 4


def test_counts_after_a_reset_are_added_to_those_before(multiprocess_dir: Path) -> None:
    app, cache = make_app()
    mount_metrics(app, cache)
    client = app.test_client()
    client.get("/")
    client.get("/")
    client.get("/metrics")
    cache.stats.reset()  # a Prometheus counter never goes down
    client.get("/")
    assert sample(client.get("/metrics").text, "flask_stash_hits_total", name="index") == 2
    cache.init_app(app)  # a new Stats, and a new (empty) store
    client.get("/")
    client.get("/")
    text = client.get("/metrics").text
    assert sample(text, "flask_stash_hits_total", name="index") == 3
    assert sample(text, "flask_stash_misses_total", name="index") == 2


def test_the_thread_copies_without_a_scrape(multiprocess_dir: Path) -> None:
    app, cache = make_app()
    registry = prometheus_client.CollectorRegistry()
    metrics.register_metrics(app, cache, registry, sync_interval=0.05)
    client = app.test_client()
    client.get("/")
    client.get("/")
    collected = prometheus_client.CollectorRegistry()
    prometheus_client.multiprocess.MultiProcessCollector(collected, path=str(multiprocess_dir))
    deadline = time.monotonic() + 5
    hits = None
    while time.monotonic() < deadline and hits != 1:
        time.sleep(0.05)
        hits = sample(
            prometheus_client.generate_latest(collected).decode(),
            "flask_stash_hits_total",
            name="index",
        )
    assert hits == 1
    # The registry given gets the store's info, not per-process counters.
    own = prometheus_client.generate_latest(registry).decode()
    assert "flask_stash_store_info" in own
    assert "flask_stash_hits_total" not in own


def test_a_variable_set_after_prometheus_client_was_imported_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app, cache = make_app()
    with pytest.raises(RuntimeError, match="set after prometheus_client was imported"):
        mount_metrics(app, cache)


def test_a_missing_directory_is_refused(tmp_path: Path, multiprocess_dir: Path) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "missing")
    app, cache = make_app()
    with pytest.raises(ValueError, match="not a directory"):
        metrics.register_metrics(app, cache, prometheus_client.CollectorRegistry())


def test_child_exit_marks_the_worker_dead(multiprocess_dir: Path) -> None:
    live = multiprocess_dir / "gauge_livesum_4242.db"
    kept = multiprocess_dir / "counter_4242.db"
    live.write_bytes(b"")
    kept.write_bytes(b"")
    child_exit(None, SimpleNamespace(pid=4242))
    assert not live.exists()
    assert kept.exists()


# -- under gunicorn, with two worker processes ---------------------------------------


class Server:
    """gunicorn serving tests/metrics_app.py with two sync workers."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        gunicorn = require_binary("gunicorn", str(Path(sys.executable).with_name("gunicorn")))
        directory = tmp_path / "prometheus"
        directory.mkdir()
        config = tmp_path / "gunicorn.conf.py"
        config.write_text(
            # What a user's config file needs for multiprocess mode.
            "from flask_stash.metrics import child_exit  # noqa: F401\n"
            # No control socket in the home directory (gunicorn 27), shared by
            # every server; older versions ignore the setting.
            "control_socket_disable = True\n"
        )
        self.port = free_port()
        self.log = (tmp_path / "gunicorn.log").open("w+b")
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        self.process = subprocess.Popen(
            [
                gunicorn,
                "--config",
                str(config),
                "--workers",
                "2",
                "--worker-class",
                "sync",
                "--bind",
                f"127.0.0.1:{self.port}",
                *options,
                "tests.metrics_app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process, self.log, timeout=30)
        #: Hits and misses seen in the responses, by the pid of the worker.
        self.hits: collections.Counter[int] = collections.Counter()
        self.misses: collections.Counter[int] = collections.Counter()

    def get(self, path: str) -> tuple[int, str | None]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as answer:
            pid = int(answer.headers["X-Pid"])
            return pid, answer.headers.get("X-Cache")

    def request_page(self) -> int:
        pid, label = self.get("/")
        if label == "HIT":
            self.hits[pid] += 1
        elif label == "MISS":
            self.misses[pid] += 1
        return pid

    def until_workers_hit(self, pids: int, at_least: int = 3) -> None:
        """Request the page until *pids* workers served *at_least* hits each."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.request_page()
            if len([n for n in self.hits.values() if n >= at_least]) >= pids:
                return
        pytest.fail(f"the hits did not spread over {pids} workers: {dict(self.hits)}")

    def scraped_hits(self) -> float | None:
        """The hit counter in one scrape, once every worker's copy is due.

        Only the scrape's own worker copies its counts when scraped: the
        others' must come from their threads, every 0.2 seconds.
        """
        time.sleep(1.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics") as answer:
            return sample(answer.read().decode(), "flask_stash_hits_total", name="index")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.mark.parametrize("options", [(), ("--preload",)], ids=["app-per-worker", "preload"])
def test_a_scrape_counts_the_hits_of_every_worker(tmp_path: Path, options: tuple[str, ...]) -> None:
    server = Server(tmp_path, *options)
    try:
        server.until_workers_hit(2)
        total = sum(server.hits.values())
        assert len(server.hits) == 2
        assert max(server.hits.values()) < total  # no single worker saw them all
        assert server.scraped_hits() == total, (dict(server.hits), server.log.name)

        # A worker that exits keeps its share; the one started in its place adds its own.
        gone = next(iter(server.hits))
        os.kill(gone, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(server.hits) < 3:
            try:
                server.request_page()
            except OSError:  # the worker stopping as it answered
                continue
        assert len(server.hits) == 3, dict(server.hits)
        total = sum(server.hits.values())
        assert server.scraped_hits() == total, (dict(server.hits), server.log.name)
        assert sum(server.misses.values()) == 3  # one per worker, each with its own store
    finally:
        server.stop()
