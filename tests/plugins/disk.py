"""Fixtures for the disk store: a real directory per test, real sleeps.

diskcache times entries by the wall clock, so ``advance`` really sleeps.
Every store made in one test opens the same directory, as the worker
processes of one app would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..harness import StoreHarness

if TYPE_CHECKING:
    from flask_stash.stores.disk import DiskStore


@pytest.fixture
def disk_dir(tmp_path: Path) -> Path:
    return tmp_path / "disk-cache"


@pytest.fixture
def disk_harness(disk_dir: Path) -> Iterator[StoreHarness]:
    # Imported here: an install without the disk extra runs the other stores' tests.
    pytest.importorskip("diskcache")
    from flask_stash.stores.disk import DiskStore

    made: list[DiskStore] = []

    def make(prefix: str) -> DiskStore:
        store = DiskStore(directory=disk_dir, key_prefix=prefix)
        made.append(store)
        return store

    yield StoreHarness(make=make, advance=time.sleep, shared=True, url=disk_dir.as_uri())
    for store in made:
        store.close()
