"""Flask-Caching's own test suite, run against Flask-Stash.

The suite is fetched with pip at test time (Flask-Caching's code is never
kept here) and run in a separate pytest process, with ``tests/compat`` first
on the path: its ``flask_caching`` package maps Flask-Caching's names onto
Flask-Stash's, and its plugin marks the tests that fail on purpose (see
``tests/compat/flask_stash_differences.py`` and ``docs/migration.rst``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .compat.flask_stash_differences import DIFFERENCES, PUBLIC_API
from .servers import servers_required

VERSION = "2.5.1"
COMPAT = Path(__file__).parent / "compat"
#: Public-API tests that must pass: all but the listed differences.
PUBLIC_API_TESTS = 151


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flask-Caching's sdist, downloaded and unpacked; its tests/ directory."""
    where = tmp_path_factory.mktemp("flask_caching")
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(where),
            f"flask-caching=={VERSION}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if fetched.returncode != 0:
        message = f"could not download Flask-Caching {VERSION}: {fetched.stderr.strip()}"
        if servers_required():
            pytest.fail(message)
        pytest.skip(message)
    (archive,) = where.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    return where / f"flask_caching-{VERSION}"


def run_suite(root: Path, files: list[str], tmp_path: Path) -> tuple[dict[str, int], str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(COMPAT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "flask_stash_differences",
            "-o",
            f"cache_dir={tmp_path / 'cache'}",
            "-W",
            "ignore",
            "-rfEX",
            *files,
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = done.stdout.strip().splitlines()[-1]
    counts = {name: int(n) for n, name in re.findall(r"(\d+) (\w+)", summary)}
    return counts, done.stdout


def test_public_api_suite_passes_but_for_listed_differences(suite: Path, tmp_path: Path) -> None:
    files = [f"tests/{name}" for name in PUBLIC_API]
    counts, output = run_suite(suite, files, tmp_path)
    print(f"Flask-Caching {VERSION} public-API tests: {counts}")
    assert counts.get("failed", 0) == 0, output
    assert counts.get("error", 0) + counts.get("errors", 0) == 0, output
    assert counts.get("xpassed", 0) == 0, output
    assert counts.get("xfailed", 0) == len(DIFFERENCES), output
    assert counts.get("passed", 0) == PUBLIC_API_TESTS - len(DIFFERENCES), output


def test_whole_suite_figures(suite: Path, tmp_path: Path) -> None:
    """The whole suite, cachelib and backend internals included: reported, and no worse."""
    counts, output = run_suite(suite, ["tests"], tmp_path)
    print(f"Flask-Caching {VERSION} whole suite: {counts}")
    assert counts.get("passed", 0) >= PUBLIC_API_TESTS - len(DIFFERENCES), output
