"""Requests per second from a real server: gunicorn (2 sync workers) loaded by wrk.

Side by side in one run, each app under its own gunicorn on a free loopback
port, all workers sharing one memcached:
- (a) a bare Flask view returning a constant 2 KiB body;
- (b) a view doing 20 ms of work, cached with Flask-Stash on memcached;
- (c) the same view cached with Flask-Caching on memcached;
- (n) as (b), with a near cache (ttl 5 s) in front of memcached.
wrk runs 1 thread and 8 connections. Every app is warmed up first, then the
apps are loaded in turn, ``--rounds`` times each (interleaved, so drift in
machine speed falls on all alike; 5 x 2 s by default), and each app's
median round is reported. The cached views count their executions
in a file, to show the page is computed once for both workers.
Targets: (b) >= 0.95 x (a) and (n) >= 0.98 x (a) in requests per second.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import ServerProcess, free_port

from .apps import PATH, QUERY
from .bench_remote import memcached_argv, server

ROOT = Path(__file__).resolve().parent.parent
BARE = "(a) bare view"
STASH = "(b) flask-stash, memcached"
TARGET = 0.95
NEAR_TARGET = 0.98


@dataclass
class Case:
    """One app under gunicorn, and what wrk measured on it."""

    name: str
    factory: str
    env: dict[str, str] = field(default_factory=dict)
    count_file: Path | None = None
    rates: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def executions(self) -> int | None:
        if self.count_file is None:
            return None
        return self.count_file.stat().st_size if self.count_file.exists() else 0


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    """*argv* run on the CPUs *cpus* (a taskset list like ``1-3``), or anywhere for None."""
    return ["taskset", "--cpu-list", cpus, *argv] if cpus else argv


def cpu_split(pin: bool) -> tuple[str | None, str | None]:
    """CPUs for the load side (wrk, memcached) and for gunicorn, or (None, None)."""
    count = len(os.sched_getaffinity(0))
    if not pin or count < 2 or shutil.which("taskset") is None:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return str(cpus[0]), ",".join(map(str, cpus[1:]))


def gunicorn_argv(port: int, workers: int, factory: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "5",
        f"benchmarks.apps:{factory}()",
    ]


@contextlib.contextmanager
def gunicorn(case: Case, workers: int, cpus: str | None) -> Iterator[ServerProcess]:
    """Run *case*'s app under gunicorn; stop it (master and workers) on the way out."""
    port = free_port()
    env = {**case.env, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    argv = pinned(cpus, gunicorn_argv(port, workers, case.factory))
    process = ServerProcess(argv, port, env=env, cwd=ROOT)
    process.start()
    try:
        yield process
    finally:
        popen = process.process
        if popen is not None and popen.poll() is None:
            # SIGTERM: the master stops its workers and waits for them.
            popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=15)
        process.stop()  # SIGKILL if the master is still there; closes the log


def wrk(url: str, seconds: int, connections: int, cpus: str | None) -> str:
    completed = subprocess.run(
        pinned(cpus, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed: {completed.stderr or completed.stdout}")
    return completed.stdout


def seconds_of(text: str) -> float:
    """wrk's ``812.00us``, ``1.54ms`` or ``2.01s`` in seconds (nan if unreadable)."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        return math.nan
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(2)]
    return float(found.group(1)) * scale


def parse(output: str, case: Case) -> None:
    """Take requests/second, latency percentiles and any errors from wrk's output."""
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    case.rates.append(float(found.group(1)))
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.MULTILINE))
    case.p50s.append(seconds_of(percentiles.get("50", "nan")))
    case.p99s.append(seconds_of(percentiles.get("99", "nan")))
    for pattern in (r"Non-2xx or 3xx responses: \d+", r"Socket errors: [^\n]+"):
        problem = re.search(pattern, output)
        if problem is not None:
            case.problems.append(problem.group(0))


def report(cases: list[Case], workers: int, connections: int, seconds: int) -> None:
    print(
        f"\nreal server: gunicorn {workers} sync workers, wrk 1 thread {connections} "
        f"connections, median of {len(cases[0].rates)} x {seconds} s per app (loopback)"
    )
    medians = {case.name: statistics.median(case.rates) for case in cases}
    base = medians[BARE]
    width = max(len(case.name) for case in cases)
    print(
        f"  {'':<{width}}  {'req/s':>8}  {'x bare':>6}  {'p50 ms':>7}  {'p99 ms':>7}  "
        f"{'executions':>10}  each round (req/s)"
    )
    for case in cases:
        p50, p99 = statistics.median(case.p50s), statistics.median(case.p99s)
        executions = case.executions()
        shown = "-" if executions is None else str(executions)
        rounds = ", ".join(f"{rate:.0f}" for rate in case.rates)
        print(
            f"  {case.name:<{width}}  {medians[case.name]:8.0f}  {medians[case.name] / base:6.2f}  "
            f"{p50 * 1e3:7.2f}  {p99 * 1e3:7.2f}  {shown:>10}  {rounds}"
        )
        for problem in sorted(set(case.problems)):
            print(f"    wrk reported: {problem}")
    ratio = medians[STASH] / base
    print(
        f"  flask-stash / bare = {ratio:.3f}; target >= {TARGET}: "
        f"{'met' if ratio >= TARGET else 'MISSED'}"
    )
    for name, value in medians.items():
        if name.startswith("(n) "):
            near = value / base
            print(
                f"  near cache / bare = {near:.3f}; target >= {NEAR_TARGET}: "
                f"{'met' if near >= NEAR_TARGET else 'MISSED'}"
            )
    caching = "(c) flask-caching, memcached"
    if caching in medians:
        print(f"  flask-stash / flask-caching = {medians[STASH] / medians[caching]:.3f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=2, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="wrk runs per app")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--work", type=float, default=0.02, help="seconds a miss takes")
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="run wrk and memcached on one CPU, gunicorn on the others (needs 2+ CPUs)",
    )
    parser.add_argument("--near-ttl", type=float, default=5.0, help="0 leaves case (n) out")
    options = parser.parse_args(argv)

    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk (apt-get install wrk)")
    if importlib.util.find_spec("gunicorn") is None:
        missing.append("gunicorn (pip install gunicorn, or make install: it is in the dev extra)")
    if shutil.which("memcached") is None:
        missing.append("memcached (apt-get install memcached)")
    if missing:
        print(f"\nreal-server benchmark skipped: install {'; '.join(missing)}", file=sys.stderr)
        return

    load_cpus, server_cpus = cpu_split(options.pin)
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="bench-server-") as scratch,
        server(lambda port: pinned(load_cpus, memcached_argv(port))) as memcached,
    ):
        common = {"BENCH_MEMCACHED": memcached.address, "BENCH_WORK": str(options.work)}

        def cached_case(name: str, factory: str, **env: str) -> Case:
            count_file = Path(scratch) / (re.sub(r"\W+", "-", name).strip("-") + ".count")
            case_env = {**common, **env, "BENCH_COUNT_FILE": str(count_file)}
            return Case(name, factory, case_env, count_file)

        cases = [
            Case(BARE, "bare_app"),
            cached_case(STASH, "stash_app"),
            cached_case("(c) flask-caching, memcached", "flask_caching_app"),
        ]
        if options.near_ttl:
            cases.append(
                cached_case(
                    f"(n) flask-stash, near cache ttl {options.near_ttl:g} s",
                    "stash_app",
                    BENCH_NEAR_TTL=str(options.near_ttl),
                    BENCH_KEY_PREFIX="near:",  # its own entries, not (b)'s
                )
            )
        with contextlib.ExitStack() as stack:
            urls = {}
            for case in cases:
                process = stack.enter_context(gunicorn(case, options.workers, server_cpus))
                urls[case.name] = f"http://{process.address}{PATH}?{QUERY}"
            for case in cases:
                wrk(urls[case.name], options.warmup, options.connections, load_cpus)
            for _ in range(options.rounds):
                for case in cases:
                    output = wrk(urls[case.name], options.seconds, options.connections, load_cpus)
                    parse(output, case)
        report(cases, options.workers, options.connections, options.seconds)
        print(
            f"  machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before the run "
            "(wrk, the workers and memcached share them; other load skews the figures)"
        )
        if server_cpus is not None:
            print(f"  CPUs: wrk and memcached on {load_cpus}, gunicorn on {server_cpus}")


if __name__ == "__main__":
    main()
