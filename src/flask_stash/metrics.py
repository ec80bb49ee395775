"""Prometheus metrics of a cache, read from its counters at each scrape.

Needs the ``prometheus`` extra (``pip install flask-stash[prometheus]``).
Nothing is counted twice: :class:`CacheCollector` reads ``Stats`` when
Prometheus scrapes, so requests pay nothing for it. Serve ``/metrics``::

    from flask_stash.metrics import mount_metrics
    mount_metrics(app)  # GET /metrics: this app's cache counters

or add the collector to a registry you already expose::

    from flask_stash.metrics import register_metrics
    register_metrics(app)  # prometheus_client's default REGISTRY

Series, each with a ``name`` label (the view, function or fragment):
``flask_stash_hits_total``, ``flask_stash_misses_total``,
``flask_stash_stores_total``, ``flask_stash_errors_total`` and
``flask_stash_skips_total`` (with a ``reason`` label too), the unlabelled
``flask_stash_integrity_errors_total``, plus
``flask_stash_store_info`` naming the store. The hit ratio is
``rate(hits) / (rate(hits) + rate(misses))`` in a query.

Counters live in each process: with several worker processes every worker
exposes its own, and Prometheus sums them as usual (``sum by (name)``)
provided each is scraped; prometheus-client's multiprocess mode does not
apply to collectors like this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from .state import AppState

try:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, InfoMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "flask_stash.metrics needs prometheus-client: pip install 'flask-stash[prometheus]'"
    ) from error

if TYPE_CHECKING:
    from .extension import Cache

__all__ = ["CacheCollector", "mount_metrics", "register_metrics"]


def _state_of(app: Flask, cache: Cache | None) -> AppState:
    if cache is not None:
        return cache.state(app)
    for state in app.extensions.get("flask_stash", {}).values():
        if isinstance(state, AppState):
            return state
    raise RuntimeError(f"no Flask-Stash Cache is set up on app {app.name!r}")


class CacheCollector(Collector):
    """Exposes one cache's counters on one app, read at each scrape.

    *cache* defaults to the first one set up on *app*. Series names start
    with *namespace*: a second cache in the same registry needs another one
    (the registry refuses duplicate names when the collector is registered).
    """

    def __init__(
        self, app: Flask, cache: Cache | None = None, *, namespace: str = "flask_stash"
    ) -> None:
        _state_of(app, cache)  # fail now, not at the first scrape
        self.app = app
        self.cache = cache
        self.namespace = namespace

    def describe(self) -> Iterable[Metric]:
        # The series names, so the registry can refuse duplicates up front.
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        state = _state_of(self.app, self.cache)
        stats = state.stats
        prefix = self.namespace
        families: dict[str, CounterMetricFamily] = {}
        for field, text in (
            ("hits", "Lookups that found a usable entry."),
            ("misses", "Lookups that found none, so the value was computed."),
            ("stores", "Computed values written to the store."),
            ("errors", "Store operations that failed; the request went on uncached."),
        ):
            families[field] = CounterMetricFamily(f"{prefix}_{field}", text, labels=["name"])
        skips = CounterMetricFamily(
            f"{prefix}_skips",
            "Times the store was left alone on purpose, by reason.",
            labels=["name", "reason"],
        )
        # A copy: a request may add a name while this runs.
        for name, counters in sorted(dict(stats.by_name).items()):
            for field, family in families.items():
                family.add_metric([name], getattr(counters, field))
            for reason, count in sorted(dict(counters.skips).items()):
                skips.add_metric([name, reason], count)
        yield from families.values()
        yield skips
        yield CounterMetricFamily(
            f"{prefix}_integrity_errors",
            "Entries refused by their signature check (forged, copied from another key, "
            "or under an old secret) and read as misses.",
            value=stats.total.integrity_errors,
        )
        info = InfoMetricFamily(f"{prefix}_store", "The store the cache keeps entries in.")
        store = state.store
        labels = {"type": store.name, "shared": str(store.shared).lower()}
        if store.shared:  # an unshared store's description changes with its size
            labels["address"] = store.describe()
        info.add_metric([], labels)
        yield info


def register_metrics(
    app: Flask,
    cache: Cache | None = None,
    registry: CollectorRegistry | None = None,
    **options: Any,
) -> CacheCollector:
    """Add a :class:`CacheCollector` to *registry* (prometheus_client's default one)."""
    collector = CacheCollector(app, cache, **options)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


def mount_metrics(
    app: Flask,
    cache: Cache | None = None,
    path: str = "/metrics",
    registry: CollectorRegistry | None = None,
    **options: Any,
) -> CollectorRegistry:
    """Serve the cache's metrics at *path* on *app*, in Prometheus' text format.

    Without *registry*, a registry of its own holds just this cache's
    collector, so several apps in one process never clash; pass one to
    serve other metrics alongside. Returns the registry served.
    """
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
    register_metrics(app, cache, registry, **options)
    served = registry

    def metrics() -> Response:
        return Response(generate_latest(served), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule(path, endpoint="flask_stash_metrics", view_func=metrics)
    return registry
