from flask_stash.stores import MemoryStore as SimpleCache

__all__ = ["SimpleCache"]
