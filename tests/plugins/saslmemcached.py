"""Fixtures for the SASL memcached store: memcached with ``-S`` and a sasldb.

memcached reads its SASL settings from ``$SASL_CONF_PATH/memcached.conf``;
the user lives in a private sasldb made with ``saslpasswd2``, so nothing
outside the test's temporary directory is touched.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..harness import StoreHarness, closing_factory
from ..servers import ServerProcess, free_port, require_binary, servers_required
from .memcached import memcached_argv, memcached_binary

if TYPE_CHECKING:
    from flask_stash.stores.saslmemcached import SASLMemcachedStore

SASL_USER = "stash"
SASL_PASSWORD = "right-horse-battery"


def sasl_config(directory: Path) -> Path:
    """Write memcached.conf and a sasldb holding SASL_USER; return the directory."""
    saslpasswd = require_binary("saslpasswd2", "/usr/sbin/saslpasswd2")
    database = directory / "memcached-sasl-db"
    (directory / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {database}\n")
    subprocess.run(
        [saslpasswd, "-a", "memcached", "-c", "-f", str(database), "-p", SASL_USER],
        input=SASL_PASSWORD.encode(),
        check=True,
        capture_output=True,
    )
    return directory


@pytest.fixture(scope="session")
def saslmemcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    binary = memcached_binary()
    directory = sasl_config(tmp_path_factory.mktemp("sasl"))
    port = free_port()
    server = ServerProcess(
        memcached_argv(binary, port, "-S"), port, env={"SASL_CONF_PATH": str(directory)}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def saslmemcached_store_factory() -> Iterator[Callable[..., SASLMemcachedStore]]:
    """Build SASLMemcachedStores that are all closed when the test ends."""
    if not servers_required():
        pytest.importorskip("bmemcached")
    from flask_stash.stores.saslmemcached import SASLMemcachedStore

    with closing_factory(SASLMemcachedStore) as make:
        yield make


@pytest.fixture
def saslmemcached_harness(
    saslmemcached_server: ServerProcess,
    saslmemcached_store_factory: Callable[..., SASLMemcachedStore],
) -> StoreHarness:
    return StoreHarness(
        make=lambda prefix: saslmemcached_store_factory(
            [saslmemcached_server.address],
            key_prefix=prefix,
            username=SASL_USER,
            password=SASL_PASSWORD,
        ),
        advance=time.sleep,
        shared=True,
        url=f"memcached://{SASL_USER}:{SASL_PASSWORD}@{saslmemcached_server.address}",
    )
