"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from __future__ import annotations

from . import bench_remote, bench_views


def main() -> None:
    bench_views.main([])
    bench_remote.main([])


if __name__ == "__main__":
    main()
