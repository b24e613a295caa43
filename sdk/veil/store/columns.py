"""The columns an event row carries, in the store's insert order (see schema.py).

The store owns this list: the pipeline builds rows in this order, the batch wire format
(wire.py) sends them in it, and every store implementation inserts them in it. At rest a row
keeps fewer (layout.py): its purpose is its table, its agent an id, and only the columns its
purpose's fields can fill.
"""

from ..registry import AGENT_COLUMNS

ROW_COLUMNS = (
    "event_id",
    "ts",
    "purpose",
    "policy_version",
    "source",
    "site",
    "visitor",
    "network",
    "country",
    "region",
    *AGENT_COLUMNS,
    "language",
    "languages",
    "gpc",
    "dnt",
    "screen_w",
    "screen_h",
    "pixel_ratio",
    "path",
    "seal_key",
    "sealed_endpoint",
    "subject",
)
# What every stored event has, whatever its purpose (the purpose is its table).
CORE_COLUMNS = ("event_id", "ts", "policy_version", "source", "site", "visitor", "network")

# One event's values, in ROW_COLUMNS order: SQLite adapts each on insert, or refuses it (a
# batch off the wire is checked only where veil reads a value: event_id, ts, the blob).
Row = tuple[object, ...]
# A value as SQLite gives it back: its storage classes NULL, INTEGER, REAL, TEXT and BLOB.
SQLValue = str | int | float | bytes | None
