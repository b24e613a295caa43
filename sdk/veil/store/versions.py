"""The policy versions a store has run, and the rules a new start must pass against them:

- a changed policy carries a new version (same version, same digest);
- a version new to a store that has run others has a `[[policy.changes]]` entry;
- a version is not enforced before its effective date (UTC): veil refuses to start with it
  (the refusal names policy.effective), so the previous version stays in force until it is
  deployed on or after that day;
- each version's per-purpose terms are kept (`policy_terms`, see terms.py): consents lapse and
  retention cut-offs follow them.

`problems` and `lapsing` only read, so `veil policy check` runs them on a store opened
read-only; `register` writes, inside the store's open transaction.
"""

import datetime as dt
import sqlite3
import time
from pathlib import Path

from ..errors import StoreError
from ..policy import Policy, policy_digest
from ..terms import Terms, broadened, terms_of


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        is not None
    )


def _known(db: sqlite3.Connection) -> dict[str, str]:
    """version → digest, oldest first."""
    if not _has_table(db, "policy_versions"):
        return {}
    return dict(db.execute("SELECT version, digest FROM policy_versions ORDER BY first_seen"))


def problems(
    db: sqlite3.Connection | None, policy: Policy, today: dt.date | None = None
) -> list[str]:
    """Why this store (None: no store yet) must not run `policy` now, each naming the key to
    fix; [] when it may."""
    today = today or dt.datetime.now(dt.UTC).date()
    out = []
    if policy.effective > today:
        out.append(
            f"policy.effective: version {policy.version!r} takes effect on "
            f"{policy.effective} (UTC) and veil does not enforce a policy before its "
            "effective date: keep the previous version running until then"
        )
    known = _known(db) if db is not None else {}
    if policy.version in known:
        if known[policy.version] != policy_digest(policy):
            out.append(
                f"policy.version: the policy changed but its version {policy.version!r} "
                "did not; bump policy.version and add a [[policy.changes]] entry saying "
                "what changed"
            )
    elif known and all(c.version != policy.version for c in policy.changes):
        out.append(
            f"policy.changes: version {policy.version!r} is new to this store (it has "
            f"run {', '.join(known)}) and has no [[policy.changes]] entry: add one with "
            f"version = {policy.version!r}, its effective date and what changed"
        )
    return out


def lapsing(db: sqlite3.Connection, policy: Policy) -> list[str]:
    """For `veil policy check`: purposes whose terms `policy` broadens since the version the
    store ran last, so consents given under it lapse until given again."""
    others = [v for v in _known(db) if v != policy.version]
    if not others or not _has_table(db, "policy_terms"):
        return []
    last = others[-1]
    old = {
        p: Terms.from_row(f, s, r)
        for p, f, s, r in db.execute(
            "SELECT purpose, fields, retention_seconds, recipients FROM policy_terms "
            "WHERE version = ?",
            (last,),
        )
    }
    out = []
    for purpose, now in terms_of(policy).items():
        if purpose in old and (why := broadened(old[purpose], now)):
            out.append(
                f"policy.purposes.{purpose}: {'; '.join(why)} since version {last!r}: "
                "consents covering it given under that version no longer hold until "
                "given again"
            )
    return out


def check_store(path: Path, policy: Policy) -> tuple[list[str], list[str]]:
    """(problems, warnings) of starting `policy` on the SQLite store at `path`, which is only
    read (opened read-only; no store there yet: only the effective date is checked)."""
    if not path.exists():
        return problems(None, policy), []
    # With no WAL beside it, no process has the store open and everything is in the main
    # file: read it as immutable, so the check leaves no -wal/-shm file behind either.
    wal = path.with_name(path.name + "-wal").exists()
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro{'' if wal else '&immutable=1'}", uri=True
        )
        try:
            return problems(db, policy), lapsing(db, policy)
        finally:
            db.close()
    except sqlite3.Error as exc:
        return problems(None, policy), [
            f"store.url: cannot read {path} to compare the policy "
            f"with the versions it has run: {exc}"
        ]


def register(db: sqlite3.Connection, policy: Policy) -> None:
    """Check `policy` against the versions the store has run (StoreError naming the key),
    then remember its digest and its terms."""
    if found := problems(db, policy):
        raise StoreError("; ".join(found))
    db.execute(
        "INSERT INTO policy_versions VALUES (?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
        (policy.version, policy.effective.isoformat(), policy_digest(policy), time.time()),
    )
    # A version registered before terms were kept has only its retention: complete it.
    db.executemany(
        "INSERT INTO policy_terms VALUES (?, ?, ?, ?, ?) ON CONFLICT (version, purpose) DO "
        "UPDATE SET fields = excluded.fields, recipients = excluded.recipients "
        "WHERE policy_terms.fields IS NULL",
        [(policy.version, purpose, *terms.row()) for purpose, terms in terms_of(policy).items()],
    )
