"""The HTTP rules of a shared cache (RFC 9111, RFC 9110), on plain data.

Nothing here touches Flask: functions take a status and a list of header
pairs, so every rule about what a shared cache may store or send lives in
one place and is tested on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_CACHEABLE_STATUSES",
    "NOT_MODIFIED_HEADERS",
    "Headers",
    "cache_control",
    "etag_matches",
    "header_values",
    "not_modified_headers",
    "strong_etag",
    "vary_names",
    "why_not_storable",
]

Headers = Sequence[tuple[str, str]]

#: Statuses a shared cache may store by default (RFC 9110, section 15.1).
DEFAULT_CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})

#: What a 304 carries from the stored response (RFC 9110, section 15.4.5).
NOT_MODIFIED_HEADERS = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "vary"}
)


def header_values(headers: Headers, name: str) -> list[str]:
    """Return the values of every *name* header; names match case-insensitively."""
    name = name.lower()
    return [value for key, value in headers if key.lower() == name]


def _split_list(values: Iterable[str]) -> list[str]:
    """Split comma-separated header values, keeping quoted commas."""
    items: list[str] = []
    for value in values:
        current: list[str] = []
        quoted = False
        for char in value:
            if char == '"':
                quoted = not quoted
            if char == "," and not quoted:
                items.append("".join(current).strip())
                current = []
            else:
                current.append(char)
        items.append("".join(current).strip())
    return [item for item in items if item]


def cache_control(headers: Headers) -> dict[str, str | None]:
    """Return the Cache-Control directives, names lower-cased.

    Directive names are case-insensitive (RFC 9111, section 5.2): ``Private``
    and ``NO-STORE`` mean what ``private`` and ``no-store`` mean.
    """
    directives: dict[str, str | None] = {}
    for item in _split_list(header_values(headers, "cache-control")):
        name, sep, argument = item.partition("=")
        directives[name.strip().lower()] = argument.strip().strip('"') if sep else None
    return directives


def vary_names(headers: Headers) -> tuple[str, ...] | None:
    """Return the lower-cased header names of Vary, sorted; None if there is no Vary.

    An absent Vary and an empty one differ: an empty Vary is ``()``.
    """
    values = header_values(headers, "vary")
    if not values:
        return None
    return tuple(sorted({name.lower() for name in _split_list(values)}))


def why_not_storable(
    status: int,
    headers: Headers,
    *,
    request_authorized: bool = False,
    cacheable_statuses: frozenset[int] = DEFAULT_CACHEABLE_STATUSES,
) -> str | None:
    """Return why a shared cache must not store this response, or None if it may."""
    if status not in cacheable_statuses:
        return f"status {status}"
    if header_values(headers, "set-cookie"):
        return "Set-Cookie"
    directives = cache_control(headers)
    if "no-store" in directives:
        return "Cache-Control: no-store"
    if "private" in directives:
        return "Cache-Control: private"
    vary = vary_names(headers)
    if vary is not None and "*" in vary:
        return "Vary: *"
    if request_authorized and not ({"public", "s-maxage", "must-revalidate"} & directives.keys()):
        # RFC 9111, section 3.5: a response to an authorized request is
        # shared only when the response says so.
        return "Authorization"
    return None


def strong_etag(body: bytes) -> str:
    """Return a strong entity tag derived from *body*."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match value matches *etag* (weak comparison, RFC 9110 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(candidate) == wanted for candidate in _split_list([if_none_match]))


def not_modified_headers(headers: Headers) -> list[tuple[str, str]]:
    """Return the headers a 304 answer repeats from the stored response."""
    return [(key, value) for key, value in headers if key.lower() in NOT_MODIFIED_HEADERS]


def _seconds(value: str | None) -> int | None:
    """A delta-seconds directive's value; None if it is missing or not a number.

    RFC 9111 (section 1.2.2) treats an invalid value as stale, so callers
    read None on a present directive as "not fresh at all".
    """
    if value is None or not value.isdigit() or len(value) > 10:
        return None
    return int(value)


def freshness(headers: Headers, now: float) -> tuple[str | None, int | None]:
    """Why a response's own freshness forbids storing it, else the most seconds it may live.

    RFC 9111: ``no-cache`` must be revalidated before each use, which this
    cache cannot do, so it is not stored; ``s-maxage`` (for shared caches)
    wins over ``max-age``, which wins over ``Expires``; zero, an invalid
    value or a date in the past means stale at once. Returns ``(reason,
    None)`` or ``(None, lifetime)``, the lifetime None when the response
    sets none.
    """
    directives = cache_control(headers)
    if "no-cache" in directives:
        return "Cache-Control: no-cache", None
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = _seconds(directives[name])
            if not seconds:
                return f"Cache-Control: {name}={directives[name]}", None
            return None, seconds
    expires = header_values(headers, "expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires[0]).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return "Expires: invalid", None  # an invalid date means already expired
        if when <= now:
            return "Expires in the past", None
        return None, max(1, int(when - now))
    return None, None


def request_forbids_storing(environ_cache_control: str | None) -> bool:
    """Whether the request's own ``Cache-Control: no-store`` forbids storing its answer."""
    if not environ_cache_control:
        return False
    return "no-store" in cache_control([("Cache-Control", environ_cache_control)])
