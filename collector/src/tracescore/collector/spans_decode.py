"""OTLP ``ExportTraceServiceRequest`` bytes to ``otel_traces`` columns.

The protobuf is parsed once; spans go straight into per-column lists (no row
dicts), in the value formats the official clickhouseexporter writes.
"""

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.anyvalue import any_value_to_str
from tracescore.schemas.errors import OtlpDecodeError

# ptrace.SpanKind.String() and ptrace.StatusCode.String() in the Collector's pdata.
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")

_ATTR_MAP: pa.DataType = pa.map_(pa.string(), pa.string())
_TS: pa.DataType = pa.timestamp("ns", tz="UTC")

SPAN_SCHEMA = pa.schema(
    [
        ("Timestamp", _TS),
        ("TraceId", pa.string()),
        ("SpanId", pa.string()),
        ("ParentSpanId", pa.string()),
        ("TraceState", pa.string()),
        ("SpanName", pa.string()),
        ("SpanKind", pa.string()),
        ("ServiceName", pa.string()),
        ("ResourceAttributes", _ATTR_MAP),
        ("ScopeName", pa.string()),
        ("ScopeVersion", pa.string()),
        ("SpanAttributes", _ATTR_MAP),
        ("Duration", pa.uint64()),
        ("StatusCode", pa.string()),
        ("StatusMessage", pa.string()),
        ("Events.Timestamp", pa.list_(_TS)),
        ("Events.Name", pa.list_(pa.string())),
        ("Events.Attributes", pa.list_(_ATTR_MAP)),
        ("Links.TraceId", pa.list_(pa.string())),
        ("Links.SpanId", pa.list_(pa.string())),
        ("Links.TraceState", pa.list_(pa.string())),
        ("Links.Attributes", pa.list_(_ATTR_MAP)),
    ]
)

Attrs = list[tuple[str, str]]


@dataclass
class SpanColumns:
    """A batch of spans, one Python list per ``otel_traces`` column."""

    timestamp: list[int] = field(default_factory=list)
    trace_id: list[str] = field(default_factory=list)
    span_id: list[str] = field(default_factory=list)
    parent_span_id: list[str] = field(default_factory=list)
    trace_state: list[str] = field(default_factory=list)
    span_name: list[str] = field(default_factory=list)
    span_kind: list[str] = field(default_factory=list)
    service_name: list[str] = field(default_factory=list)
    resource_attributes: list[Attrs] = field(default_factory=list)
    scope_name: list[str] = field(default_factory=list)
    scope_version: list[str] = field(default_factory=list)
    span_attributes: list[Attrs] = field(default_factory=list)
    duration: list[int] = field(default_factory=list)
    status_code: list[str] = field(default_factory=list)
    status_message: list[str] = field(default_factory=list)
    events_timestamp: list[list[int]] = field(default_factory=list)
    events_name: list[list[str]] = field(default_factory=list)
    events_attributes: list[list[Attrs]] = field(default_factory=list)
    links_trace_id: list[list[str]] = field(default_factory=list)
    links_span_id: list[list[str]] = field(default_factory=list)
    links_trace_state: list[list[str]] = field(default_factory=list)
    links_attributes: list[list[Attrs]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trace_id)

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays(
            [
                pa.array(self.timestamp, _TS),
                pa.array(self.trace_id, pa.string()),
                pa.array(self.span_id, pa.string()),
                pa.array(self.parent_span_id, pa.string()),
                pa.array(self.trace_state, pa.string()),
                pa.array(self.span_name, pa.string()),
                pa.array(self.span_kind, pa.string()),
                pa.array(self.service_name, pa.string()),
                pa.array(self.resource_attributes, _ATTR_MAP),
                pa.array(self.scope_name, pa.string()),
                pa.array(self.scope_version, pa.string()),
                pa.array(self.span_attributes, _ATTR_MAP),
                pa.array(self.duration, pa.uint64()),
                pa.array(self.status_code, pa.string()),
                pa.array(self.status_message, pa.string()),
                pa.array(self.events_timestamp, pa.list_(_TS)),
                pa.array(self.events_name, pa.list_(pa.string())),
                pa.array(self.events_attributes, pa.list_(_ATTR_MAP)),
                pa.array(self.links_trace_id, pa.list_(pa.string())),
                pa.array(self.links_span_id, pa.list_(pa.string())),
                pa.array(self.links_trace_state, pa.list_(pa.string())),
                pa.array(self.links_attributes, pa.list_(_ATTR_MAP)),
            ],
            schema=SPAN_SCHEMA,
        )


def parse_export_request(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(
            f"body is not a valid protobuf ExportTraceServiceRequest ({exc})"
        ) from exc
    return request


def decode_spans(request: ExportTraceServiceRequest) -> SpanColumns:
    """Flatten a request into columns; raises OtlpDecodeError naming the first invalid span."""
    cols = SpanColumns()
    for r_index, resource_spans in enumerate(request.resource_spans):
        resource_attrs = _attrs(resource_spans.resource.attributes)
        service_name = next((v for k, v in resource_attrs if k == "service.name"), "")
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for index, span in enumerate(scope_spans.spans):
                where = f"resource_spans[{r_index}].scope_spans[{s_index}].spans[{index}]"
                trace_id = _hex_id(span.trace_id, 16, f"{where}.trace_id", required=True)
                span_id = _hex_id(span.span_id, 8, f"{where}.span_id", required=True)
                cols.parent_span_id.append(
                    _hex_id(span.parent_span_id, 8, f"{where}.parent_span_id", required=False)
                )
                cols.trace_id.append(trace_id)
                cols.span_id.append(span_id)
                start = span.start_time_unix_nano
                cols.timestamp.append(start)
                cols.trace_state.append(span.trace_state)
                cols.span_name.append(span.name)
                kind = span.kind
                cols.span_kind.append(SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else "")
                cols.service_name.append(service_name)
                cols.resource_attributes.append(resource_attrs)
                cols.scope_name.append(scope_name)
                cols.scope_version.append(scope_version)
                cols.span_attributes.append(_attrs(span.attributes))
                # pdata subtracts unsigned timestamps; a span that ends before it
                # starts is stored with zero duration instead of a wrapped-around value.
                cols.duration.append(max(span.end_time_unix_nano - start, 0))
                code = span.status.code
                cols.status_code.append(STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "")
                cols.status_message.append(span.status.message)
                events = span.events
                cols.events_timestamp.append([e.time_unix_nano for e in events])
                cols.events_name.append([e.name for e in events])
                cols.events_attributes.append([_attrs(e.attributes) for e in events])
                links = span.links
                cols.links_trace_id.append(
                    [_hex_id(lk.trace_id, 16, f"{where}.links.trace_id", False) for lk in links]
                )
                cols.links_span_id.append(
                    [_hex_id(lk.span_id, 8, f"{where}.links.span_id", False) for lk in links]
                )
                cols.links_trace_state.append([lk.trace_state for lk in links])
                cols.links_attributes.append([_attrs(lk.attributes) for lk in links])
    return cols


def _attrs(key_values: Any) -> Attrs:
    return [(kv.key, any_value_to_str(kv.value)) for kv in key_values]


def _hex_id(raw: bytes, size: int, where: str, required: bool) -> str:
    if not raw or not any(raw):
        if required:
            raise OtlpDecodeError(f"{where} is empty or all zeros")
        return ""
    if len(raw) != size:
        raise OtlpDecodeError(f"{where} has {len(raw)} bytes, expected {size}")
    return raw.hex()
