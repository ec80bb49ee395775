"""Fixtures for the memcached store: real memcached processes on free ports.

Memcached keeps time in whole seconds, so ``advance`` really sleeps; the
suite's ``advance(2.1)`` after a 1-second timeout allows for the rounding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from ..harness import StoreHarness, closing_factory
from ..servers import ServerProcess, free_port, require_binary, servers_required

if TYPE_CHECKING:
    from flask_stash.stores.memcached import MemcachedStore


def memcached_argv(binary: str, port: int, *extra: str) -> list[str]:
    """A throwaway server on 127.0.0.1, no UDP; ``-u root`` lets it run as root."""
    return [binary, "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", *extra]


def memcached_binary() -> str:
    return require_binary("memcached", "/usr/bin/memcached")


def start_memcached(*extra: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(memcached_argv(memcached_binary(), port, *extra), port).start()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[ServerProcess]:
    server = start_memcached()
    yield server
    server.stop()


@pytest.fixture
def memcached_processes() -> Iterator[Callable[[int], list[ServerProcess]]]:
    """Start servers a test may kill or restart; all are stopped when it ends."""
    started: list[ServerProcess] = []

    def start(count: int) -> list[ServerProcess]:
        servers = [start_memcached() for _ in range(count)]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def memcached_store_factory() -> Iterator[Callable[..., MemcachedStore]]:
    """Build MemcachedStores that are all closed when the test ends."""
    if not servers_required():
        pytest.importorskip("pymemcache")
    from flask_stash.stores.memcached import MemcachedStore

    with closing_factory(MemcachedStore) as make:
        yield make


@pytest.fixture
def memcached_harness(
    memcached_server: ServerProcess, memcached_store_factory: Callable[..., MemcachedStore]
) -> StoreHarness:
    return StoreHarness(
        make=lambda prefix: memcached_store_factory([memcached_server.address], key_prefix=prefix),
        advance=time.sleep,
        shared=True,
        url=f"memcached://{memcached_server.address}",
    )
