"""Run every wall-clock benchmark: ``python -m benchmarks`` (``make bench``).

Instruction counts, which repeat exactly on a busy machine, are
``python -m benchmarks.bench_instructions`` (``make bench-instructions``).

One benchmark that fails is reported and the others still run; the exit
status is then 1.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable

from . import (
    bench_memoize,
    bench_near,
    bench_remote,
    bench_server,
    bench_stampede,
    bench_views,
)

BENCHES: list[tuple[str, Callable[[list[str]], None]]] = [
    ("bench_views", bench_views.main),
    ("bench_memoize", bench_memoize.main),
    ("bench_remote", bench_remote.main),
    ("bench_near", bench_near.main),
    ("bench_stampede", bench_stampede.main),
    ("bench_server", bench_server.main),
]


def main() -> None:
    failed = []
    started = time.monotonic()
    for name, bench in BENCHES:
        try:
            bench([])
        except Exception:
            failed.append(name)
            print(f"\n{name} failed:", file=sys.stderr)
            traceback.print_exc()
        sys.stdout.flush()
    print(f"\nall benchmarks: {time.monotonic() - started:.0f} s")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
