"""``{% cache %}``: caching a fragment of a template.

The tag takes Flask-Caching's arguments: the timeout, a name for the
fragment, then any values the fragment differs by::

    {% cache 300, "sidebar", current_user.id, locale %}
      ... expensive markup ...
    {% endcache %}

A timeout of ``None`` means the store's default, ``0`` means no expiry, and
``"del"`` drops the entry and renders the fragment afresh. Without a name,
the template's name and the tag's line are used.

The key is ``fragment:<name>:<hash of the values>`` (a name that is not
plain ASCII of at most 100 characters is hashed too), so it suits every
store whatever the values are; :func:`make_template_fragment_key` returns
it, to drop a fragment from Python. The store is reached through the
same guarded path as views: a store that fails or is switched off by the
circuit breaker renders the fragment uncached and never breaks the page.
Hits, misses and stores are counted under the name ``fragment:<name>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app, has_app_context
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from markupsafe import Markup

from .arguments import seconds
from .keys import hash_text, stable_repr
from .state import AppState

__all__ = ["CacheExtension", "make_template_fragment_key", "register"]

#: A fragment name used in the key as it is; others are hashed.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,100}")


def make_template_fragment_key(fragment_name: str, vary_on: Iterable[Any] | None = None) -> str:
    """Return the key of the fragment *fragment_name* rendered for the values *vary_on*.

    Values are identified as :meth:`~flask_stash.Cache.memoize` identifies arguments:
    equal values give the same key in every process.
    """
    name = (
        fragment_name
        if _PLAIN_NAME.fullmatch(fragment_name)
        else "#" + hash_text(fragment_name)[:32]
    )
    values = stable_repr(list(vary_on or ()))
    return f"fragment:{name}:{hash_text(values)[:32]}"


class CacheExtension(Extension):
    """The ``{% cache timeout, name, vary... %}...{% endcache %}`` tag."""

    tags = {"cache"}  # noqa: RUF012 - the attribute Jinja reads

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        timeout = parser.parse_expression()
        if parser.stream.skip_if("comma"):
            name: nodes.Expr = parser.parse_expression()
        else:
            # Named after its template and line, so unnamed fragments of two
            # templates never share an entry. A template with no name (from
            # a string) cannot be told apart anyway: it gets Flask-Caching's
            # name, "None" and the line.
            where = parser.name or parser.filename
            name = nodes.Const(f"{where}:{lineno}" if where else f"None{lineno}")
        vary: list[nodes.Expr] = []
        while parser.stream.skip_if("comma"):
            vary.append(parser.parse_expression())
        body = parser.parse_statements(("name:endcache",), drop_needle=True)
        call = self.call_method("_render", [timeout, name, nodes.List(vary)])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, timeout: Any, name: Any, vary: list[Any], caller: Callable[[], str]) -> Any:
        state = self._state()
        if state is None:  # no Cache on this environment's app: render uncached
            return caller()
        label = f"fragment:{name}"
        key = make_template_fragment_key(str(name), vary)
        state.begin()
        if timeout == "del":
            state.guard.delete(key, label)
            return caller()
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
        ):
            raise TypeError(
                f"{{% cache %}} timeout must be None, 'del' or seconds (0 or more), got {timeout!r}"
            )
        # The guarded calls never raise: a failing store reads as a miss and
        # a write that fails is skipped, so the fragment renders uncached.
        text = state.guard.get(key, label)
        if isinstance(text, str):
            state.stats.hit(label, key)
            return Markup(text)
        state.stats.miss(label, key)
        rendered = caller()
        if state.guard.set(key, str(rendered), seconds(timeout), label):
            state.stats.stored(label, key)
        # Markup either way: the fragment was rendered by this template,
        # already escaped where autoescaping applies.
        return Markup(rendered)

    def _state(self) -> AppState | None:
        """The first Cache set up on the environment's app (or the current app)."""
        app = getattr(self.environment, "app", None)
        if app is None and has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is None:
            return None
        for state in app.extensions.get("flask_stash", {}).values():
            if isinstance(state, AppState):
                return state
        return None


def register(app: Flask) -> None:
    """Add the ``{% cache %}`` tag to *app*'s templates.

    It uses the first :class:`~flask_stash.Cache` set up on the app. If the
    Jinja environment is not built yet, the tag goes into ``jinja_options``,
    so options set later still apply.
    """
    if "jinja_env" in app.__dict__:  # already built (a cached property)
        if CacheExtension.identifier not in app.jinja_env.extensions:
            app.jinja_env.add_extension(CacheExtension)
        return
    extensions = list(app.jinja_options.get("extensions", ()))
    if CacheExtension not in extensions and CacheExtension.identifier not in extensions:
        extensions.append(CacheExtension)
    # A new dict: the class attribute is shared by every app.
    app.jinja_options = {**app.jinja_options, "extensions": extensions}
