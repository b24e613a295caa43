"""veil: privacy-preserving telemetry for Python web apps.

    from veil import Veil, VeilMiddleware
    app = VeilMiddleware(app, veil=Veil.from_config("veil.toml"))
"""

from .config import Config
from .errors import (
    ConfigError,
    DecisionRefused,
    FieldError,
    KeyStoreError,
    NotConsented,
    ProvisionRefused,
    QueryError,
    Refused,
    RowsRefused,
    SpecialCategoryRefused,
    StoreError,
    VeilError,
)
from .middleware import VeilMiddleware
from .runtime import Stats, Veil

__all__ = [
    "Config", "ConfigError", "DecisionRefused", "FieldError", "KeyStoreError", "NotConsented",
    "ProvisionRefused", "QueryError", "Refused", "RowsRefused", "SpecialCategoryRefused",
    "Stats", "StoreError", "Veil", "VeilError", "VeilMiddleware",
]
__version__ = "0.1.0"
