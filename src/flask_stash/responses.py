"""Responses a view can return to steer the cache."""

# No ``from __future__ import annotations``: typed code inspects this
# constructor's signature, and expects real types there, not strings.
from flask import Response

__all__ = ["CachedResponse"]


class CachedResponse(Response):
    """A response that sets its own cache timeout, for views that know best.

    ``return CachedResponse(make_response(page), timeout=60)`` stores the
    page for 60 seconds whatever the decorator's ``timeout`` says; 0 stores
    it without expiry. Everything else about the response is unchanged.
    """

    def __init__(self, response: Response, timeout: int) -> None:
        if type(timeout) is not int or timeout < 0:
            raise ValueError(
                f"timeout must be a whole number of seconds, 0 or more; got {timeout!r}"
            )
        # Take over the wrapped response's state as it is, headers and body
        # included, rather than copying it field by field.
        self.__dict__ = response.__dict__
        self.timeout = timeout
