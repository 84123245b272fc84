"""The schema: exporter-identical otel_traces, tracescore tables, idempotent migrations."""

from tracescore.collector.store import Store
from tracescore.schemas.ddl import migrations

# The OpenTelemetry Collector contrib clickhouseexporter's otel_traces, column by column.
EXPORTER_COLUMNS = [
    ("Timestamp", "DateTime64(9)", "CODEC(Delta(8), ZSTD(1))"),
    ("TraceId", "String", "CODEC(ZSTD(1))"),
    ("SpanId", "String", "CODEC(ZSTD(1))"),
    ("ParentSpanId", "String", "CODEC(ZSTD(1))"),
    ("TraceState", "String", "CODEC(ZSTD(1))"),
    ("SpanName", "LowCardinality(String)", "CODEC(ZSTD(1))"),
    ("SpanKind", "LowCardinality(String)", "CODEC(ZSTD(1))"),
    ("ServiceName", "LowCardinality(String)", "CODEC(ZSTD(1))"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)", "CODEC(ZSTD(1))"),
    ("ScopeName", "String", "CODEC(ZSTD(1))"),
    ("ScopeVersion", "String", "CODEC(ZSTD(1))"),
    ("SpanAttributes", "Map(LowCardinality(String), String)", "CODEC(ZSTD(1))"),
    ("Duration", "UInt64", "CODEC(T64, ZSTD(1))"),
    ("StatusCode", "LowCardinality(String)", "CODEC(ZSTD(1))"),
    ("StatusMessage", "String", "CODEC(ZSTD(1))"),
    ("Events.Timestamp", "Array(DateTime64(9))", "CODEC(ZSTD(1))"),
    ("Events.Name", "Array(LowCardinality(String))", "CODEC(ZSTD(1))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))", "CODEC(ZSTD(1))"),
    ("Links.TraceId", "Array(String)", "CODEC(ZSTD(1))"),
    ("Links.SpanId", "Array(String)", "CODEC(ZSTD(1))"),
    ("Links.TraceState", "Array(String)", "CODEC(ZSTD(1))"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))", "CODEC(ZSTD(1))"),
    ("ResourceAttributeItems", "Array(String)", ""),
    ("SpanAttributeItems", "Array(String)", ""),
]


def test_otel_traces_matches_the_exporter_column_for_column(store: Store) -> None:
    rows = store.query(
        "SELECT name, type, compression_codec FROM system.columns "
        "WHERE database = {db:String} AND table = 'otel_traces' ORDER BY position",
        {"db": store.database},
    )
    assert [(r["name"], r["type"], r["compression_codec"]) for r in rows] == EXPORTER_COLUMNS


def test_otel_traces_keys_indexes_and_lookup_view(store: Store) -> None:
    tables = {
        r["name"]: r
        for r in store.query(
            "SELECT name, engine, partition_key, sorting_key, primary_key FROM system.tables "
            "WHERE database = {db:String}",
            {"db": store.database},
        )
    }
    traces = tables["otel_traces"]
    assert traces["engine"] == "MergeTree"
    assert traces["partition_key"] == "toDate(Timestamp)"
    assert traces["sorting_key"] == "ServiceName, SpanName, toDateTime(Timestamp), Timestamp"
    assert traces["primary_key"] == "ServiceName, SpanName, toDateTime(Timestamp)"
    lookup = tables["otel_traces_trace_id_ts"]
    assert lookup["engine"] == "AggregatingMergeTree"
    assert lookup["partition_key"] == "toStartOfWeek(Start)"
    assert lookup["sorting_key"] == "(TraceId)"  # as ClickHouse reports `ORDER BY (TraceId)`
    assert tables["otel_traces_trace_id_ts_mv"]["engine"] == "MaterializedView"
    indexes = store.query(
        "SELECT name, type_full FROM system.data_skipping_indices "
        "WHERE database = {db:String} AND table = 'otel_traces' ORDER BY name",
        {"db": store.database},
    )
    assert {r["name"]: r["type_full"] for r in indexes} == {
        "idx_duration": "minmax",
        "idx_lower_span_name": "tokenbf_v1(32768, 3, 0)",
        "idx_res_attr_key": "bloom_filter(0.01)",
        "idx_res_attr_value": "bloom_filter(0.01)",
        "idx_span_attr_key": "bloom_filter(0.01)",
        "idx_span_attr_value": "bloom_filter(0.01)",
        "idx_trace_id": "bloom_filter(0.001)",
    }


def test_tracescore_tables_replace_instead_of_duplicating(store: Store) -> None:
    engines = {
        r["name"]: r["engine"]
        for r in store.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String} "
            "AND name LIKE 'tracescore_%'",
            {"db": store.database},
        )
    }
    assert engines == {
        "tracescore_runs": "ReplacingMergeTree",
        "tracescore_case_results": "ReplacingMergeTree",
        "tracescore_scores": "ReplacingMergeTree",
        "tracescore_schema_migrations": "ReplacingMergeTree",
    }
    sorting = store.query(
        "SELECT sorting_key FROM system.tables WHERE database = {db:String} "
        "AND name = 'tracescore_scores'",
        {"db": store.database},
    )
    assert sorting[0]["sorting_key"] == "TraceId, Evaluator, ConfigHash"


def test_migrations_are_safe_to_run_twice(store: Store) -> None:
    versions = [m.version for m in migrations(store.database)]
    assert versions == sorted(versions) and len(versions) >= 2
    assert store.applied_migrations() == versions
    assert store.migrate() == []
    # Re-running every statement by hand (an interrupted migration) is harmless too.
    for migration in migrations(store.database):
        for statement in migration.statements:
            store.command(statement)
    assert store.applied_migrations() == versions
