"""The fast lane (``CACHE_FAST_LANE``, off by default): a fresh page answered before Flask.

A hit on the normal path still pays for Flask's request: the request
context, routing, the session, the hooks' machinery. When nothing of that
can change the answer, the lane answers from the WSGI environ alone. It
applies only when all of these hold, and otherwise hands the request to
Flask untouched:

- the request is a GET or HEAD without ``Cookie``, ``Authorization``,
  ``If-None-Match`` or ``Cache-Control`` (so no session, no credentials, no
  conditional, nothing the cache must honour), and no background refresh;
- the app has no ``before_request``, ``after_request`` or URL value
  preprocessor functions (its own or its blueprints'), and nothing is
  connected to Flask's ``request_started`` or ``request_finished`` signals;
- the same URL (method, host, scheme, root path, path and query string) was
  answered by the normal path before, by a view whose key follows from the
  URL alone, with no ``unless``, ``forced_update`` or ``is_stale``, and
  with ``CACHE_ENABLE_SIGNALS`` off;
- its entry is fresh, made for anyone (not for an empty session only), does
  not vary (no ``Vary``), and its tag versions match.

Teardown functions do not run for a request the lane answers: they cannot
change an answer already made. The lane wraps ``app.wsgi_app`` at
``init_app``, so it must be set up before any WSGI middleware (``ProxyFix``)
is applied, which then runs first and rewrites the environ the lane reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from flask.signals import request_finished, request_started

from .keys import BoundedMemo

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["FastLane", "install", "lane_of", "url_parts"]

logger = logging.getLogger("flask_stash")

#: Request headers whose presence sends a request down the normal path.
_NORMAL_PATH_HEADERS = (
    "HTTP_COOKIE",
    "HTTP_AUTHORIZATION",
    "HTTP_IF_NONE_MATCH",
    "HTTP_CACHE_CONTROL",
)
_EXTENSION_KEY = "flask_stash.fast_lane"
#: Set in the environ of a background refresh (views.REVALIDATE): it must recompute.
_REVALIDATE = "flask_stash.revalidate"


def url_parts(environ: WSGIEnvironment) -> tuple[object, ...]:
    """What the lane knows a URL by: the raw parts its page's key follows from."""
    return (
        environ.get("REQUEST_METHOD"),
        environ.get("HTTP_HOST"),
        environ.get("wsgi.url_scheme"),
        environ.get("SCRIPT_NAME"),
        environ.get("PATH_INFO"),
        environ.get("QUERY_STRING"),
    )


class FastLane:
    """WSGI middleware in front of Flask's own ``wsgi_app`` (see the module's docstring)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        #: URL parts -> how to answer them early; filled by the normal path.
        self.pages = BoundedMemo()
        self._hooks_checked = False
        self._hookless = False

    def _app_is_hookless(self) -> bool:
        # Hooks cannot be added once the app has handled a request, so this
        # is worked out once, after the first one.
        if not self._hooks_checked:
            app = self.app
            self._hookless = not (
                any(app.before_request_funcs.values())
                or any(app.after_request_funcs.values())
                or any(app.url_value_preprocessors.values())
            )
            self._hooks_checked = True
        return self._hookless

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        pages = self.pages
        if pages and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            early = pages.get(url_parts(environ))
            if (
                early is not None
                and not any(name in environ for name in _NORMAL_PATH_HEADERS)
                and _REVALIDATE not in environ
                and not request_started.receivers
                and not request_finished.receivers
                and self._app_is_hookless()
            ):
                response = early(environ)
                if response is not None:
                    body: Iterable[bytes] = response(environ, start_response)
                    return body
        return self.wsgi_app(environ, start_response)


def install(app: Flask) -> FastLane | None:
    """Put the lane in front of *app*'s own ``wsgi_app``, once; None if it cannot be."""
    found = lane_of(app)
    if found is not None:
        return found
    if getattr(app.wsgi_app, "__func__", None) is not Flask.wsgi_app:
        logger.warning(
            "CACHE_FAST_LANE is off for app %r: app.wsgi_app is already wrapped by a "
            "middleware, and the lane must run after it. Set up the cache before "
            "applying WSGI middleware such as ProxyFix.",
            app.name,
        )
        return None
    lane = FastLane(app, app.wsgi_app)
    app.wsgi_app = lane  # type: ignore[method-assign]
    app.extensions[_EXTENSION_KEY] = lane
    return lane


def lane_of(app: Flask) -> FastLane | None:
    found: FastLane | None = app.extensions.get(_EXTENSION_KEY)
    return found
