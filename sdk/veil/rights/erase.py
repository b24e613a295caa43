"""Erasure (GDPR Art. 17, APPI Art. 35) and the disposal a withdrawn consent triggers.

`erase` removes everything veil holds about one subject, and proves it minimally:

1. their keys leave the keystore, row and id (crypto-shredding): every key that sealed a
   record, decision or review of theirs, the one subject_keys maps them to and the key
   named after them before that (`subject-<pseudonym>`); the keystore is rebuilt (VACUUM),
   so no page keeps a copy. What was sealed under them can never be read again;
2. their rows leave every table that has a `subject` column (store/subject_erase.py): each
   consent-based purpose's events (in chunks), app records, decisions and their reviews, the
   consent ledger (under the disposal permit), provision links, their key mapping and limits;
3. one "erasure" entry in the audit log, in the same transaction as the last deletions: the
   request id, the time, rows per table, the ledger ids removed and how many keys went; the
   subject only as audit.subject_ref (a keyed hash that nothing left can be matched to);
4. a TRUNCATE checkpoint, so the WAL keeps no page as it was before.

But what a legal hold of the policy keeps (GDPR Art. 17(3)(b), APPI Art. 29: `policy=`): those
rows stay, with the keys that seal them and the key mapping, and the proof says so ("kept"
rows per table, "held_by" the laws). They go with retention once the hold ends.

A returning subject is a subject like any other: nothing remembers them, their consent starts
afresh, and their new records seal under a new key. What cannot be erased because it was never
linked to them: the `connection` rows of their requests carry a daily visitor pseudonym, not
their subject, and become unlinkable when the day's key is destroyed (two days).

A browser subject keeps its cookie until told to drop it: the HTTP layer sends
`end_browser_subject(...)`'s Set-Cookie headers with its answer (else a later consent by the
same browser would come back under the same pseudonym; with nothing left under it).

`dispose_purpose`: consent to a purpose withdrawn (or refused after a grant) and no other
basis holding, the subject's rows under that purpose go (GDPR Art. 17(1)(b)): their events
and app records under it, audited as "disposal", except the kinds of rows a legal hold of the
policy keeps for that purpose. The ledger keeps the withdrawal (evidence of it); the subject's
key stays (their other records). A withdrawn special-category consent disposes of nothing by
itself (the records holding such fields rest on their purpose's basis; `dispose_purpose(...,
fields=...)` removes the records holding them, should the caller decide to).
`consent.withdrawal_deletes = false` turns it off, for a deployment where another basis holds
for those rows.
"""

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence

from .. import retention
from ..capture import cookie_names
from ..policy import Policy
from ..store import audit, subject_erase
from ..store.base import LocalStore
from ..store.keys import KeyStore
from ..store.sqlite import SQLiteStore
from ..store.subject_keys import sqlite_of

log = logging.getLogger("veil.rights")
WithdrawalHook = Callable[[str, Sequence[str]], Awaitable[None]]


async def _delete_events(local: SQLiteStore, tables: list[str], subject: str) -> Counter[str]:
    """The subject's event rows, table by table in short transactions (a subject with years
    of history must not hold the write lock, on the app's event loop, for long)."""
    counts: Counter[str] = Counter()
    for table in tables:
        while True:
            async with local._writing() as db:
                n = subject_erase.delete_chunk(db, table, subject)
            counts[table] += n
            if n < subject_erase.CHUNK:
                break
            await asyncio.sleep(0)
    return counts


async def _settle(local: SQLiteStore) -> bool:
    """Anchor the audit head and truncate the WAL, in turn with off-loop disposal chunks."""
    local._anchor()
    async with local._gate:
        return await subject_erase.checkpoint(local.db)


def _held_by(policy: Policy, plan: subject_erase.Plan, today: dt.date) -> list[str]:
    """The laws (legal holds' references) that keep something of the subject's."""
    kept = {
        "events": [t.removeprefix("events_") for t in plan.events],
        "records": plan.records,
        "decisions": plan.decisions,
        "consent": plan.consent,
        "provisions": plan.provisions,
    }
    return sorted(
        {
            h.reference
            for h in policy.legal_holds
            for kind, values in kept.items()
            if any(h.holds(kind, v, today) for v in values)
        }
    )


async def erase(
    store: LocalStore,
    keystore: KeyStore,
    subject: str,
    request_id: str,
    *,
    policy: Policy | None = None,
) -> dict[str, object]:
    """Erase `subject` (a pseudonym) everywhere; the proof written to the audit log, with
    "wal_truncated" (False: a reader held the WAL; the next checkpoint empties it).

    With `policy`, what its legal holds keep stays (GDPR Art. 17(3)(b)): those rows, and the
    keys that seal them; the proof counts them under "kept" and names the laws ("held_by")."""
    local = sqlite_of(store)
    ref = audit.subject_ref(keystore, subject)
    today = dt.datetime.now(dt.UTC).date()
    held = retention.holds(policy, today) if policy is not None else subject_erase.nothing_held
    plan = subject_erase.plan(local.db, subject, held)
    keys = await keystore.erase_off_loop(plan.erased_keys)
    tables = [t for t in subject_erase.event_tables(local.db) if t not in plan.events]
    counts = await _delete_events(local, tables, subject)
    at = time.time()
    async with local._writing() as db:
        rest, kept, ledger_ids = subject_erase.delete_rest(db, subject, plan)
        counts.update(rest)
        proof: dict[str, object] = {
            "request_id": request_id,
            "subject_ref": ref,
            "at": at,
            "counts": {t: n for t, n in sorted(counts.items()) if n},
            "ledger_ids": ledger_ids,
            "keys": keys,
        }
        if kept and policy is not None:
            proof["kept"] = kept
            proof["held_by"] = _held_by(policy, plan, today)
        audit.append(db, "erasure", proof, ts=at)
    return proof | {"wal_truncated": await _settle(local)}


async def dispose_purpose(
    store: LocalStore,
    keystore: KeyStore,
    subject: str,
    purpose: str,
    reason: str,
    *,
    kinds: Collection[str] = ("events", "records"),
    fields: Collection[str] | None = None,
) -> int:
    """Dispose of `subject`'s events and app records under `purpose` (those of `kinds`);
    how many rows went. With `fields`: only the app records holding one of them (a special
    category's). Audited as "disposal" when any row went."""
    local = sqlite_of(store)
    counts: Counter[str] = Counter()
    if "events" in kinds and fields is None:
        tables = subject_erase.event_tables(local.db, purpose)
        counts = await _delete_events(local, tables, subject)
    at = time.time()
    details: dict[str, object] = {"reason": reason, "purpose": purpose}
    if fields is not None:
        details["fields"] = sorted(fields)
    async with local._writing() as db:
        if "records" in kinds:
            counts["records"] = subject_erase.delete_records(db, subject, purpose, fields)
        total = sum(counts.values())
        if total:
            details |= {
                "subject_ref": audit.subject_ref(keystore, subject),
                "counts": {t: n for t, n in sorted(counts.items()) if n},
                "ledger_ids": [],
            }
            audit.append(db, "disposal", details, ts=at)
    if total:
        await _settle(local)
    return total


def withdrawal_hook(store: LocalStore, keystore: KeyStore, policy: Policy) -> WithdrawalHook:
    """What the ledger calls when a subject's grants end (consent.Ledger.on_withdrawn): each
    consent-based purpose among the scopes is disposed of, but for the kinds of rows a legal
    hold of the policy keeps (another basis: a law requires them). A failure is logged, never
    raised: the withdrawal is on the ledger already, and retention disposes of the rows in
    the end."""

    async def on_withdrawn(subject: str, scopes: Sequence[str]) -> None:
        held = retention.holds(policy, dt.datetime.now(dt.UTC).date())
        for scope in scopes:
            purpose = policy.purposes.get(scope)
            if purpose is None or not purpose.needs_consent:
                continue  # special:, decision:, provision: scopes hold no rows of their own
            kinds = [k for k in ("events", "records") if not held(k, scope)]
            if not kinds:
                continue
            try:
                await dispose_purpose(
                    store, keystore, subject, scope, "consent_withdrawn", kinds=kinds
                )
            except Exception as exc:
                log.error(
                    "disposal after a withdrawal of %r failed: %s: %s",
                    scope,
                    exc.__class__.__name__,
                    exc,
                )

    return on_withdrawn


def end_browser_subject(secure_cookie: bool) -> list[str]:
    """Set-Cookie header values that make the browser drop its subject cookie: the HTTP
    layer adds them to its answer to a browser subject's erasure."""
    sid, _ = cookie_names(secure_cookie)
    flags = "; Secure" if secure_cookie else ""
    return [f"{sid}=; Max-Age=0; Path=/; HttpOnly{flags}; SameSite=Lax"]
