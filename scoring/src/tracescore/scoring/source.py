"""Where scored spans are read from: any table of the OTel Collector clickhouseexporter's
``otel_traces`` shape, possibly in another database than tracescore's own tables
(``source`` in ``scoring.yaml``). ``rescore`` and ``watch`` read spans (and logs) from
there and write scores to the store's own tables."""

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from tracescore.collector.store import QueryParams, Store
from tracescore.collector.store.base import SPAN_COLUMNS
from tracescore.schemas.ddl import LOGS_TABLE, TRACES_TABLE, quote_identifier
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.runs import has_table
from tracescore.scoring.scoring_config import LoadedScoringConfig

__all__ = ["SourceTable", "SourcedStore", "has_logs_table"]


@dataclass(frozen=True)
class SourceTable:
    """Where the spans are read from: ``database.table`` of the exporter's shape."""

    database: str
    table: str

    @classmethod
    def of(cls, store: Store, loaded: LoadedScoringConfig) -> "SourceTable":
        source = loaded.config.source
        return cls(source.database or store.database, source.table)

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.database)}.{quote_identifier(self.table)}"

    @property
    def name(self) -> str:
        """``database.table``, for messages."""
        return f"{self.database}.{self.table}"

    def is_store_default(self, store: Store) -> bool:
        return self.database == store.database and self.table == TRACES_TABLE

    def check(self, store: Store) -> None:
        if not has_table(store, self.table, self.database):
            raise ConfigError(
                f"source table {self.database}.{self.table} does not exist in {store.location} "
                "(set source.database / source.table in the scoring config)"
            )

    def fetch_spans_arrow(self, store: Store, trace_ids: Sequence[str]) -> pa.Table:
        """``Store.fetch_spans_arrow`` against this table: the same columns, so the rows go
        through the same ``spans_from_arrow``. No lookup-table time bound (another
        writer's table may have none): the exporter's bloom index on TraceId prunes."""
        sql = f"""
            SELECT {SPAN_COLUMNS}
            FROM {self.sql}
            WHERE TraceId IN {{tids:Array(String)}}
        """
        return store.query_arrow(sql, {"tids": list(trace_ids)})


class SourcedStore(Store):
    """The store, reading spans (and logs, when there are any) from the source table, so
    traces are rebuilt from there. Everything else goes to the store."""

    def __init__(self, inner: Store, source: SourceTable, has_logs: bool) -> None:
        super().__init__(inner.database)
        self.inner = inner
        self.source = source
        self.has_logs = has_logs

    @classmethod
    def over(cls, store: Store, source: SourceTable) -> "SourcedStore":
        """Logs from the source's database when it is another one and has an ``otel_logs``."""
        other = source.database != store.database
        return cls(store, source, has_logs=other and has_logs_table(store, source.database))

    def command(self, sql: str, params: QueryParams | None = None) -> None:
        self.inner.command(sql, params)

    def query_arrow(self, sql: str, params: QueryParams | None = None) -> pa.Table:
        return self.inner.query_arrow(sql, params)

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        self.inner.insert_arrow(table, data)

    def close(self) -> None:
        self.inner.close()

    @property
    def location(self) -> str:
        return self.inner.location

    def fetch_spans_arrow(self, trace_ids: Sequence[str]) -> pa.Table:
        if self.source.is_store_default(self.inner):
            return self.inner.fetch_spans_arrow(trace_ids)
        return self.source.fetch_spans_arrow(self.inner, trace_ids)

    def fetch_logs_arrow(self, trace_ids: Sequence[str]) -> pa.Table:
        if self.source.database == self.inner.database or not self.has_logs:
            # Without logs in the source, an empty result of the right shape.
            ids = list(trace_ids) if self.source.database == self.inner.database else []
            return self.inner.fetch_logs_arrow(ids)
        sql = f"""
            SELECT TraceId, SpanId, toUnixTimestamp64Nano(Timestamp) AS TimeNs, EventName,
                   SeverityText, Body, LogAttributes, ServiceName, ScopeName
            FROM {quote_identifier(self.source.database)}.{LOGS_TABLE}
            WHERE TraceId IN {{tids:Array(String)}}
            ORDER BY Timestamp
        """
        return self.inner.query_arrow(sql, {"tids": list(trace_ids)})


def has_logs_table(store: Store, database: str) -> bool:
    return has_table(store, LOGS_TABLE, database)
