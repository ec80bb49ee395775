"""Safe by default: one app-level test per rule of what a cached view may store and serve.

Each test counts the view's runs, so a broken rule shows up as a view that
did not run again, or as one visitor receiving another visitor's page.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import string
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, g, request, session, stream_with_context
from flask.testing import FlaskClient

from flask_stash import Cache, ConfigurationError
from flask_stash.entries import FrozenResponse
from flask_stash.http import DEFAULT_CACHEABLE_STATUSES
from flask_stash.serializers import PickleSerializer, SignedSerializer

from .plugins.memory import FakeClock
from .servers import ServerProcess

SECRET = "safety-test-secret"
_OPEN_APPS: list[Flask] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    """Close the store of every app a test built."""
    yield
    while _OPEN_APPS:
        for state in _OPEN_APPS.pop().extensions.get("flask_stash", {}).values():
            state.store.close()


def make_app(**config: Any) -> tuple[Flask, Cache]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, **config)
    _OPEN_APPS.append(app)
    return app, Cache(app)


@pytest.fixture
def app_cache() -> tuple[Flask, Cache]:
    return make_app()


@pytest.fixture
def app(app_cache: tuple[Flask, Cache]) -> Flask:
    return app_cache[0]


@pytest.fixture
def cache(app_cache: tuple[Flask, Cache]) -> Cache:
    return app_cache[1]


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


def login(client: FlaskClient, **values: str) -> FlaskClient:
    with client.session_transaction() as sess:
        sess.update(values)
    return client


def skips(app: Flask, cache: Cache) -> Counter[str]:
    with app.app_context():
        return Counter(cache.stats.total.skips)


# -- 1. what may be stored --------------------------------------------------------


@pytest.mark.parametrize("status", sorted(DEFAULT_CACHEABLE_STATUSES))
def test_default_cacheable_statuses_are_stored(
    app: Flask, cache: Cache, calls: Counter[str], status: int
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> tuple[str, int]:
        calls["index"] += 1
        return f"run {calls['index']}", status

    client = app.test_client()
    first, second = client.get("/"), client.get("/")
    assert first.status_code == second.status_code == status
    assert second.data == first.data
    assert calls["index"] == 1


@pytest.mark.parametrize("status", [500, 503, 201, 302, 400, 401, 403, 429])
def test_other_statuses_are_not_stored(
    app: Flask, cache: Cache, calls: Counter[str], status: int
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> tuple[str, int]:
        calls["index"] += 1
        return f"run {calls['index']}", status

    client = app.test_client()
    assert client.get("/").text == "run 1"
    assert client.get("/").text == "run 2"
    assert calls["index"] == 2
    assert skips(app, cache)[f"status {status}"] == 2


def test_a_404_is_stored_and_a_503_then_200_is_not_replayed(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/missing")
    @cache.cached()
    def missing() -> tuple[str, int]:
        calls["missing"] += 1
        return "no such page", 404

    @app.route("/busy")
    @cache.cached()
    def busy() -> tuple[str, int]:
        calls["busy"] += 1
        return ("busy", 503) if calls["busy"] == 1 else ("ready", 200)

    client = app.test_client()
    assert [client.get("/missing").status_code for _ in range(3)] == [404] * 3
    assert calls["missing"] == 1
    assert client.get("/busy").status_code == 503
    ready = client.get("/busy")
    assert (ready.status_code, ready.text) == (200, "ready")
    assert client.get("/busy").text == "ready"
    assert calls["busy"] == 2


def test_a_view_that_raises_is_not_stored(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        if calls["index"] == 1:
            raise RuntimeError("boom")
        return "fine"

    client = app.test_client()
    assert client.get("/").status_code == 500
    assert client.get("/").text == "fine"
    assert calls["index"] == 2


def test_cacheable_statuses_are_configurable(calls: Counter[str]) -> None:
    app, cache = make_app(CACHE_CACHEABLE_STATUSES=[200, 503])

    @app.route("/<int:status>")
    @cache.cached()
    def page(status: int) -> tuple[str, int]:
        calls[str(status)] += 1
        return "page", status

    client = app.test_client()
    for status in (200, 503, 404):
        assert client.get(f"/{status}").status_code == status
        assert client.get(f"/{status}").status_code == status
    assert calls == {"200": 1, "503": 1, "404": 2}


def test_set_cookie_is_never_stored_nor_replayed(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        response = Response(f"welcome {calls['index']}")
        response.set_cookie("visitor", f"token-{calls['index']}")
        return response

    first = app.test_client().get("/")
    second = app.test_client().get("/")
    assert first.text == "welcome 1"
    assert "token-1" in first.headers["Set-Cookie"]
    assert second.text == "welcome 2"
    assert "token-1" not in str(second.headers)
    assert calls["index"] == 2
    assert skips(app, cache)["Set-Cookie"] == 2


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("private", "Cache-Control: private"),
        ("Private", "Cache-Control: private"),
        ("max-age=60, PRIVATE", "Cache-Control: private"),
        ("no-store", "Cache-Control: no-store"),
        ("NO-STORE", "Cache-Control: no-store"),
        ("public, No-Store", "Cache-Control: no-store"),
    ],
)
def test_private_and_no_store_responses_are_not_stored(
    app: Flask, cache: Cache, calls: Counter[str], value: str, reason: str
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        return Response(f"run {calls['index']}", headers={"Cache-Control": value})

    client = app.test_client()
    assert client.get("/").text == "run 1"
    assert client.get("/").text == "run 2"
    assert skips(app, cache)[reason] == 2


def test_vary_star_is_not_stored(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        return Response(f"run {calls['index']}", headers={"Vary": "Accept-Language, *"})

    client = app.test_client()
    assert client.get("/").text == "run 1"
    assert client.get("/").text == "run 2"
    assert skips(app, cache)["Vary: *"] == 2


def test_streamed_response_passes_through_uncached(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        run = calls["index"]

        def chunks() -> Iterator[str]:
            yield "chunk "
            yield str(run)

        return Response(stream_with_context(chunks()))

    client = app.test_client()
    assert client.get("/").text == "chunk 1"
    assert client.get("/").text == "chunk 2"
    assert skips(app, cache)["streamed"] == 2


def test_direct_passthrough_response_passes_through_uncached(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        return Response(f"file {calls['index']}".encode(), direct_passthrough=True)

    client = app.test_client()
    assert client.get("/").text == "file 1"
    assert client.get("/").text == "file 2"
    assert skips(app, cache)["streamed"] == 2


def test_answer_to_an_authorized_request_is_not_stored(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"for {request.headers.get('Authorization')}"

    client = app.test_client()
    assert client.get("/", headers={"Authorization": "Bearer alice"}).text == "for Bearer alice"
    assert client.get("/", headers={"Authorization": "Bearer bob"}).text == "for Bearer bob"
    assert client.get("/").text == "for None"
    assert calls["index"] == 3
    assert skips(app, cache)["Authorization"] == 2


def test_stored_page_is_not_served_to_an_authorized_request(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"for {request.headers.get('Authorization')}"

    client = app.test_client()
    assert client.get("/").text == "for None"
    assert client.get("/").text == "for None"
    assert calls["index"] == 1
    assert client.get("/", headers={"Authorization": "Bearer alice"}).text == "for Bearer alice"
    assert calls["index"] == 2
    assert client.get("/").text == "for None"  # the anonymous page is still cached
    assert calls["index"] == 2


def test_public_answer_to_an_authorized_request_is_stored_and_shared(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        return Response(f"news {calls['index']}", headers={"Cache-Control": "public"})

    client = app.test_client()
    assert client.get("/", headers={"Authorization": "Bearer alice"}).text == "news 1"
    assert client.get("/", headers={"Authorization": "Bearer bob"}).text == "news 1"
    assert client.get("/").text == "news 1"
    assert calls["index"] == 1


# -- 2. per-user content ------------------------------------------------------------


def test_view_reading_a_non_empty_session_is_not_stored(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"hello {session.get('user')} {calls['index']}"

    alice = login(app.test_client(), user="alice")
    assert alice.get("/").text == "hello alice 1"
    assert alice.get("/").text == "hello alice 2"
    assert skips(app, cache)["session"] == 2


def test_alices_page_is_never_served_to_bob(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"hello {session.get('user')}"

    alice = login(app.test_client(), user="alice")
    bob = login(app.test_client(), user="bob")
    assert alice.get("/").text == "hello alice"
    assert bob.get("/").text == "hello bob"
    assert app.test_client().get("/").text == "hello None"
    assert alice.get("/").text == "hello alice"
    assert calls["index"] == 4


def test_page_made_for_an_empty_session_is_served_only_to_empty_sessions(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"hello {session.get('user', 'stranger')}"

    assert app.test_client().get("/").text == "hello stranger"
    assert app.test_client().get("/").text == "hello stranger"
    assert calls["index"] == 1
    alice = login(app.test_client(), user="alice")
    assert alice.get("/").text == "hello alice"
    assert calls["index"] == 2
    assert app.test_client().get("/").text == "hello stranger"
    assert calls["index"] == 2


def test_view_not_reading_the_session_is_shared_by_everyone(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return "same for all"

    login(app.test_client(), user="alice").get("/")
    login(app.test_client(), user="bob").get("/")
    app.test_client().get("/")
    assert calls["index"] == 1


def test_per_user_gives_each_session_its_own_cached_entry(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached(per_user=True)
    def index() -> str:
        calls[session.get("user", "anonymous")] += 1
        return f"hello {session.get('user', 'anonymous')}"

    alice = login(app.test_client(), user="alice")
    bob = login(app.test_client(), user="bob")
    for _ in range(3):
        assert alice.get("/").text == "hello alice"
        assert bob.get("/").text == "hello bob"
        assert app.test_client().get("/").text == "hello anonymous"
    assert calls == {"alice": 1, "bob": 1, "anonymous": 1}


def test_per_user_keys_on_the_authorization_header(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached(per_user=True)
    def index() -> str:
        who = request.headers.get("Authorization", "nobody")
        calls[who] += 1
        return f"hello {who}"

    client = app.test_client()
    for _ in range(2):
        for who in ("Bearer alice", "Bearer bob"):
            assert client.get("/", headers={"Authorization": who}).text == f"hello {who}"
        assert client.get("/").text == "hello nobody"
    assert calls == {"Bearer alice": 1, "Bearer bob": 1, "nobody": 1}


def test_per_user_callable_keys_on_its_result(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached(per_user=lambda: request.headers.get("X-Tenant"))
    def index() -> str:
        tenant = request.headers.get("X-Tenant", "none")
        calls[tenant] += 1
        return f"tenant {tenant}"

    client = app.test_client()
    for _ in range(2):
        for tenant in ("acme", "globex"):
            assert client.get("/", headers={"X-Tenant": tenant}).text == f"tenant {tenant}"
    # The callable's result alone is the user: other differences do not split the entry.
    assert client.get("/", headers={"X-Tenant": "acme", "X-Other": "1"}).text == "tenant acme"
    assert calls == {"acme": 1, "globex": 1}


def test_page_of_a_view_that_empties_the_session_is_not_served_to_others(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/logout")
    @cache.cached()
    def logout() -> str:
        calls["logout"] += 1
        return f"goodbye {session.pop('user', 'stranger')}"

    alice = login(app.test_client(), user="alice")
    assert alice.get("/logout").text == "goodbye alice"
    assert app.test_client().get("/logout").text == "goodbye stranger"


def test_per_user_page_that_writes_the_session_is_not_stored(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached(per_user=True)
    def index() -> str:
        calls["index"] += 1
        session["csrf"] = f"token-{calls['index']}"
        return f"form with {session['csrf']}"

    first = app.test_client().get("/")
    assert first.text == "form with token-1"
    assert "Set-Cookie" in first.headers
    second = app.test_client().get("/")
    assert second.text == "form with token-2"  # not the first visitor's token


# -- 3. Vary ------------------------------------------------------------------------


def test_vary_headers_become_part_of_the_key(app: Flask, cache: Cache, calls: Counter[str]) -> None:
    greetings = {"en": "hello", "fr": "bonjour"}

    @app.route("/")
    @cache.cached()
    def index() -> Response:
        lang = request.headers.get("Accept-Language", "en")
        calls[lang] += 1
        return Response(greetings[lang], headers={"Vary": "Accept-Language"})

    client = app.test_client()
    for _ in range(3):
        assert client.get("/", headers={"Accept-Language": "en"}).text == "hello"
        assert client.get("/", headers={"Accept-Language": "fr"}).text == "bonjour"
    assert calls == {"en": 1, "fr": 1}


def test_absent_and_empty_vary_header_are_different_entries(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        value = request.headers.get("X-Flavour")
        calls[repr(value)] += 1
        return Response(f"flavour {value!r}", headers={"Vary": "X-Flavour"})

    client = app.test_client()
    for _ in range(2):
        assert client.get("/").text == "flavour None"
        assert client.get("/", headers={"X-Flavour": ""}).text == "flavour ''"
        assert client.get("/", headers={"X-Flavour": "salt"}).text == "flavour 'salt'"
    assert calls == {"None": 1, "''": 1, "'salt'": 1}


def test_view_reading_cookies_varies_on_cookie(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        theme = request.cookies.get("theme", "plain")
        calls[theme] += 1
        return f"theme {theme}"

    dark, light, plain = app.test_client(), app.test_client(), app.test_client()
    dark.set_cookie("theme", "dark")
    light.set_cookie("theme", "light")
    for _ in range(2):
        assert dark.get("/").text == "theme dark"
        assert light.get("/").text == "theme light"
        assert plain.get("/").text == "theme plain"
    assert calls == {"dark": 1, "light": 1, "plain": 1}


def test_view_not_reading_cookies_ignores_them(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return "no cookies read"

    for theme in ("dark", "light"):
        client = app.test_client()
        client.set_cookie("theme", theme)
        client.get("/")
    assert calls["index"] == 1


def test_cookie_read_by_a_before_request_hook_varies_the_page(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.before_request
    def load_user() -> None:
        g.user = request.cookies.get("token", "stranger")

    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return f"hello {g.user}"

    alice, bob = app.test_client(), app.test_client()
    alice.set_cookie("token", "alice")
    bob.set_cookie("token", "bob")
    assert alice.get("/").text == "hello alice"
    assert bob.get("/").text == "hello bob"


def test_vary_values_cannot_be_confused_with_one_another(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        body = f"a={request.headers.get('X-A')} b={request.headers.get('X-B')}"
        return Response(body, headers={"Vary": "X-A, X-B"})

    client = app.test_client()
    assert client.get("/", headers={"X-A": "1|x-b=2", "X-B": "3"}).text == "a=1|x-b=2 b=3"
    assert client.get("/", headers={"X-A": "1", "X-B": "2|x-b=3"}).text == "a=1 b=2|x-b=3"


# -- 4. conditional requests, Age, Cache-Control, X-Cache --------------------------------


def test_stored_response_gets_a_strong_etag(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "tagged"

    client = app.test_client()
    miss, hit = client.get("/"), client.get("/")
    etag = miss.headers["ETag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert hit.headers["ETag"] == etag


@pytest.mark.parametrize("own", ['"v1"', 'W/"weak"'])
def test_views_own_etag_is_kept(app: Flask, cache: Cache, own: str) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        return Response("tagged", headers={"ETag": own})

    client = app.test_client()
    assert client.get("/").headers.get_all("ETag") == [own]
    hit = client.get("/", headers={"If-None-Match": own})
    assert hit.status_code == 304
    assert hit.headers.get_all("ETag") == [own]


def test_if_none_match_on_a_hit_answers_304_with_only_the_listed_headers(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> Response:
        calls["index"] += 1
        return Response(
            "the body",
            headers={
                "Cache-Control": "max-age=60",
                "Content-Language": "en",
                "Content-Location": "/index",
                "Expires": "Thu, 01 Jan 2099 00:00:00 GMT",
                "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                "Vary": "Accept-Language",
                "X-Custom": "secret-ish",
            },
        )

    client = app.test_client()
    etag = client.get("/").headers["ETag"]
    answer = client.get("/", headers={"If-None-Match": etag})
    assert answer.status_code == 304
    assert answer.data == b""
    assert answer.headers["ETag"] == etag
    names = {name.lower() for name in answer.headers.keys()}  # noqa: SIM118
    allowed = {"cache-control", "content-location", "date", "etag", "expires", "vary", "age"}
    assert names <= allowed, names - allowed
    assert {"etag", "cache-control", "content-location", "expires", "vary"} <= names
    assert calls["index"] == 1


def test_if_none_match_that_does_not_match_gets_the_full_page(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return "the body"

    client = app.test_client()
    client.get("/")
    answer = client.get("/", headers={"If-None-Match": '"something-else"'})
    assert (answer.status_code, answer.text) == (200, "the body")
    assert calls["index"] == 1


def fake_clock_app(**config: Any) -> tuple[Flask, Cache, FakeClock]:
    clock = FakeClock()
    app, cache = make_app(CACHE_OPTIONS={"clock": clock}, **config)
    cache.state(app).clock = clock
    return app, cache, clock


def test_hit_carries_its_age() -> None:
    app, cache, clock = fake_clock_app()

    @app.route("/")
    @cache.cached(timeout=100)
    def index() -> str:
        return "aged"

    client = app.test_client()
    assert "Age" not in client.get("/").headers
    assert client.get("/").headers["Age"] == "0"
    clock.advance(42.7)
    hit = client.get("/")
    assert hit.headers["Age"] == "42"
    not_modified = client.get("/", headers={"If-None-Match": hit.headers["ETag"]})
    assert not_modified.status_code == 304
    assert not_modified.headers["Age"] == "42"


def test_send_cache_control_gives_the_remaining_freshness() -> None:
    app, cache, clock = fake_clock_app(CACHE_SEND_CACHE_CONTROL=True)

    @app.route("/")
    @cache.cached(timeout=100)
    def index() -> str:
        return "fresh"

    @app.route("/own")
    @cache.cached(timeout=100)
    def own() -> Response:
        return Response("own", headers={"Cache-Control": "public, max-age=5"})

    client = app.test_client()
    client.get("/")
    client.get("/own")
    clock.advance(30)
    assert client.get("/").headers["Cache-Control"] == "public, max-age=70"
    assert client.get("/own").headers.get_all("Cache-Control") == ["public, max-age=5"]


def test_send_cache_control_is_on_the_first_response_too() -> None:
    app, cache, _ = fake_clock_app(CACHE_SEND_CACHE_CONTROL=True)

    @app.route("/")
    @cache.cached(timeout=100)
    def index() -> str:
        return "fresh"

    @app.route("/own")
    @cache.cached(timeout=100)
    def own() -> Response:
        return Response("own", headers={"Cache-Control": "public, max-age=5"})

    @app.route("/mine")
    @cache.cached(timeout=100, per_user=True)
    def mine() -> str:
        return f"hello {session.get('user')}"

    client = app.test_client()
    miss = client.get("/")
    assert miss.headers["Cache-Control"] == "public, max-age=100"
    assert client.get("/own").headers.get_all("Cache-Control") == ["public, max-age=5"]
    alice = login(app.test_client(), user="alice")
    first = alice.get("/mine")
    assert first.text == "hello alice"
    assert first.headers["Cache-Control"] == "private, max-age=100"


def test_cache_control_is_not_sent_by_default(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached(timeout=100)
    def index() -> str:
        return "quiet"

    client = app.test_client()
    client.get("/")
    assert "Cache-Control" not in client.get("/").headers


def test_send_cache_control_never_calls_a_per_user_page_public() -> None:
    app, cache = make_app(CACHE_SEND_CACHE_CONTROL=True)

    @app.route("/")
    @cache.cached(timeout=100, per_user=True)
    def index() -> str:
        return f"hello {session.get('user')}"

    alice = login(app.test_client(), user="alice")
    alice.get("/")
    hit = alice.get("/")
    assert hit.text == "hello alice"
    assert "public" not in hit.headers.get("Cache-Control", "")


def test_x_cache_header_says_miss_then_hit() -> None:
    app, cache = make_app(CACHE_X_CACHE_HEADER=True)

    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "labelled"

    client = app.test_client()
    assert client.get("/").headers["X-Cache"] == "MISS"
    assert client.get("/").headers["X-Cache"] == "HIT"


def test_x_cache_header_is_off_by_default(app: Flask, cache: Cache) -> None:
    @app.route("/")
    @cache.cached()
    def index() -> str:
        return "unlabelled"

    client = app.test_client()
    assert "X-Cache" not in client.get("/").headers
    assert "X-Cache" not in client.get("/").headers


# -- 5. unsafe methods --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_successful_unsafe_method_invalidates_the_cached_get(
    app: Flask, cache: Cache, calls: Counter[str], method: str
) -> None:
    @app.route("/item", methods=["GET", method])
    @cache.cached()
    def item() -> str:
        calls[request.method] += 1
        return f"{request.method} {calls[request.method]}"

    client = app.test_client()
    assert client.get("/item").text == "GET 1"
    assert client.get("/item").text == "GET 1"
    assert client.open("/item", method=method).status_code == 200
    assert client.get("/item").text == "GET 2"
    assert client.get("/item").text == "GET 2"


def test_post_view_of_its_own_invalidates_the_get_view_of_the_same_url(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.get("/items")
    @cache.cached()
    def list_items() -> str:
        calls["list"] += 1
        return f"list {calls['list']}"

    @app.post("/items")
    def add_item() -> tuple[str, int]:
        return "created", 201

    client = app.test_client()
    assert client.get("/items?page=1").text == "list 1"
    assert client.get("/items?page=2").text == "list 2"
    assert client.get("/items?page=1").text == "list 1"
    assert client.post("/items").status_code == 201
    assert client.get("/items?page=1").text == "list 3"
    assert client.get("/items?page=2").text == "list 4"


@pytest.mark.parametrize("status", [400, 403, 404, 409, 500, 503])
def test_failed_unsafe_method_does_not_invalidate(
    app: Flask, cache: Cache, calls: Counter[str], status: int
) -> None:
    @app.route("/item", methods=["GET", "POST"])
    @cache.cached()
    def item() -> tuple[str, int]:
        if request.method == "POST":
            return "rejected", status
        calls["get"] += 1
        return f"GET {calls['get']}", 200

    client = app.test_client()
    assert client.get("/item").text == "GET 1"
    assert client.post("/item").status_code == status
    assert client.get("/item").text == "GET 1"
    assert calls["get"] == 1


def test_post_to_another_url_does_not_invalidate(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/a")
    @cache.cached()
    def a() -> str:
        calls["a"] += 1
        return "a"

    @app.post("/b")
    def b() -> str:
        return "posted"

    client = app.test_client()
    client.get("/a")
    client.post("/b")
    client.get("/a")
    assert calls["a"] == 1


# -- 6. signed entries on shared stores -----------------------------------------------------


def page_on(config: dict[str, Any], calls: Counter[str]) -> tuple[Flask, Cache]:
    """An app on *config* with one cached page, ``/page``, counting its runs."""
    app = Flask(__name__)
    app.config.update(config)
    _OPEN_APPS.append(app)
    cache = Cache(app)

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        calls["page"] += 1
        return f"genuine {calls['page']}"

    return app, cache


def store_key(app: Flask, cache: Cache) -> str:
    """The key /page is stored under in the server, key prefix included."""
    view: Any = app.view_functions["page"]
    with app.test_request_context("/page"):
        key: str = view.make_cache_key()
    return cache.state(app).store.key_prefix + key


@pytest.fixture
def redis_config(redis_server: ServerProcess) -> dict[str, Any]:
    pytest.importorskip("redis")
    return {
        "CACHE_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "CACHE_KEY_PREFIX": f"safety-{uuid.uuid4().hex[:8]}:",
        "SECRET_KEY": SECRET,
    }


@pytest.fixture
def disk_config(tmp_path: Path) -> dict[str, Any]:
    pytest.importorskip("diskcache")
    return {"CACHE_URL": (tmp_path / "cache").as_uri(), "SECRET_KEY": SECRET}


def raw_redis(app: Flask, cache: Cache) -> Any:
    return cache.state(app).store.client  # type: ignore[attr-defined]


def touching(path: str) -> FrozenResponse:
    """Run by pickle when a forged entry is unpickled: leaves a file behind."""
    Path(path).touch()
    return FrozenResponse(200, (), b"forged", 0.0, 0.0, 0.0, ())


class Forged:
    """Pickles to a payload that touches *path* and yields a forged page."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[[str], FrozenResponse], tuple[str]]:
        return touching, (str(self.path),)


def test_entries_in_a_shared_store_carry_an_hmac(
    redis_config: dict[str, Any], calls: Counter[str]
) -> None:
    app, cache = page_on(redis_config, calls)
    app.test_client().get("/page")
    key = store_key(app, cache)
    raw = raw_redis(app, cache).get(key)
    assert isinstance(raw, bytes)
    mine = SignedSerializer(PickleSerializer(), SECRET.encode())
    entry = mine.loads(raw, key)
    assert type(entry) is FrozenResponse
    assert entry.body == b"genuine 1"
    assert SignedSerializer(PickleSerializer(), b"another key").loads(raw, key) is None
    assert mine.loads(raw, key + "x") is None  # the signature covers the key
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)


@pytest.mark.parametrize("signed_look", [False, True])
def test_bytes_written_by_someone_else_read_as_a_miss_and_are_never_unpickled(
    redis_config: dict[str, Any], calls: Counter[str], tmp_path: Path, signed_look: bool
) -> None:
    trap = tmp_path / "unpickled"
    app, cache = page_on(redis_config, calls)
    client = app.test_client()
    assert client.get("/page").text == "genuine 1"
    payload = pickle.dumps(Forged(trap))
    if signed_look:  # the signed marker, a made-up MAC, then the payload
        payload = b"\x01" + b"\x00" * 32 + payload
    raw_redis(app, cache).set(store_key(app, cache), payload)
    assert client.get("/page").text == "genuine 2"
    assert client.get("/page").text == "genuine 2"
    assert not trap.exists()
    with app.app_context():
        assert cache.stats.total.errors == 0
    pickle.loads(payload[33:] if signed_look else payload)  # the trap works when unpickled
    assert trap.exists()


def test_forged_bytes_starting_with_a_digit_read_as_a_plain_miss(
    redis_config: dict[str, Any], calls: Counter[str]
) -> None:
    app, cache = page_on(redis_config, calls)
    client = app.test_client()
    client.get("/page")
    raw_redis(app, cache).set(store_key(app, cache), b"9 forged")
    assert client.get("/page").text == "genuine 2"
    with app.app_context():
        assert cache.stats.total.errors == 0


def test_rotating_the_secret_turns_old_entries_into_misses(
    disk_config: dict[str, Any], calls: Counter[str]
) -> None:
    old, _ = page_on(disk_config, calls)
    assert old.test_client().get("/page").text == "genuine 1"
    assert old.test_client().get("/page").text == "genuine 1"
    new, new_cache = page_on({**disk_config, "SECRET_KEY": "rotated"}, calls)
    assert new.test_client().get("/page").text == "genuine 2"
    with new.app_context():
        assert new_cache.stats.total.errors == 0
        assert new_cache.stats.total.misses == 1


def test_pages_are_cached_again_after_rotating_the_secret(
    disk_config: dict[str, Any], calls: Counter[str]
) -> None:
    old, _ = page_on(disk_config, calls)
    old.test_client().get("/page")
    new, _ = page_on({**disk_config, "SECRET_KEY": "rotated"}, calls)
    assert new.test_client().get("/page").text == "genuine 2"
    assert new.test_client().get("/page").text == "genuine 2"


def test_cache_secret_key_wins_over_secret_key(
    disk_config: dict[str, Any], calls: Counter[str]
) -> None:
    first, _ = page_on({**disk_config, "SECRET_KEY": "app-one", "CACHE_SECRET_KEY": "c"}, calls)
    first.test_client().get("/page")
    # Another app secret, the same cache secret: the entry is shared.
    second, _ = page_on({**disk_config, "SECRET_KEY": "app-two", "CACHE_SECRET_KEY": "c"}, calls)
    assert second.test_client().get("/page").text == "genuine 1"
    # The same app secret without the cache secret: the entry is not readable.
    third, _ = page_on({**disk_config, "SECRET_KEY": "app-one"}, calls)
    assert third.test_client().get("/page").text == "genuine 2"
    assert calls["page"] == 2


def test_shared_store_without_a_secret_caches_plain_data_and_says_so(
    disk_config: dict[str, Any], calls: Counter[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = {k: v for k, v in disk_config.items() if k != "SECRET_KEY"}
    with caplog.at_level(logging.WARNING, logger="flask_stash"):
        app, _ = page_on(config, calls)
    assert "unsigned" in caplog.text
    assert "CACHE_SECRET_KEY" in caplog.text
    client = app.test_client()
    assert client.get("/page").text == "genuine 1"
    assert client.get("/page").text == "genuine 1"


def test_shared_redis_store_without_a_secret_stores_no_pickle(
    redis_config: dict[str, Any], calls: Counter[str]
) -> None:
    config = {k: v for k, v in redis_config.items() if k != "SECRET_KEY"}
    app, cache = page_on(config, calls)
    client = app.test_client()
    assert client.get("/page").text == "genuine 1"
    assert client.get("/page").text == "genuine 1"
    raw = raw_redis(app, cache).get(store_key(app, cache))
    assert json.loads(raw)["__record__"] == "FrozenResponse"


def test_in_process_store_needs_no_secret(calls: Counter[str]) -> None:
    app = Flask(__name__)
    _OPEN_APPS.append(app)
    cache = Cache(app)

    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return "x"

    app.test_client().get("/")
    app.test_client().get("/")
    assert calls["index"] == 1


def test_unknown_signing_algorithm_fails_at_init_app(disk_config: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.config.update(disk_config, CACHE_SIGNING_ALGORITHM="md5")
    with pytest.raises(ConfigurationError, match="CACHE_SIGNING_ALGORITHM 'md5'"):
        Cache(app)


@pytest.mark.parametrize("algorithm", ["sha384", "blake2b"])
def test_other_signing_algorithms_work(
    disk_config: dict[str, Any], calls: Counter[str], algorithm: str
) -> None:
    app, _ = page_on({**disk_config, "CACHE_SIGNING_ALGORITHM": algorithm}, calls)
    client = app.test_client()
    assert client.get("/page").text == "genuine 1"
    assert client.get("/page").text == "genuine 1"
    other, _ = page_on({**disk_config, "CACHE_SIGNING_ALGORITHM": "sha256"}, calls)
    assert other.test_client().get("/page").text == "genuine 2"


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_plain_data_serializers_cache_pages_with_vary_and_memoized_values(
    disk_config: dict[str, Any], calls: Counter[str], serializer: str
) -> None:
    app, cache = page_on({**disk_config, "CACHE_SERIALIZER": serializer}, calls)

    @app.route("/lang")
    @cache.cached()
    def lang() -> Response:
        calls["lang"] += 1
        value = request.headers.get("Accept-Language", "")
        return Response(f"lang {value}", headers={"Vary": "Accept-Language"})

    @cache.memoize()
    def total(numbers: tuple[int, ...]) -> dict[str, Any]:
        calls["total"] += 1
        return {"sum": sum(numbers), "numbers": numbers, "raw": b"\x00"}

    client = app.test_client()
    for _ in range(2):
        assert client.get("/page").text == "genuine 1"
        assert client.get("/lang", headers={"Accept-Language": "fr"}).text == "lang fr"
        assert client.get("/lang", headers={"Accept-Language": "en"}).text == "lang en"
        with app.app_context():
            assert total((1, 2)) == {"sum": 3, "numbers": (1, 2), "raw": b"\x00"}
    assert calls == {"page": 1, "lang": 2, "total": 1}
    with app.app_context():
        assert cache.stats.total.errors == 0


def test_forced_update_recomputes_on_a_shared_store(
    disk_config: dict[str, Any], calls: Counter[str]
) -> None:
    app = Flask(__name__)
    app.config.update(disk_config)
    _OPEN_APPS.append(app)
    cache = Cache(app)
    force = {"on": False}

    @app.route("/")
    @cache.cached(forced_update=lambda: force["on"])
    def index() -> str:
        calls["index"] += 1
        return f"run {calls['index']}"

    client = app.test_client()
    assert client.get("/").text == "run 1"
    force["on"] = True
    assert client.get("/").text == "run 2"


# -- 8. abuse -------------------------------------------------------------------------------


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=length))


def test_flood_of_query_strings_stays_within_the_memory_bounds(calls: Counter[str]) -> None:
    app, cache = make_app(CACHE_THRESHOLD=40, CACHE_MAX_BYTES=60_000)

    @app.route("/search")
    @cache.cached()
    def search() -> str:
        calls["search"] += 1
        return "result " * 50 + request.query_string.decode()

    rng = random.Random(1)
    client = app.test_client()
    store: Any = cache.state(app).store
    for _ in range(600):
        query = f"{random_text(rng, 6)}={random_text(rng, rng.randint(1, 200))}"
        assert client.get(f"/search?{query}").status_code == 200
        assert len(store) <= 40
        assert store.size_bytes <= 60_000
    assert calls["search"] == 600
    client.get("/search?q=1")
    assert client.get("/search?q=1").text.endswith("q=1")
    assert calls["search"] == 601


def test_flood_of_host_headers_stays_within_the_memory_bounds(calls: Counter[str]) -> None:
    app, cache = make_app(CACHE_THRESHOLD=25)

    @app.route("/")
    @cache.cached()
    def index() -> str:
        calls["index"] += 1
        return "home"

    rng = random.Random(2)
    client = app.test_client()
    store: Any = cache.state(app).store
    for _ in range(300):
        host = f"{random_text(rng, 12)}.example"
        assert client.get("/", headers={"Host": host}).status_code == 200
        assert len(store) <= 25
    assert calls["index"] == 300


def test_query_params_allow_list_keeps_other_parameters_out_of_the_key(
    app: Flask, cache: Cache, calls: Counter[str]
) -> None:
    @app.route("/list")
    @cache.cached(query_params=["page"])
    def listing() -> str:
        calls[request.args.get("page", "1")] += 1
        return f"page {request.args.get('page', '1')}"

    client = app.test_client()
    assert client.get("/list?page=2&utm_source=a").text == "page 2"
    assert client.get("/list?utm_source=b&page=2").text == "page 2"
    assert client.get("/list?page=2&fbclid=" + "x" * 40).text == "page 2"
    assert client.get("/list?page=3").text == "page 3"
    assert client.get("/list?utm_source=c").text == "page 1"
    assert client.get("/list").text == "page 1"
    assert calls == {"2": 1, "3": 1, "1": 1}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/long", "q=" + "x" * 10_000),
        ("/" + "p" * 2_000, ""),
        ("/" + "p" * 2_000, "a=" + "y" * 10_000),
    ],
    ids=["long-query", "long-path", "both"],
)
def test_over_long_urls_are_cached_under_a_hashed_key(
    app: Flask, cache: Cache, calls: Counter[str], path: str, query: str
) -> None:
    @app.route("/<path:anything>")
    @cache.cached()
    def anything(anything: str) -> str:
        calls["anything"] += 1
        return f"{len(anything)} {len(request.query_string)}"

    url = f"{path}?{query}" if query else path
    expected = f"{len(path) - 1} {len(query)}"
    client = app.test_client()
    assert client.get(url).text == expected
    assert client.get(url).text == expected
    assert calls["anything"] == 1
    view: Any = app.view_functions["anything"]
    with app.test_request_context(url):
        assert len(view.make_cache_key(anything=path[1:])) < 1_000
    other = f"{path}?{query}z" if query else path + "z"
    assert client.get(other).status_code == 200
    assert calls["anything"] == 2
