"""Cache keys: canonical request keys and memoize argument binding.

Nothing here touches Flask's request globals; callers pass plain strings,
so every rule about what makes two requests "the same" lives in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any, Protocol, Union
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "SUPPORTED_HASH_FUNCTIONS",
    "BoundedMemo",
    "HashMethod",
    "QueryArgs",
    "bind_arguments",
    "bind_parts",
    "canonical_query",
    "function_name",
    "hash_text",
    "query_names",
    "query_string_of",
    "request_host",
    "request_origin",
    "source_hash",
    "stable_repr",
    "view_key",
]

#: Hash functions the decorators' ``hash_method`` is known to work with.
SUPPORTED_HASH_FUNCTIONS = [
    hashlib.sha1,
    hashlib.sha224,
    hashlib.sha256,
    hashlib.sha384,
    hashlib.sha512,
    hashlib.md5,
]

#: Query strings and paths longer than these are hashed in view keys, so an
#: over-long URL is still cached, under a key of bounded size.
MAX_QUERY_IN_KEY = 256
MAX_PATH_IN_KEY = 512

_by_name = itemgetter(0)


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


HashMethod = Callable[[bytes], _Digest]

#: A query given outside a request: a query string, a mapping, or (name, value) pairs.
QueryArgs = Union[str, Mapping[str, Any], Iterable[tuple[str, Any]]]  # noqa: UP007


def query_string_of(query_args: QueryArgs) -> str:
    """The query string a request with *query_args* would carry."""
    if isinstance(query_args, str):
        return query_args.removeprefix("?")
    if isinstance(query_args, Mapping):
        return urlencode(list(query_args.items()), doseq=True)
    return urlencode(list(query_args))


def hash_text(text: str, hash_method: HashMethod = hashlib.sha256) -> str:
    """Hash *text* for use inside a key."""
    return hash_method(text.encode("utf-8", "surrogatepass")).hexdigest()


#: Query strings up to this long are remembered, with their canonical form,
#: by :func:`canonical_query`: 4096 of them, so the memo holds a few MB at
#: most. Longer ones are worked out on every request; they are rare.
MEMO_QUERY_LENGTH = 512


def canonical_query(query: str, only: frozenset[str] | None = None) -> str:
    """Return *query* with parameters sorted by name, repeated values kept in order.

    ``b=2&a=1`` and ``a=1&b=2`` give the same string; ``a=1&a=2`` and
    ``a=2&a=1`` do not, because a view reading ``getlist("a")`` sees them
    differently. Blank values are kept: ``?debug`` is not ``?``. With
    *only*, parameters not named there are dropped (see :func:`query_names`).

    Parameters are compared as the bytes they decode to, never as text: an
    escape that is not UTF-8 (``%FF``) stays itself, so ``?q=%FF`` and
    ``?q=%FE`` (which a text decoding turns into the same replacement
    character) are two pages, as a view reading ``request.query_string``
    sees them.
    """
    if len(query) > MEMO_QUERY_LENGTH:
        return _canonical(query, only)
    return _remembered(query, only)


def _canonical(query: str, only: frozenset[str] | None) -> str:
    if not query:
        return ""
    if not query.isascii():
        query = _wsgi_text(query)
    # Latin-1 maps each byte to one character and back, so the pairs hold
    # the decoded bytes exactly and urlencode writes those same bytes.
    pairs = parse_qsl(query, keep_blank_values=True, encoding="latin-1")
    if only is not None:
        pairs = [pair for pair in pairs if pair[0] in only]
    # sorted() is stable, so values of a repeated name keep their order.
    pairs.sort(key=_by_name)
    return urlencode(pairs, encoding="latin-1")


def _wsgi_text(text: str) -> str:
    """*text* as a WSGI server writes a query string: one character per byte.

    Real requests arrive that way already. A character no byte stands for
    (past U+00FF) can only come from text built by hand; it is taken as the
    UTF-8 a browser would send.
    """
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("latin-1")
    return text


def query_names(names: Iterable[str]) -> frozenset[str]:
    """Parameter names as :func:`canonical_query` compares them (the bytes of their UTF-8)."""
    return frozenset(name.encode("utf-8", "surrogatepass").decode("latin-1") for name in names)


# Bounded in count and, through MEMO_QUERY_LENGTH, in the size of each entry:
# a flood of random query strings only evicts.
_remembered = lru_cache(maxsize=4096)(_canonical)

#: Entries a :class:`BoundedMemo` keeps at most.
MEMO_ENTRIES = 2048


class BoundedMemo(dict[Any, Any]):
    """A dict that forgets its oldest entry once it holds *limit* of them.

    For what the hit path works out from a request's raw parts (its page's
    key, tags and store names): a flood of new URLs only evicts, and the
    callers keep each entry's size bounded too.
    """

    def __init__(self, limit: int = MEMO_ENTRIES) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: Any, value: Any) -> None:
        if len(self) >= self.limit:
            # Another thread may have changed it meanwhile: then it need not shrink.
            with contextlib.suppress(KeyError, StopIteration, RuntimeError):
                del self[next(iter(self))]
        self[key] = value


def request_host(environ: Mapping[str, Any]) -> str:
    """The host a request was sent to, lower-cased, from its WSGI environ.

    Read from the environ rather than ``request.host``: it is what the
    client sent (after any proxy middleware rewrote it), and it costs a
    tenth as much on the hit path.
    """
    host = environ.get("HTTP_HOST")
    if not host:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return str(host).lower()


def request_origin(environ: Mapping[str, Any], host: str | None = None) -> str:
    """Everything of a request's URL before its path: scheme, host and root path.

    ``url_for`` builds a page's links from exactly these, so two requests
    that differ in any of them may get different pages: a plain-http visit
    writes ``http://`` links, and behind ``ProxyFix(x_prefix=1)`` the
    ``X-Forwarded-Prefix`` header becomes the root path (``SCRIPT_NAME``)
    of every link. Read after any proxy middleware rewrote the environ;
    *host* is :func:`request_host`, if the caller has it already. A ``|``
    (which no real host or root path holds) is escaped, so that the parts of
    a key cannot run into one another.
    """
    if host is None:
        host = request_host(environ)
    origin = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
    root = environ.get("SCRIPT_NAME")
    if root:
        origin += root
    if "|" in origin:
        origin = origin.replace("|", "%7C")
    return origin


def view_key(
    base: str,
    method: str,
    origin: str,
    query: str | None,
    hash_method: HashMethod = hashlib.sha256,
    only: frozenset[str] | None = None,
) -> str:
    """Return the key of a view response.

    *base* is the key prefix with the path already in it; *origin* is the
    request's scheme, host and root path (:func:`request_origin`). HEAD
    shares GET's entry, since Flask answers HEAD by running the GET view. *query* is the
    raw query string, or None to leave it out of the key; *only* is an
    allow-list of the parameters that count.
    """
    if method == "HEAD":
        method = "GET"
    if len(base) > MAX_PATH_IN_KEY:
        base = "#" + hash_text(base, hash_method)
    key = f"{base}|{method}|{origin}"
    if query is None:
        return key
    canonical = canonical_query(query, only)
    if len(canonical) > MAX_QUERY_IN_KEY:
        canonical = "#" + hash_text(canonical, hash_method)
    return f"{key}|{canonical}"


def function_name(fn: Callable[..., Any]) -> str:
    """Return a name for *fn* that is the same in every process."""
    fn = inspect.unwrap(fn)
    return f"{fn.__module__}.{fn.__qualname__}"


_PLAIN = (str, bytes, int, float, bool, complex, type(None))
_MAX_DEPTH = 6


def stable_repr(value: Any, depth: int = 0) -> str:
    """Return a text for *value* that equal values share, in every process.

    Unlike ``repr``, it never contains a memory address: objects are named
    by ``__caching_id__()`` if they have one, else by their own ``__repr__``
    if their class defines it, else by their class and their attributes.
    """
    kind = type(value)
    if kind in _PLAIN:
        return repr(value)
    if depth >= _MAX_DEPTH:
        return repr(value)
    depth += 1
    if kind is list or kind is tuple:
        inner = ",".join(stable_repr(item, depth) for item in value)
        return f"[{inner}]" if kind is list else f"({inner})"
    if kind is dict:
        items = sorted(f"{stable_repr(k, depth)}:{stable_repr(v, depth)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if kind is set or kind is frozenset:
        return "{" + ",".join(sorted(stable_repr(item, depth) for item in value)) + "}"
    caching_id = getattr(value, "__caching_id__", None)
    if callable(caching_id):
        return str(caching_id())
    if isinstance(value, type) or inspect.isroutine(value):
        return f"{value.__module__}.{value.__qualname__}"
    if kind.__repr__ is not object.__repr__:  # type: ignore[comparison-overlap]
        return repr(value)
    state = getattr(value, "__dict__", None)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if state is None:
        slots = [slot for cls in kind.__mro__ for slot in getattr(cls, "__slots__", ())]
        state = {slot: getattr(value, slot, None) for slot in slots}
    return f"{name}{stable_repr(state, depth)}"


@lru_cache(maxsize=1024)
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(fn)


def bind_parts(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    ignore: Collection[str] = (),
) -> list[str]:
    """Return a stable ``name=text`` for each of a call's arguments, in signature order.

    ``f(1, 2)``, ``f(1, b=2)`` and ``f(a=1, b=2)`` bind to the same
    arguments, defaults applied, so they give the same texts.
    """
    bound = _signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return [
        f"{name}={stable_repr(value)}"
        for name, value in bound.arguments.items()
        if name not in ignore
    ]


def bind_arguments(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    ignore: Collection[str] = (),
) -> str:
    """Return a stable text of a call's arguments (see :func:`bind_parts`)."""
    return ";".join(bind_parts(fn, args, kwargs, ignore))


def _const_text(const: object) -> str:
    if isinstance(const, types.CodeType):
        return f"<{_code_text(const)}>"
    if isinstance(const, frozenset):  # ``x in {"a", "b"}``: set order varies by process
        return "{" + ",".join(sorted(_const_text(item) for item in const)) + "}"
    if isinstance(const, tuple):
        return "(" + ",".join(_const_text(item) for item in const) + ")"
    return repr(const)


def _code_text(code: types.CodeType) -> str:
    """A text of *code* that is the same in every process running the same source.

    Nested code objects (lambdas, comprehensions, inner functions) are
    written out the same way rather than by ``repr``, which holds their
    memory address.
    """
    consts = ",".join(_const_text(const) for const in code.co_consts)
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}"


def source_hash(f: Callable[..., Any], hash_method: HashMethod = hashlib.sha256) -> str:
    """Hash *f*'s source, so that editing a function gives its entries new keys.

    The source text is the same in every process running the same files.
    Where there is none (a REPL, a frozen app), its compiled code stands in.
    """
    f = inspect.unwrap(f)
    try:
        text = inspect.getsource(f)
    except (OSError, TypeError):
        text = _code_text(f.__code__)
    return hash_text(text, hash_method)[:16]
