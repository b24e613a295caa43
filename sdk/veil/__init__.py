"""veil: privacy-preserving telemetry for Python web apps.

    from veil import Veil, VeilMiddleware
    app = VeilMiddleware(app, veil=Veil.from_config("veil.toml"))

Layers: a module imports only from its own layer's earlier modules and from layers above it
in this list, never from a later one (no cycle, and no `TYPE_CHECKING` import to dodge one):

1. leaves: errors, registry, vocabulary, tables, countries, jurisdiction, languages, files,
   proxy, geo, capture, http.routes (the URL paths), http.problems;
2. the policy and its terms: paths, policy, config, starter, terms, jsonbody, agents;
3. store/: keys (the keystore, a file of its own), columns (the row layout), schema, wire
   (the batch format), base (the EventStore and LocalStore contracts), versions, offloop,
   sqlite, remote. All SQL lives here. Then pseudonymise and subjects, which use the keys;
4. the domain: consent, then guards, retention, pipeline, query, notice;
5. writer, then runtime (`Veil`);
6. http/: body, beacon, ratelimit, consent, endpoints, middleware; then this package.
The collector (veil_collector) sits on top of all of it.
"""

from .config import Config
from .errors import (
    ConfigError,
    DecisionRefused,
    Drop,
    FieldError,
    KeyStoreError,
    NotConsented,
    ProvisionRefused,
    QueryError,
    Refused,
    RowsRefused,
    SpecialCategoryRefused,
    StoreError,
    UndeclaredDecision,
    UndeclaredRecipient,
    UnknownDecisionId,
    UnknownException,
    UnknownPurpose,
    UnknownScope,
    VeilError,
)
from .http.middleware import VeilMiddleware
from .runtime import Stats, Veil

__all__ = [
    "Config",
    "ConfigError",
    "DecisionRefused",
    "Drop",
    "FieldError",
    "KeyStoreError",
    "NotConsented",
    "ProvisionRefused",
    "QueryError",
    "Refused",
    "RowsRefused",
    "SpecialCategoryRefused",
    "Stats",
    "StoreError",
    "UndeclaredDecision",
    "UndeclaredRecipient",
    "UnknownDecisionId",
    "UnknownException",
    "UnknownPurpose",
    "UnknownScope",
    "Veil",
    "VeilError",
    "VeilMiddleware",
]
__version__ = "0.1.0"
