"""Type stubs for the compiled extension module ``crm._crm``."""

__version__: str

class CrmError(Exception):
    """Base class of all crm errors."""

class ValidationError(CrmError):
    """Input failed validation."""

class NotFound(CrmError):
    """The entity does not exist."""

class InsufficientPoints(CrmError):
    """The point balance is too low."""

class Conflict(CrmError):
    """The operation conflicts with current state."""

class ConfigError(CrmError):
    """The configuration is invalid."""

class StoreError(CrmError):
    """The storage backend failed."""
