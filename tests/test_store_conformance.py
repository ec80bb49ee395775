"""One suite, run against every store with real servers (see tests/plugins)."""

from __future__ import annotations

import multiprocessing
import uuid

import pytest

from flask_stash.errors import SerializationError
from flask_stash.stores import BaseStore

from .harness import StoreHarness


@pytest.fixture
def store(harness: StoreHarness) -> BaseStore:
    return harness.make(f"t{uuid.uuid4().hex[:8]}:")


def test_get_of_absent_key_is_none(store: BaseStore) -> None:
    assert store.get("absent") is None
    assert store.has("absent") is False


@pytest.mark.parametrize(
    "value",
    ["text", b"\x00\xffbytes", 0, 42, -7, 3.5, True, False, [1, {"a": (2, 3)}], {"k": [None]}],
    ids=repr,
)
def test_set_then_get_round_trips_value_and_type(store: BaseStore, value: object) -> None:
    assert store.set("k", value) is True
    got = store.get("k")
    assert got == value
    assert type(got) is type(value)


def test_set_overwrites(store: BaseStore) -> None:
    store.set("k", "one")
    store.set("k", "two")
    assert store.get("k") == "two"


def test_add_only_sets_an_absent_key(store: BaseStore) -> None:
    assert store.add("k", "first") is True
    assert store.add("k", "second") is False
    assert store.get("k") == "first"


def test_delete(store: BaseStore) -> None:
    store.set("k", 1)
    assert store.delete("k") is True
    assert store.get("k") is None
    assert store.delete("k") is False


def test_many(store: BaseStore) -> None:
    assert sorted(store.set_many({"a": 1, "b": "two"})) == ["a", "b"]
    assert store.get_many("a", "missing", "b") == [1, None, "two"]
    assert store.get_dict("a", "b") == {"a": 1, "b": "two"}
    assert sorted(store.delete_many("a", "b", "missing")) == ["a", "b"]
    assert store.get_many("a", "b") == [None, None]


def test_has(store: BaseStore) -> None:
    store.set("k", "v")
    assert store.has("k") is True


def test_inc_and_dec(store: BaseStore) -> None:
    assert store.inc("n") == 1
    assert store.inc("n", 5) == 6
    assert store.dec("n", 2) == 4
    assert store.get("n") == 4


def test_inc_after_set_of_int(store: BaseStore) -> None:
    store.set("n", 10)
    assert store.inc("n") == 11


def test_timeout_expires_entry(store: BaseStore, harness: StoreHarness) -> None:
    store.set("short", "v", timeout=1)
    store.set("long", "v", timeout=60)
    store.set("forever", "v", timeout=0)
    assert store.get("short") == "v"
    harness.advance(2.1)
    assert store.get("short") is None
    assert store.has("short") is False
    assert store.get("long") == "v"
    assert store.get("forever") == "v"


def test_add_succeeds_once_entry_expired(store: BaseStore, harness: StoreHarness) -> None:
    assert store.add("lock", "a", timeout=1) is True
    harness.advance(2.1)
    assert store.add("lock", "b", timeout=1) is True
    assert store.get("lock") == "b"


def test_negative_timeout_is_rejected(store: BaseStore) -> None:
    with pytest.raises(ValueError, match="timeout"):
        store.set("k", "v", timeout=-1)


def test_value_that_cannot_be_serialized_raises_serialization_error(store: BaseStore) -> None:
    with pytest.raises(SerializationError):
        store.set("k", (x for x in range(3)))
    assert store.get("k") is None


def test_read_value_cannot_mutate_stored_entry(store: BaseStore) -> None:
    store.set("k", {"items": [1, 2]})
    got = store.get("k")
    got["items"].append(3)
    assert store.get("k") == {"items": [1, 2]}


def test_clear_removes_only_this_namespace(harness: StoreHarness) -> None:
    ns = uuid.uuid4().hex[:8]
    mine, theirs = harness.make(f"{ns}mine:"), harness.make(f"{ns}theirs:")
    mine.set("k", "mine")
    theirs.set("k", "theirs")
    assert mine.clear() is True
    assert mine.get("k") is None
    assert theirs.get("k") == "theirs"
    mine.set("k", "again")
    assert mine.get("k") == "again"


def test_entry_written_by_one_instance_is_read_by_another(harness: StoreHarness) -> None:
    if not harness.shared:
        pytest.skip("an in-process store is private to its instance by design")
    prefix = f"{uuid.uuid4().hex[:8]}:"
    first, second = harness.make(prefix), harness.make(prefix)
    first.set("page", "body")
    assert second.get("page") == "body"
    second.delete("page")
    assert first.get("page") is None


def test_clear_by_one_instance_is_seen_by_another(harness: StoreHarness) -> None:
    if not harness.shared:
        pytest.skip("an in-process store is private to its instance by design")
    prefix = f"{uuid.uuid4().hex[:8]}:"
    first, second = harness.make(prefix), harness.make(prefix)
    first.set("k", "v")
    second.clear()
    assert first.get("k") is None


def _increment_many(url: str, prefix: str, times: int) -> None:
    from flask_stash.stores import StoreConfig, build_store, type_for_url

    store_type, parts = type_for_url(url)
    store = build_store(store_type, StoreConfig(key_prefix=prefix, url=parts))
    for _ in range(times):
        store.inc("counter")


def test_inc_is_atomic_across_processes(harness: StoreHarness) -> None:
    if not harness.shared or harness.url is None:
        pytest.skip("only stores shared between processes")
    prefix = f"{uuid.uuid4().hex[:8]}:"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_increment_many, args=(harness.url, prefix, 200)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert harness.make(prefix).get("counter") == 800
