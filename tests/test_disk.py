"""The disk store beyond the conformance suite: restarts, bounds, processes, config.

Everything runs on real directories and real processes (spawned, as a
fresh worker would start), with no mocks.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_stash.errors import ConfigurationError, SerializationError
from flask_stash.stores import StoreConfig, build_store, type_for_url
from flask_stash.stores.disk import DiskStore

MiB = 1024 * 1024


@pytest.fixture
def opened() -> Iterator[Callable[..., DiskStore]]:
    """Build disk stores and close them all when the test ends."""
    stores: list[DiskStore] = []

    def make(directory: Path, **kwargs: Any) -> DiskStore:
        store = DiskStore(directory, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def directory_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def run_processes(target: Callable[..., None], *arg_sets: tuple[Any, ...]) -> None:
    """Run *target* once per argument tuple, all at the same time, and check each exits 0."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=args) for args in arg_sets]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0, f"a worker process failed (exit code {worker.exitcode})"


def payload(worker: int, item: int) -> dict[str, Any]:
    return {"worker": worker, "item": item, "body": bytes([worker]) * (item * 97 % 5000)}


def _write_and_read(directory: str, worker: int, workers: int, items: int) -> None:
    store = DiskStore(directory, key_prefix="app:")
    for item in range(items):
        store.set(f"w{worker}:{item}", payload(worker, item))
        assert store.get(f"w{worker}:{item}") == payload(worker, item)
        other = (worker + 1) % workers
        seen = store.get(f"w{other}:{item}")
        assert seen is None or seen == payload(other, item)
        store.set("shared", payload(worker, item))
        last = store.get("shared")  # whoever wrote last, the value is whole
        assert last == payload(last["worker"], last["item"])
    store.close()


def _count(directory: str, times: int) -> None:
    store = DiskStore(directory, key_prefix="app:")
    for _ in range(times):
        store.inc("up")
        store.dec("down", 2)
    store.close()


def _try_lock(directory: str, worker: int) -> None:
    store = DiskStore(directory, key_prefix="app:")
    if store.add("lock", worker, timeout=60):
        store.inc("winners")
    store.close()


def test_entries_survive_a_restart(tmp_path: Path, opened: Callable[..., DiskStore]) -> None:
    first = opened(tmp_path, key_prefix="app:")
    first.set("page", {"html": "<p>hi</p>"}, timeout=0)
    first.set("hits", 7)
    first.close()
    second = opened(tmp_path, key_prefix="app:")
    assert second.get("page") == {"html": "<p>hi</p>"}
    assert second.inc("hits") == 8


def test_directory_stays_bounded_by_max_bytes(
    tmp_path: Path, opened: Callable[..., DiskStore]
) -> None:
    store = opened(tmp_path, max_bytes=MiB)
    written = 0
    for item in range(800):
        # Small values live inside SQLite, large ones in files of their own.
        size = 100_000 if item % 3 == 0 else 20_000
        assert store.set(f"k{item}", os.urandom(size))
        written += size
    assert written > 30 * MiB
    assert store._cache.volume() < 1.2 * MiB
    # The write-ahead log adds up to a few MiB until SQLite checkpoints it.
    assert directory_size(tmp_path) < MiB + 6 * MiB
    assert store.get("k799") is not None
    assert store.get("k0") is None


def test_value_larger_than_max_bytes_is_not_stored(
    tmp_path: Path, opened: Callable[..., DiskStore]
) -> None:
    store = opened(tmp_path, max_bytes=MiB)
    assert store.set("big", b"x" * (2 * MiB)) is False
    assert store.add("big", b"x" * (2 * MiB)) is False
    assert store.get("big") is None


def test_threshold_bounds_entry_count_evicting_oldest(
    tmp_path: Path, opened: Callable[..., DiskStore]
) -> None:
    store = opened(tmp_path, threshold=10)
    for item in range(50):
        store.set(f"k{item}", item)
    store.inc("counter")
    assert len(store._cache) <= 10
    assert store.get("k49") == 49
    assert store.get("counter") == 1
    assert store.get("k0") is None


def test_processes_write_and_read_one_directory(
    tmp_path: Path, opened: Callable[..., DiskStore]
) -> None:
    workers, items = 4, 150
    run_processes(_write_and_read, *[(str(tmp_path), n, workers, items) for n in range(workers)])
    store = opened(tmp_path, key_prefix="app:")
    for worker in range(workers):
        for item in range(items):
            assert store.get(f"w{worker}:{item}") == payload(worker, item)


def test_inc_and_dec_are_atomic_across_processes(
    tmp_path: Path, opened: Callable[..., DiskStore]
) -> None:
    run_processes(_count, *[(str(tmp_path), 150) for _ in range(4)])
    store = opened(tmp_path, key_prefix="app:")
    assert store.get("up") == 600
    assert store.get("down") == -1200


def test_add_lets_exactly_one_process_win(tmp_path: Path, opened: Callable[..., DiskStore]) -> None:
    run_processes(_try_lock, *[(str(tmp_path), n) for n in range(6)])
    store = opened(tmp_path, key_prefix="app:")
    assert store.get("winners") == 1
    assert store.get("lock") in range(6)


def test_clear_leaves_other_prefixes(tmp_path: Path, opened: Callable[..., DiskStore]) -> None:
    short, longer, bare = (opened(tmp_path, key_prefix=p) for p in ("a", "ab", ""))
    short.set("k", "short")
    short.inc("n")
    longer.set("k", "longer")
    bare.set("k", "bare")
    assert short.clear() is True
    assert short.get("k") is None
    assert short.get("n") is None  # counters are tagged too
    assert longer.get("k") == "longer"
    assert bare.get("k") == "bare"


def test_ints_are_stored_natively_and_other_values_serialized(
    tmp_path: Path, opened: Callable[..., DiskStore]
) -> None:
    store = opened(tmp_path)
    store.set("n", 2**40)
    assert store._cache.get("n") == 2**40
    assert store.inc("n") == 2**40 + 1
    store.set("flag", True)
    assert isinstance(store._cache.get("flag"), bytes)
    assert store.get("flag") is True
    assert store.inc("flag") == 1  # a bool is not a counter: read as absent
    with pytest.raises(SerializationError):
        store.add("gen", (x for x in range(2)))


def test_config_from_cache_url(tmp_path: Path) -> None:
    directory = tmp_path / "from url"  # a space, percent-encoded in the URL
    store_type, parts = type_for_url(directory.as_uri())
    store = build_store(
        store_type,
        StoreConfig(key_prefix="u:", threshold=50, url=parts, settings={"max_bytes": 8 * MiB}),
    )
    try:
        assert isinstance(store, DiskStore)
        assert store.directory == directory
        assert (store.max_bytes, store.threshold, store.key_prefix) == (8 * MiB, 50, "u:")
        assert str(directory) in store.describe()
        store.set("k", "v")
        assert directory.is_dir()
    finally:
        store.close()


@pytest.mark.parametrize("cache_type", ["filesystem", "disk", "FileSystemCache"])
def test_config_from_cache_dir(tmp_path: Path, cache_type: str) -> None:
    directory = tmp_path / "nested" / "dir"
    store = build_store(cache_type, StoreConfig(settings={"dir": str(directory)}))
    try:
        assert isinstance(store, DiskStore)
        assert store.directory == directory
        assert directory.is_dir()
    finally:
        store.close()


def test_disk_url_scheme_and_matching_dir_are_accepted(tmp_path: Path) -> None:
    _, parts = type_for_url(f"disk://{tmp_path}")
    store = build_store("disk", StoreConfig(url=parts, settings={"dir": str(tmp_path)}))
    store.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (StoreConfig(), "needs CACHE_DIR or CACHE_URL"),
        (StoreConfig(url=type_for_url("file://host/tmp/x")[1]), "absolute directory"),
        (
            StoreConfig(url=type_for_url("file:///tmp/one")[1], settings={"dir": "/tmp/two"}),
            "disagree",
        ),
    ],
)
def test_incomplete_config_is_a_configuration_error(config: StoreConfig, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_store("disk", config)


def test_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    file = tmp_path / "not-a-dir"
    file.write_text("x")
    with pytest.raises(ValueError, match="exists but is not a directory"):
        DiskStore(file)
    with pytest.raises(ConfigurationError, match="not a directory"):
        build_store("filesystem", StoreConfig(settings={"dir": str(file)}))
    with pytest.raises(ValueError, match="is not usable"):
        DiskStore(file / "below")
