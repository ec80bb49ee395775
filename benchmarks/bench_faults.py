"""Faults of the store under a real server: what the client sees while the cache breaks.

The app (:mod:`benchmarks.faults_app`: a page per user and per language,
each view sleeping ``--view-time`` when it really runs) is served by
gunicorn, 2 workers x 4 threads (gthread), against memcached, then Redis,
each started from its binary on a free port with a small memory limit
(:mod:`benchmarks.faults_servers`). Flask-Stash and Flask-Caching run in
turn, each on a fresh server.

A bounded client (8 threads, each with one keep-alive connection) drives the
app from loopback and checks every body against the page its URL and user
must get. It asks for seeded random pages: mostly hot ones, which are
nearly always hits, and ``--cold-share`` of cold ones, nearly always
misses, so the view runs and pages are written in every phase. After a
2 s warm-up, the phases, in order:

- ``baseline``: nothing wrong;
- ``kill``: the store is SIGKILLed; requests go on against the dead store;
- ``restart``: the store is started again, empty, on the same port;
- ``stop``: the store is SIGSTOPped: it accepts connections but never answers;
- ``cont``: SIGCONT, after ``--stop-seconds``;
- ``evict``: another process fills the store with junk until it evicts,
  then keeps loading it;
- ``pause`` (Redis only): ``CLIENT PAUSE <ms> WRITE``: reads are served,
  writes wait.

Before ``stop``, ``evict`` and ``pause`` the client goes on, unrecorded,
until the hit ratio is back at half the baseline's (at most
``--settle-limit`` seconds), so each fault meets a healthy app; the report
says how long that took.

A request belongs to the phase it started in. It failed if it raised
(the client gives up after ``--client-timeout``) or answered other than
200; it is wrong if it answered 200 with another body; it is a hit if the
app said so (Flask-Stash's ``X-Cache``, Flask-Caching's ``hit_cache``).
For each store and library: one row per phase, then each target, MET or
MISSED.

Targets, in units of one store timeout T (the client's read timeout):
0 failed and 0 wrong requests in every phase; in every phase
p99 <= baseline p99 + T and max <= view time + 2 T; during ``evict``,
requests per second >= 50 % of baseline.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import math
import random
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flask_stash.config import DEFAULTS

from .faults_app import (
    CACHING,
    COLD_PAGES,
    LANGS,
    LIBRARIES,
    PAGES,
    STASH,
    USERS,
    Traffic,
    is_hit,
)
from .faults_servers import STORES, Store, gunicorn

EVICT_THROUGHPUT = 0.5


@dataclass
class Sample:
    """One request: the phase it started in and what came back."""

    phase: int
    started: float
    latency: float = 0.0
    failed: bool = False
    wrong: bool = False
    hit: bool = False
    worker: str = ""


@dataclass
class Phase:
    """One phase: its name, what starts it and ends it, and how long it lasts."""

    name: str
    seconds: float
    #: Wait, unrecorded, for the cache to hit again before this phase starts,
    #: so that its fault meets a healthy app, not the last fault's aftermath.
    settle: bool = False
    begin: Callable[[], None] = lambda: None
    end: Callable[[], None] = lambda: None
    #: ``time.perf_counter()`` when the phase began, after its fault.
    began: float = 0.0
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)


class Client:
    """Keep-alive connections that request pages and check every body.

    Each thread owns one ``HTTPConnection`` and opens a new one after any
    error. Requests made while :attr:`phase` is None (warming up, settling)
    are not recorded.
    """

    def __init__(
        self,
        address: str,
        library: str,
        traffic: Traffic,
        threads: int,
        timeout: float,
        seed: int,
    ) -> None:
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.library, self.traffic, self.timeout = library, traffic, timeout
        self.phase: int | None = None
        self.samples: list[Sample] = []
        #: Every request and every hit, recorded or not, for :func:`settle`.
        self.seen = 0
        self.seen_hits = 0
        self.errors: dict[str, int] = {}
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._drive, args=(seed + n,), name=f"client-{n}", daemon=True)
            for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
            # One connection at a time, so that each idle worker may take some.
            time.sleep(0.02)

    def stop(self) -> list[str]:
        """Stop every thread; return the names of any still waiting on a reply."""
        self._stopping.set()
        deadline = time.monotonic() + self.timeout + 5
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self._threads if thread.is_alive()]

    def _drive(self, seed: int) -> None:
        rng = random.Random(seed)
        connection: http.client.HTTPConnection | None = None
        while not self._stopping.is_set():
            page = self.traffic.pick(rng)
            phase = self.phase
            started = time.perf_counter()
            sample = Sample(-1 if phase is None else phase, started)
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        self.host, self.port, timeout=self.timeout
                    )
                connection.request("GET", page.path, headers=page.headers)
                response = connection.getresponse()
                body = response.read()
                headers = {name.lower(): value for name, value in response.getheaders()}
                if response.status != 200:
                    sample.failed = True
                    self._count(f"HTTP {response.status}")
                elif body != page.body:
                    sample.wrong = True
                sample.hit = is_hit(self.library, headers)
                sample.worker = headers.get("x-worker", "")
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                sample.failed = True
                self._count(type(exc).__name__)
                if connection is not None:
                    connection.close()
                connection = None
            sample.latency = time.perf_counter() - started
            # Racy between threads, but only read as a rough recent ratio.
            self.seen += 1
            self.seen_hits += sample.hit
            if phase is not None:
                self.samples.append(sample)  # list.append is atomic: no lock needed
        if connection is not None:
            connection.close()

    def _count(self, error: str) -> None:
        # Only a few kinds of error, counted for the report; a lost update
        # between threads would only make a count one short.
        self.errors[error] = self.errors.get(error, 0) + 1


@dataclass
class Row:
    """The figures of one phase."""

    name: str
    seconds: float
    requests: int
    failed: int
    wrong: int
    hits: int
    p50: float
    p99: float
    max: float
    #: Seconds into the phase that its slowest request started.
    max_offset: float = math.nan

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else math.nan


def quantile(ordered: Sequence[float], q: float) -> float:
    """The *q* quantile of sorted *ordered* (nearest rank), nan if empty."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def settle(client: Client, ratio: float, limit: float) -> float | None:
    """Wait until half a second of requests hits at least *ratio*; the seconds it took.

    None if that did not happen within *limit* seconds.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit:
        seen, hits = client.seen, client.seen_hits
        time.sleep(0.5)
        if client.seen > seen and (client.seen_hits - hits) / (client.seen - seen) >= ratio:
            return time.monotonic() - started
    return None


def rows_of(phases: Sequence[Phase], samples: Sequence[Sample]) -> list[Row]:
    rows = []
    for index, phase in enumerate(phases):
        mine = [sample for sample in samples if sample.phase == index]
        latencies = sorted(sample.latency for sample in mine)
        slowest = max(mine, key=lambda sample: sample.latency, default=None)
        rows.append(
            Row(
                phase.name,
                phase.elapsed,
                len(mine),
                sum(sample.failed for sample in mine),
                sum(sample.wrong for sample in mine),
                sum(sample.hit for sample in mine),
                quantile(latencies, 0.50),
                quantile(latencies, 0.99),
                latencies[-1] if latencies else math.nan,
                math.nan if slowest is None else slowest.started - phase.began,
            )
        )
    return rows


def print_table(rows: Sequence[Row]) -> None:
    print(
        f"  {'phase':<9} {'s':>4} {'requests':>8} {'req/s':>6} {'failed':>6} {'wrong':>5} "
        f"{'hit %':>6} {'p50 ms':>7} {'p99 ms':>8} {'max ms':>8}"
    )
    for row in rows:
        ratio = "n/a" if math.isnan(row.hit_ratio) else f"{100 * row.hit_ratio:.1f}"
        print(
            f"  {row.name:<9} {row.seconds:4.1f} {row.requests:8d} {row.rate:6.0f} "
            f"{row.failed:6d} {row.wrong:5d} {ratio:>6} {1e3 * row.p50:7.1f} "
            f"{1e3 * row.p99:8.1f} {1e3 * row.max:8.1f}"
        )


def verdicts(rows: Sequence[Row], timeout: float, view_time: float) -> list[tuple[str, bool]]:
    """Each target as (line to print, met)."""
    base = rows[0]
    found: list[tuple[str, bool]] = []

    def check(title: str, misses: list[str]) -> None:
        state = "MET" if not misses else "MISSED in " + ", ".join(misses)
        found.append((f"{title}: {state}", not misses))

    check(
        "0 failed and 0 wrong in every phase",
        [f"{r.name} ({r.failed} failed, {r.wrong} wrong)" for r in rows if r.failed or r.wrong],
    )
    p99_limit = base.p99 + timeout
    check(
        f"p99 <= baseline p99 + T = {1e3 * base.p99:.1f} + {1e3 * timeout:.0f} "
        f"= {1e3 * p99_limit:.1f} ms",
        [f"{r.name} ({1e3 * r.p99:.1f} ms)" for r in rows if not r.p99 <= p99_limit],
    )
    max_limit = view_time + 2 * timeout
    check(
        f"max <= view time + 2 T = {1e3 * view_time:.0f} + 2 x {1e3 * timeout:.0f} "
        f"= {1e3 * max_limit:.0f} ms",
        [
            f"{r.name} ({1e3 * r.max:.1f} ms, started {r.max_offset:.2f} s into the phase)"
            for r in rows
            if not r.max <= max_limit
        ],
    )
    for row in rows:
        if row.name == "evict":
            share = row.rate / base.rate if base.rate else math.nan
            check(
                f"evict req/s >= {100 * EVICT_THROUGHPUT:.0f} % of baseline "
                f"({row.rate:.0f} vs {base.rate:.0f} req/s, {100 * share:.0f} %)",
                [] if share >= EVICT_THROUGHPUT else ["evict"],
            )
    return found


@dataclass
class Options:
    seconds: float
    stop_seconds: float
    evict_seconds: float
    pause_ms: int
    warmup: float
    workers: int
    threads: int
    clients: int
    timeout: float
    connect_timeout: float
    view_time: float
    page_timeout: int
    client_timeout: float
    fill_rate: int
    cold_share: float
    settle_limit: float
    seed: int


def phases_for(store: Store, options: Options) -> list[Phase]:
    """The phases in order, each with what starts and ends it on *store*."""
    seconds = options.seconds
    phases = [
        Phase("baseline", seconds),
        Phase("kill", seconds, begin=store.kill),
        Phase("restart", seconds, begin=store.start),
        Phase("stop", options.stop_seconds, settle=True, begin=store.freeze, end=store.thaw),
        Phase("cont", seconds),
    ]
    evict = Phase("evict", options.evict_seconds, settle=True)
    counted: dict[str, int] = {}

    def begin_evict() -> None:
        counted["before"] = store.evictions()
        store.start_filling(options.fill_rate)

    def end_evict() -> None:
        store.stop_filling()
        evictions = store.evictions() - counted["before"]
        evict.notes.append(f"evict: {evictions} entries evicted by the server during the phase")

    evict.begin, evict.end = begin_evict, end_evict
    phases.append(evict)
    if store.kind == "redis":
        pause = options.pause_ms

        def begin_pause() -> None:
            store.pause_writes(pause)

        phases.append(
            Phase("pause", max(seconds, pause / 1000 + 1), settle=True, begin=begin_pause)
        )
    return phases


def app_env(library: str, store: Store, options: Options) -> dict[str, str]:
    return {
        "FAULTS_LIBRARY": library,
        "FAULTS_STORE": store.kind,
        "FAULTS_ADDRESS": store.address,
        "FAULTS_TIMEOUT": str(options.timeout),
        "FAULTS_CONNECT_TIMEOUT": str(options.connect_timeout),
        "FAULTS_RETRY_INTERVAL": str(DEFAULTS["CACHE_RETRY_INTERVAL"]),
        "FAULTS_VIEW_TIME": str(options.view_time),
        "FAULTS_PAGE_TIMEOUT": str(options.page_timeout),
    }


def client_settings(library: str, store: str, options: Options) -> str:
    """The store client's settings, as the app sets them."""
    t, c = options.timeout, options.connect_timeout
    if library == STASH:
        breaker = (
            f"breaker after {DEFAULTS['CACHE_FAILURE_THRESHOLD']} failures, "
            f"trials after 1 s, doubling up to {DEFAULTS['CACHE_RETRY_INTERVAL']} s"
        )
        if store == "memcached":
            return (
                f"pymemcache: CACHE_MEMCACHED_TIMEOUT={t}, "
                f"CACHE_MEMCACHED_CONNECT_TIMEOUT={c}; {breaker}"
            )
        return (
            f"redis-py: CACHE_REDIS_SOCKET_TIMEOUT={t}, CACHE_REDIS_CONNECT_TIMEOUT={c}; {breaker}"
        )
    if store == "memcached":
        return (
            f"python-memcached: socket_timeout={t} (connect and read), "
            f"dead_retry={DEFAULTS['CACHE_RETRY_INTERVAL']}"
        )
    return (
        f"redis-py: socket_timeout={t}, socket_connect_timeout={c} (CACHE_OPTIONS); "
        "redis-py's default retry policy (3 retries, backoff)"
    )


def worker_events(log: bytes) -> list[str]:
    """What gunicorn's log says went wrong with its workers, counted."""
    text = log.decode(errors="replace")
    found = []
    for label, pattern in (
        ("worker timeouts", r"WORKER TIMEOUT"),
        ("workers killed", r"was sent SIGKILL"),
        ("workers exited", r"exited with code"),
    ):
        count = len(re.findall(pattern, text))
        if count:
            found.append(f"{count} {label}")
    return found


def settle_for(phase: Phase, client: Client, limit: float) -> None:
    """Settle before *phase*: wait for hits at half the baseline's ratio; note how long."""
    baseline = [sample.hit for sample in client.samples if sample.phase == 0]
    ratio = 0.5 * sum(baseline) / len(baseline) if baseline else 0.0
    if not ratio:
        phase.notes.append(f"{phase.name}: no hits in baseline, started without settling")
        return
    took = settle(client, ratio, limit)
    if took is None:
        phase.notes.append(
            f"{phase.name}: hit ratio still under {100 * ratio:.0f} % after {limit:g} s "
            "of unrecorded settling; started anyway"
        )
    else:
        phase.notes.append(
            f"{phase.name}: started after {took:.1f} s of unrecorded settling "
            f"(until the hit ratio was back at {100 * ratio:.0f} % or more)"
        )


def run_case(library: str, kind: str, options: Options) -> list[tuple[str, bool]]:
    """One library on one fresh store through every phase; print its table."""
    store = Store(kind)
    traffic = Traffic(library, options.cold_share)
    print(f"\n{store.version()}, {library}: {client_settings(library, kind, options)}")
    sys.stdout.flush()
    stuck: list[str] = []
    try:
        store.start()
        with gunicorn(app_env(library, store, options), options.workers, options.threads) as app:
            client = Client(
                app.address, library, traffic, options.clients, options.client_timeout, options.seed
            )
            phases = phases_for(store, options)
            client.start()
            try:
                time.sleep(options.warmup)
                for index, phase in enumerate(phases):
                    if phase.settle:
                        client.phase = None
                        settle_for(phase, client, options.settle_limit)
                    started = time.monotonic()
                    phase.begin()
                    phase.began = time.perf_counter()
                    client.phase = index
                    time.sleep(max(0.0, started + phase.seconds - time.monotonic()))
                    phase.end()
                    phase.elapsed = time.monotonic() - started
            finally:
                client.phase = None
                stuck = client.stop()
            log = b""
            if app.log is not None:
                app.log.seek(0)
                log = app.log.read()
    finally:
        store.close()
    rows = rows_of(phases, client.samples)
    print_table(rows)
    for phase in phases:
        for note in phase.notes:
            print(f"  {note}")
    if library == CACHING:
        print("  hit: Flask-Caching's hit_cache header (response_hit_indication=True)")
    else:
        print("  hit: X-Cache HIT or STALE (CACHE_X_CACHE_HEADER=True)")
    workers: dict[str, int] = {}
    for sample in client.samples:
        if sample.phase == 0 and sample.worker:
            workers[sample.worker] = workers.get(sample.worker, 0) + 1
    shares = " / ".join(str(count) for count in sorted(workers.values(), reverse=True))
    idle = options.workers - len(workers)
    # Keep-alive connections stay with the worker that accepted them.
    alone = f" ({idle} worker(s) got no connection)" if idle > 0 else ""
    print(f"  baseline requests per gunicorn worker: {shares or 'none'}{alone}")
    if client.errors:
        errors = ", ".join(f"{count} {name}" for name, count in sorted(client.errors.items()))
        print(f"  client errors: {errors}")
    events = worker_events(log)
    if events:
        print(f"  gunicorn: {', '.join(events)}")
    if stuck:
        print(f"  still waiting on a reply at the end: {', '.join(stuck)}")
    found = verdicts(rows, options.timeout, options.view_time)
    for line, _ in found:
        print(f"  target {line}")
    sys.stdout.flush()
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of most phases")
    parser.add_argument("--stop-seconds", type=float, default=5.0, help="SIGSTOP to SIGCONT")
    parser.add_argument("--evict-seconds", type=float, default=6.0)
    parser.add_argument("--pause-ms", type=int, default=3000, help="Redis CLIENT PAUSE length")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive client connections")
    parser.add_argument("--timeout", type=float, default=0.5, help="store read timeout T")
    parser.add_argument("--connect-timeout", type=float, default=0.25)
    parser.add_argument("--view-time", type=float, default=0.01, help="seconds a view takes")
    parser.add_argument("--page-timeout", type=int, default=30, help="seconds a page is cached")
    parser.add_argument("--client-timeout", type=float, default=30.0)
    parser.add_argument("--fill-rate", type=int, default=2000, help="junk values a second")
    parser.add_argument(
        "--cold-share", type=float, default=0.1, help="share of requests for cold pages"
    )
    parser.add_argument(
        "--settle-limit", type=float, default=25.0, help="most seconds to wait for hits"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parsed = parser.parse_args(argv)
    options = Options(
        **{
            name: value
            for name, value in vars(parsed).items()
            if name not in ("stores", "libraries")
        }
    )
    stores = [name for name in parsed.stores.split(",") if name]
    libraries = [name for name in parsed.libraries.split(",") if name]

    missing = []
    if importlib.util.find_spec("gunicorn") is None:
        missing.append("gunicorn (make install: it is in the dev extra)")
    for kind, binary in (("memcached", "memcached"), ("redis", "redis-server")):
        if kind in stores and shutil.which(binary) is None:
            missing.append(f"{binary} (apt-get install {binary})")
    if missing:
        print(f"fault benchmark skipped: install {'; '.join(missing)}", file=sys.stderr)
        return

    hot = (PAGES + 1) * len(USERS) * len(LANGS)
    print(
        f"fault benchmark: gunicorn {options.workers} workers x {options.threads} threads "
        f"(gthread), {options.clients} keep-alive clients on loopback; "
        f"{100 - 100 * options.cold_share:.0f} % of requests for {hot} hot pages "
        f"({PAGES} pages + account, x {len(USERS)} users x {len(LANGS)} languages), "
        f"{100 * options.cold_share:.0f} % for cold ones (1 of {COLD_PAGES} pages x users x "
        f"languages); view {1e3 * options.view_time:.0f} ms, pages cached {options.page_timeout} s"
    )
    print(
        f"store timeout T = {options.timeout} s per reply ({options.connect_timeout} s to "
        f"connect); client timeout {options.client_timeout} s; phases {options.seconds:g} s "
        f"(stop {options.stop_seconds:g} s, evict {options.evict_seconds:g} s, Redis pause "
        f"{options.pause_ms} ms of writes)"
    )
    started = time.monotonic()
    summary: list[tuple[str, int, int]] = []
    for kind in stores:
        for library in libraries:
            found = run_case(library, kind, options)
            summary.append((f"{kind}, {library}", sum(met for _, met in found), len(found)))
    print(f"\nsummary ({time.monotonic() - started:.0f} s):")
    for name, met, total in summary:
        print(f"  {name}: {met} of {total} targets met")


if __name__ == "__main__":
    main()
