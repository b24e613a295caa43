"""The store interface every backend implements."""

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..policy import Policy
from ..terms import Terms
from .columns import Row

# The consent ledger's record, as `append_consents` takes it and `consent_histories` gives it.
CONSENT_COLUMNS = (
    "ts",
    "subject",
    "scope",
    "action",
    "method",
    "explicit",
    "gpc",
    "policy_version",
    "jurisdiction",
)
# A provision register entry, as `provisions` gives it.
PROVISION_COLUMNS = (
    "id",
    "ts",
    "recipient",
    "country",
    "role",
    "purpose",
    "categories",
    "subjects",
    "records",
    "basis",
    "safeguard",
    "transfer",
)


class EventStore(Protocol):
    async def open(self, policy: Policy | None = None) -> None:
        """Create or migrate the schema and register the policy's purposes; without a
        policy (a reader: `veil query`), register none."""

    async def write(
        self, rows: Sequence[Row], drops: Counter[str], day: str, batch: str | None = None
    ) -> None:
        """Store rows and drop counts, or raise. Retrying the same rows is safe: an event id
        is stored once; `batch`, the same id on every retry of one batch, makes its drop
        counts count once too. A row of a purpose the store does not know, or with a value
        in a column its purpose may not hold (a sender running another policy), is refused
        (RowsRefused, naming the purpose and column, never a value)."""

    async def drop_counts(self, since_day: str | None = None) -> dict[str, int]:
        """Counted drops by reason."""

    async def close(self) -> None: ...


@runtime_checkable
class LocalStore(EventStore, Protocol):
    """A store that also keeps veil's own records: the consent ledger, app records,
    decisions, reviews, the provision register and each policy version's terms (the SQLite
    store; not a remote collector).

    The contract for an implementation: every write below is one transaction (all of it is
    stored, or none, and it is visible to every later read once the call returns); reads see
    one consistent state; a store's own limits (SQLite's bound-parameter limit, say) are its
    business, never the caller's. Values are plain Python (str, int, float, bool, bytes,
    None); timestamps are UTC seconds since the epoch. Sealed values are opaque bytes.
    """

    async def append_consents(self, records: Sequence[Mapping[str, object]]) -> None:
        """Append consent records to the ledger, all in one transaction (a request's scopes
        land together). Each maps every column of CONSENT_COLUMNS to its value. The ledger
        is append-only: no method updates or deletes a record."""

    async def consent_histories(
        self, subjects: Collection[str]
    ) -> dict[str, list[dict[str, object]]]:
        """The ledger records of each subject (every subject given is a key, [] when it has
        none), oldest first (by `ts`, then by order of appending). Each record maps
        CONSENT_COLUMNS to values, `explicit` and `gpc` as bool. Any number of subjects."""

    async def add_record(
        self,
        *,
        ts: float,
        purpose: str,
        policy_version: str,
        subject: str,
        fields: str,
        key_id: str,
        sealed: bytes,
        subject_ref: str | None = None,
    ) -> None:
        """Store an app record: the declared field names (comma-separated, sorted) and their
        values sealed under the subject's key `key_id`. Retention governs it by `purpose`.
        Every write here is chained in the audit log in its transaction, the subject named
        by `subject_ref` (audit.subject_ref), never by pseudonym."""

    async def add_decision(
        self,
        *,
        decision_id: str,
        ts: float,
        decision_type: str,
        purpose: str,
        policy_version: str,
        subject: str,
        legal_effect: bool,
        basis: str,
        evidence: str | None,
        key_id: str,
        sealed: bytes,
        subject_ref: str | None = None,
    ) -> None:
        """Log an automated decision under its (unique, unguessable) id: its basis
        (explicit_consent, contract, law, none_needed), the contract or law named as
        `evidence`, and its outcome, inputs and model sealed under the subject's key."""

    async def decision_subject(self, decision_id: str) -> str | None:
        """The subject a logged decision concerns; None when no decision has that id."""

    async def add_review(
        self,
        *,
        ts: float,
        decision_id: str,
        status: str,
        key_id: str,
        sealed: bytes,
        subject_ref: str | None = None,
    ) -> int:
        """Request human review of a logged decision (`status` "requested"), the subject's
        reason sealed under their key; the review's id."""

    async def add_provision(
        self,
        *,
        ts: float,
        recipient: str,
        country: str,
        role: str,
        purpose: str,
        categories: str,
        subjects: int,
        records: int,
        basis: str,
        safeguard: str,
        transfer: str | None,
        policy_version: str | None = None,
        subject_pseudonyms: Collection[str] = (),
    ) -> int:
        """Enter a provision to a third party in the register, under the policy version in
        force, with the pseudonyms of the subjects whose data it carries (a subject's export
        lists it); its register id (ids grow with every entry)."""

    async def provisions(self) -> list[dict[str, object]]:
        """The provision register, oldest entry first: each maps PROVISION_COLUMNS (`id`,
        `ts` and the arguments of `add_provision`) to values."""

    async def policy_terms(self, version: str) -> dict[str, Terms]:
        """What each purpose promised under policy `version` (registered by `open`), by
        purpose key; {} for a version this store never ran."""

    async def promised_retentions(self) -> dict[tuple[str, str], int]:
        """Retention in seconds promised by each (purpose, policy version) this store ran."""

    async def dispose(
        self,
        cutoffs: Mapping[str, float],
        *,
        by_version: Mapping[tuple[str, str], float] | None = None,
    ) -> dict[str, int]:
        """Delete the rows retention governs (events and app records) older than their
        purpose's cutoff, and rows of a (purpose, policy version) older than its own cutoff,
        then the agents no event references, unrecoverably (no copy left in any file); rows
        deleted per purpose. The consent
        ledger, decisions, reviews and the provision register are kept: records the law
        asks for."""
