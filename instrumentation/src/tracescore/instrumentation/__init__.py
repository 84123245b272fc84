"""What an agent imports: OTel SDK setup with the variant attribute, and propagation helpers.

Depends only on the OpenTelemetry SDK and its OTLP/HTTP exporter.
"""

from tracescore.instrumentation.propagation import (
    attached,
    case_baggage,
    context_from_env,
    env_from_context,
    extract_headers,
    inject_headers,
    with_case_baggage,
)
from tracescore.instrumentation.setup import configure, traces_url

__all__ = [
    "attached",
    "case_baggage",
    "configure",
    "context_from_env",
    "env_from_context",
    "extract_headers",
    "inject_headers",
    "traces_url",
    "with_case_baggage",
]
