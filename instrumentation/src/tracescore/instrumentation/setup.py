"""One call that makes an agent send tracescore-ready traces."""

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from tracescore.schemas.attributes import DEFAULT_VARIANT_KEY

DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (as OTEL_EXPORTER_OTLP_ENDPOINT is)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def configure(
    service_name: str | None = None,
    *,
    variant: str | None = None,
    variant_key: str = DEFAULT_VARIANT_KEY,
    endpoint: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    batch: bool = True,
    set_global: bool = True,
) -> TracerProvider:
    """Configure the OTel SDK to export spans over OTLP/HTTP, tagged with the variant.

    Values left out come from the standard OTel environment variables
    (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), which is how ``tracescore run`` hands
    the variant and the collector address to a SUT it starts. Explicit arguments win.
    Pending spans are flushed when the process exits.
    """
    attributes: dict[str, str] = dict(resource_attributes or {})
    if service_name:
        attributes["service.name"] = service_name
    if variant is not None:
        attributes[variant_key] = variant
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES; explicit attributes take precedence.
    resource = Resource.create(attributes)

    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=_resolve_endpoint(endpoint))
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider


def _resolve_endpoint(endpoint: str | None) -> str:
    if endpoint:
        return traces_url(endpoint)
    signal_specific = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if signal_specific:
        return signal_specific
    return traces_url(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT))
