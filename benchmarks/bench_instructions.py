"""Instructions per cached hit, counted by callgrind: repeatable where wall clock is not.

Each case runs in its own process under ``valgrind --tool=callgrind``
twice, with a few and with many hits after the same warm-up; the
difference, divided by the extra hits, is the cost of one hit (start-up
and warm-up cancel out). Every group sets Flask-Stash beside what it is
measured against, in the same run:

- ``memory``: a view hit with a query string, at the WSGI boundary, beside
  a bare Flask view and Flask-Caching on SimpleCache, and with
  ``CACHE_FAST_LANE`` on;
- ``memoize``: a ``@memoize`` hit on the memory store, beside a plain call
  of the function and Flask-Caching's ``@memoize``, for an int result and
  for a dict (kept pickled by both);
- ``memcached`` and ``redis``: a view hit, beside a bare view, a bare view
  that also makes one raw client get of the same body, and Flask-Caching;
  a hit in the near cache in front of that server, beside a hit on the
  memory store; and a ``@memoize`` hit (``memo_*``), beside one raw client
  get and unpickle of the same value, and Flask-Caching's.
  Their servers are started here, from their binaries, when present.

``make bench-instructions`` runs it; ``--few``/``--many``, ``--groups`` and
``--cases`` make a quick run (the test suite runs it on a tiny N).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from flask import Flask

from .common import environ_for, wsgi_call

# The cases import what they measure themselves, so a child process loads
# only its own case's libraries (each import is slow under valgrind).

FEW, MANY = 50, 550
BODY = "x" * 2048


# -- what one child process runs ------------------------------------------------------


def _memory_cases() -> dict[str, Callable[[], Flask]]:
    from . import bench_views

    return {
        "bare": bench_views.bare_app,
        "flask_stash": bench_views.stash_app,
        "flask_caching": bench_views.flask_caching_app,
        "fast_lane": lambda: bench_views.stash_app(fast_lane=True),
    }


def _configs(kind: str, address: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flask-Stash's and Flask-Caching's config for the server at *address*."""
    if kind == "memcached":
        return (
            {"CACHE_TYPE": "memcached", "CACHE_MEMCACHED_SERVERS": [address]},
            {"CACHE_TYPE": "MemcachedCache", "CACHE_MEMCACHED_SERVERS": [address]},
        )
    url = f"redis://{address}/0"
    return {"CACHE_TYPE": "redis", "CACHE_REDIS_URL": url}, {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": url,
    }


def _raw_client(kind: str, address: str) -> Any:
    """The server's own client, as an app would use it without a cache extension."""
    if kind == "memcached":
        from pymemcache.client.base import Client

        host, port = address.split(":")
        return Client((host, int(port)), no_delay=True)
    import redis

    return redis.Redis.from_url(f"redis://{address}/0")


def _remote_cases(kind: str) -> dict[str, Callable[[], Flask]]:
    from . import bench_remote, bench_views

    address = os.environ["BENCH_SERVER"]

    def raw_get() -> Flask:
        client = _raw_client(kind, address)
        client.set("raw-body", BODY.encode())
        return bench_remote.raw_get_app(lambda: client.get("raw-body"))

    ours, theirs = _configs(kind, address)

    def near() -> Flask:
        from . import apps

        return apps.stash_view_app({**ours, "CACHE_SECRET_KEY": "bench"}, near_ttl=300)

    return {
        "bare": bench_views.bare_app,
        "bare_raw_get": raw_get,
        "flask_stash": lambda: bench_remote.stash_app(ours),
        "flask_caching": lambda: bench_remote.flask_caching_app(theirs),
        "near_cache": near,
        "memory_store": bench_views.stash_app,
    }


def _remote_memoize_calls(kind: str) -> dict[str, Callable[[], Callable[[], object]]]:
    """``@memoize`` on a remote store, beside one raw client get of the same pickled value."""
    import pickle

    from . import bench_memoize

    address = os.environ["BENCH_SERVER"]
    ours, theirs = _configs(kind, address)

    def raw_get() -> Callable[[], object]:
        client = _raw_client(kind, address)
        client.set("raw-value", pickle.dumps(bench_memoize.total(20, 22)))
        return lambda: pickle.loads(client.get("raw-value"))

    return {
        "memo_raw_get": raw_get,
        "memo_stash": lambda: bench_memoize.stash_call(ours),
        "memo_caching": lambda: bench_memoize.flask_caching_call(theirs),
    }


def _memoize_calls() -> dict[str, Callable[[], Callable[[], object]]]:
    """Each case builds the call to repeat, inside an app context it keeps pushed."""

    # The app, functions and values of bench_memoize (the wall-clock cases).
    def plain() -> Callable[[], object]:
        from . import bench_memoize

        return lambda: bench_memoize.add(20, 22)

    def ours() -> Callable[[], object]:
        from . import bench_memoize

        return bench_memoize.stash_call({"CACHE_TYPE": "memory"}, bench_memoize.add)

    def theirs() -> Callable[[], object]:
        from . import bench_memoize

        return bench_memoize.flask_caching_call({"CACHE_TYPE": "SimpleCache"}, bench_memoize.add)

    def ours_dict() -> Callable[[], object]:
        from . import bench_memoize

        return bench_memoize.stash_call({"CACHE_TYPE": "memory"})

    def theirs_dict() -> Callable[[], object]:
        from . import bench_memoize

        return bench_memoize.flask_caching_call({"CACHE_TYPE": "SimpleCache"})

    return {
        "plain_call": plain,
        "flask_stash": ours,
        "flask_caching": theirs,
        "stash_dict": ours_dict,
        "caching_dict": theirs_dict,
    }


def run_hits(group: str, case: str, hits: int) -> None:
    if group == "memoize":
        call = _memoize_calls()[case]()
    elif case.startswith("memo_"):
        call = _remote_memoize_calls(group)[case]()
    else:
        cases = _memory_cases() if group == "memory" else _remote_cases(group)
        app = cases[case]()
        environ = environ_for("/page", "name=alice&page=2")

        def call() -> object:
            return wsgi_call(app, environ)

    for _ in range(20):  # warm-up: the first call fills the cache
        call()
    # What is alive now (modules, apps) leaves the cyclic collector's view,
    # so its passes during the hits cost the same whatever a case imported.
    gc.collect()
    gc.freeze()
    for _ in range(hits):
        call()


# -- the parent: servers, child processes, the report ------------------------------------

#: The cases of each remote group: views, the near cache, then @memoize.
_REMOTE_CASES = (
    "bare",
    "bare_raw_get",
    "flask_stash",
    "flask_caching",
    "near_cache",
    "memory_store",
    "memo_raw_get",
    "memo_stash",
    "memo_caching",
)
GROUPS: dict[str, tuple[str, ...]] = {
    "memory": ("bare", "flask_stash", "flask_caching", "fast_lane"),
    "memoize": ("plain_call", "flask_stash", "flask_caching", "stash_dict", "caching_dict"),
    "memcached": _REMOTE_CASES,
    "redis": _REMOTE_CASES,
}
TITLES = {
    "memory": "view hit, memory store, with a query string",
    "memoize": "@memoize hit, memory store",
    "memcached": "view hit, memcached on loopback",
    "redis": "view hit, Redis on loopback",
}


def instructions(group: str, case: str, hits: int, valgrind: str, env: dict[str, str]) -> int:
    with tempfile.TemporaryDirectory() as where:
        out = Path(where) / "callgrind.out"
        subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.bench_instructions",
                "--run",
                f"{group}:{case}",
                "--hits",
                str(hits),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **env, "PYTHONHASHSEED": "0"},
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def _server_env(group: str, stack: ExitStack) -> dict[str, str] | None:
    """The env that points a remote group's children at its server; None to skip it."""
    if group in ("memory", "memoize"):
        return {}
    from . import bench_remote

    binary = "memcached" if group == "memcached" else "redis-server"
    module = "pymemcache" if group == "memcached" else "redis"
    if shutil.which(binary) is None:
        print(f"\n{TITLES[group]}: {binary} is not installed; skipped")
        return None
    try:
        __import__(module)
    except ImportError:
        print(f"\n{TITLES[group]}: the {module} package is not installed; skipped")
        return None
    argv = bench_remote.memcached_argv if group == "memcached" else bench_remote.redis_argv
    server = stack.enter_context(bench_remote.server(argv))
    return {"BENCH_SERVER": server.address}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--hits", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--few", type=int, default=FEW, help="hits in the short run")
    parser.add_argument("--many", type=int, default=MANY, help="hits in the long run")
    parser.add_argument("--groups", default=",".join(GROUPS), help="comma-separated groups")
    parser.add_argument("--cases", help="comma-separated cases of each group (default: all)")
    options = parser.parse_args(argv)
    if options.run:
        group, case = options.run.split(":")
        run_hits(group, case, options.hits)
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("\nbench_instructions: valgrind is not installed (Debian package valgrind); skipped")
        return
    if options.many <= options.few:
        parser.error("--many must be more than --few")
    for group in options.groups.split(","):
        if group not in GROUPS:
            parser.error(f"unknown group {group!r}; known: {', '.join(GROUPS)}")
        with ExitStack() as stack:
            env = _server_env(group, stack)
            if env is None:
                continue
            per_hit = {
                case: (
                    instructions(group, case, options.many, valgrind, env)
                    - instructions(group, case, options.few, valgrind, env)
                )
                / (options.many - options.few)
                for case in GROUPS[group]
                if options.cases is None or case in options.cases.split(",")
            }
        if not per_hit:
            continue
        base = next(iter(per_hit))
        print(f"\nInstructions per hit (callgrind), {TITLES[group]}")
        for case, count in per_hit.items():
            print(f"  {case:<14} {count:10.0f}  {count / per_hit[base]:.2f} x {base}")
        if {"bare_raw_get", "flask_stash", "flask_caching"} <= set(per_hit):
            ratio = per_hit["flask_stash"] / per_hit["bare_raw_get"]
            theirs = per_hit["flask_caching"] / per_hit["bare_raw_get"]
            print(
                f"  flask_stash / (bare + raw get) = {ratio:.2f}; "
                f"flask_caching / (bare + raw get) = {theirs:.2f}"
            )
        if {"near_cache", "memory_store"} <= set(per_hit):
            near = per_hit["near_cache"] / per_hit["memory_store"]
            print(f"  near-cache hit / memory-store hit = {near:.2f}")
        if {"memo_raw_get", "memo_stash", "memo_caching"} <= set(per_hit):
            ratio = per_hit["memo_stash"] / per_hit["memo_raw_get"]
            theirs = per_hit["memo_caching"] / per_hit["memo_raw_get"]
            print(f"  @memoize: flask_stash / raw get = {ratio:.2f}; flask_caching = {theirs:.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
