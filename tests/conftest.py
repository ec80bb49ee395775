from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask

from flask_stash import Cache

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


@pytest.fixture
def app() -> Flask:
    return Flask(__name__)


@pytest.fixture
def cache(app: Flask) -> Cache:
    return Cache(app)


@pytest.fixture
def calls() -> Counter[str]:
    """How many times each computation ran, by name."""
    return Counter()
