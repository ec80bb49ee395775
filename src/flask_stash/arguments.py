"""Checks on decorator arguments, made when the decorator is applied.

A wrong argument raises at import time, where the traceback points at the
decorator, rather than on some later request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Bypass", "bypass_for", "check_callable", "check_stale_windows", "check_timeout"]

Bypass = Callable[[tuple[Any, ...], dict[str, Any]], bool]


def check_timeout(timeout: object) -> None:
    if timeout is None:
        return
    if type(timeout) is bool or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout must be 0 (no expiry) or more seconds, got {timeout!r}")


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
