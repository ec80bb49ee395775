"""Flask-Caching's backend class names, as Flask-Stash's stores."""

from flask_stash.stores import BaseStore as BaseCache
from flask_stash.stores import MemoryStore as SimpleCache
from flask_stash.stores import NullStore as NullCache
from flask_stash.stores.disk import DiskStore as FileSystemCache
from flask_stash.stores.memcached import MemcachedStore as MemcachedCache
from flask_stash.stores.redis import RedisStore as RedisCache
from flask_stash.stores.saslmemcached import SASLMemcachedStore as SASLMemcachedCache

SpreadSASLMemcachedCache = SASLMemcachedCache
RedisSentinelCache = RedisCache
RedisClusterCache = RedisCache

__all__ = [
    "BaseCache",
    "FileSystemCache",
    "MemcachedCache",
    "NullCache",
    "RedisCache",
    "RedisClusterCache",
    "RedisSentinelCache",
    "SASLMemcachedCache",
    "SimpleCache",
    "SpreadSASLMemcachedCache",
]
