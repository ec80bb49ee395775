from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import StoreHarness
from .servers import SilentServer

pytest_plugins = [
    "tests.plugins.memory",
    "tests.plugins.disk",
    "tests.plugins.memcached",
    "tests.plugins.saslmemcached",
    "tests.plugins.redis",
]

#: Every store the conformance suite runs against; each has a
#: ``<name>_harness`` fixture in tests/plugins/<name>.py.
STORES = ["memory", "disk", "memcached", "saslmemcached", "redis"]


@pytest.fixture(params=STORES)
def harness(request: pytest.FixtureRequest) -> StoreHarness:
    found: StoreHarness = request.getfixturevalue(f"{request.param}_harness")
    return found


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A listener that accepts connections and never answers."""
    server = SilentServer()
    yield server
    server.close()
