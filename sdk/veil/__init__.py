"""veil: privacy-preserving telemetry for Python web apps.

    from veil import Veil, VeilMiddleware
    app = VeilMiddleware(app, veil=Veil.from_config("veil.toml"))
"""

from .config import Config
from .errors import ConfigError, FieldError, KeyStoreError, QueryError, StoreError, VeilError
from .middleware import VeilMiddleware
from .runtime import Stats, Veil

__all__ = [
    "Config", "ConfigError", "FieldError", "KeyStoreError", "QueryError", "Stats", "StoreError",
    "Veil", "VeilError", "VeilMiddleware",
]
__version__ = "0.1.0"
