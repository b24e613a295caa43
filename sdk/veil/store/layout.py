"""Narrow rows: one table per purpose, holding only the columns its fields can fill, with each
distinct user-agent stored once in `agents`.

A 28-column row, most of it NULL or repeated per agent, cost ~21 µs to insert; the same rows
narrowed insert ~3x faster (docs/benchmarks.md). And the shape is a privacy fact: a purpose's
table has no column for a field the purpose may not collect, so a row carrying one is
refused (RowsRefused), never stored.

- `events_<purpose>` (listed in `event_tables`): `id`, the CORE_COLUMNS, then the columns the
  purpose's fields fill (registry.FIELD_COLUMNS), the seven agent columns as one `agent` id. A
  policy version that broadens a purpose adds columns at open; none is ever dropped, so rows
  of older versions keep theirs (NULL in the columns added after them).
- `agents`: the seven agent values once, deduplicated on `key`, their json_array (a UNIQUE
  on the columns themselves would take two all-NULL device triples as distinct).
- Views, rebuilt in the transaction that changes a table: `events` for analysts (the columns
  of migration 1's view, in its order) and `event_rows` for veil's own reads (`id` and every
  ROW_COLUMNS, `ts` raw). Both are a UNION ALL with `purpose` a constant per arm, so
  `WHERE purpose = ...` skips the other tables. `id` is the row's id in its table * 1000 + the
  table's `number`: unique across the view, increasing within a purpose.
"""

import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter

from ..errors import RowsRefused, StoreError
from ..policy import Policy
from ..registry import AGENT_COLUMNS, event_columns
from .columns import CORE_COLUMNS, ROW_COLUMNS, Row

ID_SPAN = 1000  # view id = row id * ID_SPAN + table number (1..999)
_PURPOSE_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")  # policy.py's rule for purpose keys
_PURPOSE = ROW_COLUMNS.index("purpose")
# Columns a purpose's table may have beyond the core, in ROW_COLUMNS order ("agent" for the
# seven agent columns), with their declared types.
_TYPES = {
    "country": "TEXT",
    "region": "TEXT",
    "agent": "INTEGER",  # agents.id
    "language": "TEXT",
    "languages": "TEXT",
    "gpc": "INTEGER",
    "dnt": "INTEGER",
    "screen_w": "INTEGER",
    "screen_h": "INTEGER",
    "pixel_ratio": "REAL",
    "path": "TEXT",
    "seal_key": "TEXT",
    "sealed_endpoint": "BLOB",
    "subject": "TEXT",
}
_CORE_DDL = """
    id             INTEGER PRIMARY KEY,
    event_id       TEXT,
    ts             REAL NOT NULL,
    policy_version TEXT NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('request', 'beacon')),
    site           TEXT,
    visitor        TEXT,
    network        TEXT"""
# migration 1's `events` view, column for column
EVENTS_VIEW_COLUMNS = (
    "id",
    "ts",
    "day",
    "purpose",
    "policy_version",
    "source",
    "site",
    "visitor",
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
)


def quote(name: str) -> str:
    """An SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def stored(columns: Iterable[str]) -> set[str]:
    """Row columns as a table stores them: the agent columns become `agent`."""
    out = set(columns)
    if out & set(AGENT_COLUMNS):
        out = (out - set(AGENT_COLUMNS)) | {"agent"}
    return out


def policy_columns(policy: Policy) -> dict[str, set[str]]:
    """Per purpose of `policy`, the optional columns its table needs."""
    return {
        key: stored(event_columns(p.fields, p.needs_consent)) for key, p in policy.purposes.items()
    }


def _getter(indices: Sequence[int]) -> Callable[[Row], tuple[object, ...]]:
    """itemgetter that always gives a tuple (itemgetter(i) gives the item itself)."""
    if len(indices) > 1:
        return itemgetter(*indices)
    if indices:
        (i,) = indices
        return lambda row: (row[i],)
    return lambda row: ()


_AGENT_KEY = _getter([ROW_COLUMNS.index(c) for c in AGENT_COLUMNS])


class Table:
    """One purpose's table, and what writing a row to it takes (built once per table)."""

    def __init__(self, purpose: str, name: str, number: int, columns: frozenset[str]) -> None:
        self.purpose, self.name, self.number = purpose, name, number
        self.columns = columns  # beyond the core: "agent" and row columns
        self.has_agent = "agent" in columns
        plain = [c for c in ROW_COLUMNS if c in CORE_COLUMNS or c in columns]
        agent = AGENT_COLUMNS if self.has_agent else ()
        self.absent = [c for c in ROW_COLUMNS if c not in {*plain, *agent, "purpose"}]
        self.project = _getter([ROW_COLUMNS.index(c) for c in plain])
        # the row's values in the columns this table lacks: all None, or it is refused
        self.present = _getter([ROW_COLUMNS.index(c) for c in self.absent])
        names = [*plain, "agent"] if self.has_agent else plain
        self.insert = (
            f"INSERT INTO {quote(name)} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}) ON CONFLICT (event_id) DO NOTHING"
        )

    def refuse_extra(self, rows: Iterable[Row]) -> None:
        """RowsRefused if a row has a value in a column this table lacks (a sender whose
        policy lets the purpose collect more than this store's): named, never the value."""
        nothing = (None,) * len(self.absent)
        for values in map(self.present, rows):
            if values != nothing:
                column = next(c for c, v in zip(self.absent, values, strict=True) if v is not None)
                raise RowsRefused(
                    f"a row of purpose {self.purpose!r} carries {column!r}, which that purpose "
                    "may not hold in this store (its policy does not list the field): refused"
                )


def load(db: sqlite3.Connection) -> dict[str, Table]:
    """The purpose tables as they are in the database, by purpose."""
    tables = {}
    for purpose, name, number in db.execute("SELECT purpose, name, number FROM event_tables"):
        present = {r[1] for r in db.execute(f"PRAGMA table_info({quote(name)})")}
        tables[purpose] = Table(purpose, name, number, frozenset(present & _TYPES.keys()))
    return tables


def ensure(db: sqlite3.Connection, wanted: Mapping[str, set[str]]) -> bool:
    """Create each purpose's table, or add the columns it lacks, in the caller's transaction;
    True if anything changed (the views then need rebuilding)."""
    tables = load(db)
    changed = False
    for purpose, columns in wanted.items():
        table = tables.get(purpose)
        if table is None:
            _create(db, purpose, columns)
            changed = True
            continue
        for column in [c for c in _TYPES if c in columns - table.columns]:
            db.execute(f"ALTER TABLE {quote(table.name)} ADD COLUMN {column} {_TYPES[column]}")
            changed = True
        if "subject" in columns:
            _subject_index(db, table.name)
    return changed


def _create(db: sqlite3.Connection, purpose: str, columns: set[str]) -> None:
    if not _PURPOSE_KEY.fullmatch(purpose):
        raise StoreError(
            f"purpose {purpose[:60]!r}: purpose keys are lower_snake_case, at most 40 "
            "characters (it names the purpose's table)"
        )
    (number,) = db.execute("SELECT coalesce(max(number), 0) + 1 FROM event_tables").fetchone()
    if number >= ID_SPAN:
        raise StoreError(f"a store holds at most {ID_SPAN - 1} purposes")
    name = f"events_{purpose}"
    extra = "".join(f",\n    {c} {_TYPES[c]}" for c in _TYPES if c in columns)
    db.execute(f"CREATE TABLE {quote(name)} ({_CORE_DDL}{extra}\n)")
    # a retried batch is stored once (ON CONFLICT in the insert); retention deletes by ts
    db.execute(f"CREATE UNIQUE INDEX {quote(name + '_event_id')} ON {quote(name)} (event_id)")
    db.execute(f"CREATE INDEX {quote(name + '_ts')} ON {quote(name)} (ts)")
    if "subject" in columns:
        _subject_index(db, name)
    db.execute("INSERT INTO event_tables VALUES (?, ?, ?)", (purpose, name, number))


def _subject_index(db: sqlite3.Connection, name: str) -> None:
    db.execute(
        f"CREATE INDEX IF NOT EXISTS {quote(name + '_subject')} ON {quote(name)} (subject) "
        "WHERE subject IS NOT NULL"
    )


# The analysts' view leaves out the rows of subjects whose use is restricted or suspended
# (rights/limits.py); veil's own `event_rows` keeps them (export, erasure, retention).
_NOT_LIMITED = (
    " WHERE t.subject IS NULL OR t.subject NOT IN "
    "(SELECT subject FROM subject_limits WHERE kind IN ('restriction', 'suspension'))"
)


def _view_sql(db: sqlite3.Connection) -> dict[str, str]:
    """Each view's CREATE statement over the tables there are now."""
    tables = sorted(load(db).values(), key=lambda t: t.number)
    events = _union(tables, _events_arm, EVENTS_VIEW_COLUMNS, limited=True)
    rows = _union(tables, _rows_arm, ("id", *ROW_COLUMNS))
    return {
        "events": f"CREATE VIEW events AS {events}",
        "event_rows": f"CREATE VIEW event_rows AS {rows}",
    }


def views_current(db: sqlite3.Connection) -> bool:
    """The views are what this veil would build (an upgrade may change them)."""
    stored = db.execute(
        "SELECT name, sql FROM sqlite_master "
        "WHERE type = 'view' AND name IN ('events', 'event_rows')"
    ).fetchall()
    return dict(stored) == _view_sql(db)


def build_views(db: sqlite3.Connection) -> None:
    """Drop and recreate `events` and `event_rows` over the tables there are now."""
    for name, sql in _view_sql(db).items():
        db.execute(f"DROP VIEW IF EXISTS {name}")
        db.execute(sql)


def _union(
    tables: list[Table],
    arm: Callable[[Table], list[str]],
    names: Sequence[str],
    limited: bool = False,
) -> str:
    """One SELECT per table; `limited`: without restricted or suspended subjects' rows."""
    if not tables:  # the columns, and no row
        return "SELECT " + ", ".join(f"NULL AS {n}" for n in names) + " WHERE 0"
    return "\nUNION ALL\n".join(
        f"SELECT {', '.join(f'{expr} AS {n}' for expr, n in zip(arm(t), names, strict=True))} "
        f"FROM {from_sql(t)}" + (_NOT_LIMITED if limited and "subject" in t.columns else "")
        for t in tables
    )


def _value(t: Table, column: str) -> str:
    if column == "purpose":
        return "'" + t.purpose.replace("'", "''") + "'"
    if column in AGENT_COLUMNS:
        return f"a.{column}" if t.has_agent else "NULL"
    return f"t.{column}" if column in CORE_COLUMNS or column in t.columns else "NULL"


def _view_id(t: Table) -> str:
    return f"t.id * {ID_SPAN} + {t.number}"


def _events_arm(t: Table) -> list[str]:
    return [
        _view_id(t),
        "strftime('%Y-%m-%dT%H:%M:%fZ', t.ts, 'unixepoch')",
        "date(t.ts, 'unixepoch')",
        *[_value(t, c) for c in EVENTS_VIEW_COLUMNS[3:]],
    ]


def _rows_arm(t: Table) -> list[str]:
    return [_view_id(t), *[_value(t, c) for c in ROW_COLUMNS]]


def column_sql(t: Table, column: str) -> str:
    """The SQL for a row column (or `day`) read from `t AS t`, joined to `agents AS a`."""
    if column == "day":
        return "date(t.ts, 'unixepoch')"
    return _value(t, column)


def from_sql(t: Table, joined: bool = True) -> str:
    """`t`, joined to its agents when `joined` (a query that reads an agent column)."""
    join = joined and t.has_agent
    return f"{quote(t.name)} AS t" + (" LEFT JOIN agents AS a ON a.id = t.agent" if join else "")


# -- the legacy event_log (schema migrations 1-7) ---------------------------------------------


def has_legacy(db: sqlite3.Connection) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_log'"
        ).fetchone()
        is not None
    )


def move_legacy(db: sqlite3.Connection, wanted: Mapping[str, set[str]]) -> None:
    """Move event_log's rows into the purpose tables, in the caller's transaction, and drop it.

    Each purpose's table gets the core, every column any of its legacy rows has a value in,
    and what `wanted` (the policy's) asks; rows keep their id (in their table) and values,
    agents are deduplicated. The caller checkpoints (TRUNCATE) after the commit, and
    secure_delete zeroes the dropped table's pages: no copy is left behind."""
    optional = [c for c in ROW_COLUMNS if c not in CORE_COLUMNS and c != "purpose"]
    columns: dict[str, set[str]] = {p: set(c) for p, c in wanted.items()}
    for (purpose,) in db.execute("SELECT DISTINCT purpose FROM event_log").fetchall():
        counts = db.execute(
            f"SELECT {', '.join(f'count({c})' for c in optional)} FROM event_log WHERE purpose = ?",
            (purpose,),
        ).fetchone()
        used = stored(c for c, n in zip(optional, counts, strict=True) if n)
        columns[purpose] = columns.get(purpose, set()) | used
    ensure(db, columns)
    agent = ", ".join(AGENT_COLUMNS)
    db.execute(
        f"INSERT INTO agents (key, {agent}) "
        f"SELECT DISTINCT json_array({agent}), {agent} FROM event_log "
        f"WHERE coalesce({agent}) IS NOT NULL ON CONFLICT (key) DO NOTHING"
    )
    for table in load(db).values():
        keep = [c for c in ROW_COLUMNS if c in CORE_COLUMNS or c in table.columns]
        names = ["id", *keep] + (["agent"] if table.has_agent else [])
        values = [f"l.{c}" for c in ["id", *keep]] + (["a.id"] if table.has_agent else [])
        legacy_key = f"json_array({', '.join(f'l.{c}' for c in AGENT_COLUMNS)})"
        join = f" LEFT JOIN agents AS a ON a.key = {legacy_key}" if table.has_agent else ""
        db.execute(
            f"INSERT INTO {quote(table.name)} ({', '.join(names)}) "
            f"SELECT {', '.join(values)} FROM event_log AS l{join} WHERE l.purpose = ?",
            (table.purpose,),
        )
    db.execute("DROP VIEW IF EXISTS events")
    db.execute("DROP TABLE event_log")


# -- agent ids ---------------------------------------------------------------------------------

NO_AGENT = (None,) * len(AGENT_COLUMNS)
MAX_AGENTS = 4096  # cached; a realistic stream has ~200
MAX_AGENT_CHARS = 1 << 20  # and their values at most this many characters in all
_UPSERT_AGENT = (
    f"INSERT INTO agents (key, {', '.join(AGENT_COLUMNS)}, epoch) "
    "VALUES (json_array(?1, ?2, ?3, ?4, ?5, ?6, ?7), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
    "ON CONFLICT (key) DO UPDATE SET epoch = excluded.epoch RETURNING id"
)


class AgentIds:
    """Agent values → agents.id, cached; looked up or added in the writer's transaction.

    Retention prunes agents no row references (offloop.prune_agents). It first bumps
    `agent_epoch`; a writer reads it in each transaction and, when it has changed, forgets its
    cache, so every agent it uses from then on is looked up again, which stamps the agent with
    the new epoch; the prune deletes only agents stamped before it. An id in a cache is thus
    never one a prune has deleted, in this process or another."""

    def __init__(self) -> None:
        self._ids: dict[tuple[object, ...], int | None] = {NO_AGENT: None}
        self._chars = 0
        self._epoch: int | None = None

    def for_rows(self, db: sqlite3.Connection, rows: Sequence[Row]) -> list[int | None]:
        """Each row's agent id (None: no agent values), in the caller's write transaction."""
        (epoch,) = db.execute("SELECT epoch FROM agent_epoch").fetchone()
        if epoch != self._epoch:
            self.forget()
            self._epoch = epoch
        keys = list(map(_AGENT_KEY, rows))
        ids = self._ids
        missing = set(keys).difference(ids)
        if missing:
            if len(ids) + len(missing) > MAX_AGENTS or self._chars > MAX_AGENT_CHARS:
                self.forget()
                missing = set(keys).difference(ids)
            for key in missing:
                ids[key] = self._look_up(db, key, epoch)
                self._chars += sum(len(v) for v in key if isinstance(v, str))
        return [ids[k] for k in keys]

    def forget(self) -> None:
        """Drop the cache (after a rollback, its newest ids may name no row)."""
        self._ids = {NO_AGENT: None}
        self._chars = 0

    @staticmethod
    def _look_up(db: sqlite3.Connection, key: tuple[object, ...], epoch: int) -> int:
        if not all(v is None or isinstance(v, str) for v in key):
            raise RowsRefused("a row's agent columns (os, browser, device, ...) must be text")
        [(agent_id,)] = db.execute(_UPSERT_AGENT, (*key, epoch)).fetchall()
        return int(agent_id)
