"""Where pseudonymised events live. `open_store` picks the implementation from the config."""

from ..config import Config
from .base import EventStore, LocalStore
from .remote import BatchRejected, RemoteStore
from .sqlite import SQLiteStore


def open_store(cfg: Config) -> EventStore:
    """A collector when `remote.url` is set, else the embedded SQLite store."""
    if cfg.remote.url:
        return RemoteStore(cfg.remote)
    return SQLiteStore(cfg.store.path)


__all__ = [
    "BatchRejected",
    "EventStore",
    "LocalStore",
    "RemoteStore",
    "SQLiteStore",
    "open_store",
]
