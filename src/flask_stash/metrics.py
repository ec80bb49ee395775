"""Prometheus metrics of a cache, read from its counters.

Needs the ``prometheus`` extra (``pip install flask-stash[prometheus]``).
Nothing is counted twice: :class:`CacheCollector` reads ``Stats`` when
Prometheus scrapes, so requests pay nothing for it. Serve ``/metrics``::

    from flask_stash.metrics import mount_metrics
    mount_metrics(app)  # GET /metrics: this app's cache counters

or add the collector to a registry you already expose::

    from flask_stash.metrics import register_metrics
    register_metrics(app)  # prometheus_client's default REGISTRY

Series, each with a ``name`` label: the endpoint of a view (``index``,
``shop.index``), ``module.qualname`` of a function (see
:func:`flask_stash.stats.function_label`), ``fragment:<name>`` of a
template fragment. They are ``flask_stash_hits_total``,
``flask_stash_misses_total``, ``flask_stash_stores_total``,
``flask_stash_errors_total`` and ``flask_stash_skips_total`` (with a
``reason`` label too), the unlabelled ``flask_stash_integrity_errors_total``,
plus ``flask_stash_store_info`` naming the store. The hit ratio is
``rate(hits) / (rate(hits) + rate(misses))`` in a query.

Counters live in each process. Under a server with several worker
processes (gunicorn), either scrape every worker, or use
prometheus-client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to
an empty directory in the environment the server starts with (emptied at
each start: the files of past processes count), and :func:`mount_metrics`
serves the sum over every worker, whichever one answers the scrape (see
:class:`ProcessExporter`). In gunicorn's config file, add the hook that
tells prometheus-client a worker is gone::

    from flask_stash.metrics import child_exit  # noqa: F401 (a gunicorn hook)

``Stats`` (and pages built on it) still count per process.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from .state import AppState
from .stats import Counters

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        generate_latest,
        values,
    )
    from prometheus_client.core import CounterMetricFamily, InfoMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
    from prometheus_client.registry import Collector
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "flask_stash.metrics needs prometheus-client: pip install 'flask-stash[prometheus]'"
    ) from error

if TYPE_CHECKING:
    from .extension import Cache

__all__ = [
    "CacheCollector",
    "ProcessExporter",
    "child_exit",
    "mount_metrics",
    "multiprocess_mode",
    "register_metrics",
]

logger = logging.getLogger("flask_stash")

#: The per-name counters, with their help texts.
_FIELDS = (
    ("hits", "Lookups that found a usable entry."),
    ("misses", "Lookups that found none, so the value was computed."),
    ("stores", "Computed values written to the store."),
    ("errors", "Store operations that failed; the request went on uncached."),
)
_SKIPS_HELP = "Times the store was left alone on purpose, by reason."
_INTEGRITY_HELP = (
    "Entries refused by their signature check (forged, copied from another key, "
    "or under an old secret) and read as misses."
)


def _state_of(app: Flask, cache: Cache | None) -> AppState:
    if cache is not None:
        return cache.state(app)
    for state in app.extensions.get("flask_stash", {}).values():
        if isinstance(state, AppState):
            return state
    raise RuntimeError(f"no Flask-Stash Cache is set up on app {app.name!r}")


def multiprocess_mode() -> bool:
    """Whether prometheus-client's multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR`` set).

    :raises RuntimeError: if the variable was set only after prometheus-client
        was imported: its metrics would then count in memory, and nothing
        would reach the directory.
    """
    wanted = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    if wanted and not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError(
            "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported; "
            "set it in the environment the server starts with"
        )
    return wanted


def _multiprocess_dir() -> str:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not os.path.isdir(path):
        raise ValueError(f"PROMETHEUS_MULTIPROC_DIR is not a directory: {path!r}")
    return path


class CacheCollector(Collector):
    """Exposes one cache's counters on one app, read at each scrape.

    *cache* defaults to the first one set up on *app*. Series names start
    with *namespace*: a second cache in the same registry needs another one
    (the registry refuses duplicate names when the collector is registered).
    With *counters* false only ``<namespace>_store_info`` is exposed: in
    multiprocess mode the counters come from the directory instead.
    """

    def __init__(
        self,
        app: Flask,
        cache: Cache | None = None,
        *,
        namespace: str = "flask_stash",
        counters: bool = True,
    ) -> None:
        _state_of(app, cache)  # fail now, not at the first scrape
        self.app = app
        self.cache = cache
        self.namespace = namespace
        self.counters = counters
        #: In multiprocess mode, what writes the counters to the directory;
        #: kept here so that it lives as long as the collector.
        self.exporter: ProcessExporter | None = None

    def describe(self) -> Iterable[Metric]:
        # The series names, so the registry can refuse duplicates up front.
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        state = _state_of(self.app, self.cache)
        if self.counters:
            yield from self._counters(state)
        info = InfoMetricFamily(f"{self.namespace}_store", "The store the cache keeps entries in.")
        store = state.store
        labels = {"type": store.name, "shared": str(store.shared).lower()}
        if store.shared:  # an unshared store's description changes with its size
            labels["address"] = store.describe()
        info.add_metric([], labels)
        yield info

    def _counters(self, state: AppState) -> Iterator[Metric]:
        stats = state.stats
        prefix = self.namespace
        families = {
            field: CounterMetricFamily(f"{prefix}_{field}", text, labels=["name"])
            for field, text in _FIELDS
        }
        skips = CounterMetricFamily(f"{prefix}_skips", _SKIPS_HELP, labels=["name", "reason"])
        # A copy: a request may add a name while this runs.
        for name, counters in sorted(dict(stats.by_name).items()):
            for field, family in families.items():
                family.add_metric([name], getattr(counters, field))
            for reason, count in sorted(dict(counters.skips).items()):
                skips.add_metric([name, reason], count)
        yield from families.values()
        yield skips
        yield CounterMetricFamily(
            f"{prefix}_integrity_errors", _INTEGRITY_HELP, value=stats.total.integrity_errors
        )


# -- multiprocess mode ---------------------------------------------------------


@dataclass(frozen=True)
class _Families:
    """The prometheus-client counters one namespace is written to in this process."""

    by_field: dict[str, Counter]
    skips: Counter
    integrity_errors: Counter


#: Shared by every exporter of a namespace in the process: two metric
#: objects of one series would overwrite each other's value in the
#: process' file. Keyed by value class too, which is chosen at import.
_families: dict[tuple[str, object], _Families] = {}
_exporters: weakref.WeakSet[ProcessExporter] = weakref.WeakSet()
_setup_lock = threading.Lock()
_hooks_installed = False


def _families_for(namespace: str) -> _Families:
    with _setup_lock:
        key = (namespace, values.ValueClass)
        found = _families.get(key)
        if found is None:
            found = _families[key] = _Families(
                by_field={
                    field: Counter(f"{namespace}_{field}", text, ["name"], registry=None)
                    for field, text in _FIELDS
                },
                skips=Counter(f"{namespace}_skips", _SKIPS_HELP, ["name", "reason"], registry=None),
                integrity_errors=Counter(
                    f"{namespace}_integrity_errors", _INTEGRITY_HELP, registry=None
                ),
            )
        return found


class ProcessExporter:
    """Copies one cache's counters of this process into prometheus-client's files.

    The hit path keeps counting in ``Stats`` as in a single process, paying
    nothing for multiprocess mode. What was counted since the last copy is
    added to prometheus-client ``Counter`` objects, which keep their values
    in this process' file under ``PROMETHEUS_MULTIPROC_DIR``: at every scrape
    this process serves (:func:`sync_all`), every *interval* seconds from a
    daemon thread, and at exit. A ``MultiProcessCollector`` adds up the
    files of every process, those of exited workers included, so totals
    never go down; the other workers' share is at most *interval* seconds
    old. After a fork the child copies only what it counts itself, and its
    thread is started again (an app loaded before forking, as with
    gunicorn's ``--preload``).
    """

    def __init__(
        self,
        app: Flask,
        cache: Cache | None = None,
        *,
        namespace: str = "flask_stash",
        interval: float = 1.0,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be more than 0 seconds")
        _state_of(app, cache)
        self.app = app
        self.cache = cache
        self.namespace = namespace
        self.interval = interval
        self.families = _families_for(namespace)
        self._lock = threading.Lock()
        #: The totals copied last: a new object is a new or reset Stats.
        self._total: Counters | None = None
        self._integrity_errors = 0
        #: Per name: the Counters object copied from, and what was copied.
        self._copied: dict[str, tuple[Counters, dict[tuple[str, ...], int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _install_process_hooks()
        _exporters.add(self)
        self.start()

    def sync(self, *, write: bool = True) -> None:
        """Add what was counted since the last call; without *write*, only note it."""
        with self._lock:
            stats = _state_of(self.app, self.cache).stats
            total = stats.total
            if total is not self._total:
                self._total, self._integrity_errors, self._copied = total, 0, {}
            families = self.families
            count = total.integrity_errors
            if count > self._integrity_errors:
                if write:
                    families.integrity_errors.inc(count - self._integrity_errors)
                self._integrity_errors = count
            for name, counters in dict(stats.by_name).items():
                seen = self._copied.get(name)
                if seen is None or seen[0] is not counters:
                    seen = self._copied[name] = (counters, {})
                copied = seen[1]
                for field, family in families.by_field.items():
                    self._add(copied, (field,), getattr(counters, field), family, write, name)
                for reason, n in dict(counters.skips).items():
                    self._add(copied, ("skip", reason), n, families.skips, write, name, reason)

    @staticmethod
    def _add(
        copied: dict[tuple[str, ...], int],
        key: tuple[str, ...],
        count: int,
        family: Counter,
        write: bool,
        *labels: str,
    ) -> None:
        previous = copied.get(key)
        if previous is None or count > previous:
            if write:
                # Created at first sight, so that the series shows from 0 as
                # it does in a single process.
                child = family.labels(*labels)
                if count > (previous or 0):
                    child.inc(count - (previous or 0))
            copied[key] = count

    def start(self) -> None:
        """Copy every *interval* seconds from a daemon thread, until :meth:`stop`."""
        self._stop.clear()
        thread = threading.Thread(
            target=_copy_periodically,
            args=(weakref.ref(self), self._stop, self.interval),
            name="flask-stash-metrics",
            daemon=True,
        )
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the thread (a last :meth:`sync` is the caller's to make)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # the parent's was held over the fork
        try:
            self.sync(write=False)  # the parent's counts are the parent's to copy
        except Exception:  # a fork handler must not raise
            logger.debug("metrics: reading the counters after a fork failed", exc_info=True)
        self._stop = threading.Event()
        self.start()


def _copy_periodically(
    exporter: weakref.ref[ProcessExporter], stop: threading.Event, interval: float
) -> None:
    while not stop.wait(interval):
        found = exporter()
        if found is None:
            return
        try:
            found.sync()
        except Exception:  # an app torn down, a full disk: try again later
            logger.debug("metrics: copying the counters failed", exc_info=True)
        del found


def sync_all() -> None:
    """Copy the counters of every exporter of this process (before a scrape)."""
    for exporter in list(_exporters):
        exporter.sync()


def _flush_at_exit() -> None:
    for exporter in list(_exporters):
        exporter.stop()
        try:
            exporter.sync()
        except Exception:  # exiting: nothing more to be done about it
            logger.debug("metrics: copying the counters at exit failed", exc_info=True)


def _before_fork() -> None:
    # No copy may be half done in a child: it would inherit held locks.
    for exporter in list(_exporters):
        exporter._lock.acquire()


def _after_fork_in_parent() -> None:
    for exporter in list(_exporters):
        exporter._lock.release()


def _after_fork_in_child() -> None:
    for exporter in list(_exporters):
        exporter._after_fork()


def _install_process_hooks() -> None:
    global _hooks_installed
    with _setup_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    atexit.register(_flush_at_exit)
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook for multiprocess mode; put it in its config file.

    Runs in the master when a worker exits and calls prometheus-client's
    ``mark_process_dead`` for it, which drops the files of the worker's
    live gauges (an app's own; the cache's counters are kept, so that
    totals do not go down).
    """
    mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


# -- setting up -----------------------------------------------------------------


def register_metrics(
    app: Flask,
    cache: Cache | None = None,
    registry: CollectorRegistry | None = None,
    *,
    namespace: str = "flask_stash",
    sync_interval: float = 1.0,
) -> CacheCollector:
    """Add a :class:`CacheCollector` to *registry* (prometheus_client's default one).

    In multiprocess mode (see :func:`multiprocess_mode`) the counters are
    written to the directory every *sync_interval* seconds by a
    :class:`ProcessExporter` instead, and *registry* gets the store's info
    only: serve a registry that holds a ``MultiProcessCollector``, as
    prometheus-client documents, or use :func:`mount_metrics`, which does.
    """
    if not multiprocess_mode():
        collector = CacheCollector(app, cache, namespace=namespace)
        (REGISTRY if registry is None else registry).register(collector)
        return collector
    _multiprocess_dir()
    collector = CacheCollector(app, cache, namespace=namespace, counters=False)
    (REGISTRY if registry is None else registry).register(collector)
    collector.exporter = ProcessExporter(app, cache, namespace=namespace, interval=sync_interval)
    return collector


def mount_metrics(
    app: Flask,
    cache: Cache | None = None,
    path: str = "/metrics",
    registry: CollectorRegistry | None = None,
    *,
    namespace: str = "flask_stash",
    sync_interval: float = 1.0,
) -> CollectorRegistry:
    """Serve the cache's metrics at *path* on *app*, in Prometheus' text format.

    Without *registry*, a registry of its own holds just this cache's
    collector, so several apps in one process never clash; pass one to
    serve other metrics alongside. Returns the registry served.

    In multiprocess mode, a registry of its own also holds a
    ``MultiProcessCollector``, so it serves the counters of every process
    using the directory, and any other metric they keep there; a registry
    passed in must hold one already. Each scrape first copies the counters
    of the process serving it, so those are exact; see :func:`register_metrics`.
    """
    multiprocess = multiprocess_mode()
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
        if multiprocess:
            MultiProcessCollector(registry, path=_multiprocess_dir())  # type: ignore[no-untyped-call]
    register_metrics(app, cache, registry, namespace=namespace, sync_interval=sync_interval)
    served = registry

    def metrics() -> Response:
        if multiprocess:
            sync_all()
        return Response(generate_latest(served), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule(path, endpoint="flask_stash_metrics", view_func=metrics)
    return registry
