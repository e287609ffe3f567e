"""Python bindings for the crm membership and loyalty engine."""

from ._crm import (
    ConfigError,
    Conflict,
    CrmError,
    InsufficientPoints,
    NotFound,
    StoreError,
    ValidationError,
    __version__,
)

__all__ = [
    "__version__",
    "CrmError",
    "ValidationError",
    "NotFound",
    "InsufficientPoints",
    "Conflict",
    "ConfigError",
    "StoreError",
]
