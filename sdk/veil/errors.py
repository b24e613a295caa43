"""One exception hierarchy for everything veil raises.

Messages never carry raw personal data (IPs, ports, user-agent strings, cookie ids): they name
the key, field or step that failed and say what is wrong.

`Drop` is the one vocabulary of reasons something was not kept: the pipeline's drops and the
guards' refusals alike, counted in the store's drop table under these names.
"""

from enum import StrEnum


class Drop(StrEnum):
    QUEUE_FULL = "queue_full"  # capture buffer full: the app outpaced the writer
    # not page views ([capture] rules, counted.py): a static asset, a health check, a 404
    EXCLUDED_PATH = "excluded_path"
    EXCLUDED_STATUS = "excluded_status"
    FOREIGN_ORIGIN = "foreign_origin"  # a beacon from a site outside ingest.sites (403)
    CAPTURE_ERROR = "capture_error"  # the request could not be read (malformed scope)
    NOT_OPEN = "not_open"  # not captured: veil stopped, or cannot open its store
    UNKNOWN_PURPOSE = "unknown_purpose"  # captured for a purpose the policy does not declare
    INVALID_CLIENT = "invalid_client"  # no usable client address (or a broken proxy chain)
    INVALID_EVENT = "invalid_event"  # a captured event the pipeline could not read at all
    BOT = "bot"  # ua-parser device family "Spider"
    KEY_DESTROYED = "key_destroyed"  # the event's day key is gone: too old to pseudonymise
    STORE_ERROR = "store_error"  # the store failed the batch on every retry
    REJECTED = "rejected"  # a collector refused the batch for good (4xx)
    INVALID_FRAME = "invalid_frame"  # `veil serve`'s writer refused a frame off its socket
    # refusals (errors.Refused and its subclasses carry one of these)
    REFUSED = "refused"
    NO_CONSENT = "no_consent"
    SPECIAL_CATEGORY = "special_category"
    DECISION_REFUSED = "decision_refused"
    PROVISION_REFUSED = "provision_refused"
    REFUSAL_UNRECORDED = "refusal_unrecorded"  # a visitor's refusal the ledger did not take
    # subject limits (rights/limits.py)
    SUSPENDED = "suspended"  # a suspended subject's request: nothing of it is stored
    ERASED = "erased"  # a row of a subject erased after its batch read their consent
    OBJECTED = "objected"  # a request under a purpose its visitor objected to
    RESTRICTED = "restricted"  # a provision or decision about a restricted subject, refused


class VeilError(Exception):
    """Root of every error veil raises."""


class ConfigError(VeilError):
    """`veil.toml` (policy or runtime keys) is invalid. Carries every problem found."""

    def __init__(self, problems: list[str], source: str = "veil.toml") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class FieldError(VeilError):
    """A field outside the registry, or not allowed for the purpose, was offered. The
    subclasses below name the other things a caller can get wrong; they stay FieldErrors so
    that `except FieldError` catches every mistake in what was asked for."""


class UnknownPurpose(FieldError):
    """A purpose key the policy does not declare."""


class UndeclaredDecision(FieldError):
    """An automated-decision type not declared under [policy.decisions]."""


class UnknownDecisionId(FieldError):
    """No logged decision has the id given (to contest it)."""


class UndeclaredRecipient(FieldError):
    """A third party not declared under [[policy.recipients]]."""


class UnknownException(FieldError):
    """A provision `exception` that is not one of the policy's exceptions."""


class UnknownScope(FieldError):
    """A consent scope that cannot be consented to under the policy."""


class KeyStoreError(VeilError):
    """The keystore cannot be opened, unwrapped or written."""


class StoreError(VeilError):
    """The event store cannot be opened, migrated or written."""


class RowsRefused(StoreError):
    """The store refused rows for good (they break one of its constraints, or a collector
    refused the batch): retrying the same rows would not help."""


class QueryError(VeilError):
    """An analyst query asks for something the query path does not allow."""


class Refused(VeilError):
    """A guard refused an operation the policy does not allow for this subject now."""

    reason: Drop = Drop.REFUSED


class NotConsented(Refused):
    """Consent for the scope is not on the ledger (or was withdrawn, or GPC overrides it)."""

    reason = Drop.NO_CONSENT


class SpecialCategoryRefused(Refused):
    """A special category of data without the subject's explicit prior consent."""

    reason = Drop.SPECIAL_CATEGORY


class DecisionRefused(Refused):
    """An automated decision with legal effect whose basis does not hold for this subject."""

    reason = Drop.DECISION_REFUSED


class ProvisionRefused(Refused):
    """Provision to a third party, or a transfer abroad, that the policy does not allow."""

    reason = Drop.PROVISION_REFUSED


class SubjectRestricted(Refused):
    """The subject restricted (or suspended) the use of their data: it is kept, but neither
    provided, nor decided on, nor (suspended) added to, until they lift it."""

    reason = Drop.RESTRICTED


class JSONInvalid(VeilError):
    """A body is not strict JSON (not UTF-8, NaN, too deep, …): jsonbody.py. The message says
    what is wrong, never what the body held."""


class BatchInvalid(VeilError):
    """A batch on the wire (store/wire.py) was refused before anything was stored. `kind` names
    the refusal (a collector's problem type), `title` says it in words, `field` names the
    offending part of the body when there is one."""

    def __init__(self, kind: str, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.kind, self.title, self.detail, self.field = kind, title, detail, field


class BatchUnauthenticated(BatchInvalid):
    """The batch's signature headers are missing, malformed, stale or for another secret, or
    the body does not match its signature."""


class BatchMalformed(BatchInvalid):
    """A signed batch whose body is not a batch this veil version can store."""


class NotVerified(VeilError):
    """A rights request whose proof of identity fails: a forged or altered cookie, or an
    unsigned, altered or expired token (a request with both is decided by the token).
    `why` is a short code for the audit log (never the proof itself)."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why


class FrameError(VeilError):
    """Bytes on `veil serve`'s writer socket that are not a frame of ours (collector
    frames.py)."""
