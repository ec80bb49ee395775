"""Fixtures for the Redis store: one real redis-server shared by the session."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from ..harness import StoreHarness, closing_factory
from ..servers import ServerProcess, free_port, require_binary, servers_required

if TYPE_CHECKING:
    from flask_stash.stores.redis import RedisStore


def redis_argv(binary: str, port: int, *extra: str) -> list[str]:
    """The command line of a throwaway server: no persistence, quiet logs.

    The log goes to a pipe nobody reads, so it is kept to warnings to stay
    far below the pipe's buffer.
    """
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
        *extra,
    ]


def redis_binary() -> str:
    return require_binary("redis-server", "/usr/bin/redis-server")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerProcess]:
    port = free_port()
    server = ServerProcess(redis_argv(redis_binary(), port), port)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def redis_store_factory() -> Iterator[Callable[..., RedisStore]]:
    """Build RedisStores that are all closed when the test ends.

    The import waits until here so that a checkout without the redis
    package can still run every other store's tests.
    """
    if not servers_required():
        pytest.importorskip("redis")
    from flask_stash.stores.redis import RedisStore

    with closing_factory(RedisStore) as make:
        yield make


@pytest.fixture
def redis_harness(
    redis_server: ServerProcess, redis_store_factory: Callable[..., RedisStore]
) -> StoreHarness:
    return StoreHarness(
        make=lambda prefix: redis_store_factory(
            host="127.0.0.1", port=redis_server.port, key_prefix=prefix
        ),
        advance=time.sleep,
        shared=True,
        url=f"redis://127.0.0.1:{redis_server.port}/0",
    )
