"""The error hierarchy. User mistakes print one line and exit 2."""


class TracescoreError(Exception):
    """Root of every error tracescore raises on purpose."""


class ConfigError(TracescoreError):
    """A configuration or usage mistake the user can fix."""


class StoreError(TracescoreError):
    """The store could not be opened, migrated, written or read."""


class OtlpDecodeError(TracescoreError):
    """An OTLP request body that cannot be decoded."""
