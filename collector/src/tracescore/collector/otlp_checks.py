"""Validate an OTLP export before it is spooled: ids, limits, attribute truncation.

This runs on every request, so it touches as little as it can: ids are checked
per span, attribute values only in spans whose encoded size could hold one over
the limit. Invalid spans or log records are cut out and reported through
``partial_success``; everything else in the request is kept.
"""

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.schemas.errors import OtlpDecodeError

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


class LimitExceededError(OtlpDecodeError):
    """The request breaks a configured limit (not malformed, but refused whole)."""


@dataclass(frozen=True)
class Limits:
    max_items_per_request: int = 50_000
    # 0 disables truncation. Large by default: prompts and tool results are what the
    # evaluators read, so only pathological values are cut. Requests smaller than the
    # limit skip the scan entirely, which keeps it off the hot path.
    max_attribute_value_length: int = 1024 * 1024


@dataclass
class Checked:
    """What to spool and what to tell the sender."""

    payload: bytes
    accepted: int
    rejected: int = 0
    message: str = ""
    truncated: int = 0
    trace_ids: set[bytes] = field(default_factory=set)
    request: Any = None
    """The parsed request, as checked (what ``payload`` encodes)."""


def check_traces(body: bytes, limits: Limits, *, collect_trace_ids: bool = False) -> Checked:
    request = _parse(ExportTraceServiceRequest(), body)
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    _check_count(total, limits, "spans")
    max_len = limits.max_attribute_value_length
    # No value can exceed the limit if the whole body doesn't: skip the scan.
    scan = 0 < max_len < len(body)
    truncated = 0
    rejected: list[str] = []
    trace_ids: set[bytes] = set()
    for r_index, resource_spans in enumerate(request.resource_spans):
        if scan and resource_spans.resource.ByteSize() > max_len:
            truncated += _truncate_attributes(resource_spans.resource.attributes, max_len)
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            spans = scope_spans.spans
            bad: list[int] = []
            for index, span in enumerate(spans):
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if (
                    len(trace_id) != 16
                    or trace_id == _ZERO_TRACE
                    or len(span_id) != 8
                    or span_id == _ZERO_SPAN
                    or (parent and len(parent) != 8)
                    or (span.links and _bad_links(span.links))
                ):
                    bad.append(index)
                    where = f"resource_spans[{r_index}].scope_spans[{s_index}].spans[{index}]"
                    rejected.append(f"{where}: {_span_problem(span)}")
                    continue
                if scan and span.ByteSize() > max_len:
                    truncated += _truncate_span(span, max_len)
                if collect_trace_ids:
                    trace_ids.add(trace_id)
            for index in reversed(bad):
                del spans[index]
    return _checked(request, body, total, rejected, truncated, trace_ids, "span")


def check_logs(body: bytes, limits: Limits, *, collect_trace_ids: bool = False) -> Checked:
    request = _parse(ExportLogsServiceRequest(), body)
    total = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    _check_count(total, limits, "log records")
    max_len = limits.max_attribute_value_length
    scan = 0 < max_len < len(body)
    truncated = 0
    rejected: list[str] = []
    trace_ids: set[bytes] = set()
    for r_index, resource_logs in enumerate(request.resource_logs):
        if scan and resource_logs.resource.ByteSize() > max_len:
            truncated += _truncate_attributes(resource_logs.resource.attributes, max_len)
        for s_index, scope_logs in enumerate(resource_logs.scope_logs):
            records = scope_logs.log_records
            bad: list[int] = []
            for index, record in enumerate(records):
                # Log records need not belong to a trace, but ids that are there must be whole.
                if len(record.trace_id) not in (0, 16) or len(record.span_id) not in (0, 8):
                    bad.append(index)
                    rejected.append(
                        f"resource_logs[{r_index}].scope_logs[{s_index}].log_records[{index}]: "
                        f"trace_id has {len(record.trace_id)} bytes and span_id "
                        f"{len(record.span_id)} (expected 16 and 8, or none)"
                    )
                    continue
                if scan and record.ByteSize() > max_len:
                    truncated += _truncate_value(record.body, max_len)
                    truncated += _truncate_attributes(record.attributes, max_len)
                if collect_trace_ids and record.trace_id and record.trace_id != _ZERO_TRACE:
                    trace_ids.add(record.trace_id)
            for index in reversed(bad):
                del records[index]
    return _checked(request, body, total, rejected, truncated, trace_ids, "log record")


def _parse(request: Any, body: bytes) -> Any:
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        name = request.DESCRIPTOR.name
        raise OtlpDecodeError(f"body is not a valid protobuf {name} ({exc})") from exc
    return request


def _check_count(total: int, limits: Limits, noun: str) -> None:
    if total > limits.max_items_per_request:
        raise LimitExceededError(
            f"request has {total} {noun}; the limit is {limits.max_items_per_request} per "
            "request (lower the exporter's batch size)"
        )


def _checked(
    request: Any,
    body: bytes,
    total: int,
    rejected: list[str],
    truncated: int,
    trace_ids: set[bytes],
    noun: str,
) -> Checked:
    if rejected and len(rejected) == total:
        raise OtlpDecodeError(f"every {noun} is invalid; first: {rejected[0]}")
    # Re-encode only when something was cut out or shortened.
    changed = bool(rejected) or truncated > 0
    return Checked(
        payload=request.SerializeToString() if changed else body,
        accepted=total - len(rejected),
        rejected=len(rejected),
        message=_rejection_message(rejected, noun),
        truncated=truncated,
        trace_ids=trace_ids,
        request=request,
    )


def _bad_links(links: Any) -> bool:
    return any(
        (link.trace_id and len(link.trace_id) != 16) or (link.span_id and len(link.span_id) != 8)
        for link in links
    )


def _span_problem(span: Any) -> str:
    for name, size, required in (
        ("trace_id", 16, True),
        ("span_id", 8, True),
        ("parent_span_id", 8, False),
    ):
        raw = getattr(span, name)
        if not raw or not any(raw):
            if required:
                return f"{name} is empty or all zeros"
        elif len(raw) != size:
            return f"{name} has {len(raw)} bytes, expected {size}"
    return "a link has a trace_id or span_id of the wrong length"


def _rejection_message(rejected: list[str], noun: str) -> str:
    if not rejected:
        return ""
    shown = "; ".join(rejected[:3])
    more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
    return f"rejected {len(rejected)} invalid {noun}(s): {shown}{more}"


def _truncate_span(span: Any, max_len: int) -> int:
    count = _truncate_attributes(span.attributes, max_len)
    for event in span.events:
        count += _truncate_attributes(event.attributes, max_len)
    for link in span.links:
        count += _truncate_attributes(link.attributes, max_len)
    return count


def _truncate_attributes(key_values: Any, max_len: int) -> int:
    return sum(_truncate_value(kv.value, max_len) for kv in key_values)


def _truncate_value(value: Any, max_len: int) -> int:
    """Cut string and bytes values to ``max_len`` characters (bytes), as the OTel SDKs'
    attribute value length limit does; arrays and maps are cut element by element."""
    kind = value.WhichOneof("value")
    if kind == "string_value" and len(value.string_value) > max_len:
        value.string_value = value.string_value[:max_len]
        return 1
    if kind == "bytes_value" and len(value.bytes_value) > max_len:
        value.bytes_value = value.bytes_value[:max_len]
        return 1
    if kind == "array_value":
        return sum(_truncate_value(v, max_len) for v in value.array_value.values)
    if kind == "kvlist_value":
        return _truncate_attributes(value.kvlist_value.values, max_len)
    return 0
