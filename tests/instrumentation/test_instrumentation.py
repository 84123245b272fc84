"""What an agent imports: SDK setup with the variant, and context propagation."""

import re
from importlib.metadata import requires

import pytest
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from tracescore.instrumentation import (
    attached,
    case_baggage,
    configure,
    context_from_env,
    env_from_context,
    extract_headers,
    inject_headers,
    traces_url,
    with_case_baggage,
)


def _tracer() -> trace.Tracer:
    return TracerProvider().get_tracer("test")


def test_env_carrier_round_trip_joins_the_parent_trace_with_baggage() -> None:
    tracer = _tracer()
    ctx = with_case_baggage("run-1", "case-7", Context())
    with attached(ctx), tracer.start_as_current_span("harness") as parent:
        env = env_from_context()
    parent_ctx = parent.get_span_context()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-9a-f]", env["TRACEPARENT"])
    assert "tracescore.run_id=run-1" in env["BAGGAGE"]

    child_ctx = context_from_env(env)
    assert case_baggage(child_ctx) == {"tracescore.run_id": "run-1", "tracescore.case_id": "case-7"}
    with attached(child_ctx), tracer.start_as_current_span("sut") as child:
        assert child.get_span_context().trace_id == parent_ctx.trace_id
        assert isinstance(child, ReadableSpan)
        assert child.parent is not None and child.parent.span_id == parent_ctx.span_id
        assert baggage.get_baggage("tracescore.case_id") == "case-7"
    # attached() restores the previous context.
    assert baggage.get_baggage("tracescore.case_id") is None


def test_context_from_env_without_carrier_is_empty() -> None:
    ctx = context_from_env({})
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    assert case_baggage(ctx) == {}


def test_header_helpers_are_case_insensitive() -> None:
    tracer = _tracer()
    with tracer.start_as_current_span("client") as span:
        headers = dict(inject_headers(context=with_case_baggage("r", "c")))
    shouted = {k.title(): v for k, v in headers.items()}
    ctx = extract_headers(shouted)
    assert trace.get_current_span(ctx).get_span_context().span_id == span.get_span_context().span_id
    assert case_baggage(ctx)["tracescore.run_id"] == "r"


def test_configure_tags_the_resource_with_the_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,tracescore.variant=old"
    )
    provider = configure(
        "my-agent", variant="candidate", endpoint="http://127.0.0.1:1", set_global=False
    )
    try:
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "my-agent"
        assert attributes["tracescore.variant"] == "candidate"  # explicit beats the environment
        assert attributes["deployment.environment"] == "ci"
    finally:
        provider.shutdown()


def test_configure_custom_variant_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    provider = configure(variant="2.4.1", variant_key="service.version", set_global=False)
    try:
        assert provider.resource.attributes["service.version"] == "2.4.1"
        assert "tracescore.variant" not in provider.resource.attributes
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ],
)
def test_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url


def _closure(distribution: str, seen: set[str]) -> set[str]:
    """Names of every distribution ``distribution`` installs, transitively."""
    for requirement in requires(distribution) or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        if name not in seen:
            seen.add(name)
            _closure(name, seen)
    return seen


def test_instrumentation_installs_without_chdb_or_grpcio() -> None:
    installed = _closure("tracescore-instrumentation", set())
    assert "opentelemetry-sdk" in installed
    assert not {"chdb", "grpcio", "pyarrow", "clickhouse-connect"} & installed
