"""Fixtures for the in-process store."""

from __future__ import annotations

import pytest

from flask_stash.stores import MemoryStore, NullStore

from ..harness import StoreHarness


class FakeClock:
    """A clock the tests move by hand, so expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory_harness(clock: FakeClock) -> StoreHarness:
    return StoreHarness(
        make=lambda prefix: MemoryStore(key_prefix=prefix, clock=clock),
        advance=clock.advance,
        shared=False,
    )


@pytest.fixture
def null_store() -> NullStore:
    return NullStore()
