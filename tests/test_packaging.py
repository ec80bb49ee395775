"""What ``pip install`` gets: the wheel's metadata, license, version and extras."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import flask_stash

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(where), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = where.glob("flask_stash-*.whl")
    return zipfile.ZipFile(built)


def _metadata(wheel: zipfile.ZipFile) -> Message:
    (name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return email.message_from_bytes(wheel.read(name))


def test_the_wheel_ships_the_license(wheel: zipfile.ZipFile) -> None:
    (name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
    assert wheel.read(name) == (ROOT / "LICENSE").read_bytes()
    assert _metadata(wheel)["License-Expression"] == "BSD-3-Clause"


def test_the_version_has_one_source(wheel: zipfile.ZipFile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert _metadata(wheel)["Version"] == flask_stash.__version__
    assert f"Version {flask_stash.__version__}" in (ROOT / "CHANGES.rst").read_text()


def test_the_metadata_says_where_to_look_and_what_it_runs_on(wheel: zipfile.ZipFile) -> None:
    metadata = _metadata(wheel)
    urls = dict(value.split(", ", 1) for value in metadata.get_all("Project-URL") or [])
    assert {"Documentation", "Source", "Changes", "Issue Tracker"} <= set(urls)
    classifiers = set(metadata.get_all("Classifier") or [])
    minimum = metadata["Requires-Python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {minimum}" in classifiers
    assert {
        "Framework :: Flask",
        "Typing :: Typed",
        "Environment :: Web Environment",
    } <= classifiers


def test_all_brings_every_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (everything,) = extras["all"]
    named = set(everything.removeprefix("flask-stash[").removesuffix("]").split(","))
    features = set(extras) - {"all", "dev", "docs"}
    assert named == features


def test_the_redis_extra_brings_what_the_near_cache_needs() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {requirement.split(">")[0].split("=")[0] for requirement in extras["redis"]}
    assert names == {"redis", "hiredis"}


def test_the_pre_commit_config_is_valid_and_runs_ruff_and_mypy() -> None:
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (the dev extra has it)")
    subprocess.run([pre_commit, "validate-config", ".pre-commit-config.yaml"], cwd=ROOT, check=True)
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    for hook in ("ruff check", "ruff format", "mypy"):
        assert f"name: {hook}" in text
