"""The storage interface. Backends supply four primitives; everything else is shared SQL."""

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa
from pydantic import BaseModel

from tracescore.collector.spans_decode import SpanColumns
from tracescore.schemas.ddl import (
    LOGS_TABLE,
    MIGRATIONS_TABLE,
    TRACES_TABLE,
    local_table_name,
    migrations,
    quote_identifier,
    setup_statements,
)
from tracescore.schemas.spans import LogRecord, Span, SpanEvent, SpanLink

QueryParams = Mapping[str, Any]

_SPAN_COLUMNS = """
    toUnixTimestamp64Nano(Timestamp) AS StartNs, TraceId, SpanId, ParentSpanId, TraceState,
    SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion,
    SpanAttributes, Duration, StatusCode, StatusMessage,
    arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EventTimesNs,
    Events.Name AS EventNames, Events.Attributes AS EventAttributes,
    Links.TraceId AS LinkTraceIds, Links.SpanId AS LinkSpanIds,
    Links.TraceState AS LinkTraceStates, Links.Attributes AS LinkAttributes
"""


class Store(ABC):
    """Where spans, runs, case results and scores live (one ClickHouse database)."""

    # Whether the engine runs in this process and can read files the collector wrote.
    reads_local_files = False

    def __init__(self, database: str) -> None:
        self.database = database
        self.db = quote_identifier(database)

    # -- primitives each backend implements ------------------------------------------
    @abstractmethod
    def command(self, sql: str, params: QueryParams | None = None) -> None:
        """Run a statement that returns nothing."""

    @abstractmethod
    def query_arrow(self, sql: str, params: QueryParams | None = None) -> pa.Table:
        """Run a SELECT and return its result as an Arrow table."""

    @abstractmethod
    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """Insert ``data`` into ``table`` (a name in this store's database), by column name."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data is, for messages."""

    # -- shared behaviour ------------------------------------------------------------
    def query(self, sql: str, params: QueryParams | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.query_arrow(sql, params).to_pylist()
        return rows

    def migrate(self, cluster: str | None = None) -> list[int]:
        """Create the database and apply pending migrations; returns the versions applied now.

        Safe to run any number of times: applied versions are recorded, and every
        statement is idempotent on its own so an interrupted migration can re-run.
        With ``cluster``, every table is created ``ON CLUSTER`` as a replicated
        ``<table>_local`` plus a ``Distributed`` table under its usual name.
        """
        # Everything is rendered before anything runs: DDL that cannot be rendered
        # for the cluster must fail before it half-creates a schema.
        setup = setup_statements(self.database, cluster)
        rendered = migrations(self.database, cluster)
        for statement in setup:
            self.command(statement)
        done = {
            int(row["Version"])
            for row in self.query(f"SELECT Version FROM {self.db}.{MIGRATIONS_TABLE}")
        }
        applied: list[int] = []
        # On a cluster the record goes straight into this server's shard: an insert
        # through the Distributed table may be queued and not yet readable, while
        # reads through it always include the local shard.
        record_in = local_table_name(MIGRATIONS_TABLE, cluster)
        for migration in rendered:
            if migration.version in done:
                continue
            for statement in migration.statements:
                self.command(statement)
            self.insert_arrow(
                record_in,
                pa.table(
                    {
                        "Version": pa.array([migration.version], pa.uint32()),
                        "Name": [migration.name],
                        "AppliedAt": pa.array([time.time_ns()], pa.timestamp("ns", tz="UTC")),
                    }
                ),
            )
            applied.append(migration.version)
        return applied

    def applied_migrations(self) -> list[int]:
        rows = self.query(
            f"SELECT DISTINCT Version FROM {self.db}.{MIGRATIONS_TABLE} ORDER BY Version"
        )
        return [int(r["Version"]) for r in rows]

    def insert_spans(self, spans: SpanColumns) -> None:
        if len(spans):
            self.insert_arrow(TRACES_TABLE, spans.to_arrow())

    def fetch_trace(self, trace_id: str) -> list[Span]:
        """Every stored span of one trace, ordered by start time."""
        lookup = f"{self.db}.{TRACES_TABLE}_trace_id_ts"
        # The lookup table bounds the time range, so the scan prunes by partition
        # on large tables; with no lookup row the range is left open.
        sql = f"""
            WITH (SELECT (min(Start), max(End)) FROM {lookup} WHERE TraceId = {{tid:String}})
                AS bounds
            SELECT {_SPAN_COLUMNS}
            FROM {self.db}.{TRACES_TABLE}
            WHERE TraceId = {{tid:String}}
              AND (bounds.2 = toDateTime(0)
                   OR Timestamp BETWEEN bounds.1 AND bounds.2 + INTERVAL 1 SECOND)
            ORDER BY Timestamp, SpanId
        """
        return [_row_to_span(row) for row in self.query(sql, {"tid": trace_id})]

    def fetch_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        """Every stored span of each trace in ``trace_ids``, in one query, ordered by start
        time; an unknown id maps to an empty list. Callers batch the ids (a few hundred)."""
        found: dict[str, list[Span]] = {tid: [] for tid in trace_ids}
        if not found:
            return found
        lookup = f"{self.db}.{TRACES_TABLE}_trace_id_ts"
        # One time range for the batch, from the lookup table as in fetch_trace: traces
        # of a batch are usually close in time, so the scan still prunes partitions.
        sql = f"""
            WITH (SELECT (min(Start), max(End)) FROM {lookup}
                  WHERE TraceId IN {{tids:Array(String)}}) AS bounds
            SELECT {_SPAN_COLUMNS}
            FROM {self.db}.{TRACES_TABLE}
            WHERE TraceId IN {{tids:Array(String)}}
              AND (bounds.2 = toDateTime(0)
                   OR Timestamp BETWEEN bounds.1 AND bounds.2 + INTERVAL 1 SECOND)
            ORDER BY TraceId, Timestamp, SpanId
        """
        for span in spans_from_arrow(self.query_arrow(sql, {"tids": list(found)})):
            found[span.trace_id].append(span)
        return found

    def fetch_logs(self, trace_ids: Sequence[str]) -> dict[str, list[LogRecord]]:
        """Log records that carry one of ``trace_ids`` (GenAI events sent as logs), by trace."""
        found: dict[str, list[LogRecord]] = {tid: [] for tid in trace_ids}
        if not trace_ids:
            return found
        sql = f"""
            SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) AS TimeNs, EventName,
                   SeverityText, Body, LogAttributes, ServiceName, ScopeName
            FROM {self.db}.{LOGS_TABLE}
            WHERE TraceId IN {{tids:Array(String)}}
            ORDER BY Timestamp
        """
        for row in self.query(sql, {"tids": list(trace_ids)}):
            found[row["TraceId"]].append(
                LogRecord(
                    trace_id=row["TraceId"],
                    span_id=row["SpanId"],
                    timestamp_ns=int(row["TimeNs"]),
                    event_name=row["EventName"],
                    severity_text=row["SeverityText"],
                    body=row["Body"],
                    attributes=_pairs_to_dict(row["LogAttributes"]),
                    service_name=row["ServiceName"],
                    scope_name=row["ScopeName"],
                )
            )
        return found

    def count_spans(self, trace_id: str | None = None) -> int:
        if trace_id is None:
            rows = self.query(f"SELECT count() AS n FROM {self.db}.{TRACES_TABLE}")
        else:
            rows = self.query(
                f"SELECT count() AS n FROM {self.db}.{TRACES_TABLE} WHERE TraceId = {{tid:String}}",
                {"tid": trace_id},
            )
        return int(rows[0]["n"])


def _pairs_to_dict(pairs: Sequence[tuple[str, str]] | None) -> dict[str, str]:
    return dict(pairs or ())


def _row_to_span(row: Mapping[str, Any]) -> Span:
    events = tuple(
        SpanEvent(timestamp_ns=int(ts), name=name, attributes=_pairs_to_dict(attrs))
        for ts, name, attrs in zip(
            row["EventTimesNs"], row["EventNames"], row["EventAttributes"], strict=True
        )
    )
    links = tuple(
        SpanLink(trace_id=tid, span_id=sid, trace_state=state, attributes=_pairs_to_dict(attrs))
        for tid, sid, state, attrs in zip(
            row["LinkTraceIds"],
            row["LinkSpanIds"],
            row["LinkTraceStates"],
            row["LinkAttributes"],
            strict=True,
        )
    )
    return Span(
        trace_id=row["TraceId"],
        span_id=row["SpanId"],
        parent_span_id=row["ParentSpanId"],
        trace_state=row["TraceState"],
        name=row["SpanName"],
        kind=row["SpanKind"],
        service_name=row["ServiceName"],
        start_ns=int(row["StartNs"]),
        duration_ns=int(row["Duration"]),
        status_code=row["StatusCode"],
        status_message=row["StatusMessage"],
        resource_attributes=_pairs_to_dict(row["ResourceAttributes"]),
        scope_name=row["ScopeName"],
        scope_version=row["ScopeVersion"],
        attributes=_pairs_to_dict(row["SpanAttributes"]),
        events=events,
        links=links,
    )


def spans_from_arrow(table: pa.Table) -> list[Span]:
    """Spans from a result with ``_SPAN_COLUMNS``, column by column.

    Loading spans for scoring is bound by this conversion, not by the query. The rows
    come from our own table, typed by its schema, so they are not validated again:
    each model is built straight from its field values (``_trusted``). Map columns are
    read as flat key and value lists plus offsets, which is several times faster than
    Arrow's nested ``to_pylist``.
    """
    spans: list[Span] = []
    for batch in table.to_batches():
        spans += _spans_from_batch(batch)
    return spans


def _spans_from_batch(batch: pa.RecordBatch) -> list[Span]:
    n = batch.num_rows
    columns: list[list[Any]] = [
        batch.column(name).to_pylist()
        for name in (
            "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
            "ServiceName", "StartNs", "Duration", "StatusCode", "StatusMessage", "ScopeName",
            "ScopeVersion",
        )
    ]  # fmt: skip
    columns.append(_maps(batch.column("ResourceAttributes")))
    columns.append(_maps(batch.column("SpanAttributes")))
    columns.append(_event_tuples(batch) if _any_items(batch, "EventNames") else [()] * n)
    columns.append(_link_tuples(batch) if _any_items(batch, "LinkTraceIds") else [()] * n)
    return [
        _trusted(Span, dict(zip(_SPAN_FIELDS, row, strict=True)))
        for row in zip(*columns, strict=True)
    ]


# Span's fields in the order _spans_from_batch lists its columns.
_SPAN_FIELDS = (
    "trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind", "service_name",
    "start_ns", "duration_ns", "status_code", "status_message", "scope_name", "scope_version",
    "resource_attributes", "attributes", "events", "links",
)  # fmt: skip


def _maps(array: Any) -> list[dict[str, str]]:
    """A ``Map(String, String)`` column as one dict per row."""
    offsets = array.offsets.to_pylist()
    keys = array.keys.to_pylist()
    values = array.items.to_pylist()
    return [
        dict(zip(keys[start:end], values[start:end], strict=True))
        for start, end in itertools.pairwise(offsets)
    ]


def _any_items(batch: pa.RecordBatch, name: str) -> bool:
    """Whether any row of a list column is non-empty (events and links seldom are)."""
    column: Any = batch.column(name)
    return len(column.values) > 0


def _event_tuples(batch: pa.RecordBatch) -> list[tuple[SpanEvent, ...]]:
    times: list[Any] = batch.column("EventTimesNs").to_pylist()
    names: list[Any] = batch.column("EventNames").to_pylist()
    attributes: list[Any] = batch.column("EventAttributes").to_pylist()
    return [
        tuple(
            _trusted(
                SpanEvent,
                {"timestamp_ns": int(ts), "name": name, "attributes": _pairs_to_dict(attrs)},
            )
            for ts, name, attrs in zip(t, n, a, strict=True)
        )
        for t, n, a in zip(times, names, attributes, strict=True)
    ]


def _link_tuples(batch: pa.RecordBatch) -> list[tuple[SpanLink, ...]]:
    columns: list[list[Any]] = [
        batch.column(name).to_pylist()
        for name in ("LinkTraceIds", "LinkSpanIds", "LinkTraceStates", "LinkAttributes")
    ]
    return [
        tuple(
            _trusted(
                SpanLink,
                {
                    "trace_id": tid,
                    "span_id": sid,
                    "trace_state": state,
                    "attributes": _pairs_to_dict(attrs),
                },
            )
            for tid, sid, state, attrs in zip(*row, strict=True)
        )
        for row in zip(*columns, strict=True)
    ]


_M = TypeVar("_M", bound=BaseModel)
_new = object.__new__
_set = object.__setattr__


def _trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls`` from complete, correctly typed field values, without validation.

    What ``model_construct`` does, minus its per-field Python loop over defaults and
    aliases, which makes it slower than validating (~9 µs against ~6 µs per span here;
    this is ~1.5 µs). ``values`` must name every field: the models compare equal to
    validated ones (tests compare fetch_traces with fetch_trace).
    """
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model
