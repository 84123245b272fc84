"""A stored span, as read back from an ``otel_traces`` table."""

from pydantic import BaseModel, ConfigDict


class SpanEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    timestamp_ns: int
    name: str
    attributes: dict[str, str]


class SpanLink(BaseModel):
    model_config = ConfigDict(frozen=True)

    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


class Span(BaseModel):
    """One row of ``otel_traces``, with attribute values as the exporter stores them (strings)."""

    model_config = ConfigDict(frozen=True)

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str
    service_name: str
    start_ns: int
    duration_ns: int
    status_code: str
    status_message: str
    resource_attributes: dict[str, str]
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def is_error(self) -> bool:
        # Older exporter versions wrote STATUS_CODE_ERROR; accept both forms.
        return self.status_code in ("Error", "STATUS_CODE_ERROR")


def start_order(span: Span) -> tuple[int, str]:
    """The order spans are kept in: start time, ties by span id."""
    return span.start_ns, span.span_id


class LogRecord(BaseModel):
    """One row of ``otel_logs`` that belongs to a trace (e.g. a GenAI event sent as a log)."""

    model_config = ConfigDict(frozen=True)

    trace_id: str
    span_id: str
    timestamp_ns: int
    event_name: str
    severity_text: str = ""
    body: str = ""
    attributes: dict[str, str] = {}
    service_name: str = ""
    scope_name: str = ""
