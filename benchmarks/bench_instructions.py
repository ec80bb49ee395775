"""Instructions per cached hit, counted by callgrind: repeatable where wall clock is not.

Each case runs in its own process under ``valgrind --tool=callgrind``
twice, with a few and with many hits after the same warm-up; the
difference, divided by the extra hits, is the cost of one hit (start-up
and warm-up cancel out). Cases: a bare Flask view, Flask-Stash ``@cached``
on the memory store, Flask-Caching ``@cached(query_string=True)`` on
SimpleCache, all with a query string, at the WSGI boundary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flask import Flask

from .bench_views import QUERY, bare_app, flask_caching_app, stash_app
from .common import environ_for, wsgi_call

CASES = {"bare": bare_app, "flask_stash": stash_app, "flask_caching": flask_caching_app}
FEW, MANY = 50, 550


def run_hits(case: str, hits: int) -> None:
    app: Flask = CASES[case]()
    environ = environ_for("/page", QUERY)
    for _ in range(20):  # warm-up: the first request fills the cache
        wsgi_call(app, environ)
    for _ in range(hits):
        wsgi_call(app, environ)


def instructions(case: str, hits: int, valgrind: str) -> int:
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
                case,
                "--hits",
                str(hits),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--hits", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.run:
        run_hits(options.run, options.hits)
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("\nbench_instructions: valgrind is not installed (Debian package valgrind); skipped")
        return
    per_hit = {
        case: (instructions(case, MANY, valgrind) - instructions(case, FEW, valgrind))
        / (MANY - FEW)
        for case in CASES
    }
    print("\nInstructions per hit (callgrind), memory store, with a query string")
    for case, count in per_hit.items():
        print(f"  {case:<14} {count:10.0f}  {count / per_hit['bare']:.2f} x bare")


if __name__ == "__main__":
    main(sys.argv[1:])
