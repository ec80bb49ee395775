"""Tag versions: invalidating many entries at once, on any store.

Every tag has a version token in the store. An entry records the tokens of
its tags when it is stored, and a read fetches the entry and the current
tokens in the same round trip (one ``get_many``). Invalidating a tag
replaces its token, so every entry carrying it stops matching at once, in
every process, even on memcached, which cannot list its keys.

A missing token (never created, or evicted) never matches an entry: entries
are stored only under tokens that exist, so losing a token can only turn
entries into misses, never bring old ones back. A token that cannot be read
(signed under an old secret) is replaced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import AppState

__all__ = ["current_versions", "invalidate", "matches", "tag_keys", "url_tag"]


def tag_keys(tags: Iterable[str]) -> list[str]:
    return [f"tag:{tag}" for tag in tags]


def url_tag(host: str, path: str) -> str:
    """The tag every cached page of a URL carries, whatever its query string.

    Neither the scheme nor the root path is in it, though both are in the
    page's key: the same app answers under each, so a POST over https (or
    under another ``X-Forwarded-Prefix``) drops the pages that the others
    were served too.
    """
    return f"url:{host}{path}"


def matches(stored: tuple[str | None, ...], current: tuple[object, ...]) -> bool:
    """Whether an entry stored under *stored* tokens is still valid under *current*.

    Entries are only stored under well-formed tokens, so junk at a tag's
    key can never match one.
    """
    return None not in stored and stored == current


def _token() -> str:
    return uuid.uuid4().hex


def _is_token(value: object) -> bool:
    """Whether *value* is a token this module wrote: 32 lower-case hex digits."""
    return type(value) is str and len(value) == 32 and all(c in _HEX for c in value)


_HEX = frozenset("0123456789abcdef")


def current_versions(
    state: AppState, name: str, tags: Sequence[str], found: Sequence[object]
) -> tuple[str | None, ...]:
    """Return the tokens of *tags* to store an entry under, creating missing ones.

    *found* are the tokens read with the entry. A token that is missing is
    created with ``add``; if another process created it first, theirs is used.
    Anything else at a tag's key (junk, bytes written under an old secret)
    reads as missing and is replaced, or nothing under that tag could ever be
    stored again.
    """
    guard = state.guard
    versions: list[str | None] = []
    for key, token in zip(tag_keys(tags), found, strict=True):
        if not _is_token(token):
            fresh = _token()
            added = guard.add(key, fresh, 0, name)
            if added:
                token = fresh
            elif added is False:
                token = guard.get(key, name)
                if not _is_token(token) and guard.set(key, fresh, 0, name):
                    token = fresh
        versions.append(token if type(token) is str and _is_token(token) else None)
    return tuple(versions)


def invalidate(state: AppState, name: str, tags: Iterable[str]) -> bool:
    """Give each tag a new token; return whether the store took them all."""
    mapping = {key: _token() for key in tag_keys(tags)}
    if not mapping:
        return True
    stored = state.entries.set_many(mapping, 0, name)
    return len(stored) == len(mapping)
