"""The spans of a run's open cases, taken from the run's receiver as they are accepted.

A case is scored from the rows its trace will be stored as (the same decoding the loader
applies), without waiting for them to be inserted and reading them back: the pipeline
hands each accepted, already parsed request to :meth:`LiveSpans.on_accepted`, which
keeps the spans of traces still open. Inserting and reading back cost an insert wait
and two queries per case, and the store runs one statement at a time; at a suite's
concurrency that was what every case waited on. The loader still stores everything,
and the run waits for it before it ends.
"""

import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.spans_decode import decode_spans
from tracescore.collector.store.base import spans_from_arrow
from tracescore.schemas.spans import Span, start_order

# Inserted column (SPAN_SCHEMA) -> the name the store's span query gives it, which is
# what spans_from_arrow reads.
_QUERY_NAMES = {
    "Timestamp": "StartNs",
    "Events.Timestamp": "EventTimesNs",
    "Events.Name": "EventNames",
    "Events.Attributes": "EventAttributes",
    "Links.TraceId": "LinkTraceIds",
    "Links.SpanId": "LinkSpanIds",
    "Links.TraceState": "LinkTraceStates",
    "Links.Attributes": "LinkAttributes",
}


def _as_query_result(rows: pa.Table) -> pa.Table:
    columns: list[pa.ChunkedArray[Any]] = []
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if name == "Timestamp":
            column = column.cast(pa.int64())
        elif name == "Events.Timestamp":
            column = column.cast(pa.list_(pa.int64()))
        columns.append(column)
    return pa.table(columns, names=[_QUERY_NAMES.get(n, n) for n in rows.column_names])


class LiveSpans:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, list[Span]] = {}

    def open(self, trace_id: str) -> None:
        with self._lock:
            self._open[trace_id] = []

    def close(self, trace_id: str) -> list[Span]:
        """The trace's spans stored so far, ordered by start time; it is no longer kept."""
        with self._lock:
            spans = self._open.pop(trace_id, [])
        spans.sort(key=start_order)
        return spans

    def on_accepted(self, request: ExportTraceServiceRequest, trace_ids: set[bytes]) -> None:
        with self._lock:
            if not self._open:
                return
            open_ids = set(self._open)
        # Requests of no open case (evaluator spans, late spans of sealed cases) are
        # not decoded; the pipeline's checks already listed the request's trace ids.
        if not any(tid.hex() in open_ids for tid in trace_ids):
            return
        table = decode_spans(request).to_arrow()
        wanted = pa.array(list(open_ids), pa.string())
        rows = table.filter(pc.is_in(table.column("TraceId"), value_set=wanted))
        if rows.num_rows == 0:
            return
        spans = spans_from_arrow(_as_query_result(rows))
        with self._lock:
            for span in spans:
                bucket = self._open.get(span.trace_id)
                if bucket is not None:
                    bucket.append(span)
