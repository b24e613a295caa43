"""The policy's promises as run-time refusals, for what an app does itself:

- `record`: app-declared fields only; a special category of data only with the subject's
  explicit prior consent for that category and purpose (policy: "Specific Information");
- `decide`: no automated decision with legal or similarly significant effect unless its basis
  holds for this subject: explicit consent, a contract, or a law (GDPR Art. 22(2)); every
  decision taken is logged and contestable (`contest`);
- `provide`: no provision to a third party without the subjects' consent, unless one of the
  policy's exceptions is invoked explicitly; no transfer of EU subjects' data to a country
  without adequacy unless SCCs are on record; every provision lands in the register.

Refusals raise a typed `Refused` error and are counted as drops; what was refused never reaches
disk. What is kept about a subject is sealed under that subject's own key.
"""

import datetime as dt
import json
import secrets
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from .consent import Ledger, holds
from .countries import normalise as normalise_country
from .errors import (
    DecisionRefused,
    FieldError,
    NotConsented,
    ProvisionRefused,
    Refused,
    SpecialCategoryRefused,
    SubjectRestricted,
    UndeclaredDecision,
    UndeclaredRecipient,
    UnknownDecisionId,
    UnknownException,
)
from .jurisdiction import APPI_EQUIVALENT, GDPR_AREA, eu_adequate
from .policy import FIELD_TYPES, Policy, Recipient
from .pseudonymise import seal_for_subject
from .registry import FIELDS
from .rights import limits
from .store.audit import subject_ref
from .store.base import LocalStore
from .store.keys import KeyStore

EXCEPTIONS = ("law", "vital_interests", "public_health")  # policy: provision without consent
NEEDS_CONSENT_HARD_TO_OBTAIN = ("vital_interests", "public_health")


def _typed(value: object, kind: str) -> bool:
    expected = FIELD_TYPES[kind]
    if isinstance(value, bool) and expected is not bool:
        return False
    return isinstance(value, int | float) if expected is float else isinstance(value, expected)


class Guards:
    def __init__(
        self, store: LocalStore, keystore: KeyStore, policy: Policy, ledger: Ledger
    ) -> None:
        self.store = store
        self.keystore = keystore
        self.policy = policy
        self.ledger = ledger

    async def _refuse(self, error: Refused) -> None:
        """Count the refusal (never its content) and raise it."""
        day = dt.datetime.now(dt.UTC).date().isoformat()
        await self.store.write([], Counter({error.reason: 1}), day)
        raise error

    # -- app-declared fields -------------------------------------------------------------------

    async def record(
        self, subject: str, purpose_key: str, fields: Mapping[str, object], *, signal: bool = False
    ) -> None:
        """Record `fields` about `subject` (a pseudonym: an app user's or a browser's).
        `signal`: the request carried GPC/DNT, which overrides a consent given before it."""
        purpose = self.policy.purpose(purpose_key)
        if not fields:
            raise FieldError("record() needs at least one field")
        for name, value in fields.items():
            declared = self.policy.app_fields.get(name)
            if declared is None:
                hint = (
                    " is collected automatically, not recorded"
                    if name in FIELDS
                    else " is not declared under [policy.fields]"
                )
                raise FieldError(f"field {name!r}{hint}")
            if name not in purpose.fields:
                raise FieldError(f"field {name!r} is not allowed for purpose {purpose.key!r}")
            if not _typed(value, declared.type):
                raise FieldError(
                    f"field {name!r} must be of type {declared.type}, got {type(value).__name__}"
                )
        if limits.suspended(self.store, subject):
            await self._refuse(
                SubjectRestricted("the subject suspended the use of their data: nothing is added")
            )
        history = await self.ledger.history(subject)
        if purpose.needs_consent and not holds(history, purpose.key, signal=signal):
            await self._refuse(
                NotConsented(
                    f"purpose {purpose.key!r} needs the subject's consent, and none is in force"
                )
            )
        for name in fields:
            category = self.policy.app_fields[name].special
            if category and not holds(
                history, f"special:{category}:{purpose.key}", explicit=True, signal=signal
            ):
                await self._refuse(
                    SpecialCategoryRefused(
                        f"field {name!r} is special-category data ({category}): refused without "
                        f"the subject's explicit prior consent to 'special:{category}:"
                        f"{purpose.key}'"
                    )
                )
        key_id, sealed = await seal_for_subject(
            self.store, self.keystore, subject, json.dumps(dict(fields)).encode()
        )
        await self.store.add_record(
            ts=time.time(),
            purpose=purpose.key,
            policy_version=self.policy.version,
            subject=subject,
            fields=",".join(sorted(fields)),
            key_id=key_id,
            sealed=sealed,
            subject_ref=subject_ref(self.keystore, subject),
        )

    # -- automated decisions -------------------------------------------------------------------

    async def decide(
        self,
        subject_id: str,
        decision: str,
        outcome: object,
        *,
        inputs: Mapping[str, object] | None = None,
        model: str | None = None,
        contract: str | None = None,
        law: str | None = None,
    ) -> str:
        """Log a decision and return its id (give it to the subject: it is how they contest
        it); raise DecisionRefused when it has legal effect and no basis holds."""
        kind = self.policy.decisions.get(decision)
        if kind is None:
            raise UndeclaredDecision(
                f"undeclared decision type {decision!r}: declare it under [policy.decisions]"
            )
        # A contract or law is a basis only under a name the policy declares for this
        # decision; veil cannot check the subject signed it, so it refuses anything vaguer.
        for given, what, declared in (
            (contract, "contracts", kind.contracts),
            (law, "laws", kind.laws),
        ):
            if given is None:
                continue
            named = ", ".join(repr(n) for n in declared) or "none"
            if not isinstance(given, str):
                raise FieldError(
                    f"{what[:-1]} must be a string naming one of the {what} "
                    f"declared for decision {decision!r} ({named}), got "
                    f"{type(given).__name__}"
                )
            if given not in declared:  # the value is not echoed: it may name a person
                raise FieldError(
                    f"{what[:-1]} is not one of the {what} declared for decision "
                    f"{decision!r} under [policy.decisions.{decision}]: {named}"
                )
        subject = self.ledger.subjects.app(subject_id)
        if limits.restricted(self.store, [subject]):
            await self._refuse(
                SubjectRestricted(
                    "the subject restricted the use of their data: no decision about them"
                )
            )
        basis, evidence = "none_needed", None
        if kind.legal_effect:
            if "explicit_consent" in kind.bases and await self.ledger.holds(
                subject, f"decision:{decision}", explicit=True
            ):
                basis = "explicit_consent"
            elif "contract" in kind.bases and contract is not None:
                basis, evidence = "contract", contract
            elif "law" in kind.bases and law is not None:
                basis, evidence = "law", law
            else:
                await self._refuse(
                    DecisionRefused(
                        f"decision {decision!r} has legal or similarly significant effect: it "
                        f"needs one of {', '.join(kind.bases)} for this subject, and none holds"
                    )
                )
        decision_id = secrets.token_hex(16)
        key_id, sealed = await seal_for_subject(
            self.store,
            self.keystore,
            subject,
            json.dumps(
                {"outcome": outcome, "inputs": dict(inputs or {}), "model": model}, default=str
            ).encode(),
        )
        await self.store.add_decision(
            decision_id=decision_id,
            ts=time.time(),
            decision_type=decision,
            purpose=kind.purpose,
            policy_version=self.policy.version,
            subject=subject,
            legal_effect=kind.legal_effect,
            basis=basis,
            evidence=evidence,
            key_id=key_id,
            sealed=sealed,
            subject_ref=subject_ref(self.keystore, subject),
        )
        return decision_id

    async def contest(self, decision_id: str, reason: str) -> int:
        """Ask for human review of a decision: the decision id is the subject's proof."""
        subject = await self.store.decision_subject(decision_id)
        if subject is None:
            raise UnknownDecisionId("no decision with that id")
        key_id, sealed = await seal_for_subject(self.store, self.keystore, subject, reason.encode())
        return await self.store.add_review(
            ts=time.time(),
            decision_id=decision_id,
            status="requested",
            key_id=key_id,
            sealed=sealed,
            subject_ref=subject_ref(self.keystore, subject),
        )

    # -- provision to third parties and transfers abroad ---------------------------------------

    async def provide(
        self,
        recipient: str,
        purpose_key: str,
        records: Sequence[Mapping[str, object]],
        *,
        exception: str | None = None,
        consent_obtainable: bool = True,
    ) -> int:
        """Check, then register, a provision of `records` (each with a "subject" id and
        declared fields, optionally "country", and "gpc": True when the subject's request
        carried Global Privacy Control: an opt-out of sale and sharing that overrides a consent
        given before it); return its register id. The caller sends the data only after this
        returns."""
        to = next((r for r in self.policy.recipients if r.name == recipient), None)
        if to is None:
            raise UndeclaredRecipient(
                f"undeclared recipient {recipient!r}: declare it under [[policy.recipients]]"
            )
        purpose = self.policy.purpose(purpose_key)
        if purpose.key not in to.purposes:
            await self._refuse(
                ProvisionRefused(f"{recipient} is not declared for purpose {purpose.key!r}")
            )
        categories = set()
        for r in records:
            for name in r:
                if name in ("subject", "country"):
                    continue
                if name == "gpc":
                    if not isinstance(r[name], bool):
                        raise FieldError("gpc must be true or false")
                    continue
                declared = FIELDS.get(name) or self.policy.app_fields.get(name)
                if declared is None:
                    raise FieldError(f"field {name!r} is neither collected nor declared")
                categories.add(declared.category)
        subjects: dict[str, bool] = {}  # pseudonym → GPC seen on any of their records
        for r in records:
            if not isinstance(subject_id := r.get("subject"), str):
                raise FieldError(
                    'every record provided needs a "subject": the app\'s id for the person'
                )
            subject = self.ledger.subjects.app(subject_id)
            subjects[subject] = subjects.get(subject, False) or r.get("gpc") is True
        if restricted := limits.restricted(self.store, subjects):
            await self._refuse(
                SubjectRestricted(
                    f"{len(restricted)} of {len(subjects)} subject(s) restricted the use of "
                    "their data: nothing of theirs is provided"
                )
            )
        basis = await self._provision_basis(to.name, subjects, exception, consent_obtainable)
        countries = {r.get("country") for r in records}
        transfer = await self._transfer(to, countries, basis)
        return await self.store.add_provision(
            ts=time.time(),
            recipient=to.name,
            country=to.country,
            role=to.role,
            purpose=purpose.key,
            categories=",".join(sorted(categories)),
            subjects=len(subjects),
            records=len(records),
            basis=basis,
            safeguard=to.safeguard,
            transfer=transfer,
            policy_version=self.policy.version,
            subject_pseudonyms=tuple(subjects),  # so each subject's export names it
        )

    async def _provision_basis(
        self,
        recipient: str,
        subjects: dict[str, bool],
        exception: str | None,
        consent_obtainable: bool,
    ) -> str:
        if exception is not None:
            if exception not in EXCEPTIONS:
                raise UnknownException(f"exception must be one of {', '.join(EXCEPTIONS)}")
            if exception in NEEDS_CONSENT_HARD_TO_OBTAIN and consent_obtainable:
                await self._refuse(
                    ProvisionRefused(
                        f"the {exception} exception applies only when consent is difficult to "
                        "obtain; pass consent_obtainable=False if that is so"
                    )
                )
            return exception
        histories = await self.ledger.histories(subjects)
        missing = sum(
            not holds(h, f"provision:{recipient}", signal=subjects[s]) for s, h in histories.items()
        )
        if missing:
            await self._refuse(
                ProvisionRefused(
                    f"{missing} of {len(subjects)} subject(s) have not consented to provision to "
                    f"{recipient}"
                )
            )
        return "consent"

    async def _transfer(self, to: Recipient, countries: set[object], basis: str) -> str | None:
        """The transfers abroad this provision makes, for the register; refused when one is
        not allowed. Records' countries are normalised ("de", "DEU" → "DE"); a record without
        a known country may be an EU or a Japanese subject's, so both rules apply to it."""
        codes = {normalise_country(c) for c in countries}
        unknown = None in codes
        abroad = []
        if (unknown or codes & GDPR_AREA) and to.country not in GDPR_AREA:
            if to.safeguard == "scc":
                under = "scc"
            elif eu_adequate(to.country, to.dpf_certified):
                under = "adequacy"
            else:
                who = (
                    "EU subjects' data"
                    if codes & GDPR_AREA
                    else "data of subjects whose country is not known (possibly in the EU)"
                )
                why = (
                    " (the EU-US Data Privacy Framework covers certified organisations "
                    "only: declare dpf_certified = true if it is)"
                    if to.country == "US"
                    else ""
                )
                await self._refuse(
                    ProvisionRefused(
                        f"{who} to {to.country} needs an adequacy decision or standard "
                        f"contractual clauses on record; {to.name} has {to.safeguard!r}{why}"
                    )
                )
            abroad.append(f"EU→{to.country} under {under}")
        if (unknown or "JP" in codes) and to.country != "JP":
            if basis == "consent":
                under = "consent"
            elif to.safeguard == "appi_equivalent":
                under = "appi_equivalent"
            elif to.country in APPI_EQUIVALENT:
                under = "equivalent country"
            else:
                who = (
                    "Japanese subjects' data"
                    if "JP" in codes
                    else "data of subjects whose country is not known (possibly in Japan)"
                )
                await self._refuse(
                    ProvisionRefused(
                        f"{who} to {to.country} needs consent, an equivalent country or an "
                        "APPI-equivalent system"
                    )
                )
            abroad.append(f"JP→{to.country} under {under}")
        return "; ".join(abroad) or None
