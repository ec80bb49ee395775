"""The Cache subclass from our product notes, ported to Python 3 and otherwise unchanged.

It stays untyped, as written there (mypy skips this module), to show that
such code runs on Flask-Stash as it is.
"""

import functools
import hashlib
import json

from flask import current_app, request

from flask_stash import Cache


class CacheWarp(Cache):
    """The notes' subclass, ported to Python 3 (print(), bytes for md5) and nothing else."""

    def cached(self, timeout=None, key_prefix="view/%s", unless=None):
        def decorator(f):
            @functools.wraps(f)
            def decorated_function(*args, **kwargs):
                #: Bypass the cache entirely.
                if callable(unless) and unless() is True:
                    return f(*args, **kwargs)

                try:
                    cache_key = decorated_function.make_cache_key(*args, **kwargs)
                    print(cache_key)
                    rv = self.cache.get(cache_key)
                except Exception:
                    if current_app.debug:
                        raise
                    return f(*args, **kwargs)

                if rv is None:
                    rv = f(*args, **kwargs)
                    try:
                        self.cache.set(cache_key, rv, timeout=decorated_function.cache_timeout)
                    except Exception:
                        if current_app.debug:
                            raise
                        return f(*args, **kwargs)
                return rv

            def make_cache_key(*args, **kwargs):
                if callable(key_prefix):
                    cache_key = key_prefix()
                elif "%s" in key_prefix:
                    args = (
                        (json.dumps(request.args) if request.args else "")
                        or (json.dumps(request.form) if request.form else "")
                        or ""
                    )
                    cache_key = key_prefix % request.path + args
                    cache_key = hashlib.md5(cache_key.encode()).hexdigest()
                else:
                    cache_key = key_prefix

                return cache_key

            decorated_function.uncached = f
            decorated_function.cache_timeout = timeout
            decorated_function.make_cache_key = make_cache_key

            return decorated_function

        return decorator
