"""One exception hierarchy for everything veil raises.

Messages never carry raw personal data (IPs, ports, user-agent strings, cookie ids): they name
the key, field or step that failed and say what is wrong.
"""


class VeilError(Exception):
    """Root of every error veil raises."""


class ConfigError(VeilError):
    """`veil.toml` (policy or runtime keys) is invalid. Carries every problem found."""

    def __init__(self, problems: list[str], source: str = "veil.toml") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class FieldError(VeilError):
    """A field outside the registry, or not allowed for the purpose, was offered."""


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

    reason = "refused"


class NotConsented(Refused):
    """Consent for the scope is not on the ledger (or was withdrawn, or GPC overrides it)."""

    reason = "no_consent"


class SpecialCategoryRefused(Refused):
    """A special category of data without the subject's explicit prior consent."""

    reason = "special_category"


class DecisionRefused(Refused):
    """An automated decision with legal effect whose basis does not hold for this subject."""

    reason = "decision_refused"


class ProvisionRefused(Refused):
    """Provision to a third party, or a transfer abroad, that the policy does not allow."""

    reason = "provision_refused"
