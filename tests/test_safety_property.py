"""Property: whatever the sequence of requests, a cached app answers as the uncached one would.

Random sequences of visitors (each with a session of their own, or none),
cookies, Authorization, an API key header read by a hook, Accept-Language,
proxy headers (the scheme and root path, behind ``ProxyFix``), methods
(HEAD included, which one view answers with an empty body) and raw query
strings (escapes that are not UTF-8 among them) run against an app of
cached views. Every view is a pure function of what it
reads from the request and of a per-URL version that successful POSTs bump,
so the oracle computes each expected answer by calling the same function on
the step's inputs and the model's versions.

One view, ``flaky``, also depends on whether its backend is down. Serving
the page it stored while the backend was up, during an outage, is what a
cache is for; the oracle allows exactly that, and nothing else: it keeps
the query strings ``flaky`` answered 200 to (without Authorization) since
the last successful POST, and expects a 503 for every other request made
while the backend is down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import parse_qsl

from flask import Flask, Response, g, request, session, url_for
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_stash import Cache

VIEWS = (
    "setcookie",
    "session",
    "lang",
    "cookie",
    "mine",
    "whoami",
    "flaky",
    "public",
    "links",
    "headaware",
    "apikey",
)
#: The users the hook of ``apikey`` finds from the X-Api-Key header.
API_KEYS = {"alice-key": "alice", "bob-key": "bob"}
SESSIONS: tuple[dict[str, str] | None, ...] = (
    None,
    {"user": "alice"},
    {"user": "bob"},
    {"cart": "3"},
)
CLIENTS = 4


class Inputs(Protocol):
    """What a view may read; each view reads only what it needs."""

    def args(self) -> list[tuple[str, str]]: ...

    def session_user(self) -> str | None: ...

    def authorization(self) -> str | None: ...

    def language(self) -> str | None: ...

    def theme(self) -> str | None: ...

    def api_user(self) -> str | None: ...

    def own_url(self) -> str: ...


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: tuple[tuple[str, str], ...] = ()
    cookie: str | None = None  # the value of the "seen" cookie it sets


def render(view: str, method: str, inputs: Inputs, version: int, down: bool) -> Answer:
    """The uncached behaviour of every view; the app and the oracle both call it.

    Only ``flaky`` depends on *down*, the state of the backend it calls.
    """
    args = sorted(inputs.args())
    if method == "POST":
        if view == "flaky" and down:
            return Answer(503, "down, nothing changed")
        return Answer(200, f"posted v{version + 1}")
    tail = f"v{version} {args}"
    if view == "session":
        return Answer(200, f"hello {inputs.session_user() or 'stranger'} {tail}")
    if view == "lang":
        return Answer(200, f"lang {inputs.language()!r} {tail}", (("Vary", "Accept-Language"),))
    if view == "public":
        return Answer(200, f"public {tail}", (("Cache-Control", "public"),))
    if view == "setcookie":
        return Answer(200, f"cookie set {tail}", cookie=f"v{version}")
    if view == "flaky":
        status = 503 if down else 200
        return Answer(status, f"flaky {status} {tail}")
    if view == "cookie":
        return Answer(200, f"theme {inputs.theme()!r} {tail}")
    if view == "whoami":
        return Answer(200, f"auth {inputs.authorization()!r} {tail}")
    if view == "mine":
        return Answer(200, f"mine {inputs.session_user()} {inputs.authorization()!r} {tail}")
    if view == "links":
        return Answer(200, f"links to {inputs.own_url()} {tail}")
    if view == "headaware":
        # Saves itself the work on HEAD, as a view checking request.method may.
        return Answer(200, "" if method == "HEAD" else f"headaware {tail}")
    if view == "apikey":
        return Answer(200, f"apikey {inputs.api_user()!r} {tail}")
    raise AssertionError(view)


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The parameters of a raw query string, each as the bytes it decodes to."""
    return parse_qsl(query, keep_blank_values=True, encoding="latin-1")


class FromRequest:
    """Inputs read from the current Flask request, as a real view reads them."""

    def args(self) -> list[tuple[str, str]]:
        # The bytes themselves: request.args would turn every escape that is
        # not UTF-8 into the same replacement character.
        return query_pairs(request.query_string.decode("latin-1"))

    def session_user(self) -> str | None:
        return session.get("user")

    def authorization(self) -> str | None:
        return request.headers.get("Authorization")

    def language(self) -> str | None:
        return request.headers.get("Accept-Language")

    def theme(self) -> str | None:
        return request.cookies.get("theme")

    def api_user(self) -> str | None:
        found: str | None = g.get("api_user")
        return found

    def own_url(self) -> str:
        return url_for(request.endpoint or "", _external=True)


@dataclass(frozen=True)
class Request:
    client: int
    method: str
    view: str
    query: str
    authorization: str | None
    language: str | None
    theme: str | None
    api_key: str | None = None
    proto: str | None = None  # X-Forwarded-Proto
    prefix: str | None = None  # X-Forwarded-Prefix


@dataclass(frozen=True)
class Relogin:
    """The visitor's session changes between requests (log in, log out, fill a cart)."""

    client: int
    content: dict[str, str] | None


@dataclass(frozen=True)
class Outage:
    """The backend of ``flaky`` goes down, or comes back."""

    down: bool


@dataclass(frozen=True)
class FromStep:
    """Inputs of a request as the oracle knows them."""

    step: Request
    content: dict[str, str] | None

    def args(self) -> list[tuple[str, str]]:
        return query_pairs(self.step.query)

    def session_user(self) -> str | None:
        return (self.content or {}).get("user")

    def authorization(self) -> str | None:
        return self.step.authorization

    def language(self) -> str | None:
        return self.step.language

    def theme(self) -> str | None:
        return self.step.theme

    def api_user(self) -> str | None:
        if self.content:  # the hook looks at the header only without a session
            return None
        return API_KEYS.get(self.step.api_key or "")

    def own_url(self) -> str:
        # ProxyFix takes the scheme and root path from the headers, and
        # Werkzeug drops a trailing slash of the root path.
        root = (self.step.prefix or "").rstrip("/")
        return f"{self.step.proto or 'http'}://localhost{root}/{self.step.view}"


@dataclass
class World:
    """What the views depend on besides the request: versions, and the backend."""

    versions: dict[str, int]
    down: bool = False


def build_app(world: World) -> Flask:
    """The cached app; its views read and bump *world*."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="property", CACHE_DEFAULT_TIMEOUT=3600)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_prefix=1)  # type: ignore[method-assign]
    cache = Cache(app)

    @app.before_request
    def api_user() -> None:
        # An identity from a header, as Flask-Login's request_loader finds it.
        if request.endpoint == "apikey" and not session:
            g.api_user = API_KEYS.get(request.headers.get("X-Api-Key", ""))

    def make_view(name: str) -> Callable[[], Response]:
        def view() -> Response:
            answer = render(name, request.method, FromRequest(), world.versions[name], world.down)
            if request.method == "POST" and answer.status < 400:
                world.versions[name] += 1
            response = Response(answer.body, answer.status, list(answer.headers))
            if answer.cookie is not None:
                response.set_cookie("seen", answer.cookie)
            return response

        view.__name__ = view.__qualname__ = f"view_{name}"
        return view

    for name in VIEWS:
        decorated = cache.cached(per_user=name == "mine")(make_view(name))
        app.add_url_rule(f"/{name}", name, decorated, methods=["GET", "HEAD", "POST"])
    return app


class Oracle:
    """The expected answers: the views' own logic on the step's inputs."""

    def __init__(self, sessions: list[dict[str, str] | None]) -> None:
        self.sessions = sessions
        self.world = World(dict.fromkeys(VIEWS, 0))
        #: Keys (origin and canonical query) of the flaky pages stored since the last POST.
        self.flaky_stored: set[tuple[object, ...]] = set()

    def expect(self, step: Request) -> Answer:
        world = self.world
        inputs = FromStep(step, self.sessions[step.client])
        version = world.versions[step.view]
        if step.view != "flaky" or step.method == "POST":
            answer = render(step.view, step.method, inputs, version, world.down)
            if step.method == "POST" and answer.status < 400:
                world.versions[step.view] += 1
                if step.view == "flaky":
                    self.flaky_stored.clear()
            return answer
        # Parameters sorted by name, repeated ones in their order: the cache
        # key's query, beside the scheme and root path.
        canonical = (
            step.proto,
            (step.prefix or "").rstrip("/"),
            *sorted(inputs.args(), key=lambda pair: pair[0]),
        )
        shared = step.authorization is None
        if shared and canonical in self.flaky_stored:
            return render("flaky", step.method, inputs, version, down=False)
        answer = render("flaky", step.method, inputs, version, world.down)
        if shared and answer.status == 200:
            self.flaky_stored.add(canonical)
        return answer


QUERIES: tuple[str, ...] = (
    "",
    "",
    "a=1",
    "a=1&b=2",
    "b=2&a=1",  # the same page as the one above
    "a=1&a=2",
    "q=%FF",  # three escapes that a text decoding turns into one character
    "q=%FE",
    "q=%EF%BF%BD",
    "q=caf%C3%A9",
    "q=caf%c3%a9",  # the same bytes as the one above
)


#: What each visitor's browser sends unless a step says otherwise; visitors
#: differ, so requests of different visitors meet with different headers.
OWN = "own"
CLIENT_LANGUAGES: tuple[str | None, ...] = (None, "en", "fr", "")
CLIENT_THEMES: tuple[str | None, ...] = (None, "dark", "light", "dark")


def resolve(step: Request) -> Request:
    """Replace OWN by the visitor's own Accept-Language and theme cookie."""
    language = CLIENT_LANGUAGES[step.client] if step.language == OWN else step.language
    theme = CLIENT_THEMES[step.client] if step.theme == OWN else step.theme
    return replace(step, language=language, theme=theme)


def requests(views: list[str]) -> st.SearchStrategy[Request]:
    return st.builds(
        Request,
        client=st.integers(0, CLIENTS - 1),
        method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST"]),
        view=st.sampled_from(views),
        query=st.sampled_from(QUERIES),
        authorization=st.sampled_from([None, None, "Bearer alice", "Bearer bob"]),
        language=st.sampled_from([OWN, OWN, None, "", "en", "fr"]),
        theme=st.sampled_from([OWN, OWN, None, "dark", "light"]),
        api_key=st.sampled_from([None, None, "alice-key", "bob-key", "nobody"]),
        proto=st.sampled_from([None, None, "https", "http"]),
        prefix=st.sampled_from([None, None, "/shop", "//evil.example"]),
    ).map(resolve)


relogins = st.builds(Relogin, client=st.integers(0, CLIENTS - 1), content=st.sampled_from(SESSIONS))
outages = st.builds(Outage, down=st.booleans())


#: The pairs of views a script may focus on, ordered so that every view comes
#: early in the list (Hypothesis draws early entries more often).
FOCUS: tuple[tuple[str, str], ...] = tuple(
    (VIEWS[i], VIEWS[(i + step) % len(VIEWS)])
    for step in range(1, len(VIEWS) // 2 + 1)
    for i in range(len(VIEWS))
)


@st.composite
def scripts(draw: st.DrawFn) -> list[Request | Relogin | Outage]:
    """Steps on a few of the views, so that requests meet on the same pages."""
    views = list(draw(st.sampled_from(FOCUS)))
    one_request = requests(views)
    step = st.one_of(one_request, one_request, one_request, one_request, relogins, outages)
    found: list[Request | Relogin | Outage] = draw(st.lists(step, min_size=40, max_size=80))
    return found


initial_sessions = st.lists(st.sampled_from(SESSIONS), min_size=CLIENTS, max_size=CLIENTS)


def set_session(client: FlaskClient, content: dict[str, str] | None) -> None:
    with client.session_transaction() as sess:
        sess.clear()
        sess.update(content or {})


def send(client: FlaskClient, step: Request) -> Any:
    if step.theme is None:
        client.delete_cookie("theme")
    else:
        client.set_cookie("theme", step.theme)
    sent = {
        "Authorization": step.authorization,
        "Accept-Language": step.language,
        "X-Api-Key": step.api_key,
        "X-Forwarded-Proto": step.proto,
        "X-Forwarded-Prefix": step.prefix,
    }
    headers = {name: value for name, value in sent.items() if value is not None}
    url = f"/{step.view}?{step.query}" if step.query else f"/{step.view}"
    return client.open(url, method=step.method, headers=headers)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(initial=initial_sessions, script=scripts())
def test_every_visitor_gets_what_the_uncached_view_would_give(
    initial: list[dict[str, str] | None], script: list[Request | Relogin | Outage]
) -> None:
    world = World(dict.fromkeys(VIEWS, 0))
    app = build_app(world)
    clients = [app.test_client() for _ in range(CLIENTS)]
    sessions = list(initial)
    for client, content in zip(clients, sessions, strict=True):
        if content is not None:
            set_session(client, content)
    oracle = Oracle(sessions)

    for number, step in enumerate(script):
        if isinstance(step, Relogin):
            set_session(clients[step.client], step.content)
            sessions[step.client] = step.content
            continue
        if isinstance(step, Outage):
            world.down = oracle.world.down = step.down
            continue
        expected = oracle.expect(step)
        response = send(clients[step.client], step)
        where = f"step {number}: {step} with session {sessions[step.client]}"
        assert response.status_code == expected.status, where
        assert response.text == ("" if step.method == "HEAD" else expected.body), where
        seen = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("seen=")]
        if expected.cookie is None:
            assert seen == [], where
        else:
            assert len(seen) == 1, where
            assert seen[0].startswith(f"seen={expected.cookie};"), where
