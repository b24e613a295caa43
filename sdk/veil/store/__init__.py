"""Where pseudonymised events live. `open_store` picks the implementation from `store.url`."""

from ..config import StoreConfig
from .base import Aggregate, EventStore
from .sqlite import SQLiteStore


def open_store(cfg: StoreConfig) -> EventStore:
    return SQLiteStore(cfg.path)


__all__ = ["Aggregate", "EventStore", "SQLiteStore", "open_store"]
