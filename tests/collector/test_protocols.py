"""OTLP/gRPC and OTLP/HTTP side by side: same rows whichever protocol, and the same refusals.

Everything here is real: the OTel SDK's own exporters, grpcio on both ends, uvicorn,
chDB. Rows are compared column for column, so a difference between the protocols
(or between protobuf and JSON) shows up as a failed equality.
"""

import datetime
import gzip
import ipaddress
import json
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.rpc import error_details_pb2, status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from prometheus_client.parser import text_string_to_metric_families

from tracescore.collector.grpc_receiver import GrpcReceiver
from tracescore.collector.http_receiver import HttpOptions, HttpReceiver
from tracescore.collector.otlp_checks import Limits
from tracescore.collector.pipeline import IngestPipeline, PipelineSettings, Signal
from tracescore.collector.store import Store

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TOKEN = "t"

AGENT_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
LOG_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
LOG_SPAN_ID = 0xB7AD6B7169203331


# -- helpers ---------------------------------------------------------------------------


@contextmanager
def _pipeline(
    store: Store,
    spool_dir: Path,
    *,
    limits: Limits | None = None,
    max_spool_bytes: int = 64 * 1024 * 1024,
    flush_interval_s: float = 0.05,
) -> Iterator[IngestPipeline]:
    settings = PipelineSettings(
        spool_dir=spool_dir,
        fsync=False,
        flush_interval_s=flush_interval_s,
        max_spool_bytes=max_spool_bytes,
        limits=limits or Limits(),
    )
    with IngestPipeline(store, settings) as running:
        yield running


def _grpc_call(
    port: int,
    body: bytes,
    *,
    method: str = TRACE_METHOD,
    metadata: tuple[tuple[str, str], ...] | None = None,
    compression: grpc.Compression | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    timeout_s: float = 15.0,
) -> tuple[grpc.StatusCode, bytes, str, dict[str, Any]]:
    """One raw unary call: (code, response bytes, details, trailing metadata)."""
    target = f"127.0.0.1:{port}"
    channel = (
        grpc.secure_channel(target, credentials)
        if credentials is not None
        else grpc.insecure_channel(target)
    )
    with channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        try:
            response, _ = call.with_call(
                body, timeout=timeout_s, metadata=metadata, compression=compression
            )
        except grpc.RpcError as error:
            trailing = {item.key: item.value for item in error.trailing_metadata() or ()}
            return error.code(), b"", error.details() or "", trailing
        return grpc.StatusCode.OK, response, "", {}


def _shutdown(exporter: Any) -> None:
    """Close an SDK exporter (some of whose ``shutdown`` methods are unannotated)."""
    exporter.shutdown()


def _post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            return (
                response.status,
                response.read(),
                {k.lower(): v for k, v in response.headers.items()},
            )
    except urllib.error.HTTPError as error:
        return error.code, error.read(), {k.lower(): v for k, v in error.headers.items()}


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=15) as response:
        return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}


def _spans_request(names: Sequence[str], *, service: str = "svc") -> ExportTraceServiceRequest:
    """One trace, one span per name, fresh random ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = service
    spans = resource_spans.scope_spans.add().spans
    trace_id = secrets.token_bytes(16)
    for index, name in enumerate(names):
        spans.add(
            trace_id=trace_id,
            span_id=secrets.token_bytes(8),
            name=name,
            start_time_unix_nano=1_700_000_000_000_000_000 + index,
            end_time_unix_nano=1_700_000_000_000_100_000 + index,
        )
    return request


def _span_names(store: Store) -> list[str]:
    rows = store.query(f"SELECT SpanName FROM {store.db}.otel_traces ORDER BY SpanName")
    return [str(r["SpanName"]) for r in rows]


def _take_rows(store: Store, table: str, order_by: str) -> list[dict[str, Any]]:
    """Every row of ``table`` (all columns plus the exact ns timestamp), then empty it."""
    rows = store.query(
        f"SELECT *, toUnixTimestamp64Nano(Timestamp) AS ts_ns FROM {store.db}.{table} "
        f"ORDER BY {order_by}"
    )
    store.command(f"TRUNCATE TABLE {store.db}.{table}")
    return rows


def _status(body: bytes) -> tuple[int, str]:
    status = status_pb2.Status()
    status.ParseFromString(body)
    return int(status.code), str(status.message)


def _go_json(value: Any) -> str:
    """What pdata ``AsString()`` yields for maps/arrays without HTML characters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def http_receiver(pipeline: IngestPipeline) -> Iterator[HttpReceiver]:
    with HttpReceiver(pipeline, options=HttpOptions(max_body_bytes=1024 * 1024)) as running:
        yield running


@pytest.fixture
def grpc_receiver(pipeline: IngestPipeline) -> Iterator[GrpcReceiver]:
    with GrpcReceiver(pipeline, port=0, max_message_bytes=256 * 1024) as running:
        yield running


@pytest.fixture(scope="module")
def agent_spans() -> list[ReadableSpan]:
    """A realistic agent trace: GenAI attributes of every type, events, a link, an error."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "travel-agent",
                "tracescore.variant": "v2",
                "deployment.replicas": 3,
                "gpu": False,
                "regions": ["eu-west-1", "us-east-1"],
            }
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent.framework", "0.9.1")
    linked = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
    )
    parent = SpanContext(
        trace_id=AGENT_TRACE_ID,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
    )
    with tracer.start_as_current_span(
        "invoke_agent planner",
        kind=SpanKind.SERVER,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
        links=[Link(linked, {"link.kind": "follows_from", "weight": 0.5})],
        context=set_span_in_context(NonRecordingSpan(parent)),
    ) as root:
        with tracer.start_as_current_span(
            "chat claude-sonnet-4",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.usage.input_tokens": 1234,
                "gen_ai.usage.output_tokens": 56,
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.top_p": 1.0,
                "gen_ai.request.stream": False,
                "gen_ai.response.finish_reasons": ["end_turn", "tool_use"],
                "gen_ai.request.stop_ids": [1, 2],
                "scores": [0.5, 1.5],
                "flags": [True, False],
            },
        ) as llm:
            llm.add_event(
                "gen_ai.choice",
                {"index": 0, "finish_reason": "tool_use", "message": '{"role":"assistant"}'},
            )
        with tracer.start_as_current_span(
            "execute_tool search_flights",
            attributes={
                "gen_ai.tool.name": "search_flights",
                "gen_ai.tool.call.arguments": '{"to":"LIS"}',
            },
        ) as tool:
            tool.add_event("retry", {"attempt": 2})
            tool.set_status(Status(StatusCode.ERROR, "no flights found"))
        root.set_attribute("gen_ai.usage.input_tokens", 1234)
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    assert len(spans) == 3
    return spans


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, usable as its own CA."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "tls.crt"
    key_path = directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# -- equivalence -----------------------------------------------------------------------


def test_sdk_exporters_produce_identical_rows_over_grpc_and_http_with_and_without_gzip(
    store: Store,
    pipeline: IngestPipeline,
    http_receiver: HttpReceiver,
    grpc_receiver: GrpcReceiver,
    agent_spans: list[ReadableSpan],
) -> None:
    grpc_url = f"http://127.0.0.1:{grpc_receiver.port}"
    http_url = f"{http_receiver.endpoint}/v1/traces"
    exporters = {
        "grpc": GrpcSpanExporter(endpoint=grpc_url, insecure=True),
        "grpc+gzip": GrpcSpanExporter(
            endpoint=grpc_url, insecure=True, compression=grpc.Compression.Gzip
        ),
        "http": HttpSpanExporter(endpoint=http_url),
        "http+gzip": HttpSpanExporter(endpoint=http_url, compression=HttpCompression.Gzip),
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, exporter in exporters.items():
        try:
            assert exporter.export(agent_spans) is SpanExportResult.SUCCESS, name
        finally:
            _shutdown(exporter)
        assert pipeline.flush()
        rows[name] = _take_rows(store, "otel_traces", "SpanId")

    reference = rows["grpc"]
    assert len(reference) == 3
    for name, got in rows.items():
        assert got == reference, f"{name} stored different rows than grpc"

    # And the rows are right, not just equal.
    by_name = {r["SpanName"]: r for r in reference}
    root = by_name["invoke_agent planner"]
    llm = by_name["chat claude-sonnet-4"]
    tool = by_name["execute_tool search_flights"]
    assert {r["TraceId"] for r in reference} == {format(AGENT_TRACE_ID, "032x")}
    assert root["ParentSpanId"] == "00f067aa0ba902b7"
    assert llm["ParentSpanId"] == root["SpanId"] == tool["ParentSpanId"]
    assert (root["SpanKind"], llm["SpanKind"], tool["SpanKind"]) == ("Server", "Client", "Internal")
    assert root["ServiceName"] == "travel-agent"
    assert (root["ScopeName"], root["ScopeVersion"]) == ("agent.framework", "0.9.1")
    resource = dict(root["ResourceAttributes"])
    assert resource["deployment.replicas"] == "3"
    assert resource["gpu"] == "false"
    assert resource["regions"] == '["eu-west-1","us-east-1"]'
    assert resource["tracescore.variant"] == "v2"
    assert dict(llm["SpanAttributes"]) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-sonnet-4",
        "gen_ai.usage.input_tokens": "1234",
        "gen_ai.usage.output_tokens": "56",
        "gen_ai.request.temperature": "0.2",
        "gen_ai.request.top_p": "1",
        "gen_ai.request.stream": "false",
        "gen_ai.response.finish_reasons": '["end_turn","tool_use"]',
        "gen_ai.request.stop_ids": "[1,2]",
        "scores": "[0.5,1.5]",
        "flags": "[true,false]",
    }
    assert llm["Events.Name"] == ["gen_ai.choice"]
    assert [dict(a) for a in llm["Events.Attributes"]] == [
        {"index": "0", "finish_reason": "tool_use", "message": '{"role":"assistant"}'}
    ]
    assert root["Links.TraceId"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert root["Links.SpanId"] == ["b7ad6b7169203331"]
    assert [dict(a) for a in root["Links.Attributes"]] == [
        {"link.kind": "follows_from", "weight": "0.5"}
    ]
    assert (tool["StatusCode"], tool["StatusMessage"]) == ("Error", "no flights found")
    assert (root["StatusCode"], llm["StatusCode"]) == ("Unset", "Unset")
    for span in agent_spans:
        assert span.start_time is not None and span.end_time is not None
        row = by_name[span.name]
        assert row["ts_ns"] == span.start_time
        assert row["Duration"] == span.end_time - span.start_time


def _emit_genai_logs() -> tuple[list[ReadableLogRecord], dict[str, Any]]:
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # unannotated in the SDK
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "travel-agent", "tracescore.variant": "v2"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("opentelemetry.instrumentation.openai_v2", "2.1b0")
    span = NonRecordingSpan(
        SpanContext(LOG_TRACE_ID, LOG_SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    )
    body: dict[str, Any] = {
        "input": [{"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}],
        "output": [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "Paris"}],
                "finish_reason": "stop",
            }
        ],
        "usage": {"input_tokens": 12, "cost": 0.25, "cached": False},
    }
    logger.emit(
        timestamp=1_700_000_000_123_456_789,
        context=set_span_in_context(span),
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body=body,
        attributes={"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"},
        event_name="gen_ai.client.inference.operation.details",
    )
    provider.shutdown()
    records = list(memory.get_finished_logs())
    assert len(records) == 1
    return records, body


def test_sdk_log_exporters_store_identical_rows_over_grpc_and_http(
    store: Store,
    pipeline: IngestPipeline,
    http_receiver: HttpReceiver,
    grpc_receiver: GrpcReceiver,
) -> None:
    records, body = _emit_genai_logs()
    exporters = {
        "grpc": GrpcLogExporter(endpoint=f"http://127.0.0.1:{grpc_receiver.port}", insecure=True),
        "http": HttpLogExporter(endpoint=f"{http_receiver.endpoint}/v1/logs"),
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, exporter in exporters.items():
        try:
            assert exporter.export(records) is LogRecordExportResult.SUCCESS, name
        finally:
            _shutdown(exporter)
        assert pipeline.flush()
        rows[name] = _take_rows(store, "otel_logs", "Timestamp")
    assert rows["grpc"] == rows["http"]
    [row] = rows["grpc"]
    assert row["TraceId"] == format(LOG_TRACE_ID, "032x")
    assert row["SpanId"] == format(LOG_SPAN_ID, "016x")
    assert row["TraceFlags"] == 1
    assert row["ts_ns"] == 1_700_000_000_123_456_789
    assert row["EventName"] == "gen_ai.client.inference.operation.details"
    assert (row["SeverityNumber"], row["SeverityText"]) == (9, "INFO")
    assert row["ServiceName"] == "travel-agent"
    assert (row["ScopeName"], row["ScopeVersion"]) == (
        "opentelemetry.instrumentation.openai_v2",
        "2.1b0",
    )
    assert dict(row["LogAttributes"]) == {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }
    # Go-style JSON: sorted keys at every depth, no spaces.
    assert row["Body"] == _go_json(body)
    assert row["Body"].startswith('{"input":[{"parts":[{"content":"Capital of France?"')

    # fetch_logs reads the record back by its trace id (the rows above were emptied).
    exporter = HttpLogExporter(endpoint=f"{http_receiver.endpoint}/v1/logs")
    try:
        assert exporter.export(records) is LogRecordExportResult.SUCCESS
    finally:
        _shutdown(exporter)
    assert pipeline.flush()
    trace_id = format(LOG_TRACE_ID, "032x")
    other = "0" * 31 + "1"
    found = store.fetch_logs([trace_id, other])
    assert found[other] == []
    [record] = found[trace_id]
    assert (record.span_id, record.timestamp_ns) == (row["SpanId"], row["ts_ns"])
    assert record.event_name == "gen_ai.client.inference.operation.details"
    assert record.body == row["Body"]
    assert record.attributes == {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}


# -- gRPC bad input --------------------------------------------------------------------


def test_grpc_garbage_is_invalid_argument_and_writes_nothing(
    store: Store, pipeline: IngestPipeline, grpc_receiver: GrpcReceiver
) -> None:
    for method in (TRACE_METHOD, LOGS_METHOD):
        code, _, details, _ = _grpc_call(
            grpc_receiver.port, b"this is not protobuf at all", method=method
        )
        assert code is grpc.StatusCode.INVALID_ARGUMENT, method
        assert "not a valid protobuf" in details
    assert pipeline.flush()
    assert store.count_spans() == 0
    assert store.query(f"SELECT count() AS n FROM {store.db}.otel_logs") == [{"n": 0}]


def test_grpc_message_over_the_size_limit_is_resource_exhausted(
    store: Store, pipeline: IngestPipeline, grpc_receiver: GrpcReceiver
) -> None:
    request = _spans_request(["big"])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="blob").value.string_value = secrets.token_hex(200 * 1024)
    body = request.SerializeToString()
    assert len(body) > 256 * 1024
    code, _, _, _ = _grpc_call(grpc_receiver.port, body)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert pipeline.flush()
    assert store.count_spans() == 0


def test_grpc_gzip_request_inflating_past_the_limit_is_refused(
    store: Store, pipeline: IngestPipeline, grpc_receiver: GrpcReceiver
) -> None:
    request = _spans_request(["bomb"])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="blob").value.string_value = "a" * (8 * 1024 * 1024)
    body = request.SerializeToString()
    assert len(gzip.compress(body)) < 64 * 1024  # small on the wire, 8 MiB inflated
    code, _, _, _ = _grpc_call(grpc_receiver.port, body, compression=grpc.Compression.Gzip)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    # The same request compressed but within the limit goes through.
    small = _spans_request(["fine"])
    ok, _, _, _ = _grpc_call(
        grpc_receiver.port, small.SerializeToString(), compression=grpc.Compression.Gzip
    )
    assert ok is grpc.StatusCode.OK
    assert pipeline.flush()
    assert _span_names(store) == ["fine"]


def test_too_many_spans_per_request_is_invalid_argument_on_grpc_and_400_on_http(
    store: Store, tmp_path: Path
) -> None:
    with (
        _pipeline(store, tmp_path / "spool", limits=Limits(max_items_per_request=3)) as pipeline,
        GrpcReceiver(pipeline, port=0) as grpc_receiver,
        HttpReceiver(pipeline) as http_receiver,
    ):
        over = _spans_request(["a", "b", "c", "d"]).SerializeToString()
        code, _, details, _ = _grpc_call(grpc_receiver.port, over)
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert "4 spans; the limit is 3" in details
        status, body, _ = _post(f"{http_receiver.endpoint}/v1/traces", over, PROTOBUF)
        assert status == 400
        assert "4 spans; the limit is 3" in _status(body)[1]
        # At the limit is fine.
        at_limit = _spans_request(["x", "y", "z"]).SerializeToString()
        assert _grpc_call(grpc_receiver.port, at_limit)[0] is grpc.StatusCode.OK
        assert pipeline.flush()
        assert _span_names(store) == ["x", "y", "z"]


def test_grpc_partial_success_rejects_the_bad_span_and_stores_the_good_one(
    store: Store, pipeline: IngestPipeline, grpc_receiver: GrpcReceiver
) -> None:
    request = _spans_request(["good", "bad"])
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02\x03"
    code, body, _, _ = _grpc_call(grpc_receiver.port, request.SerializeToString())
    assert code is grpc.StatusCode.OK
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1
    assert "spans[1]: span_id has 3 bytes, expected 8" in response.partial_success.error_message
    assert pipeline.flush()
    assert _span_names(store) == ["good"]
    assert (
        pipeline.metrics.value(
            "tracescore_collector_rejected_items_total", signal="traces", reason="invalid"
        )
        == 1
    )


# -- auth and TLS ----------------------------------------------------------------------


def test_bearer_token_is_required_on_both_protocols(
    store: Store, pipeline: IngestPipeline, agent_spans: list[ReadableSpan]
) -> None:
    body = _spans_request(["refused"]).SerializeToString()
    with (
        GrpcReceiver(pipeline, port=0, auth_token=TOKEN) as grpc_receiver,
        HttpReceiver(pipeline, options=HttpOptions(auth_token=TOKEN)) as http_receiver,
    ):
        url = f"{http_receiver.endpoint}/v1/traces"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            status, reply, response_headers = _post(url, body, {**PROTOBUF, **headers})
            assert status == 401, headers
            assert response_headers["www-authenticate"].startswith("Bearer")
            assert _status(reply) == (16, "missing or invalid bearer token")
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            code, _, _, _ = _grpc_call(grpc_receiver.port, body, metadata=metadata)
            assert code is grpc.StatusCode.UNAUTHENTICATED, metadata
        assert pipeline.flush()
        assert store.count_spans() == 0

        http_exporter = HttpSpanExporter(endpoint=url, headers={"Authorization": f"Bearer {TOKEN}"})
        grpc_exporter = GrpcSpanExporter(
            endpoint=f"http://127.0.0.1:{grpc_receiver.port}",
            insecure=True,
            headers={"authorization": f"Bearer {TOKEN}"},
        )
        try:
            assert http_exporter.export(agent_spans) is SpanExportResult.SUCCESS
            assert grpc_exporter.export(agent_spans) is SpanExportResult.SUCCESS
        finally:
            _shutdown(http_exporter)
            _shutdown(grpc_exporter)
        ok = _grpc_call(grpc_receiver.port, body, metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert ok[0] is grpc.StatusCode.OK
    assert pipeline.flush()
    assert store.count_spans() == 2 * len(agent_spans) + 1
    assert (
        pipeline.metrics.value(
            "tracescore_collector_requests_total",
            signal="traces",
            protocol="http",
            outcome="unauthenticated",
        )
        == 3
    )
    assert (
        pipeline.metrics.value(
            "tracescore_collector_requests_total",
            signal="traces",
            protocol="grpc",
            outcome="unauthenticated",
        )
        == 2
    )


def test_tls_on_both_protocols(
    store: Store,
    pipeline: IngestPipeline,
    agent_spans: list[ReadableSpan],
    tls_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = tls_files
    # requests lets these variables override a session's own CA file (psf/requests#3829),
    # which would make the exporter ignore ``certificate_file``.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with (
        GrpcReceiver(pipeline, port=0, tls_cert=str(cert), tls_key=str(key)) as grpc_receiver,
        HttpReceiver(pipeline, tls_cert=str(cert), tls_key=str(key)) as http_receiver,
    ):
        assert http_receiver.endpoint.startswith("https://")
        assert grpc_receiver.endpoint.startswith("https://")
        http_exporter = HttpSpanExporter(
            endpoint=f"{http_receiver.endpoint}/v1/traces", certificate_file=str(cert)
        )
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        grpc_exporter = GrpcSpanExporter(
            endpoint=f"https://127.0.0.1:{grpc_receiver.port}", credentials=credentials
        )
        try:
            assert http_exporter.export(agent_spans) is SpanExportResult.SUCCESS
            assert grpc_exporter.export(agent_spans) is SpanExportResult.SUCCESS
        finally:
            _shutdown(http_exporter)
            _shutdown(grpc_exporter)

        # Really TLS: a client that doesn't trust the certificate is turned away...
        body = _spans_request(["untrusted"]).SerializeToString()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            _post(
                f"{http_receiver.endpoint}/v1/traces", body, PROTOBUF, ssl.create_default_context()
            )
        # ... and plaintext gRPC gets nowhere.
        code, _, _, _ = _grpc_call(grpc_receiver.port, body, timeout_s=5)
        assert code is not grpc.StatusCode.OK
        # Raw calls with the certificate as root work too.
        code, _, _, _ = _grpc_call(grpc_receiver.port, body, credentials=credentials)
        assert code is grpc.StatusCode.OK
    assert pipeline.flush()
    assert store.count_spans() == 2 * len(agent_spans) + 1
    assert "untrusted" in _span_names(store)


# -- OTLP/JSON -------------------------------------------------------------------------


def _kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


TRACE_JSON: dict[str, Any] = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    _kv("service.name", {"stringValue": "my.service"}),
                    _kv("replicas", {"intValue": "3"}),
                ]
            },
            "scopeSpans": [
                {
                    "scope": {
                        "name": "my.library",
                        "version": "1.0.0",
                        "attributes": [_kv("my.scope.attribute", {"stringValue": "scope value"})],
                    },
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "traceState": "congo=t61rcWkgMzE",
                            "name": "I'm a server span",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "kind": 2,
                            "attributes": [
                                _kv("my.span.attr", {"stringValue": "some value"}),
                                _kv("gen_ai.usage.input_tokens", {"intValue": "42"}),
                                _kv("gen_ai.request.temperature", {"doubleValue": 0.7}),
                                _kv("gen_ai.request.stream", {"boolValue": True}),
                                _kv(
                                    "gen_ai.response.finish_reasons",
                                    {"arrayValue": {"values": [{"stringValue": "stop"}]}},
                                ),
                                _kv(
                                    "meta",
                                    {
                                        "kvlistValue": {
                                            "values": [
                                                _kv("b", {"intValue": "2"}),
                                                _kv("a", {"stringValue": "x"}),
                                            ]
                                        }
                                    },
                                ),
                                _kv("blob", {"bytesValue": "aGVsbG8="}),
                            ],
                            "events": [
                                {
                                    "timeUnixNano": "1544712660500000000",
                                    "name": "gen_ai.choice",
                                    "attributes": [_kv("index", {"intValue": "0"})],
                                }
                            ],
                            "links": [
                                {
                                    "traceId": "0af7651916cd43dd8448eb211c80319c",
                                    "spanId": "b7ad6b7169203331",
                                    "traceState": "k=v",
                                    "attributes": [_kv("weight", {"doubleValue": 0.5})],
                                }
                            ],
                            "status": {"code": 2, "message": "boom"},
                        }
                    ],
                }
            ],
        }
    ]
}


def _trace_json_as_protobuf() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attrs = resource_spans.resource.attributes
    attrs.add(key="service.name").value.string_value = "my.service"
    attrs.add(key="replicas").value.int_value = 3
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "my.library"
    scope_spans.scope.version = "1.0.0"
    scope_spans.scope.attributes.add(key="my.scope.attribute").value.string_value = "scope value"
    span = scope_spans.spans.add(
        trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
        span_id=bytes.fromhex("EEE19B7EC3C1B174"),
        parent_span_id=bytes.fromhex("EEE19B7EC3C1B173"),
        trace_state="congo=t61rcWkgMzE",
        name="I'm a server span",
        start_time_unix_nano=1544712660000000000,
        end_time_unix_nano=1544712661000000000,
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
    )
    span.attributes.add(key="my.span.attr").value.string_value = "some value"
    span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 42
    span.attributes.add(key="gen_ai.request.temperature").value.double_value = 0.7
    span.attributes.add(key="gen_ai.request.stream").value.bool_value = True
    reasons = span.attributes.add(key="gen_ai.response.finish_reasons").value
    reasons.array_value.values.add().string_value = "stop"
    meta = span.attributes.add(key="meta").value.kvlist_value.values
    meta.add(key="b").value.int_value = 2
    meta.add(key="a").value.string_value = "x"
    span.attributes.add(key="blob").value.bytes_value = b"hello"
    event = span.events.add(time_unix_nano=1544712660500000000, name="gen_ai.choice")
    event.attributes.add(key="index").value.int_value = 0
    link = span.links.add(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        trace_state="k=v",
    )
    link.attributes.add(key="weight").value.double_value = 0.5
    span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    span.status.message = "boom"
    return request


LOGS_JSON: dict[str, Any] = {
    "resourceLogs": [
        {
            "resource": {"attributes": [_kv("service.name", {"stringValue": "my.service"})]},
            "scopeLogs": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1544712660300000000",
                            "observedTimeUnixNano": "1544712660300000001",
                            "severityNumber": 10,
                            "severityText": "Information",
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "flags": 1,
                            "eventName": "gen_ai.client.inference.operation.details",
                            "body": {
                                "kvlistValue": {
                                    "values": [
                                        _kv(
                                            "output",
                                            {"arrayValue": {"values": [{"stringValue": "Paris"}]}},
                                        ),
                                        _kv("input", {"stringValue": "Capital?"}),
                                        _kv("n", {"intValue": "7"}),
                                    ]
                                }
                            },
                            "attributes": [
                                _kv("string.attribute", {"stringValue": "some string"}),
                                _kv("double.attribute", {"doubleValue": 637.704}),
                            ],
                        }
                    ],
                }
            ],
        }
    ]
}


def _logs_json_as_protobuf() -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "my.service"
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "my.library"
    scope_logs.scope.version = "1.0.0"
    record = scope_logs.log_records.add(
        time_unix_nano=1544712660300000000,
        observed_time_unix_nano=1544712660300000001,
        severity_number=10,
        severity_text="Information",
        trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
        span_id=bytes.fromhex("EEE19B7EC3C1B174"),
        flags=1,
        event_name="gen_ai.client.inference.operation.details",
    )
    body: AnyValue = record.body
    values = body.kvlist_value.values
    values.add(key="output").value.array_value.values.add().string_value = "Paris"
    values.add(key="input").value.string_value = "Capital?"
    values.add(key="n").value.int_value = 7
    record.attributes.add(key="string.attribute").value.string_value = "some string"
    record.attributes.add(key="double.attribute").value.double_value = 637.704
    return request.SerializeToString()


def test_otlp_json_stores_the_same_rows_as_protobuf(
    store: Store, pipeline: IngestPipeline, http_receiver: HttpReceiver
) -> None:
    traces_url = f"{http_receiver.endpoint}/v1/traces"
    logs_url = f"{http_receiver.endpoint}/v1/logs"

    status, body, headers = _post(traces_url, json.dumps(TRACE_JSON).encode(), JSON)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {}
    assert pipeline.flush()
    from_json = _take_rows(store, "otel_traces", "SpanId")
    status, body, _ = _post(traces_url, _trace_json_as_protobuf().SerializeToString(), PROTOBUF)
    assert status == 200
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert pipeline.flush()
    from_protobuf = _take_rows(store, "otel_traces", "SpanId")
    assert from_json == from_protobuf
    [span] = from_json
    assert (span["TraceId"], span["SpanId"], span["ParentSpanId"]) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
    )
    assert span["SpanKind"] == "Server"
    assert (span["StatusCode"], span["StatusMessage"]) == ("Error", "boom")
    assert span["Duration"] == 1_000_000_000
    assert dict(span["SpanAttributes"]) == {
        "my.span.attr": "some value",
        "gen_ai.usage.input_tokens": "42",
        "gen_ai.request.temperature": "0.7",
        "gen_ai.request.stream": "true",
        "gen_ai.response.finish_reasons": '["stop"]',
        "meta": '{"a":"x","b":2}',
        "blob": "aGVsbG8=",
    }
    assert dict(span["ResourceAttributes"]) == {"service.name": "my.service", "replicas": "3"}
    assert span["Links.TraceState"] == ["k=v"]

    status, body, headers = _post(logs_url, json.dumps(LOGS_JSON).encode(), JSON)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {}
    assert pipeline.flush()
    logs_from_json = _take_rows(store, "otel_logs", "Timestamp")
    status, _, _ = _post(logs_url, _logs_json_as_protobuf(), PROTOBUF)
    assert status == 200
    assert pipeline.flush()
    logs_from_protobuf = _take_rows(store, "otel_logs", "Timestamp")
    assert logs_from_json == logs_from_protobuf
    [record] = logs_from_json
    assert (record["TraceId"], record["SpanId"]) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
    )
    assert record["Body"] == '{"input":"Capital?","n":7,"output":["Paris"]}'
    assert record["EventName"] == "gen_ai.client.inference.operation.details"
    assert (record["SeverityNumber"], record["SeverityText"]) == (10, "Information")
    assert dict(record["LogAttributes"]) == {
        "string.attribute": "some string",
        "double.attribute": "637.704",
    }


def test_otlp_json_span_with_a_wrong_length_id_is_cut_out_like_in_protobuf(
    store: Store, pipeline: IngestPipeline, http_receiver: HttpReceiver
) -> None:
    """Invalid spans are cut out and reported through partial success, the rest kept
    (otlp_checks); a JSON request must not lose its good spans where protobuf would not."""
    url = f"{http_receiver.endpoint}/v1/traces"
    trace_id = "5b8efff798038103d269b633813fc60c"
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {"traceId": trace_id, "spanId": "eee19b7ec3c1b174", "name": "good"},
                            {"traceId": trace_id, "spanId": "abcd", "name": "short id"},
                        ]
                    }
                ]
            }
        ]
    }
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(
        trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex("eee19b7ec3c1b175"), name="good"
    )
    spans.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex("abcd"), name="short id")
    status, body, _ = _post(url, request.SerializeToString(), PROTOBUF)
    assert status == 200
    assert ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 1

    status, body, _ = _post(url, json.dumps(document).encode(), JSON)
    assert status == 200, body
    assert json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    assert pipeline.flush()
    assert _span_names(store) == ["good", "good"]


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs"])
def test_malformed_otlp_json_is_400_with_a_json_status(
    store: Store, pipeline: IngestPipeline, http_receiver: HttpReceiver, path: str
) -> None:
    status, body, headers = _post(f"{http_receiver.endpoint}{path}", b'{"resourceSpans": [}', JSON)
    assert status == 400
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["code"] == 3
    assert "not valid JSON" in document["message"]
    assert pipeline.flush()
    assert store.count_spans() == 0


# -- truncation ------------------------------------------------------------------------


def test_long_string_values_are_cut_to_the_limit_and_counted(store: Store, tmp_path: Path) -> None:
    request = _spans_request(["long values"])
    resource_attrs = request.resource_spans[0].resource.attributes
    resource_attrs.add(key="host.description").value.string_value = "r" * 30
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="prompt").value.string_value = "p" * 40
    span.attributes.add(key="short").value.string_value = "exactly sixteen!"
    span.attributes.add(key="accented").value.string_value = "é" * 20
    span.attributes.add(key="count").value.int_value = 12345678901234567
    tags = span.attributes.add(key="tags").value.array_value.values
    tags.add().string_value = "t" * 17
    tags.add().string_value = "ok"
    span.events.add(time_unix_nano=1_700_000_000_000_000_500, name="e").attributes.add(
        key="content"
    ).value.string_value = "c" * 100
    with (
        _pipeline(
            store, tmp_path / "spool", limits=Limits(max_attribute_value_length=16)
        ) as pipeline,
        HttpReceiver(pipeline) as http_receiver,
    ):
        status, _, _ = _post(
            f"{http_receiver.endpoint}/v1/traces", request.SerializeToString(), PROTOBUF
        )
        assert status == 200
        assert pipeline.flush()
        [row] = store.query(
            f"SELECT ResourceAttributes, SpanAttributes, Events.Attributes AS ea "
            f"FROM {store.db}.otel_traces"
        )
        assert (
            pipeline.metrics.value("tracescore_collector_truncated_values_total", signal="traces")
            == 5
        )
    attributes = dict(row["SpanAttributes"])
    assert attributes == {
        "prompt": "p" * 16,
        "short": "exactly sixteen!",
        "accented": "é" * 16,
        "count": "12345678901234567",
        "tags": '["' + "t" * 16 + '","ok"]',
    }
    assert dict(row["ResourceAttributes"])["host.description"] == "r" * 16
    assert [dict(a) for a in row["ea"]] == [{"content": "c" * 16}]


# -- backpressure ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_full_spool_answers_backpressure_and_a_retry_after_loading_succeeds(
    store: Store, tmp_path: Path, protocol: str
) -> None:
    first = _spans_request(["first-1", "first-2"]).SerializeToString()
    second = _spans_request(["again-1", "again-2"]).SerializeToString()
    assert len(first) == len(second)
    # Room for one request, not two; the loader sleeps, so the first one stays queued.
    with (
        _pipeline(
            store, tmp_path / "spool", max_spool_bytes=len(first) * 3 // 2, flush_interval_s=60
        ) as pipeline,
        GrpcReceiver(pipeline, port=0) as grpc_receiver,
        HttpReceiver(pipeline) as http_receiver,
    ):
        url = f"{http_receiver.endpoint}/v1/traces"

        def send(body: bytes) -> tuple[bool, str]:
            """(accepted, retry hint) over the protocol under test."""
            if protocol == "http":
                status, reply, headers = _post(url, body, PROTOBUF)
                if status == 503:
                    assert "spool is full" in _status(reply)[1]
                    return False, headers["retry-after"]
                assert status == 200
                return True, ""
            code, _, details, trailing = _grpc_call(grpc_receiver.port, body)
            if code is grpc.StatusCode.UNAVAILABLE:
                assert "spool is full" in details
                status_detail = status_pb2.Status.FromString(trailing["grpc-status-details-bin"])
                retry = error_details_pb2.RetryInfo()
                assert status_detail.details[0].Unpack(retry)
                return False, str(retry.retry_delay.seconds)
            assert code is grpc.StatusCode.OK
            return True, ""

        assert send(first) == (True, "")
        accepted, retry_after = send(second)
        assert not accepted
        assert int(retry_after) >= 1
        assert (
            pipeline.metrics.value(
                "tracescore_collector_rejected_items_total", signal="traces", reason="backpressure"
            )
            == 2
        )

        assert pipeline.flush()
        assert send(second) == (True, "")
        assert pipeline.flush()
        # Each acknowledged span once; the refused attempt left nothing behind.
        assert _span_names(store) == ["again-1", "again-2", "first-1", "first-2"]
        assert pipeline.backlog_bytes(Signal.TRACES) == 0


# -- /metrics --------------------------------------------------------------------------


def test_metrics_endpoint_serves_prometheus_counters_after_traffic(
    store: Store,
    pipeline: IngestPipeline,
    http_receiver: HttpReceiver,
    grpc_receiver: GrpcReceiver,
) -> None:
    status, _, _ = _post(
        f"{http_receiver.endpoint}/v1/traces",
        _spans_request(["h1", "h2"]).SerializeToString(),
        PROTOBUF,
    )
    assert status == 200
    mixed = _spans_request(["g1", "g2", "g3", "bad"])
    mixed.resource_spans[0].scope_spans[0].spans[3].trace_id = b"\x00" * 16
    assert _grpc_call(grpc_receiver.port, mixed.SerializeToString())[0] is grpc.StatusCode.OK
    assert _grpc_call(grpc_receiver.port, b"garbage!")[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert pipeline.flush()

    status, body, headers = _get(f"{http_receiver.endpoint}/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert (
        value(
            "tracescore_collector_received_items_total", signal="traces", protocol="http/protobuf"
        )
        == 2
    )
    assert value("tracescore_collector_received_items_total", signal="traces", protocol="grpc") == 4
    assert value("tracescore_collector_accepted_items_total", signal="traces", protocol="grpc") == 3
    assert value("tracescore_collector_written_items_total", signal="traces") == 5
    assert (
        value("tracescore_collector_rejected_items_total", signal="traces", reason="invalid") == 1
    )
    assert (
        value(
            "tracescore_collector_requests_total",
            signal="traces",
            protocol="grpc",
            outcome="partial",
        )
        == 1
    )
    assert (
        value(
            "tracescore_collector_requests_total",
            signal="traces",
            protocol="grpc",
            outcome="invalid",
        )
        == 1
    )
    assert (
        value(
            "tracescore_collector_requests_total",
            signal="traces",
            protocol="http/protobuf",
            outcome="ok",
        )
        == 1
    )
    assert value("tracescore_collector_queue_items", signal="traces") == 0
    assert value("tracescore_collector_queue_bytes", signal="traces") == 0
    assert store.count_spans() == 5
