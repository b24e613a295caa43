"""The keystore: pseudonymisation and sealing keys, apart from the event store.

Keys are random (never derived from a date, which would make them guessable), one per kind and
UTC day, stored wrapped with AES-GCM under a master key the operator supplies. Destroying a key
overwrites its wrapped bytes (SQLite `secure_delete`) and keeps only its metadata: data sealed
or pseudonymised under it can then never be recomputed or read again.

Kinds:
- `visitor`: keyed-hash key for the cookieless visitor pseudonym. Today's and yesterday's are
  kept (an event captured before midnight may be processed after it); older ones are destroyed,
  so the same person is unlinkable across days.
- `seal`: AES-GCM key for the optional sealed IP:port, destroyed after `keys.seal_retention`.

Named, long-lived keys:
- `subject-hash`: keyed-hash key for subject pseudonyms (a subject must stay the same subject
  for as long as they can exercise their rights);
- `subject-key-<random>`: one AES-GCM key per subject for what an app records about them,
  mapped from the subject in the event store (store/subject_keys.py); erasing it erases those
  records (crypto-shredding). Before that mapping, keys were named `subject-<pseudonym>`:
  still read, and erased with their subject (`erase` removes the row, id and all).
"""

import asyncio
import base64
import datetime as dt
import logging
import os
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..config import KeysConfig
from ..errors import KeyStoreError
from ..files import PRIVATE_FILE, private_dir, private_sqlite, tighten, warn_if_readable

log = logging.getLogger("veil.keys")
KINDS = ("visitor", "seal")  # daily kinds
FOREVER = "9999-12-31T00:00:00+00:00"
_VERIFIER = b"veil keystore master key check"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    epoch        TEXT NOT NULL,          -- the UTC day the key serves
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,          -- destroyed at or after this instant
    destroyed_at TEXT,
    wrapped      BLOB,                   -- nonce || AES-GCM(master, key); NULL once destroyed
    UNIQUE (kind, epoch)
);
"""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    kind: str
    epoch: str
    created_at: str
    expires_at: str
    destroyed_at: str | None


def _decode_master(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(text + "==")
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise KeyStoreError(
            f"{where}: the master key must be 32 bytes, as 64 hex characters or "
            "base64; generate one with: veil keys generate-master"
        )
    return raw


def new_master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def load_master_key(cfg: KeysConfig) -> bytes:
    """From $VEIL_MASTER_KEY, else `keys.master_key_file`, else a development key made once."""
    if env := os.environ.get("VEIL_MASTER_KEY"):
        return _decode_master(env, "VEIL_MASTER_KEY")
    if cfg.master_key_file:
        warn_if_readable(cfg.master_key_file, "keys.master_key_file")
        try:
            return _decode_master(cfg.master_key_file.read_text(), "keys.master_key_file")
        except OSError as exc:
            raise KeyStoreError(
                f"keys.master_key_file: cannot read {cfg.master_key_file}: {exc.strerror}"
            ) from None
    dev = cfg.path.parent / "master.key"
    if not dev.exists():
        private_dir(dev.parent)
        fd = os.open(dev, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        with os.fdopen(fd, "w") as f:
            f.write(new_master_key() + "\n")
    tighten(dev)
    log.warning(
        "using the development master key %s: it sits beside the keystore, so it "
        "protects nothing; set VEIL_MASTER_KEY or keys.master_key_file in production",
        dev,
    )
    return _decode_master(dev.read_text(), str(dev))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds")


class KeyStore:
    """Synchronous (keys change once a day); callers on an event loop use a thread."""

    def __init__(self, path: Path, master: bytes, seal_retention: dt.timedelta) -> None:
        self.path = path
        self._aead = AESGCM(master)
        self._retention = {"visitor": dt.timedelta(days=2), "seal": seal_retention}
        try:
            private_sqlite(path)  # 0600 (its journal follows), in a 0700 directory if new
            self._db = sqlite3.connect(
                path, timeout=10, isolation_level=None, check_same_thread=False
            )
            # Rollback journal, not WAL: a WAL file would keep old pages (wrapped keys) around
            # after destruction until a checkpoint.
            self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise KeyStoreError(f"keys.path: cannot open keystore {path}: {exc}") from None
        self._check_master()

    @classmethod
    def open(cls, cfg: KeysConfig) -> "KeyStore":
        return cls(cfg.path, load_master_key(cfg), cfg.seal_retention)

    def close(self) -> None:
        self._db.close()

    def _check_master(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name='verifier'").fetchone()
        if row is None:
            nonce = secrets.token_bytes(12)
            blob = nonce + self._aead.encrypt(nonce, _VERIFIER, b"verifier")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('verifier', ?)", (blob,))
            return
        try:
            self._aead.decrypt(row[0][:12], row[0][12:], b"verifier")
        except InvalidTag:
            raise KeyStoreError(
                f"the master key does not match the keystore {self.path}: "
                "was VEIL_MASTER_KEY or keys.master_key_file changed?"
            ) from None

    def _create(self, key_id: str, kind: str, epoch: str, expires: str) -> None:
        """A new random key, wrapped. INSERT OR IGNORE: another process may race us to it."""
        if self._db.execute("SELECT 1 FROM keys WHERE id=?", (key_id,)).fetchone():
            return
        nonce, key = secrets.token_bytes(12), secrets.token_bytes(32)
        self._db.execute(
            "INSERT OR IGNORE INTO keys (id, kind, epoch, created_at, expires_at, wrapped) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                key_id,
                kind,
                epoch,
                _iso(dt.datetime.now(dt.UTC)),
                expires,
                nonce + self._aead.encrypt(nonce, key, key_id.encode()),
            ),
        )

    def key_for(self, kind: str, day: dt.date) -> tuple[str, bytes] | None:
        """(id, key bytes) for `kind` on `day`, created on first use; None once destroyed."""
        if kind not in KINDS:
            raise KeyStoreError(f"unknown key kind {kind!r}")
        key_id = f"{kind}-{day.isoformat()}"
        expires = dt.datetime.combine(day, dt.time(), dt.UTC) + self._retention[kind]
        if expires > dt.datetime.now(dt.UTC):  # never create a key already past its life
            self._create(key_id, kind, day.isoformat(), _iso(expires))
        key = self.key_by_id(key_id)
        return None if key is None else (key_id, key)

    def named_key(self, key_id: str, create: bool = True) -> bytes | None:
        """A long-lived key by name, made on first use when `create`; None once destroyed."""
        if create:
            self._create(key_id, "named", key_id, FOREVER)  # (kind, epoch) is unique
        return self.key_by_id(key_id)

    def key_by_id(self, key_id: str) -> bytes | None:
        """The key bytes, or None when no such key exists or it was destroyed."""
        row = self._db.execute("SELECT wrapped FROM keys WHERE id=?", (key_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            return self._aead.decrypt(row[0][:12], row[0][12:], key_id.encode())
        except InvalidTag:
            raise KeyStoreError(
                f"key {key_id} failed authentication: the keystore was altered"
            ) from None

    def rotate(self, now: dt.datetime | None = None) -> list[str]:
        """Destroy every key past its life and make today's; return the destroyed ids.
        Blocks its thread (for the CLI); on an event loop, `await rotate_off_loop()`."""
        now = now or dt.datetime.now(dt.UTC)
        expired = self.destroy_expired(now)
        for kind in KINDS:
            self.key_for(kind, now.date())
        return expired

    async def rotate_off_loop(self, now: dt.datetime | None = None) -> list[str]:
        """`rotate` for an event loop: destruction and VACUUM run in a worker thread, on a
        connection of their own; only today's keys (two small inserts) are made on the loop."""
        now = now or dt.datetime.now(dt.UTC)
        expired = await asyncio.to_thread(self.destroy_expired, now)
        for kind in KINDS:
            self.key_for(kind, now.date())
        return expired

    def destroy_expired(self, now: dt.datetime) -> list[str]:
        """Destroy every key past its life at `now` in one transaction, then VACUUM; the ids.

        On a connection of its own, so it can run in a worker thread while the loop goes on
        using the keystore's (a connection shared across threads would make the loop wait for
        the VACUUM on SQLite's connection mutex). A key read on the loop during the VACUUM
        still waits for its exclusive lock: milliseconds for day keys, ~0.25 s for a keystore
        of 200,000 subject keys, once a day.
        """
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA secure_delete=ON")  # per connection: this one overwrites
            db.execute("BEGIN IMMEDIATE")
            expired = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM keys WHERE destroyed_at IS NULL AND expires_at <= ?",
                    (_iso(now),),
                )
            ]
            db.executemany(
                "UPDATE keys SET wrapped=NULL, destroyed_at=? WHERE id=?",
                [(_iso(now), key_id) for key_id in expired],
            )
            db.execute("COMMIT")
            if expired:
                # secure_delete has zeroed the wrapped bytes already (destroy); rebuilding the
                # file also leaves no page on the free list and gives the space back.
                db.execute("VACUUM")
        finally:
            db.close()  # an unfinished transaction rolls back
        for key_id in expired:
            log.info("destroyed key %s", key_id)
        return expired

    def destroy(self, key_id: str, now: dt.datetime | None = None) -> None:
        """Destroy one key now (crypto-shredding). With `secure_delete` on, SQLite zeroes the
        wrapped bytes where they were, so the key is gone from the file at commit. No VACUUM
        here: it rebuilds the whole file on the caller's thread, the event loop's for an app
        (0.25 s for a keystore of 200,000 subject keys); `destroy_expired` does it off the
        loop."""
        now = now or dt.datetime.now(dt.UTC)
        self._db.execute(
            "UPDATE keys SET wrapped=NULL, destroyed_at=? WHERE id=? AND destroyed_at IS NULL",
            (_iso(now), key_id),
        )
        log.info("destroyed a key")  # never its id: an old subject key's names the subject

    def erase(self, key_ids: Iterable[str]) -> int:
        """Remove keys outright, row and all (erasure: a key id may name the subject, as the
        `subject-<pseudonym>` ids before subject_keys did), then VACUUM, so no page of the
        file keeps a copy (secure_delete zeroes the freed cells; the rebuild leaves no stale
        page). How many keys there were. On a connection of its own: run it off the loop
        (`erase_off_loop`); the VACUUM of a keystore of 200,000 subject keys takes ~0.25 s."""
        wanted = sorted(set(key_ids))
        if not wanted:
            return 0
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA secure_delete=ON")
            db.execute("BEGIN IMMEDIATE")
            gone = sum(
                db.execute(
                    f"DELETE FROM keys WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                ).rowcount
                for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500))
            )
            db.execute("COMMIT")
            if gone:
                db.execute("VACUUM")
        finally:
            db.close()
        log.info("erased %d key(s)", gone)  # never their ids: an old one names the subject
        return gone

    async def erase_off_loop(self, key_ids: Iterable[str]) -> int:
        return await asyncio.to_thread(self.erase, list(key_ids))

    def list(self) -> list[KeyInfo]:
        return [
            KeyInfo(*r)
            for r in self._db.execute(
                "SELECT id, kind, epoch, created_at, expires_at, destroyed_at FROM keys "
                "ORDER BY epoch, kind"
            )
        ]
