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

import importlib
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .config import Config
    from .http.middleware import VeilMiddleware
    from .runtime import Stats, Veil

# Loaded on first use (__getattr__): importing any veil module runs this file first, and a
# CLI command such as `veil query` needs neither the runtime nor its HTTP side.
_LAZY = {
    "Config": "config",
    "Stats": "runtime",
    "Veil": "runtime",
    "VeilMiddleware": "http.middleware",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'veil' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
