"""The storage interface. Backends supply four primitives; everything else is shared SQL."""

import itertools
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

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
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.spans import LogRecord, Span, SpanEvent, SpanLink, start_order
from tracescore.schemas.trusted import SLOT_SETTERS, new_model
from tracescore.schemas.trusted import trusted as _trusted

QueryParams = Mapping[str, Any]

SPAN_COLUMNS = """
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
        if cluster is None:
            schema_cluster = self._schema_cluster()
            if schema_cluster is not None:
                # Commands that migrate as they start (watch, rescore, run) must not apply
                # a new migration to one node of a cluster schema, nor record it as done.
                pending = sorted(m.version for m in rendered if m.version not in done)
                if pending:
                    raise ConfigError(
                        f"{self.location} holds a cluster schema ({schema_cluster}) with "
                        f"migrations {pending} pending: apply them on every node with "
                        f"`tracescore db init --cluster {schema_cluster}` first"
                    )
                return []
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

    def _schema_cluster(self) -> str | None:
        """The cluster a ``db init --cluster`` schema was made for (its migrations table
        is Distributed), or None for a single server's."""
        rows = self.query(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} "
            "AND name = {table:String}",
            {"db": self.database, "table": MIGRATIONS_TABLE},
        )
        return distributed_cluster(str(rows[0]["engine_full"])) if rows else None

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
            SELECT {SPAN_COLUMNS}
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
        if found:
            for span in spans_from_arrow(self.fetch_spans_arrow(list(found))):
                found[span.trace_id].append(span)
            for spans in found.values():
                spans.sort(key=start_order)
        return found

    def fetch_spans_arrow(self, trace_ids: Sequence[str]) -> pa.Table:
        """The rows ``fetch_traces`` converts, unconverted: the spans of ``trace_ids``, in
        no particular order. Cheap to ship to another process as Arrow IPC;
        ``spans_from_arrow`` turns the rows into spans there. (Sorting in the query
        copied every map column and doubled its time; rebuilding a trace sorts its
        spans anyway.)"""
        lookup = f"{self.db}.{TRACES_TABLE}_trace_id_ts"
        # One time range for the batch, from the lookup table as in fetch_trace: traces
        # of a batch are usually close in time, so the scan still prunes partitions.
        sql = f"""
            WITH (SELECT (min(Start), max(End)) FROM {lookup}
                  WHERE TraceId IN {{tids:Array(String)}}) AS bounds
            SELECT {SPAN_COLUMNS}
            FROM {self.db}.{TRACES_TABLE}
            WHERE TraceId IN {{tids:Array(String)}}
              AND (bounds.2 = toDateTime(0)
                   OR Timestamp BETWEEN bounds.1 AND bounds.2 + INTERVAL 1 SECOND)
        """
        return self.query_arrow(sql, {"tids": list(trace_ids)})

    def fetch_logs(self, trace_ids: Sequence[str]) -> dict[str, list[LogRecord]]:
        """Log records that carry one of ``trace_ids`` (GenAI events sent as logs), by trace."""
        found: dict[str, list[LogRecord]] = {tid: [] for tid in trace_ids}
        if found:
            for record in logs_from_arrow(self.fetch_logs_arrow(list(found))):
                found[record.trace_id].append(record)
        return found

    def fetch_logs_arrow(self, trace_ids: Sequence[str]) -> pa.Table:
        """The rows ``fetch_logs`` converts (``logs_from_arrow``), in time order."""
        sql = f"""
            SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) AS TimeNs, EventName,
                   SeverityText, Body, LogAttributes, ServiceName, ScopeName
            FROM {self.db}.{LOGS_TABLE}
            WHERE TraceId IN {{tids:Array(String)}}
            ORDER BY Timestamp
        """
        return self.query_arrow(sql, {"tids": list(trace_ids)})

    def count_spans(self, trace_id: str | None = None) -> int:
        if trace_id is None:
            rows = self.query(f"SELECT count() AS n FROM {self.db}.{TRACES_TABLE}")
        else:
            rows = self.query(
                f"SELECT count() AS n FROM {self.db}.{TRACES_TABLE} WHERE TraceId = {{tid:String}}",
                {"tid": trace_id},
            )
        return int(rows[0]["n"])


def distributed_cluster(engine_full: str) -> str | None:
    """The cluster of a ``Distributed('cluster', ...)`` engine clause; None for others."""
    match = _DISTRIBUTED.match(engine_full)
    return match.group(1) if match else None


_DISTRIBUTED = re.compile(r"^Distributed\('([^']+)'")


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
    """Spans from a result with ``SPAN_COLUMNS``, column by column.

    Loading spans for scoring is bound by this conversion, not by the query. The rows
    come from our own table, typed by its schema, so they are not validated again:
    each model is built straight from its field values (``_spans_from_batch``). Map columns are
    read as flat key and value lists plus offsets, which is several times faster than
    Arrow's nested ``to_pylist``. Spans with the same resource attributes as the span
    before them share one dict (they are frozen models, so nothing mutates it).
    """
    spans: list[Span] = []
    for batch in table.to_batches():
        spans += _spans_from_batch(batch)
    return spans


def _spans_from_batch(batch: pa.RecordBatch) -> list[Span]:
    n = batch.num_rows
    scalars: list[list[Any]] = [
        batch.column(name).to_pylist()
        for name in (
            "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
            "ServiceName", "StartNs", "Duration", "StatusCode", "StatusMessage",
        )
    ]  # fmt: skip
    columns = [
        *scalars,
        _repeating_maps(batch.column("ResourceAttributes")),
        batch.column("ScopeName").to_pylist(),
        batch.column("ScopeVersion").to_pylist(),
        _maps(batch.column("SpanAttributes")),
        _event_tuples(batch) if _any_items(batch, "EventNames") else [()] * n,
        _link_tuples(batch) if _any_items(batch, "LinkTraceIds") else [()] * n,
    ]
    new, set_dict, set_fields, set_extra, set_private = new_model, *SLOT_SETTERS
    fields = _SPAN_FIELD_SET
    spans: list[Span] = []
    append = spans.append
    # One loop with a literal dict per span: ~3 µs a span against ~7 µs for
    # ``_trusted(Span, dict(zip(...)))`` (dict(zip) and four attribute lookups by name).
    # It must name every field of Span: tests compare these with validated models.
    for (
        trace_id, span_id, parent_span_id, trace_state, name, kind, service_name, start_ns,
        duration_ns, status_code, status_message, resource_attributes, scope_name,
        scope_version, attributes, events, links,
    ) in zip(*columns, strict=True):  # fmt: skip
        span = new(Span)
        set_dict(
            span,
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent_span_id,
                "trace_state": trace_state,
                "name": name,
                "kind": kind,
                "service_name": service_name,
                "start_ns": start_ns,
                "duration_ns": duration_ns,
                "status_code": status_code,
                "status_message": status_message,
                "resource_attributes": resource_attributes,
                "scope_name": scope_name,
                "scope_version": scope_version,
                "attributes": attributes,
                "events": events,
                "links": links,
            },
        )
        # Shared by every span: pydantic only changes a model's fields-set on assignment,
        # which a frozen model refuses, and copies it on model_copy.
        set_fields(span, fields)
        set_extra(span, None)
        set_private(span, None)
        append(span)
    return spans


def logs_from_arrow(table: pa.Table) -> list[LogRecord]:
    """Log records from a ``fetch_logs_arrow`` result, built as spans are (unvalidated)."""
    records: list[LogRecord] = []
    for batch in table.to_batches():
        columns: list[list[Any]] = [
            batch.column(name).to_pylist()
            for name in (
                "TraceId", "SpanId", "TimeNs", "EventName", "SeverityText", "Body",
                "ServiceName", "ScopeName",
            )
        ]  # fmt: skip
        columns.insert(6, _maps(batch.column("LogAttributes")))
        records += (
            _trusted(LogRecord, dict(zip(_LOG_FIELDS, row, strict=True)))
            for row in zip(*columns, strict=True)
        )
    return records


# LogRecord's fields in the order logs_from_arrow lists its columns.
_LOG_FIELDS = (
    "trace_id", "span_id", "timestamp_ns", "event_name", "severity_text", "body", "attributes",
    "service_name", "scope_name",
)  # fmt: skip
_SPAN_FIELD_SET = set(Span.model_fields)


def _maps(array: Any) -> list[dict[str, str]]:
    """A ``Map(String, String)`` column as one dict per row."""
    offsets = array.offsets.to_pylist()
    # Consumed in order, so each row takes the next (end - start) pairs: no slices.
    pairs = zip(array.keys.to_pylist(), array.items.to_pylist(), strict=True)
    return [
        dict(itertools.islice(pairs, end - start)) for start, end in itertools.pairwise(offsets)
    ]


def _repeating_maps(array: Any) -> list[dict[str, str]]:
    """``_maps`` for a column with few distinct rows (resource attributes: the spans of a
    trace, and of a service, have the same), where equal rows share one dict.

    Rows come in no particular order, so equal rows are found by their key and value
    tuples; one dict per distinct row instead of one per span is cheaper to build and
    less memory in the worker too.
    """
    offsets = array.offsets.to_pylist()
    keys = array.keys.to_pylist()
    values = array.items.to_pylist()
    maps: list[dict[str, str]] = []
    seen: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, str]] = {}
    for start, end in itertools.pairwise(offsets):
        row = (tuple(keys[start:end]), tuple(values[start:end]))
        found = seen.get(row)
        if found is None:
            found = seen[row] = dict(zip(row[0], row[1], strict=True))
        maps.append(found)
    return maps


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
