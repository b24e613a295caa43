"""The tamper-evident audit log: append-only, hash-chained, no raw personal data.

Each entry (seq, ts, kind, details) stores the hash of the entry before it (`prev`) and its
own `hash` = SHA-256(prev, canonical JSON of [seq, ts, kind, details]); the first entry
chains to GENESIS. Triggers refuse UPDATE and DELETE, but someone with the file can drop
them, so `verify` does not trust them: it recomputes every hash and names each entry that
was edited, removed, inserted or moved.

The consent ledger joins the chain: every ledger row gets a "consent" entry, written in the
same transaction, holding the row's id and a digest of its values. `verify` recomputes the
digests, so a withdrawal rewritten as a grant (after dropping the ledger's trigger), a row
removed, or a row slipped in without an entry, is named. Rows removed by a legitimate
erasure or disposal are listed in that entry's details["ledger_ids"].

What the chain alone does not stop: someone who rewrites every entry from the edit onwards
(recomputing each hash), or who drops the last entries, leaves a chain that is whole. So
after each write transaction the head (seq, hash) is also written to a file beside the store
(`head_path`); `verify` checks the chain still holds that entry unchanged. An attacker who
edits both the database and that file, or who appends well-formed entries at the end, is not
detected: keep a copy of the head elsewhere (`veil audit verify` prints it) for that.
"""

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import StoreError
from ..files import PRIVATE_FILE
from .base import CONSENT_COLUMNS
from .keys import KeyStore
from .schema import MIGRATIONS

GENESIS = hashlib.sha256(b"veil audit log genesis v1").hexdigest()
SUBJECT_REF_KEY = "audit-subject-ref"  # keystore named key
DISPOSING_KINDS = ("erasure", "disposal")  # their details["ledger_ids"] left the ledger lawfully
_LEDGER_COLUMNS = ("id", *CONSENT_COLUMNS)
# The schema version (user_version) that created audit_log: a store opened from below it has
# its earlier ledger rows adopted into the chain (`adopt_ledger`).
MIGRATION = next(n for n, m in enumerate(MIGRATIONS, 1) if "CREATE TABLE audit_log" in m)
_RENUMBER_SPAN = 8  # how far `verify` looks for the seq an entry was hashed under


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    ts: float
    kind: str
    details: str  # canonical JSON, as stored and hashed
    prev: str
    hash: str


@dataclass(frozen=True, slots=True)
class Finding:
    seq: int | None  # the entry named; None: a ledger row with no entry at all
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}" if self.seq is not None else self.problem


def canonical(value: object) -> str:
    """JSON with sorted keys and no spaces: one encoding per value, so one hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def entry_hash(prev: str, seq: int, ts: float, kind: str, details: str) -> str:
    body = canonical([seq, ts, kind, details])
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


def subject_ref(keystore: KeyStore, pseudonym: str) -> str:
    """How the audit log (and deletion proofs) name a subject: a keyed hash of the pseudonym,
    never the pseudonym, so the log can be shown without exposing it."""
    key = keystore.named_key(SUBJECT_REF_KEY)
    if key is None:  # named keys live forever: only a damaged keystore loses one
        raise StoreError(f"key {SUBJECT_REF_KEY} is missing from the keystore")
    return hashlib.blake2b(pseudonym.encode(), key=key, digest_size=16).hexdigest()


def id_ref(secret_id: str) -> str:
    """An id that is also a credential (a decision id: the subject's proof for contesting),
    as the log names it: its SHA-256, which links to it without revealing it."""
    return hashlib.sha256(secret_id.encode()).hexdigest()


def _head(db: sqlite3.Connection) -> tuple[int, str]:
    row = db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, GENESIS) if row is None else (row[0], row[1])


def append(
    db: sqlite3.Connection, kind: str, details: Mapping[str, object], ts: float | None = None
) -> str:
    """Chain one entry, inside the caller's open write transaction (the action and its entry
    commit together, or neither does); its hash. `details` must hold no raw personal data:
    name a subject by `subject_ref`."""
    if not db.in_transaction:
        raise StoreError("audit.append needs the caller's write transaction")
    seq, prev = _head(db)
    seq += 1
    ts = time.time() if ts is None else float(ts)
    text = canonical(dict(details))
    digest = entry_hash(prev, seq, ts, kind, text)
    db.execute(
        "INSERT INTO audit_log (seq, ts, kind, details, prev, hash) VALUES (?, ?, ?, ?, ?, ?)",
        (seq, ts, kind, text, prev, digest),
    )
    return digest


# -- the consent ledger in the chain -----------------------------------------------------------


def ledger_digest(row: Iterable[object]) -> str:
    """SHA-256 of a ledger row's values (id first, then CONSENT_COLUMNS) as stored."""
    return hashlib.sha256(canonical(list(row)).encode()).hexdigest()


def _ledger_row(db: sqlite3.Connection, ledger_id: int) -> tuple[object, ...]:
    row: tuple[object, ...] = db.execute(
        f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM consent_ledger WHERE id = ?", (ledger_id,)
    ).fetchone()
    return row


def append_consent(db: sqlite3.Connection, ledger_id: int) -> str:
    """The "consent" entry for a ledger row just inserted in this transaction: its id, scope,
    action and the digest of its values as stored (never the subject's pseudonym)."""
    row = _ledger_row(db, ledger_id)
    record = dict(zip(_LEDGER_COLUMNS, row, strict=True))
    return append(
        db,
        "consent",
        {
            "ledger_id": ledger_id,
            "scope": record["scope"],
            "action": record["action"],
            "digest": ledger_digest(row),
        },
        ts=float(record["ts"]),  # type: ignore[arg-type]  # REAL NOT NULL
    )


def adopt_ledger(db: sqlite3.Connection) -> int:
    """Chain the ledger rows written before the audit log existed (a store upgraded to it),
    once, in the caller's write transaction: from then on they are checked like the rest.
    Nothing when the log already has entries. The number of rows adopted."""
    if db.execute("SELECT 1 FROM audit_log LIMIT 1").fetchone() is not None:
        return 0
    ids = [r[0] for r in db.execute("SELECT id FROM consent_ledger ORDER BY id")]
    for ledger_id in ids:
        append_consent(db, ledger_id)
    return len(ids)


# -- the head anchor, outside the database -----------------------------------------------------


def head_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".audit-head")


def anchor(db: sqlite3.Connection, store_path: Path) -> None:
    """After a commit: write the chain's head to the file beside the store, atomically, unless
    it already names that entry or a later one (another process may have gone further)."""
    seq, digest = _head(db)
    path = head_path(store_path)
    current = read_anchor(path)
    if seq == 0 or (current is not None and current[0] >= seq):
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as f:
        f.write(canonical({"seq": seq, "hash": digest}) + "\n")
    os.replace(tmp, path)


def read_anchor(path: Path) -> tuple[int, str] | None:
    """(seq, hash) of the head file, None when there is none; StoreError when it is not one."""
    try:
        doc = json.loads(path.read_text())
        return int(doc["seq"]), str(doc["hash"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path}: not an audit head file ({exc.__class__.__name__})") from None


# -- reading and verifying ---------------------------------------------------------------------


def entries(
    db: sqlite3.Connection, kind: str | None = None, last: int | None = None
) -> list[Entry]:
    """Entries in seq order; of one kind, and only the last `last`, if given."""
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    limit = f"LIMIT {int(last)}" if last is not None else ""
    rows = db.execute(
        f"SELECT * FROM (SELECT seq, ts, kind, details, prev, hash FROM audit_log {where} "
        f"ORDER BY seq DESC {limit}) ORDER BY seq",
        params,
    )
    return [Entry(*r) for r in rows]


@contextlib.contextmanager
def open_readonly(store_path: Path) -> Iterator[sqlite3.Connection]:
    """The store opened read-only: verifying must not migrate, adopt or anchor anything."""
    if not store_path.exists():
        raise StoreError(f"no store at {store_path}")
    db = sqlite3.connect(f"{store_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if (
            db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'"
            ).fetchone()
            is None
        ):
            raise StoreError(f"{store_path} has no audit log: open it once with this veil")
        yield db
    finally:
        db.close()


def verify(db: sqlite3.Connection, head: tuple[int, str] | None = None) -> list[Finding]:
    """Every problem found, each naming the entry by seq: the chain, the head anchor `head`
    (seq, hash) if given, and the consent ledger against its entries. [] when intact."""
    begun = not db.in_transaction
    if begun:
        db.execute("BEGIN")  # one snapshot for the chain and the ledger
    try:
        chain = entries(db)
        findings = _check_chain(chain)
        if head is not None:
            findings += _check_head(chain, head)
        findings += _check_ledger(db, chain)
    finally:
        if begun:
            db.execute("COMMIT")
    return sorted(findings, key=lambda f: (f.seq is None, f.seq or 0))


def _check_chain(chain: list[Entry]) -> list[Finding]:
    out = []
    at = {e.hash: i for i, e in enumerate(chain)}
    expected_seq, expected_prev = 1, GENESIS
    for i, e in enumerate(chain):
        if e.seq > expected_seq:
            gone = (
                f"entry {expected_seq} is"
                if e.seq == expected_seq + 1
                else f"entries {expected_seq} to {e.seq - 1} are"
            )
            out.append(Finding(expected_seq, f"removed ({gone} missing)"))
        if entry_hash(e.prev, e.seq, e.ts, e.kind, e.details) != e.hash:
            out.append(Finding(e.seq, _edited(e)))
        if e.prev != expected_prev and e.seq == expected_seq:
            out.append(Finding(e.seq, _misplaced(e, i, chain, at)))
        expected_seq, expected_prev = e.seq + 1, e.hash
    return out


def _edited(e: Entry) -> str:
    """What a hash mismatch means: moved (it hashes under another seq) or edited."""
    for seq in range(max(1, e.seq - _RENUMBER_SPAN), e.seq + _RENUMBER_SPAN + 1):
        if seq != e.seq and entry_hash(e.prev, seq, e.ts, e.kind, e.details) == e.hash:
            return f"moved: it was written as entry {seq} (entries inserted, removed or swapped)"
    return "edited: its content does not match its hash"


def _misplaced(e: Entry, i: int, chain: list[Entry], at: dict[str, int]) -> str:
    """Why an entry does not follow the one before it, from the entry it does follow."""
    before = chain[i - 1].seq if i else 0
    j = at.get(e.prev)
    if j is not None and j < i - 1:
        extra = ", ".join(str(x.seq) for x in chain[j + 1 : i])
        return f"follows entry {chain[j].seq}, not {before}: entry {extra} was inserted or moved"
    if j is not None and j >= i:
        return f"reordered: it follows entry {chain[j].seq}, which comes after it"
    return (
        f"does not follow entry {before}: entry {before} was rewritten with a new hash, "
        "or an entry between them was removed"
    )


def _check_head(chain: list[Entry], head: tuple[int, str]) -> list[Finding]:
    seq, digest = head
    found = next((e for e in chain if e.seq == seq), None)
    if found is None:
        return [Finding(seq, "missing: the anchored head is gone (the log was cut short)")]
    if found.hash != digest:
        return [Finding(seq, "rewritten: its hash is not the anchored head's")]
    return []


def _check_ledger(db: sqlite3.Connection, chain: list[Entry]) -> list[Finding]:
    out = []
    recorded: dict[int, tuple[int, str]] = {}  # ledger id → (entry seq, digest)
    disposed: set[int] = set()
    for e in chain:
        if e.kind not in ("consent", *DISPOSING_KINDS):
            continue
        try:
            details = json.loads(e.details)
        except ValueError:
            continue  # an edited entry: its hash finding names it
        if not isinstance(details, dict):
            continue
        if e.kind == "consent" and isinstance(details.get("ledger_id"), int):
            recorded[details["ledger_id"]] = (e.seq, str(details.get("digest")))
            # ids are rowids: one an earlier erasure removed comes back on the next row, and
            # that disposal does not cover the new row
            disposed.discard(details["ledger_id"])
        elif isinstance(ids := details.get("ledger_ids"), list):
            disposed.update(x for x in ids if isinstance(x, int))
    present = set()
    for row in db.execute(f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM consent_ledger ORDER BY id"):
        ledger_id = row[0]
        present.add(ledger_id)
        if ledger_id not in recorded:
            out.append(
                Finding(None, f"consent_ledger row {ledger_id} has no audit entry: inserted")
            )
        elif ledger_digest(row) != recorded[ledger_id][1]:
            out.append(
                Finding(
                    recorded[ledger_id][0],
                    f"consent_ledger row {ledger_id} was rewritten: it no longer matches "
                    "this entry's digest",
                )
            )
    for ledger_id, (seq, _) in recorded.items():
        if ledger_id not in present and ledger_id not in disposed:
            out.append(
                Finding(
                    seq,
                    f"consent_ledger row {ledger_id} was removed, and no erasure or "
                    "disposal entry lists it",
                )
            )
    return out
