"""The instruction-count harness runs (on a tiny N); no figure is asserted here.

Speed is measured in ``benchmarks/`` (``make bench``, ``make bench-instructions``),
never in timed tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_instruction_count_harness_reports_a_count_per_hit() -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (Debian package valgrind)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_instructions",
            "--groups",
            "memoize",
            "--cases",
            "plain_call",
            "--few",
            "1",
            "--many",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "Instructions per hit (callgrind), @memoize hit, memory store" in done.stdout
    line = next(line for line in done.stdout.splitlines() if "plain_call" in line)
    count = float(re.split(r"\s+", line.strip())[1])
    assert count > 0  # a real count: hits cost instructions
