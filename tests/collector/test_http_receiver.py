"""The OTLP/HTTP receiver, fed by the OTel SDK's own exporter, and bad input."""

import gzip
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
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
from opentelemetry.trace.span import TraceState

from tracescore.collector.http_receiver import HttpOptions, HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store import Store
from tracescore.schemas.ddl import migrations


@pytest.fixture
def receiver(pipeline: IngestPipeline) -> Iterator[HttpReceiver]:
    options = HttpOptions(max_body_bytes=512 * 1024, max_decompressed_bytes=1024 * 1024)
    with HttpReceiver(pipeline, options=options) as running:
        yield running


def _send_spans(endpoint: str, compression: Compression) -> list[ReadableSpan]:
    """Export a small trace (events, links, error status) over real OTLP/HTTP."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "tracescore.variant": "v2", "replicas": 3}
        )
    )
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression)
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent.lib", "2.1.0")
    # A remote parent carrying a tracestate, which every span of the trace inherits.
    parent = SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C,
        span_id=0xEEE19B7EC3C1B174,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]),
    )
    linked = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "x1")]),
    )
    with tracer.start_as_current_span(
        "invoke_agent planner",
        kind=SpanKind.SERVER,
        attributes={"gen_ai.operation.name": "invoke_agent", "retries": 2, "ok": True},
        links=[Link(linked, {"link.kind": "follows", "weight": 0.5})],
        context=set_span_in_context(NonRecordingSpan(parent)),
    ) as root:
        root.add_event("gen_ai.user.message", {"content": "hi", "index": 0, "tags": ["a", "b"]})
        with tracer.start_as_current_span("execute_tool search", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "tool exploded"))
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporter_rows_match_what_was_sent_column_by_column(
    store: Store, receiver: HttpReceiver, pipeline: IngestPipeline, compression: Compression
) -> None:
    sent = _send_spans(receiver.endpoint, compression)
    assert len(sent) == 2
    assert pipeline.flush()
    rows = {
        r["SpanId"]: r
        for r in store.query(
            f"SELECT toUnixTimestamp64Nano(Timestamp) AS ts, *, "
            f"arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns "
            f"FROM {store.db}.otel_traces"
        )
    }
    assert len(rows) == 2
    for span in sent:
        ctx = span.get_span_context()
        assert ctx is not None and span.start_time is not None and span.end_time is not None
        row = rows[format(ctx.span_id, "016x")]
        assert row["TraceId"] == format(ctx.trace_id, "032x")
        assert span.parent is not None
        assert row["ParentSpanId"] == format(span.parent.span_id, "016x")
        assert row["TraceState"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        assert row["SpanName"] == span.name
        assert row["ServiceName"] == "checkout"
        assert row["ScopeName"] == "agent.lib"
        assert row["ScopeVersion"] == "2.1.0"
        assert row["ts"] == span.start_time
        assert row["Duration"] == span.end_time - span.start_time
        resource = dict(row["ResourceAttributes"])
        assert resource["service.name"] == "checkout"
        assert resource["tracescore.variant"] == "v2"
        assert resource["replicas"] == "3"
        assert resource["telemetry.sdk.language"] == "python"

    root = rows[format(sent[1].context.span_id, "016x")]
    child = rows[format(sent[0].context.span_id, "016x")]
    assert root["SpanKind"] == "Server"
    assert child["SpanKind"] == "Client"
    assert dict(root["SpanAttributes"]) == {
        "gen_ai.operation.name": "invoke_agent",
        "retries": "2",
        "ok": "true",
    }
    assert root["StatusCode"] == "Unset" and root["StatusMessage"] == ""
    assert child["StatusCode"] == "Error" and child["StatusMessage"] == "tool exploded"
    assert child["ParentSpanId"] == root["SpanId"]
    assert root["ParentSpanId"] == "eee19b7ec3c1b174"

    # Events
    event = sent[1].events[0]
    assert root["Events.Name"] == ["gen_ai.user.message"]
    assert root["event_ns"] == [event.timestamp]
    assert [dict(a) for a in root["Events.Attributes"]] == [
        {"content": "hi", "index": "0", "tags": '["a","b"]'}
    ]
    # Links
    assert root["Links.TraceId"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert root["Links.SpanId"] == ["b7ad6b7169203331"]
    # The Python SDK's OTLP encoder does not send a link's tracestate (see the
    # hand-built request below for that column).
    assert root["Links.TraceState"] == [""]
    assert [dict(a) for a in root["Links.Attributes"]] == [
        {"link.kind": "follows", "weight": "0.5"}
    ]
    assert child["Events.Name"] == [] and child["Links.TraceId"] == []

    # The trace-id lookup view is filled as the exporter's is.
    lookup = store.query(
        f"SELECT TraceId, min(Start) <= max(End) AS ordered "
        f"FROM {store.db}.otel_traces_trace_id_ts GROUP BY TraceId"
    )
    assert lookup == [{"TraceId": root["TraceId"], "ordered": True}]

    # And the Store reads the same trace back as Span models.
    spans = store.fetch_trace(root["TraceId"])
    assert [s.span_id for s in spans] == [root["SpanId"], child["SpanId"]]
    assert spans[0].links[0].span_id == "b7ad6b7169203331"
    assert spans[0].events[0].attributes["index"] == "0"


def _post(endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(f"{endpoint}/v1/traces", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _status_message(body: bytes) -> str:
    status = status_pb2.Status()
    status.ParseFromString(body)
    return str(status.message)


PROTOBUF = {"Content-Type": "application/x-protobuf"}


def test_non_protobuf_body_is_400_with_a_readable_message(
    store: Store, receiver: HttpReceiver
) -> None:
    code, body, headers = _post(receiver.endpoint, b"this is not protobuf at all", PROTOBUF)
    assert code == 400
    assert headers["content-type"] == "application/x-protobuf"
    assert "not a valid protobuf ExportTraceServiceRequest" in _status_message(body)
    assert store.count_spans() == 0


def test_invalid_span_is_rejected_by_partial_success_and_the_rest_is_stored(
    store: Store, receiver: HttpReceiver, pipeline: IngestPipeline
) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="fine")
    bad = spans.add(trace_id=b"\x01" * 16, span_id=b"\x03" * 4, name="short id")
    assert good.name and bad.name
    code, body, _ = _post(receiver.endpoint, request.SerializeToString(), PROTOBUF)
    assert code == 200
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1
    assert "spans[1]: span_id has 4 bytes, expected 8" in response.partial_success.error_message
    assert pipeline.flush()
    assert [r["SpanName"] for r in store.query(f"SELECT SpanName FROM {store.db}.otel_traces")] == [
        "fine"
    ]


def test_truncated_protobuf_is_400_and_writes_nothing(
    store: Store, receiver: HttpReceiver, pipeline: IngestPipeline
) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(20):
        spans.add(trace_id=b"\x01" * 16, span_id=(n + 1).to_bytes(8, "big"), name="x" * 50)
    whole = request.SerializeToString()
    code, body, _ = _post(receiver.endpoint, whole[: len(whole) // 2], PROTOBUF)
    assert code == 400
    assert "not a valid protobuf ExportTraceServiceRequest" in _status_message(body)
    assert pipeline.flush()
    assert store.count_spans() == 0


def test_request_whose_spans_are_all_invalid_is_400_and_writes_nothing(
    store: Store, receiver: HttpReceiver, pipeline: IngestPipeline
) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=b"\x00" * 16, span_id=b"\x02" * 8, name="zero trace id")
    code, body, _ = _post(receiver.endpoint, request.SerializeToString(), PROTOBUF)
    assert code == 400
    assert "trace_id is empty or all zeros" in _status_message(body)
    assert pipeline.flush()
    assert store.count_spans() == 0


def test_wrong_content_type_is_415(store: Store, receiver: HttpReceiver) -> None:
    code, body, _ = _post(receiver.endpoint, b"{}", {"Content-Type": "text/plain"})
    assert code == 415
    assert b"application/x-protobuf" in body
    assert store.count_spans() == 0


def test_oversized_body_is_413(store: Store, receiver: HttpReceiver) -> None:
    code, body, _ = _post(receiver.endpoint, b"\0" * (512 * 1024 + 1), PROTOBUF)
    assert code == 413
    assert "exceeds the 524288-byte limit" in _status_message(body)
    assert store.count_spans() == 0


def test_gzip_bomb_is_rejected_before_inflating_fully(store: Store, receiver: HttpReceiver) -> None:
    bomb = gzip.compress(b"\0" * (100 * 1024 * 1024))
    assert len(bomb) < 512 * 1024  # within the body limit on the wire, 100 MiB inflated
    code, body, _ = _post(receiver.endpoint, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert code == 413
    assert "decompressed body exceeds" in _status_message(body)
    assert store.count_spans() == 0


def test_corrupt_gzip_is_400(store: Store, receiver: HttpReceiver) -> None:
    code, body, _ = _post(
        receiver.endpoint, b"\x1f\x8b\x08garbage", {**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert code == 400
    assert "gzip body is corrupt" in _status_message(body)


def test_health(receiver: HttpReceiver) -> None:
    with urllib.request.urlopen(f"{receiver.endpoint}/health", timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"ok"


def test_hand_built_request_stores_ids_states_and_kinds_as_the_exporter_does(
    store: Store, receiver: HttpReceiver, pipeline: IngestPipeline
) -> None:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "svc"
    span = resource_spans.scope_spans.add().spans.add(
        trace_id=bytes.fromhex("0102030405060708090a0b0c0d0e0f10"),
        span_id=bytes.fromhex("a1a2a3a4a5a6a7a8"),
        parent_span_id=b"\0" * 8,  # all zeros means no parent
        name="consumer",
        kind=5,
        start_time_unix_nano=1_700_000_000_000_000_001,
        end_time_unix_nano=1_700_000_000_000_000_000,  # ends before it starts
        trace_state="k=v",
    )
    span.status.code = trace_pb2.Status.STATUS_CODE_OK
    link = span.links.add(trace_id=b"\x11" * 16, span_id=b"\x22" * 8, trace_state="lk=lv")
    link.attributes.add(key="n").value.int_value = -7
    code, _, _ = _post(receiver.endpoint, request.SerializeToString(), PROTOBUF)
    assert code == 200
    assert pipeline.flush()
    rows = store.query(
        f"SELECT TraceId, SpanId, ParentSpanId, TraceState, SpanKind, StatusCode, Duration, "
        f"ServiceName, ScopeName, Links.TraceId AS lt, Links.TraceState AS ls, "
        f"Links.Attributes AS la FROM {store.db}.otel_traces"
    )
    assert rows == [
        {
            "TraceId": "0102030405060708090a0b0c0d0e0f10",
            "SpanId": "a1a2a3a4a5a6a7a8",
            "ParentSpanId": "",
            "TraceState": "k=v",
            "SpanKind": "Consumer",
            "StatusCode": "Ok",
            "Duration": 0,
            "ServiceName": "svc",
            "ScopeName": "",
            "lt": ["11" * 16],
            "ls": ["lk=lv"],
            "la": [[("n", "-7")]],
        }
    ]


def test_health_is_503_while_the_store_refuses_writes_and_nothing_is_lost(
    store: Store, receiver: HttpReceiver, pipeline: IngestPipeline
) -> None:
    store.command(f"DROP TABLE {store.db}.otel_traces_trace_id_ts_mv")
    store.command(f"DROP TABLE {store.db}.otel_traces")
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="kept"
    )
    code, _, _ = _post(receiver.endpoint, request.SerializeToString(), PROTOBUF)
    assert code == 200  # durable in the spool, whatever the store does
    assert not pipeline.flush(timeout_s=10)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{receiver.endpoint}/health", timeout=5)
    assert refused.value.code == 503
    assert "the store refuses writes" in refused.value.read().decode()

    for statement in migrations(store.database)[0].statements:
        store.command(statement)
    assert pipeline.flush(timeout_s=30)
    with urllib.request.urlopen(f"{receiver.endpoint}/health", timeout=5) as response:
        assert response.read() == b"ok"
    assert [r["SpanName"] for r in store.query(f"SELECT SpanName FROM {store.db}.otel_traces")] == [
        "kept"
    ]
