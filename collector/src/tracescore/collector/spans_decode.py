"""OTLP ``ExportTraceServiceRequest`` to ``otel_traces`` columns (the Python load path).

Spans go straight into per-column lists (no row dicts), in the value formats
the official clickhouseexporter writes. Requests reach here after
``otlp_checks.check_traces`` has validated their ids, so they are not checked again.
"""

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.anyvalue import any_value_to_str

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

    def add_span(
        self,
        *,
        timestamp: int,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        name: str,
        kind: str,
        service_name: str,
        resource_attributes: Attrs,
        scope_name: str,
        scope_version: str,
        attributes: Attrs,
        duration: int,
        status_code: str = "Unset",
        status_message: str = "",
        trace_state: str = "",
    ) -> None:
        """One span with no events or links, in stored value formats (test and benchmark
        data built column-wise, as the decoder builds it)."""
        self.timestamp.append(timestamp)
        self.trace_id.append(trace_id)
        self.span_id.append(span_id)
        self.parent_span_id.append(parent_span_id)
        self.trace_state.append(trace_state)
        self.span_name.append(name)
        self.span_kind.append(kind)
        self.service_name.append(service_name)
        self.resource_attributes.append(resource_attributes)
        self.scope_name.append(scope_name)
        self.scope_version.append(scope_version)
        self.span_attributes.append(attributes)
        self.duration.append(duration)
        self.status_code.append(status_code)
        self.status_message.append(status_message)
        for column in (
            self.events_timestamp, self.events_name, self.events_attributes,
            self.links_trace_id, self.links_span_id, self.links_trace_state,
            self.links_attributes,
        ):  # fmt: skip
            column.append([])

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


def decode_spans(request: ExportTraceServiceRequest) -> SpanColumns:
    """Flatten a checked request into columns."""
    cols = SpanColumns()
    # Bound methods hoisted out of the loop: this is the ingest hot path.
    timestamp, trace_ids, span_ids = cols.timestamp, cols.trace_id, cols.span_id
    parent_ids, trace_states, names = cols.parent_span_id, cols.trace_state, cols.span_name
    kinds, services, resources = cols.span_kind, cols.service_name, cols.resource_attributes
    scope_names, scope_versions = cols.scope_name, cols.scope_version
    span_attrs, durations = cols.span_attributes, cols.duration
    codes, messages = cols.status_code, cols.status_message
    kind_names, code_names = _KIND_NAMES, _CODE_NAMES
    for resource_spans in request.resource_spans:
        resource_attrs = attribute_pairs(resource_spans.resource.attributes)
        service_name = next((v for k, v in resource_attrs if k == "service.name"), "")
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for span in scope_spans.spans:
                trace_ids.append(span.trace_id.hex())
                span_ids.append(span.span_id.hex())
                parent_ids.append(hex_id(span.parent_span_id))
                start = span.start_time_unix_nano
                timestamp.append(start)
                trace_states.append(span.trace_state)
                names.append(span.name)
                kinds.append(kind_names.get(span.kind, ""))
                services.append(service_name)
                resources.append(resource_attrs)
                scope_names.append(scope_name)
                scope_versions.append(scope_version)
                span_attrs.append(attribute_pairs(span.attributes))
                # pdata subtracts unsigned timestamps; a span that ends before it
                # starts is stored with zero duration instead of a wrapped-around value.
                end = span.end_time_unix_nano
                durations.append(end - start if end > start else 0)
                status = span.status
                codes.append(code_names.get(status.code, ""))
                messages.append(status.message)
                events = span.events
                if events:
                    cols.events_timestamp.append([e.time_unix_nano for e in events])
                    cols.events_name.append([e.name for e in events])
                    cols.events_attributes.append([attribute_pairs(e.attributes) for e in events])
                else:
                    cols.events_timestamp.append([])
                    cols.events_name.append([])
                    cols.events_attributes.append([])
                links = span.links
                if links:
                    cols.links_trace_id.append([hex_id(lk.trace_id) for lk in links])
                    cols.links_span_id.append([hex_id(lk.span_id) for lk in links])
                    cols.links_trace_state.append([lk.trace_state for lk in links])
                    cols.links_attributes.append([attribute_pairs(lk.attributes) for lk in links])
                else:
                    cols.links_trace_id.append([])
                    cols.links_span_id.append([])
                    cols.links_trace_state.append([])
                    cols.links_attributes.append([])
    return cols


_KIND_NAMES = dict(enumerate(SPAN_KINDS))
_CODE_NAMES = dict(enumerate(STATUS_CODES))


def attribute_pairs(key_values: Any) -> Attrs:
    # String values inline; every other type goes through the full conversion.
    return [
        (kv.key, v.string_value if v.WhichOneof("value") == "string_value" else any_value_to_str(v))
        for kv in key_values
        for v in (kv.value,)
    ]


def hex_id(raw: bytes) -> str:
    """An id as the exporter writes it: lowercase hex, "" when absent or all zeros."""
    return raw.hex() if raw and any(raw) else ""
