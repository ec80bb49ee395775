"""Shared helpers for the benchmarks: WSGI calls, interleaved rounds, reports."""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ_for(path: str, query: str = "", host: str = "bench.local") -> dict[str, Any]:
    """Return a WSGI environ for a GET of *path*?*query*."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith("200"):
        raise RuntimeError(f"benchmark request answered {status}")


def wsgi_call(app: WSGIApp, environ: dict[str, Any]) -> bytes:
    """Make one request at the WSGI boundary and return the body."""
    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO()
    body = app(environ, _start_response)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def per_call_seconds(call: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        call()
    return (time.perf_counter() - start) / number


def interleaved(
    cases: Mapping[str, Callable[[], object]], rounds: int, number: int
) -> dict[str, float]:
    """Time each case in turn, *rounds* times; return each case's median seconds per call.

    Interleaving spreads drift in machine speed across all cases alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            samples[name].append(per_call_seconds(call, number))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: dict[str, float], reference: str, digits: int = 2) -> None:
    """Print each case's median (µs, to *digits* places) and its ratio to *reference*."""
    base = medians[reference]
    print(f"\n{title}")
    width = max(len(name) for name in medians)
    for name, seconds in medians.items():
        micro = f"{seconds * 1e6:8.{digits}f}"
        print(f"  {name:<{width}}  {micro} us   {seconds / base:5.2f} x {reference}")
