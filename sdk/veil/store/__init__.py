"""Where pseudonymised events live. `open_store` picks the implementation from the config."""

from typing import TYPE_CHECKING

from ..config import Config
from .base import EventStore, LocalStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .remote import BatchRejected, RemoteStore


def open_store(cfg: Config) -> EventStore:
    """A collector when `remote.url` is set, else the embedded SQLite store."""
    if cfg.remote.url:
        from .remote import RemoteStore

        return RemoteStore(cfg.remote)
    return SQLiteStore(cfg.store.path)


def __getattr__(name: str) -> object:
    """The remote store on first use: it loads httpx (~50 ms), which a local store's
    commands (`veil query`) never need."""
    if name not in ("BatchRejected", "RemoteStore"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import remote

    return getattr(remote, name)


__all__ = [
    "BatchRejected",
    "EventStore",
    "LocalStore",
    "RemoteStore",
    "SQLiteStore",
    "open_store",
]
