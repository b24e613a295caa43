"""Correction (GDPR Art. 16, APPI Art. 34) of what an app recorded about a subject.

Correctable: the app-declared fields of the subject's app records (`veil.record`), each a
field the current policy still declares, the new value of its declared type. A field of a
special category is correctable only while the subject's explicit consent to that category
and purpose is in force, as recording it needs (writing a new value is new processing).
Automatic data (events) is not correctable: it is what a request carried, not a statement
about the subject; it is erasable.

The record's values are re-sealed under the subject's key, in place. The old value is kept
only in the audit log, sealed under that same key, so the erasure that destroys the key
makes it unreadable there too; the entry names the subject by `subject_ref`, never by the
pseudonym, and the key by its id (random: it names no one).
"""

import base64
import json
from typing import cast

from ..consent import Ledger
from ..errors import FieldError, SpecialCategoryRefused
from ..guards import _typed
from ..pseudonymise import seal_for_subject, unseal
from ..store import audit, subject_reads
from ..store.keys import KeyStore
from ..store.sqlite import SQLiteStore

NOT_THEIRS = "no record with that id is the subject's"  # for unknown and another's alike


async def correct(
    store: SQLiteStore,
    keystore: KeyStore,
    ledger: Ledger,
    subject: str,
    record_id: int,
    field: str,
    value: object,
    *,
    request_id: str | None = None,
) -> dict[str, object]:
    """Set `field` of the subject's (a pseudonym) record `record_id` to `value`; returns
    {"record_id", "field", "audit": the entry's hash}. FieldError when the record is not the
    subject's, the field not one of the record's correctable fields, or the value not of its
    type; SpecialCategoryRefused without the explicit consent a special category needs.
    `request_id`: the rights request it answers (rights/requests.py), named in the entry."""
    policy = ledger.policy
    if isinstance(record_id, bool) or not isinstance(record_id, int):
        raise FieldError("record_id must be an integer: the id an export lists")
    if not 0 < record_id < 2**63:  # a row id: SQLite cannot even bind a larger integer
        raise FieldError(NOT_THEIRS)
    declared = policy.app_fields.get(field)
    if declared is None:
        raise FieldError(f"field {field!r} is not declared under [policy.fields]: not correctable")
    if not _typed(value, declared.type):
        raise FieldError(
            f"field {field!r} must be of type {declared.type}, got {type(value).__name__}"
        )
    found = subject_reads.record(store.db, subject, record_id)
    if found is None:
        raise FieldError(NOT_THEIRS)
    if field not in cast(str, found["fields"]).split(","):
        raise FieldError(f"field {field!r} is not one of the record's fields")
    purpose = cast(str, found["purpose"])
    if declared.special and not await ledger.holds(
        subject, f"special:{declared.special}:{purpose}", explicit=True
    ):
        raise SpecialCategoryRefused(
            f"field {field!r} is special-category data ({declared.special}): correcting it "
            f"needs the subject's explicit consent to 'special:{declared.special}:{purpose}'"
        )
    plain = unseal(keystore, cast(str, found["key_id"]), cast(bytes, found["sealed"]))
    if plain is None:  # the subject's key is destroyed: their data was erased
        raise FieldError(NOT_THEIRS)
    values = json.loads(plain)
    old = {"field": field, "value": values.get(field)}
    values[field] = value
    # sealed before the write transaction: sealing may first map the subject to a key (its
    # own transaction)
    key_id, sealed = await seal_for_subject(store, keystore, subject, json.dumps(values).encode())
    _, old_sealed = await seal_for_subject(store, keystore, subject, json.dumps(old).encode())
    ref = audit.subject_ref(keystore, subject)
    async with store._writing() as db:
        # only if unchanged since read: a concurrent correction or erasure wins
        if not subject_reads.reseal_record(
            db, subject, record_id, cast(bytes, found["sealed"]), key_id, sealed
        ):
            raise FieldError(f"{NOT_THEIRS} (any more: it changed meanwhile)")
        entry = audit.append(
            db,
            "correction",
            {
                "subject": ref,
                "record_id": record_id,
                "purpose": purpose,
                "field": field,
                # under the subject's key: readable until an erasure destroys it. The key
                # by its hash only: erasure leaves no byte of the key id (subject_keys has it
                # while the key lives)
                "key_ref": audit.id_ref(key_id),
                "old_value_sealed": base64.b64encode(old_sealed).decode(),
                "request": request_id,
            },
        )
    return {"record_id": record_id, "field": field, "audit": entry}
