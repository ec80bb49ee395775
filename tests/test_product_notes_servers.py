"""The product notes' memcached example, run against real servers, with no SECRET_KEY.

The config class is the notes' own, unchanged; only the server's address
differs, since the test's memcached listens on a free port.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from flask_stash import Cache

from .plugins.saslmemcached import SASL_PASSWORD, SASL_USER
from .servers import ServerProcess


class Development:
    MEMCACHED_HOST = "127.0.0.1:11211"
    MEMCACHED_USER = "piaotiejun"
    MEMCACHED_PWD = "password"
    CACHE_TYPE = "memcached"


def notes_app(config: type) -> tuple[Flask, Cache, list[int]]:
    """The notes' app: a config class, ``Cache(app)``, one cached view."""
    app = Flask(__name__)
    app.config.from_object(config)
    cache = Cache(app)
    runs: list[int] = []

    @app.route("/")
    @cache.cached(timeout=50)
    def index() -> str:
        runs.append(1)
        return "hello world!"

    return app, cache, runs


def served_twice_from_one_computation(config: type) -> Cache:
    app, cache, runs = notes_app(config)
    client = app.test_client()
    assert client.get("/").text == "hello world!"
    assert client.get("/").text == "hello world!"
    assert runs == [1]
    # A second app on the same server (another worker) gets the stored page.
    other, _, other_runs = notes_app(config)
    assert other.test_client().get("/").text == "hello world!"
    assert other_runs == []
    return cache


def test_notes_memcached_config_class(
    memcached_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("pymemcache")

    class OnTestServer(Development):
        MEMCACHED_HOST = f"127.0.0.1:{memcached_server.port}"

    caplog.set_level(logging.WARNING, "flask_stash")
    cache: Any = served_twice_from_one_computation(OnTestServer)
    assert cache.state().store.describe().count(str(memcached_server.port)) == 1
    # What the notes' keys mean, and that plain memcached does not log in, is said.
    assert "MEMCACHED_HOST is read as CACHE_MEMCACHED_SERVERS" in caplog.text
    assert "set CACHE_TYPE = 'saslmemcached' to authenticate" in caplog.text
    assert "unsigned" in caplog.text


def test_notes_sasl_variant(saslmemcached_server: ServerProcess) -> None:
    pytest.importorskip("bmemcached")

    class SASL(Development):
        MEMCACHED_HOST = f"127.0.0.1:{saslmemcached_server.port}"
        MEMCACHED_USER = SASL_USER
        MEMCACHED_PWD = SASL_PASSWORD
        CACHE_TYPE = "saslmemcached"

    served_twice_from_one_computation(SASL)


def test_notes_sasl_variant_with_a_wrong_password_serves_uncached(
    saslmemcached_server: ServerProcess,
) -> None:
    pytest.importorskip("bmemcached")

    class WrongPassword(Development):
        MEMCACHED_HOST = f"127.0.0.1:{saslmemcached_server.port}"
        MEMCACHED_USER = SASL_USER
        CACHE_TYPE = "saslmemcached"

    app, _, runs = notes_app(WrongPassword)
    client = app.test_client()
    assert [client.get("/").text for _ in range(2)] == ["hello world!"] * 2
    assert runs == [1, 1]
