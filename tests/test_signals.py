"""The cache_* blinker signals: who sends them, with what, and only when listened to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from blinker import NamedSignal
from flask import Flask, Response

import flask_stash
from flask_stash import (
    Cache,
    MemoryStore,
    Stats,
    cache_error,
    cache_hit,
    cache_miss,
    cache_skipped,
    cache_stored,
)


class BrokenStore(MemoryStore):
    """Every read fails, as with a server that went away."""

    def get(self, key: str) -> Any:
        raise ConnectionRefusedError("store is down")

    def get_many(self, *keys: str) -> list[Any]:
        raise ConnectionRefusedError("store is down")


@contextmanager
def recorded(signal: NamedSignal, sender: Any = None) -> Iterator[list[dict[str, Any]]]:
    """Collect each sending of *signal* (from *sender* only, if given) as a dict."""
    calls: list[dict[str, Any]] = []

    def receiver(sent_by: Any, **kwargs: Any) -> None:
        calls.append({"sender": sent_by, **kwargs})

    if sender is None:
        with signal.connected_to(receiver):
            yield calls
    else:
        with signal.connected_to(receiver, sender=sender):
            yield calls


def make_app(**config: Any) -> tuple[Flask, Cache]:
    app = Flask(__name__)
    app.config.update(config)
    cache = Cache(app)

    @app.route("/")
    @cache.cached(timeout=60)
    def index() -> str:
        return "hello"

    @app.route("/cookie")
    @cache.cached(timeout=60)
    def cookie() -> Response:
        response = Response("with a cookie")
        response.set_cookie("seen", "1")
        return response

    return app, cache


def test_signals_are_exported() -> None:
    for name in ("cache_error", "cache_hit", "cache_miss", "cache_skipped", "cache_stored"):
        assert name in flask_stash.__all__
        assert isinstance(getattr(flask_stash, name), NamedSignal)


def test_miss_stored_then_hit_are_sent_with_the_app_and_the_view_name() -> None:
    app, _ = make_app()
    client = app.test_client()
    with (
        recorded(cache_miss, app) as misses,
        recorded(cache_stored, app) as stores,
        recorded(cache_hit, app) as hits,
    ):
        client.get("/")
        assert (len(misses), len(stores), len(hits)) == (1, 1, 0)
        client.get("/")
        assert (len(misses), len(stores), len(hits)) == (1, 1, 1)
    for call in (*misses, *stores, *hits):
        assert call["sender"] is app
        assert call["name"] == "index"
        assert "key" in call


def test_receivers_of_another_app_hear_nothing() -> None:
    app, _ = make_app()
    other, _ = make_app()
    with recorded(cache_miss, other) as calls:
        app.test_client().get("/")
    assert calls == []


def test_skipped_carries_the_reason() -> None:
    app, _ = make_app()
    with recorded(cache_skipped, app) as calls, recorded(cache_stored, app) as stores:
        app.test_client().get("/cookie")
    assert [call["reason"] for call in calls] == ["Set-Cookie"]
    assert calls[0]["name"] == "cookie"
    assert stores == []


def test_error_carries_the_exception() -> None:
    app, _ = make_app(CACHE_TYPE=BrokenStore)
    with recorded(cache_error, app) as calls:
        response = app.test_client().get("/")
    assert response.text == "hello"
    assert len(calls) >= 1
    first = calls[0]
    assert first["sender"] is app
    assert first["name"] == "index"
    assert isinstance(first["exception"], ConnectionRefusedError)
    assert str(first["exception"]) == "store is down"


def test_memoized_functions_send_them_too() -> None:
    app, cache = make_app()

    @cache.memoize(timeout=60)
    def double(x: int) -> int:
        return 2 * x

    with app.app_context(), recorded(cache_miss) as misses, recorded(cache_hit) as hits:
        assert double(2) == 4
        assert double(2) == 4
    assert [call["name"] for call in misses] == [
        f"{__name__}.{double.__qualname__.replace('<locals>.', '')}"
    ]
    assert len(hits) == 1
    assert hits[0]["sender"] is app


def test_stats_sends_its_arguments() -> None:
    sender = object()
    stats = Stats(sender)
    with (
        recorded(cache_hit) as hits,
        recorded(cache_miss) as misses,
        recorded(cache_stored) as stores,
        recorded(cache_skipped) as skips,
        recorded(cache_error) as errors,
    ):
        stats.hit("view", "k1")
        stats.miss("view", "k2")
        stats.stored("view", "k3")
        stats.skip("view", "session", "k4")
        failure = TimeoutError("slow")
        stats.error("view", failure, "k5", "get")
    assert hits == [{"sender": sender, "name": "view", "key": "k1"}]
    assert misses == [{"sender": sender, "name": "view", "key": "k2"}]
    assert stores == [{"sender": sender, "name": "view", "key": "k3"}]
    assert skips == [{"sender": sender, "name": "view", "key": "k4", "reason": "session"}]
    assert errors == [
        {"sender": sender, "name": "view", "key": "k5", "exception": failure, "operation": "get"}
    ]
    assert (stats.total.hits, stats.total.misses, stats.total.stores, stats.total.errors) == (
        1,
        1,
        1,
        1,
    )


def test_error_defaults_to_the_exception_being_handled() -> None:
    stats = Stats(object())
    with recorded(cache_error) as calls:
        try:
            raise OSError("gone")
        except OSError:
            stats.error("view")
    assert isinstance(calls[0]["exception"], OSError)


def test_without_a_sender_the_current_app_sends() -> None:
    app = Flask(__name__)
    stats = Stats()
    with recorded(cache_hit) as calls:
        stats.hit("outside")
        with app.app_context():
            stats.hit("inside")
    assert [call["sender"] for call in calls] == [None, app]


def test_nothing_is_built_while_nobody_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = Stats(object())

    def no_sender() -> object:
        raise AssertionError("the sender was looked up with no receiver connected")

    monkeypatch.setattr(stats, "_sender", no_sender)
    for signal in (cache_hit, cache_miss, cache_stored, cache_skipped, cache_error):
        assert not signal.receivers
    stats.hit("view")
    stats.miss("view")
    stats.stored("view")
    stats.skip("view", "session")
    stats.error("view")
    assert stats.total.hits == 1


def test_a_receiver_sees_counters_already_updated() -> None:
    app, cache = make_app()
    seen: list[int] = []

    def receiver(sender: Flask, **kwargs: Any) -> None:
        seen.append(cache.state(sender).stats.total.hits)

    with cache_hit.connected_to(receiver, sender=app):
        client = app.test_client()
        client.get("/")
        client.get("/")
    assert seen == [1]
