"""A stampede: many requests for one cold page at the same moment.

The view sleeps 0.3 s and counts its executions. Side by side in one run:
- (a) one process, in-process store (Flask-Stash ``memory``, Flask-Caching
  ``SimpleCache``): 32 threads released together by a barrier, one request
  each, all for the same cold URL;
- (b) 4 spawned processes x 8 threads on one real memcached (Flask-Stash
  ``memcached``, Flask-Caching ``MemcachedCache``), the 32 requests released
  together by a barrier shared across the processes.
Each setup is repeated with a fresh URL (a new cold key) per run. Reported:
view executions per run, and p50/p99 latency of the requests.
Target: exactly 1 execution per run for Flask-Stash, in both setups.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from flask import Flask, request

from .apps import (
    PATH,
    flask_caching_memcached_config,
    flask_caching_view_app,
    stash_memcached_config,
    stash_view_app,
)
from .bench_remote import memcached_argv, server
from .common import environ_for, wsgi_call

STASH = "flask-stash"
CACHING = "flask-caching"
LIBRARIES = (STASH, CACHING)
#: Seconds any thread waits at a barrier before the run is declared broken.
BARRIER_TIMEOUT = 60.0


@dataclass
class Run:
    """One stampede: a library, a fresh URL, and what happened."""

    library: str
    index: int
    query: str
    executions: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan_runs(repeats: int) -> list[Run]:
    """The runs, libraries alternating, each with a query string never used before."""
    nonce = uuid.uuid4().hex[:12]
    runs: list[Run] = []
    for repeat in range(repeats):
        for library in LIBRARIES:
            index = len(runs)
            runs.append(Run(library, index, f"run={index}&nonce={nonce}-{repeat}"))
    return runs


def run_index() -> int | None:
    """The run a request belongs to (None for a warm-up request)."""
    found = request.args.get("run")
    return int(found) if found is not None else None


def fire(
    apps: dict[str, Flask],
    runs: Sequence[tuple[str, int, str]],
    wait: Callable[[], object],
    record: Callable[[int, float | None, str | None], None],
) -> None:
    """One thread's part: a warm-up request, then one request per run, each after *wait*."""
    for app in apps.values():
        wsgi_call(app, environ_for(PATH, "warm=1"))
    for library, index, query in runs:
        environ = environ_for(PATH, query)
        try:
            wait()
        except threading.BrokenBarrierError:
            record(index, None, "barrier broken")
            return
        start = time.perf_counter()
        try:
            wsgi_call(apps[library], environ)
        except Exception as exc:
            record(index, None, repr(exc))
        else:
            record(index, time.perf_counter() - start, None)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- (a) one process ---------------------------------------------------------


def bench_one_process(threads: int, repeats: int, work: float) -> list[Run]:
    runs = plan_runs(repeats)
    lock = threading.Lock()

    def count() -> None:
        index = run_index()
        if index is not None:
            with lock:
                runs[index].executions += 1

    apps = {
        STASH: stash_view_app({"CACHE_TYPE": "memory"}, work=work, on_run=count),
        CACHING: flask_caching_view_app({"CACHE_TYPE": "SimpleCache"}, work=work, on_run=count),
    }
    # Warm up each app once, so the threads' own warm-up requests are hits.
    for app in apps.values():
        wsgi_call(app, environ_for(PATH, "warm=1"))
    barrier = threading.Barrier(threads)

    def record(index: int, latency: float | None, error: str | None) -> None:
        with lock:
            if latency is not None:
                runs[index].latencies.append(latency)
            if error is not None:
                runs[index].errors.append(error)

    schedule = [(run.library, run.index, run.query) for run in runs]
    workers = [
        threading.Thread(
            target=fire, args=(apps, schedule, lambda: barrier.wait(BARRIER_TIMEOUT), record)
        )
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return runs


# -- (b) processes on memcached ----------------------------------------------


def process_main(
    address: str,
    threads: int,
    schedule: list[tuple[str, int, str]],
    work: float,
    barrier: Any,
    executions: SynchronizedArray[int],
    results: Any,
) -> None:
    """A spawned process: build both apps on memcached, run *threads* threads of :func:`fire`."""
    logging.getLogger("flask_caching").setLevel(logging.ERROR)

    def count() -> None:
        index = run_index()
        if index is not None:
            with executions.get_lock():
                executions[index] += 1

    apps = {
        STASH: stash_view_app(stash_memcached_config(address), work=work, on_run=count),
        CACHING: flask_caching_view_app(
            flask_caching_memcached_config(address), work=work, on_run=count
        ),
    }
    records: list[tuple[int, float | None, str | None]] = []
    lock = threading.Lock()

    def record(index: int, latency: float | None, error: str | None) -> None:
        with lock:
            records.append((index, latency, error))

    workers = [
        threading.Thread(
            target=fire, args=(apps, schedule, lambda: barrier.wait(BARRIER_TIMEOUT), record)
        )
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(records)


def bench_processes(processes: int, threads: int, repeats: int, work: float) -> list[Run]:
    runs = plan_runs(repeats)
    schedule = [(run.library, run.index, run.query) for run in runs]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes * threads)
    executions = context.Array("i", len(runs))
    results = context.Queue()
    with server(memcached_argv) as memcached:
        children = [
            context.Process(
                target=process_main,
                args=(memcached.address, threads, schedule, work, barrier, executions, results),
                daemon=True,
            )
            for _ in range(processes)
        ]
        for child in children:
            child.start()
        try:
            deadline = time.monotonic() + BARRIER_TIMEOUT + 30 + len(runs) * (work + 1)
            for _ in children:
                remaining = max(1.0, deadline - time.monotonic())
                for index, latency, error in results.get(timeout=remaining):
                    if latency is not None:
                        runs[index].latencies.append(latency)
                    if error is not None:
                        runs[index].errors.append(error)
            for child in children:
                child.join(10)
        finally:
            for child in children:
                if child.is_alive():
                    child.terminate()
                    child.join(5)
    for run in runs:
        run.executions = executions[run.index]
    return runs


# -- the report ----------------------------------------------------------------


def report(title: str, runs: list[Run], requests: int) -> bool:
    """Print every run and the verdict; return whether Flask-Stash met its target."""
    print(f"\n{title}")
    print(f"  {'library':<14} {'run':>3}  {'executions':>10}  {'p50 ms':>8}  {'p99 ms':>8}  errors")
    for run in runs:
        p50, p99 = percentile(run.latencies, 0.50), percentile(run.latencies, 0.99)
        errors = f"{len(run.errors)}: {run.errors[0]}" if run.errors else "0"
        if len(run.latencies) + len(run.errors) != requests:
            errors += f" ({len(run.latencies) + len(run.errors)} of {requests} requests seen)"
        print(
            f"  {run.library:<14} {run.index // len(LIBRARIES) + 1:>3}  {run.executions:>10}  "
            f"{p50 * 1e3:8.1f}  {p99 * 1e3:8.1f}  {errors}"
        )
    by_library = {lib: [run for run in runs if run.library == lib] for lib in LIBRARIES}
    medians: dict[str, tuple[float, float, float]] = {}
    for library, mine in by_library.items():
        latencies = [latency for run in mine for latency in run.latencies]
        counts = [run.executions for run in mine]
        medians[library] = (
            sum(counts) / len(counts),
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
        )
        print(f"  {library}: executions per run {', '.join(map(str, counts))}")
    (s_runs, s_p50, s_p99), (c_runs, c_p50, c_p99) = medians[STASH], medians[CACHING]
    print(
        f"  flask-caching / flask-stash: executions {c_runs / s_runs:.1f} x, "
        f"p50 {c_p50 / s_p50:.2f} x, p99 {c_p99 / s_p99:.2f} x"
    )
    met = all(
        run.executions == 1 and not run.errors and len(run.latencies) == requests
        for run in by_library[STASH]
    )
    print(f"  target: exactly 1 execution per run for flask-stash: {'met' if met else 'MISSED'}")
    return met


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=32, help="threads in setup (a)")
    parser.add_argument("--processes", type=int, default=4, help="processes in setup (b)")
    parser.add_argument("--process-threads", type=int, default=8, help="threads per process (b)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=float, default=0.3, help="seconds the view takes")
    options = parser.parse_args(argv)
    logging.getLogger("flask_caching").setLevel(logging.ERROR)

    runs = bench_one_process(options.threads, options.repeats, options.work)
    report(
        f"stampede (a): one process, in-process store, {options.threads} threads, "
        f"one cold URL, view takes {options.work:g} s",
        runs,
        options.threads,
    )
    if shutil.which("memcached") is None:
        print("\nmemcached is not installed: stampede (b) skipped", file=sys.stderr)
        return
    total = options.processes * options.process_threads
    runs = bench_processes(
        options.processes, options.process_threads, options.repeats, options.work
    )
    report(
        f"stampede (b): {options.processes} processes x {options.process_threads} threads "
        f"on one memcached, one cold URL, view takes {options.work:g} s",
        runs,
        total,
    )


if __name__ == "__main__":
    main()
