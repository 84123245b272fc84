"""Bearer-token checks shared by the OTLP receivers."""

import hmac


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` value carries ``token`` (constant-time comparison)."""
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)
