from flask_stash.stores.redis import RedisStore as RedisCache

__all__ = ["RedisCache"]
