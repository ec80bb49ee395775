"""Checks on decorator arguments, made when the decorator is applied.

A wrong argument raises at import time, where the traceback points at the
decorator, rather than on some later request.
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable
from typing import Any, Union

__all__ = [
    "Bypass",
    "Predicate",
    "Timeout",
    "bypass_for",
    "check_callable",
    "check_stale_windows",
    "check_timeout",
    "predicate_for",
    "seconds",
]

Bypass = Callable[[tuple[Any, ...], dict[str, Any]], bool]
#: A timeout: seconds, a ``timedelta``, or None for the default.
Timeout = Union[int, float, datetime.timedelta, None]  # noqa: UP007


def seconds(timeout: Timeout) -> int | None:
    """A timeout as whole seconds (None stays None: the default applies).

    Stores count in whole seconds; a fraction rounds up, so ``0.5`` never
    becomes 0, which means "forever".
    """
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    whole = int(timeout)
    return whole + 1 if whole < timeout else whole


def check_timeout(timeout: object) -> int | None:
    """Check a decorator's timeout, and return it as whole seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if type(timeout) is bool or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds, a timedelta or None, got {timeout!r}"
        )
    if timeout < 0:
        raise ValueError(f"timeout must be 0 (no expiry) or more seconds, got {timeout!r}")
    return seconds(timeout)


def check_stale_windows(stale_while_revalidate: object, stale_if_error: object) -> None:
    for label, seconds in (
        ("stale_while_revalidate", stale_while_revalidate),
        ("stale_if_error", stale_if_error),
    ):
        if type(seconds) is not int or seconds < 0:
            raise ValueError(f"{label} must be a whole number of seconds, 0 or more")


def check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {value!r}")


def _takes_arguments(func: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return False


#: A check on one call: its own leading values, then the call's args and kwargs.
Predicate = Callable[[tuple[Any, ...], tuple[Any, ...], dict[str, Any]], bool]


def predicate_for(check: Callable[..., Any] | None, *, leading: int = 0) -> Predicate | None:
    """Call *check* with a cached call's arguments if it accepts them, else with none.

    ``forced_update`` and ``is_stale`` follow Flask-Caching's rule: a check
    with parameters gets the function's arguments (after *leading* values of
    its own, such as the cached value for ``is_stale``).
    """
    if check is None:
        return None
    try:
        parameters = list(inspect.signature(check).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    spread = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)
    if spread or len(parameters) > leading:
        return lambda lead, args, kwargs: bool(check(*lead, *args, **kwargs))
    return lambda lead, args, kwargs: bool(check(*lead))


def bypass_for(unless: Callable[..., Any] | None, f: Callable[..., Any]) -> Bypass | None:
    """Return a check of whether a call skips the cache, or None if none does.

    ``unless`` may take no arguments, as in the classic ``unless=lambda:
    current_user.is_admin``, or the function and its arguments.
    """
    check_callable("unless", unless)
    if unless is None:
        return None
    if _takes_arguments(unless):
        return lambda args, kwargs: bool(unless(f, *args, **kwargs))
    return lambda args, kwargs: bool(unless())
