"""Attacks on "no response is served to a user it wasn't made for", one per hole.

Each test plays the attacker through the public API only: proxy headers
that change a page's links, bytes copied inside a shared store, a HEAD
request, query strings whose escapes are not UTF-8, an identity taken from
a request header, and a cache in front of the app. Each then checks what
the next, honest visitor gets.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from flask import Flask, g, render_template_string, request, session
from flask.views import MethodView
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_stash import Cache

from .servers import ServerProcess

SECRET = "attack-test-secret"
_OPEN: list[Flask] = []


@pytest.fixture(autouse=True)
def close_stores() -> Iterator[None]:
    yield
    while _OPEN:
        for state in _OPEN.pop().extensions.get("flask_stash", {}).values():
            state.store.close()


def make_app(**config: Any) -> tuple[Flask, Cache]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, CACHE_X_CACHE_HEADER=True, **config)
    _OPEN.append(app)
    return app, Cache(app)


def stats(app: Flask, cache: Cache) -> dict[str, Any]:
    with app.app_context():
        return cache.stats.total.as_dict()


# -- 1. the scheme and the root path are in the key ------------------------------------

PAGE_WITH_LINKS = (
    '<script src="{{ url_for("static", filename="app.js") }}"></script>'
    '<a href="{{ url_for("page", _external=True) }}">here</a>'
)


def proxied_app(**proxy: int) -> tuple[Flask, Counter[str]]:
    """An app behind ProxyFix, whose cached page links to its script and itself."""
    app, cache = make_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, **proxy)  # type: ignore[method-assign]
    runs: Counter[str] = Counter()

    @app.route("/page")
    @cache.cached(timeout=300)
    def page() -> str:
        runs["page"] += 1
        return render_template_string(PAGE_WITH_LINKS)

    return app, runs


@pytest.mark.parametrize(
    ("proxy", "header", "value", "planted"),
    [
        ({"x_prefix": 1}, "X-Forwarded-Prefix", "//evil.example", '"//evil.example/static'),
        ({"x_proto": 1}, "X-Forwarded-Proto", "http", '"http://'),
        ({"x_host": 1}, "X-Forwarded-Host", "evil.example", "evil.example"),
        ({"x_port": 1}, "X-Forwarded-Port", "8443", ":8443"),
    ],
)
def test_proxy_headers_of_one_request_never_reach_the_links_of_another(
    proxy: dict[str, int], header: str, value: str, planted: str
) -> None:
    app, runs = proxied_app(**proxy)
    client = app.test_client()
    honest = {"X-Forwarded-Proto": "https"} if "x_proto" in proxy else {}
    # The attacker's request is the first: it makes and stores its page.
    attacked = client.get("/page", headers={header: value})
    assert planted in attacked.text
    for _ in range(2):
        page = client.get("/page", headers=honest)
        assert planted not in page.text
    assert page.headers["X-Cache"] == "HIT"  # the honest page is cached, under its own key
    assert runs["page"] == 2
    # And the attacker's own key still answers the attacker.
    again = client.get("/page", headers={header: value})
    assert planted in again.text
    assert again.headers["X-Cache"] == "HIT"


def test_a_plain_http_visit_does_not_plant_http_links_for_https_visitors() -> None:
    app, runs = proxied_app(x_proto=1)
    client = app.test_client()
    client.get("/page")  # plain http, straight to the app
    secure = client.get("/page", headers={"X-Forwarded-Proto": "https"})
    assert 'href="https://localhost/page"' in secure.text
    assert runs["page"] == 2


def test_an_app_mounted_under_a_root_path_keeps_one_entry_per_root() -> None:
    app, runs = proxied_app()
    client = app.test_client()
    shop = client.get("/page", environ_overrides={"SCRIPT_NAME": "/shop"})
    blog = client.get("/page", environ_overrides={"SCRIPT_NAME": "/blog"})
    assert '"/shop/static/app.js"' in shop.text
    assert '"/blog/static/app.js"' in blog.text
    assert runs["page"] == 2


def test_a_post_over_https_drops_the_page_plain_http_visitors_were_served() -> None:
    app, cache = make_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1)  # type: ignore[method-assign]
    runs: Counter[str] = Counter()

    @app.route("/item", methods=["GET", "POST"])
    @cache.cached(timeout=300)
    def item() -> str:
        runs[request.method] += 1
        return f"item v{runs['POST']}"

    client = app.test_client()
    assert client.get("/item").text == "item v0"
    client.post("/item", headers={"X-Forwarded-Proto": "https"})
    assert client.get("/item").text == "item v1"


# -- 2. entries are bound to their keys -------------------------------------------------


@pytest.fixture
def redis_app(redis_server: ServerProcess) -> tuple[Flask, Cache, Any]:
    redis = pytest.importorskip("redis")
    prefix = f"attack-{uuid.uuid4().hex[:8]}:"
    app, cache = make_app(
        CACHE_URL=f"redis://127.0.0.1:{redis_server.port}/0", CACHE_KEY_PREFIX=prefix
    )
    raw = redis.Redis(port=redis_server.port)
    return app, cache, raw


class Raw:
    """The Redis server as anyone who can reach it sees it: names and bytes."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def names(self) -> set[bytes]:
        return set(self.client.keys(self.prefix.encode() + b"*"))

    def written_by(self, action: Callable[[], object]) -> list[bytes]:
        before = self.names()
        action()
        return sorted(self.names() - before)

    def copy(self, source: bytes, target: bytes) -> None:
        assert self.client.set(target, self.client.get(source))


def raw_of(app: Flask, cache: Cache, client: Any) -> Raw:
    return Raw(client, cache.state(app).store.key_prefix)


def report_app(app: Flask, cache: Cache) -> Counter[str]:
    runs: Counter[str] = Counter()

    @app.route("/report")
    @cache.cached(timeout=300)
    def report() -> str:
        team = request.args["team"]
        runs[team] += 1
        return "salaries: ..." if team == "exec" else f"report of team {team}"

    @app.route("/other")
    @cache.cached(timeout=300)
    def other() -> str:
        runs["other"] += 1
        return "the other page"

    return runs


def page_key(raw: Raw, names: list[bytes]) -> bytes:
    """The page's own entry among what its first visit wrote (not a tag's token)."""
    (key,) = [name for name in names if b"|GET|" in name]
    return key


def tag_key(raw: Raw, names: list[bytes]) -> bytes:
    (key,) = [name for name in names if name.startswith(raw.prefix.encode() + b"tag:url:")]
    return key


def test_a_page_copied_onto_another_querys_key_is_a_miss_counted_as_an_integrity_error(
    redis_app: tuple[Flask, Cache, Any],
) -> None:
    app, cache, client = redis_app
    runs = report_app(app, cache)
    raw = raw_of(app, cache, client)
    web = app.test_client()
    exec_page = page_key(raw, raw.written_by(lambda: web.get("/report?team=exec")))
    all_page = page_key(raw, raw.written_by(lambda: web.get("/report?team=all")))
    assert stats(app, cache)["integrity_errors"] == 0
    raw.copy(exec_page, all_page)
    page = web.get("/report?team=all")
    assert page.text == "report of team all"
    assert runs["all"] == 2
    # Refused at each read of the request (the first look, and again once it
    # holds the single-flight lock).
    assert stats(app, cache)["integrity_errors"] >= 1


def test_a_page_copied_onto_another_path_with_its_url_token_is_a_miss(
    redis_app: tuple[Flask, Cache, Any],
) -> None:
    app, cache, client = redis_app
    runs = report_app(app, cache)
    raw = raw_of(app, cache, client)
    web = app.test_client()
    written = raw.written_by(lambda: web.get("/report?team=exec"))
    other = raw.written_by(lambda: web.get("/other"))
    raw.copy(page_key(raw, written), page_key(raw, other))
    raw.copy(tag_key(raw, written), tag_key(raw, other))
    assert web.get("/other").text == "the other page"
    assert runs["other"] == 2
    assert stats(app, cache)["integrity_errors"] >= 2  # the page and the token


def test_a_vary_variant_copied_onto_another_variants_key_is_a_miss(
    redis_app: tuple[Flask, Cache, Any],
) -> None:
    app, cache, client = redis_app
    runs: Counter[str] = Counter()

    @app.route("/greeting")
    @cache.cached(timeout=300)
    def greeting() -> tuple[str, dict[str, str]]:
        language = request.headers.get("Accept-Language", "")
        runs[language] += 1
        return f"greeting in {language}", {"Vary": "Accept-Language"}

    raw = raw_of(app, cache, client)
    web = app.test_client()
    first = raw.written_by(lambda: web.get("/greeting", headers={"Accept-Language": "de"}))
    (german,) = [name for name in first if b"|vary:" in name]
    (index,) = [name for name in first if name.endswith(b"|GET|http://localhost|")]
    second = raw.written_by(lambda: web.get("/greeting", headers={"Accept-Language": "fr"}))
    (french,) = [name for name in second if b"|vary:" in name]
    raw.copy(german, french)
    assert web.get("/greeting", headers={"Accept-Language": "fr"}).text == "greeting in fr"
    assert runs["fr"] == 2
    refused = stats(app, cache)["integrity_errors"]
    assert refused >= 1
    # The Vary index of the page, copied onto another page's key, is refused too.
    other = raw.written_by(lambda: web.get("/greeting?x=1", headers={"Accept-Language": "fr"}))
    (other_index,) = [name for name in other if name.endswith(b"|GET|http://localhost|x=1")]
    raw.copy(index, other_index)
    assert web.get("/greeting?x=1", headers={"Accept-Language": "fr"}).status_code == 200
    assert runs["fr"] == 4
    assert stats(app, cache)["integrity_errors"] > refused


def test_a_memoized_value_copied_onto_another_arguments_key_is_a_miss(
    redis_app: tuple[Flask, Cache, Any],
) -> None:
    app, cache, client = redis_app
    runs: Counter[int] = Counter()

    @cache.memoize(timeout=300)
    def balance(account: int) -> str:
        runs[account] += 1
        return f"balance of {account}"

    raw = raw_of(app, cache, client)
    with app.app_context():
        (rich,) = [name for name in raw.written_by(lambda: balance(1)) if b"memoize:" in name]
        (poor,) = [name for name in raw.written_by(lambda: balance(2)) if b"memoize:" in name]
        raw.copy(rich, poor)
        assert balance(2) == "balance of 2"
        assert runs[2] == 2
        assert cache.stats.total.integrity_errors >= 1


def test_a_tag_token_copied_onto_another_tags_key_invalidates_rather_than_revives(
    redis_app: tuple[Flask, Cache, Any],
) -> None:
    app, cache, client = redis_app
    runs: Counter[str] = Counter()

    @cache.memoize(timeout=300, tags=lambda name: [f"user:{name}"])
    def profile(name: str) -> str:
        runs[name] += 1
        return f"profile of {name} v{runs[name]}"

    raw = raw_of(app, cache, client)
    tag = raw.prefix.encode() + b"tag:user:"
    with app.app_context():
        profile("alice")
        old_token = client.get(tag + b"alice")
        cache.invalidate_tags("user:alice")  # alice's entries are dropped
        assert profile("alice") == "profile of alice v2"
        profile("bob")
        # Bob's current token, copied over alice's, must not read as a version.
        client.set(tag + b"alice", client.get(tag + b"bob"))
        assert profile("alice") == "profile of alice v3"
        assert cache.stats.total.integrity_errors >= 1
        # Nor does alice's old token, put back, revive her dropped entry.
        client.set(tag + b"alice", old_token)
        assert profile("alice") == "profile of alice v4"


# -- 3. HEAD is never stored as a body of its own ------------------------------------------


def test_a_head_answered_with_an_empty_body_is_not_what_the_next_get_gets() -> None:
    app, cache = make_app()
    runs: Counter[str] = Counter()

    @app.route("/doc", methods=["GET", "HEAD"])
    @cache.cached(timeout=300)
    def doc() -> str:
        runs[request.method] += 1
        if request.method == "HEAD":
            return ""  # the view saves itself the work: headers only
        return "the whole document"

    client = app.test_client()
    assert client.head("/doc").status_code == 200
    page = client.get("/doc")
    assert page.text == "the whole document"
    assert client.get("/doc").headers["X-Cache"] == "HIT"
    head = client.head("/doc")  # answered from GET's entry
    assert head.headers["X-Cache"] == "HIT"
    assert head.headers["Content-Length"] == str(len("the whole document"))
    assert runs == {"HEAD": 1, "GET": 1}
    assert stats(app, cache)["skips"] == {"HEAD request": 1}


def test_a_class_based_view_with_its_own_head_does_not_empty_the_get() -> None:
    app, cache = make_app()

    class Document(MethodView):
        decorators: ClassVar[list[Callable[..., Any]]] = [cache.cached(timeout=300)]

        def get(self) -> str:
            return "full body"

        def head(self) -> str:
            return ""

    app.add_url_rule("/doc", view_func=Document.as_view("doc"))
    client = app.test_client()
    client.head("/doc")
    client.head("/doc")
    assert client.get("/doc").text == "full body"
    assert client.get("/doc").text == "full body"


# -- 4. canonical queries compare bytes ---------------------------------------------------


def test_undecodable_escapes_are_distinct_pages() -> None:
    app, cache = make_app()
    runs: Counter[bytes] = Counter()

    @app.route("/search")
    @cache.cached(timeout=300)
    def search() -> str:
        runs[request.query_string] += 1
        return f"results for {request.query_string!r}"

    client = app.test_client()
    queries = ["q=%FF", "q=%FE", "q=%EF%BF%BD"]
    for query in queries * 2:
        assert client.get(f"/search?{query}").text == f"results for {query.encode()!r}"
    assert sorted(runs.values()) == [1, 1, 1]


def test_queries_that_decode_to_the_same_bytes_share_a_page() -> None:
    app, cache = make_app()
    runs: Counter[str] = Counter()

    @app.route("/search")
    @cache.cached(timeout=300)
    def search() -> str:
        runs["search"] += 1
        return f"results for {sorted(request.args.items(multi=True))}"

    client = app.test_client()
    first = client.get("/search?q=caf%C3%A9&page=2")
    for same in ("page=2&q=caf%c3%a9", "q=caf%C3%A9&page=%32", "page=2&q=caf\u00e9"):
        assert client.get(f"/search?{same}").text == first.text
    assert runs["search"] == 1
    client.get("/search?q=cafe&page=2")
    assert runs["search"] == 2


# -- 5. an identity from a request header -------------------------------------------------


class ApiUser:
    """A user as Flask-Login expects one."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, name: str) -> None:
        self.id = name

    def get_id(self) -> str:
        return self.id


def api_key_app(**config: Any) -> tuple[Flask, Cache, Counter[str]]:
    """Flask-Login with a request_loader that reads X-Api-Key, as its docs show."""
    flask_login = pytest.importorskip("flask_login")
    app, cache = make_app(**config)
    manager = flask_login.LoginManager(app)
    runs: Counter[str] = Counter()
    keys = {"alice-key": ApiUser("alice"), "bob-key": ApiUser("bob")}

    def load_user(user_id: str) -> ApiUser | None:
        return None

    def load_from_request(req: Any) -> ApiUser | None:
        api_key = req.headers.get("X-Api-Key")
        if api_key is None:
            token = req.headers.get("Authorization", "")
            api_key = token.removeprefix("Token ") or None
        return keys.get(api_key) if api_key else None

    manager.user_loader(load_user)
    manager.request_loader(load_from_request)

    @app.before_request
    def who() -> None:
        g.name = getattr(flask_login.current_user, "id", "stranger")

    @app.route("/dashboard")
    @cache.cached(timeout=300)
    def dashboard() -> str:
        runs[g.name] += 1
        return f"dashboard of {g.name}"

    return app, cache, runs


def test_bobs_api_request_never_gets_the_page_made_for_alices() -> None:
    app, _, runs = api_key_app()
    client = app.test_client()
    visitors = [("alice-key", "alice"), ("bob-key", "bob"), (None, "stranger")]
    seen = []
    for _ in range(3):
        for key, name in visitors:
            page = client.get("/dashboard", headers={"X-Api-Key": key} if key else {})
            assert page.text == f"dashboard of {name}"
            seen.append(page.headers["X-Cache"])
    # Each page is cached for the value it was made for. The stranger's
    # request reads Authorization too (the loader's fallback), so the URL
    # learns one more header and the others are stored once more under it.
    assert seen[-3:] == ["HIT", "HIT", "HIT"]
    assert all(count <= 2 for count in runs.values())


def test_a_token_in_authorization_never_gets_another_users_page() -> None:
    app, _, _ = api_key_app()
    client = app.test_client()
    client.get("/dashboard")
    alice = client.get("/dashboard", headers={"Authorization": "Token alice-key"})
    bob = client.get("/dashboard", headers={"Authorization": "Token bob-key"})
    assert (alice.text, bob.text) == ("dashboard of alice", "dashboard of bob")
    assert client.get("/dashboard").text == "dashboard of stranger"


def test_headers_that_never_change_the_user_do_not_split_a_page() -> None:
    app, cache = make_app()
    runs: Counter[str] = Counter()

    @app.route("/page")
    @cache.cached(timeout=300)
    def page() -> str:
        runs["page"] += 1
        # Read, but not what the page says: compression and conditionals.
        request.headers.get("Accept-Encoding")
        request.headers.get("If-None-Match")
        return f"page at {request.host}"

    client = app.test_client()
    client.get("/page", headers={"Accept-Encoding": "gzip"})
    hit = client.get("/page", headers={"Accept-Encoding": "br", "If-None-Match": '"x"'})
    assert hit.headers["X-Cache"] == "HIT"
    assert runs["page"] == 1
    assert "Vary" not in hit.headers


def test_a_page_that_lists_every_request_header_is_not_stored() -> None:
    app, cache = make_app()

    @app.route("/echo")
    @cache.cached(timeout=300)
    def echo() -> str:
        return "\n".join(f"{name}: {value}" for name, value in request.headers)

    client = app.test_client()
    assert "X-Secret: alice" in client.get("/echo", headers={"X-Secret": "alice"}).text
    assert "X-Secret: bob" in client.get("/echo", headers={"X-Secret": "bob"}).text
    assert stats(app, cache)["skips"] == {"read every request header": 2}


def test_a_header_read_by_a_hook_varies_the_page_and_says_so() -> None:
    app, cache = make_app()

    @app.before_request
    def tenant() -> None:
        g.tenant = request.headers.get("X-Tenant", "public")

    @app.route("/home")
    @cache.cached(timeout=300)
    def home() -> str:
        return f"home of {g.tenant}"

    client = app.test_client()
    assert client.get("/home", headers={"X-Tenant": "acme"}).text == "home of acme"
    hit = client.get("/home", headers={"X-Tenant": "acme"})
    other = client.get("/home", headers={"X-Tenant": "globex"})
    assert (hit.headers["X-Cache"], other.text) == ("HIT", "home of globex")
    assert "x-tenant" in hit.headers["Vary"].lower()


# -- 6. what caches in front of the app are told ---------------------------------------


def varies_on(response: Any, name: str) -> bool:
    return name in {part.strip().lower() for part in response.headers.get("Vary", "").split(",")}


def shareable_by_a_cdn(response: Any, on: str) -> bool:
    """Whether a shared cache may give this response to a request with another *on* value."""
    cache_control = response.headers.get("Cache-Control", "")
    return "private" not in cache_control and not varies_on(response, on)


@pytest.mark.parametrize("where", ["view", "hook"])
def test_a_page_that_read_a_cookie_is_never_public_without_vary_cookie(where: str) -> None:
    app, cache = make_app(CACHE_SEND_CACHE_CONTROL=True)

    if where == "hook":

        @app.before_request
        def theme() -> None:
            g.theme = request.cookies.get("theme", "light")

    @app.route("/page")
    @cache.cached(timeout=50)
    def page() -> str:
        chosen = g.theme if where == "hook" else request.cookies.get("theme", "light")
        return f"theme {chosen}"

    client = app.test_client()
    client.set_cookie("theme", "dark")
    client.get("/page")
    hit = client.get("/page")
    assert hit.headers["X-Cache"] == "HIT"
    assert not shareable_by_a_cdn(hit, "cookie")


def test_a_page_made_for_an_empty_session_is_never_public() -> None:
    app, cache = make_app(CACHE_SEND_CACHE_CONTROL=True)

    @app.route("/page")
    @cache.cached(timeout=50)
    def page() -> str:
        return f"hello {session.get('user', 'stranger')}"

    client = app.test_client()
    client.get("/page")
    hit = client.get("/page")
    assert hit.headers["X-Cache"] == "HIT"
    assert not shareable_by_a_cdn(hit, "cookie")


def test_a_page_varied_on_a_header_borne_identity_tells_caches_in_front() -> None:
    app, cache = make_app(CACHE_SEND_CACHE_CONTROL=True)
    keys = {"alice-key": "alice", "bob-key": "bob"}

    @app.before_request
    def who() -> None:
        g.user = keys.get(request.headers.get("X-Api-Key", ""), "stranger")

    @app.route("/dashboard")
    @cache.cached(timeout=50)
    def dashboard() -> str:
        return f"dashboard of {g.user}"

    client = app.test_client()
    client.get("/dashboard", headers={"X-Api-Key": "alice-key"})
    hit = client.get("/dashboard", headers={"X-Api-Key": "alice-key"})
    assert hit.headers["X-Cache"] == "HIT"
    assert not shareable_by_a_cdn(hit, "x-api-key")
