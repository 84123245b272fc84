"""The schema: exporter-identical otel_traces and otel_logs, tracescore tables, idempotent
migrations, and their rendering for a ClickHouse cluster."""

import re
from collections.abc import Iterator

import pytest

from tracescore.collector.store import Store
from tracescore.schemas.ddl import (
    LOGS_TABLE,
    MIGRATIONS_TABLE,
    _ClusterRenderer,
    migrations,
    retention_statements,
    setup_statements,
)
from tracescore.schemas.errors import ConfigError

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
        "tracescore_baselines": "ReplacingMergeTree",
        "tracescore_trace_arrivals": "MergeTree",
        "tracescore_trace_arrivals_mv": "MaterializedView",
        "tracescore_watch_state": "ReplacingMergeTree",
        "tracescore_watch_checkpoints": "ReplacingMergeTree",
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


# The contrib clickhouseexporter's otel_logs (internal/sqltemplates/logs_table.sql as of
# v0.161/v0.162, bloom-filter index variant): name, type, default kind and expression,
# codec, comment.
_MATERIALIZED = [
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.deployment.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "deployment.environment.name",
]
EXPORTER_LOG_COLUMNS = [
    (
        "Timestamp",
        "DateTime64(9)",
        "",
        "",
        "CODEC(Delta(8), ZSTD(1))",
        "Event timestamp with nanosecond precision",
    ),
    ("TraceId", "String", "", "", "CODEC(ZSTD(1))", "W3C trace identifier"),
    ("SpanId", "String", "", "", "CODEC(ZSTD(1))", "W3C span identifier"),
    ("TraceFlags", "UInt8", "", "", "", "W3C trace flags"),
    ("SeverityText", "LowCardinality(String)", "", "", "CODEC(ZSTD(1))", "Log severity as text"),
    ("SeverityNumber", "UInt8", "", "", "", "Log severity as number (1-24)"),
    (
        "ServiceName",
        "LowCardinality(String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Service that emitted the log",
    ),
    ("Body", "String", "", "", "CODEC(ZSTD(1))", "Log message body"),
    (
        "ResourceSchemaUrl",
        "LowCardinality(String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Schema URL for the resource",
    ),
    (
        "ResourceAttributes",
        "Map(LowCardinality(String), String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Resource attributes as key-value pairs",
    ),
    (
        "ScopeSchemaUrl",
        "LowCardinality(String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Schema URL for the instrumentation scope",
    ),
    ("ScopeName", "String", "", "", "CODEC(ZSTD(1))", "Instrumentation scope name"),
    (
        "ScopeVersion",
        "LowCardinality(String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Instrumentation scope version",
    ),
    (
        "ScopeAttributes",
        "Map(LowCardinality(String), String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Instrumentation scope attributes",
    ),
    (
        "LogAttributes",
        "Map(LowCardinality(String), String)",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Log record attributes",
    ),
    (
        "EventName",
        "String",
        "",
        "",
        "CODEC(ZSTD(1))",
        "Event name for log records representing events",
    ),
    *(
        (
            f"__otel_materialized_{key}",
            "LowCardinality(String)",
            "MATERIALIZED",
            f"ResourceAttributes['{key}']",
            "CODEC(ZSTD(1))",
            "",
        )
        for key in _MATERIALIZED
    ),
]


def test_otel_logs_matches_the_exporter_column_for_column(store: Store) -> None:
    rows = store.query(
        "SELECT name, type, default_kind, default_expression, compression_codec, comment "
        "FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY position",
        {"db": store.database, "t": LOGS_TABLE},
    )
    assert [
        (
            r["name"],
            r["type"],
            r["default_kind"],
            r["default_expression"],
            r["compression_codec"],
            r["comment"],
        )
        for r in rows
    ] == EXPORTER_LOG_COLUMNS


def test_otel_logs_keys_indexes_and_settings(store: Store) -> None:
    rows = store.query(
        "SELECT engine, partition_key, sorting_key, primary_key, engine_full FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database, "t": LOGS_TABLE},
    )
    assert len(rows) == 1
    logs = rows[0]
    assert logs["engine"] == "MergeTree"
    assert logs["partition_key"] == "toDate(Timestamp)"
    assert logs["sorting_key"] == "toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp"
    assert logs["primary_key"] == logs["sorting_key"]  # the exporter sets no PRIMARY KEY
    assert "TTL" not in logs["engine_full"]
    assert logs["engine_full"].endswith(
        "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"
    )
    indexes = store.query(
        "SELECT name, expr, type_full, granularity FROM system.data_skipping_indices "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY name",
        {"db": store.database, "t": LOGS_TABLE},
    )
    assert [(r["name"], r["expr"], r["type_full"], r["granularity"]) for r in indexes] == [
        ("idx_log_attr_key", "mapKeys(LogAttributes)", "bloom_filter(0.01)", 1),
        ("idx_log_attr_value", "mapValues(LogAttributes)", "bloom_filter(0.01)", 1),
        ("idx_lower_body", "lower(Body)", "tokenbf_v1(32768, 3, 0)", 8),
        ("idx_res_attr_key", "mapKeys(ResourceAttributes)", "bloom_filter(0.01)", 1),
        ("idx_res_attr_value", "mapValues(ResourceAttributes)", "bloom_filter(0.01)", 1),
        ("idx_scope_attr_key", "mapKeys(ScopeAttributes)", "bloom_filter(0.01)", 1),
        ("idx_scope_attr_value", "mapValues(ScopeAttributes)", "bloom_filter(0.01)", 1),
        ("idx_trace_id", "TraceId", "bloom_filter(0.001)", 1),
    ]


# -- cluster rendering ----------------------------------------------------------------

CLUSTER = "c1"
_ZK_ARGS = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
_CLUSTER_TABLES = [
    "otel_traces",
    "otel_traces_trace_id_ts",
    "tracescore_runs",
    "tracescore_case_results",
    "tracescore_scores",
    LOGS_TABLE,
    "tracescore_baselines",
    "tracescore_trace_arrivals",
    "tracescore_watch_state",
    "tracescore_watch_checkpoints",
]


def _format(store: Store, sql: str) -> str:
    """ClickHouse's own rendering of ``sql``: parsing it is the syntax check."""
    rows = store.query("SELECT formatQuery({q:String}) AS f", {"q": sql})
    formatted: str = rows[0]["f"]
    return formatted


def _sql_start(statement: str) -> str:
    """The statement without its leading comment lines."""
    lines = statement.splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("--")).lstrip()


def _single_and_cluster(database: str) -> list[tuple[str, list[str]]]:
    """Each single-server statement with the cluster statements it renders to."""
    pairs: list[tuple[str, list[str]]] = []
    for plain, rendered in zip(migrations(database), migrations(database, CLUSTER), strict=True):
        assert (plain.version, plain.name) == (rendered.version, rendered.name)
        remaining = list(rendered.statements)
        for statement in plain.statements:
            # A table (and a column added to one) becomes a local and a Distributed
            # table; a view stays one view.
            count = 2 if _sql_start(statement).startswith(("CREATE TABLE", "ALTER TABLE")) else 1
            pairs.append((statement, remaining[:count]))
            remaining = remaining[count:]
        assert remaining == []
    return pairs


def test_single_server_rendering_is_unchanged_by_the_cluster_option(store: Store) -> None:
    assert migrations(store.database, None) == migrations(store.database)
    db = f"`{store.database}`"
    assert setup_statements(store.database) == (
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.tracescore_schema_migrations "
        "(Version UInt32, Name String, AppliedAt DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree(AppliedAt) ORDER BY Version",
    )
    assert not any(
        "ON CLUSTER" in s or "Replicated" in s
        for m in migrations(store.database)
        for s in m.statements
    )


def test_every_cluster_statement_is_valid_clickhouse(store: Store) -> None:
    statements = [
        *setup_statements(store.database, CLUSTER),
        *(s for m in migrations(store.database, CLUSTER) for s in m.statements),
    ]
    for statement in statements:
        formatted = _format(store, statement)
        assert f" ON CLUSTER {CLUSTER}" in formatted.splitlines()[0], formatted


def test_cluster_tables_are_replicated_locals_behind_distributed_tables(store: Store) -> None:
    db = store.database
    expected_engines = {
        "otel_traces": ("MergeTree", "", "cityHash64(TraceId)"),
        "otel_traces_trace_id_ts": ("AggregatingMergeTree", "", "cityHash64(TraceId)"),
        "tracescore_runs": ("ReplacingMergeTree", "FinishedAt", "cityHash64(RunId)"),
        "tracescore_case_results": ("ReplacingMergeTree", "Timestamp", "cityHash64(RunId)"),
        "tracescore_scores": ("ReplacingMergeTree", "Timestamp", "cityHash64(TraceId)"),
        LOGS_TABLE: ("MergeTree", "", "rand()"),
        "tracescore_baselines": ("ReplacingMergeTree", "PromotedAt", "cityHash64(Suite)"),
        "tracescore_trace_arrivals": ("MergeTree", "", "cityHash64(TraceId)"),
        "tracescore_watch_state": ("ReplacingMergeTree", "ScoredAt", "cityHash64(Watcher)"),
        "tracescore_watch_checkpoints": (
            "ReplacingMergeTree",
            "UpdatedAt",
            "cityHash64(Watcher)",
        ),
    }
    seen: set[str] = set()
    for plain, rendered in _single_and_cluster(db):
        plain_formatted = _format(store, plain)
        if "MATERIALIZED VIEW" in plain:
            # The view reads and writes the local tables; nothing else changes.
            (view,) = rendered
            formatted = _format(store, view)
            target = plain_formatted.split(f"TO {db}.", 1)[1].split("\n", 1)[0]
            assert target in ("otel_traces_trace_id_ts", "tracescore_trace_arrivals")
            assert f"TO {db}.{target}_local\n" in formatted
            assert f"FROM {db}.otel_traces_local\n" in formatted
            unclustered = formatted.replace(f" ON CLUSTER {CLUSTER}", "")
            assert unclustered.replace("_local", "") == plain_formatted
            continue
        if _sql_start(plain).startswith("ALTER TABLE"):
            # The column goes to the local table on every node and to the Distributed one.
            local, distributed = (" ".join(_format(store, s).split()) for s in rendered)
            flat = " ".join(plain_formatted.split())
            table = flat.split(" ")[2].rsplit(".", 1)[1]
            assert local == flat.replace(
                f"{db}.{table} ", f"{db}.{table}_local ON CLUSTER {CLUSTER} ", 1
            )
            assert distributed == flat.replace(
                f"{db}.{table} ", f"{db}.{table} ON CLUSTER {CLUSTER} ", 1
            )
            continue
        local, distributed = rendered
        table = plain_formatted.splitlines()[0].rsplit(".", 1)[1]
        family, version, sharding_key = expected_engines[table]
        seen.add(table)
        # The local table is the single-server table renamed, ON CLUSTER, and replicated.
        args = f"{_ZK_ARGS}, {version}" if version else _ZK_ARGS
        expected_local = plain_formatted.replace(
            f"EXISTS {db}.{table}\n", f"EXISTS {db}.{table}_local ON CLUSTER {CLUSTER}\n", 1
        ).replace(
            f"ENGINE = {family}({version})\n" if version else f"ENGINE = {family}\n",
            f"ENGINE = Replicated{family}({args})\n",
            1,
        )
        assert expected_local != plain_formatted
        assert _format(store, local) == expected_local
        assert _format(store, distributed) == (
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {CLUSTER} "
            f"AS {db}.{table}_local\n"
            f"ENGINE = Distributed('{CLUSTER}', '{db}', '{table}_local', {sharding_key})"
        )
    assert seen == set(expected_engines)
    local, distributed = setup_statements(db, CLUSTER)[1:]
    assert f"ReplicatedReplacingMergeTree({_ZK_ARGS}, AppliedAt)" in _format(store, local)
    assert "ENGINE = Distributed(" in _format(store, distributed)


@pytest.fixture
def scratch_database(store: Store) -> Iterator[str]:
    name = f"{store.database}_cluster"
    yield name
    store.command(f"DROP DATABASE IF EXISTS `{name}`")


def test_cluster_local_and_distributed_tables_have_identical_columns(
    store: Store, scratch_database: str
) -> None:
    """Run the whole cluster script in chDB with only what needs a real cluster swapped out.

    chDB has neither a cluster nor Keeper, so ON CLUSTER is dropped, each Replicated
    engine becomes its plain family and each Distributed table a Merge table over the
    same local table: both are created ``AS`` the local table, which copies its
    columns the same way. Everything else runs as rendered.
    """
    db = scratch_database
    script = [
        *setup_statements(db, CLUSTER),
        *(s for m in migrations(db, CLUSTER) for s in m.statements),
    ]
    distributed: list[str] = []
    for statement in script:
        runnable, clusters = re.subn(f" ON CLUSTER `{CLUSTER}`", "", statement)
        assert clusters == 1
        runnable, replicated = re.subn(
            rf"Replicated(\w*MergeTree)\({re.escape(_ZK_ARGS)}(?:, )?", r"\1(", runnable
        )
        runnable, merged = re.subn(
            rf"ENGINE = Distributed\('{CLUSTER}', '{db}', '(\w+)', [^\n]+\)\Z",
            rf"ENGINE = Merge('{db}', '^\1$')",
            runnable,
        )
        if merged:
            distributed.append(runnable.split(".", 1)[1].split(" ", 1)[0])
        assert replicated + merged <= 1
        store.command(runnable)
    assert sorted(distributed) == sorted([*_CLUSTER_TABLES, MIGRATIONS_TABLE])
    columns = (
        "SELECT name, type, default_kind, default_expression, compression_codec, comment "
        "FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY position"
    )
    for table in distributed:
        local = store.query(columns, {"db": db, "t": f"{table}_local"})
        assert local, table
        assert store.query(columns, {"db": db, "t": table}) == local, table
    # The view fires on inserts into the local traces table and fills the local lookup.
    store.command(
        f"INSERT INTO `{db}`.otel_traces_local (Timestamp, TraceId, SpanId) "
        "VALUES ('2026-01-02 03:04:05', 'abc', '01')"
    )
    rows = store.query(f"SELECT TraceId, Start FROM `{db}`.otel_traces_trace_id_ts_local")
    assert [r["TraceId"] for r in rows] == ["abc"]
    arrivals = store.query(f"SELECT TraceId, Spans FROM `{db}`.tracescore_trace_arrivals_local")
    assert arrivals == [{"TraceId": "abc", "Spans": 1}]


@pytest.mark.parametrize(
    ("statement", "complaint"),
    [
        ("ALTER TABLE `otel`.t ADD COLUMN x String", "cannot render this statement"),
        ("CREATE TABLE IF NOT EXISTS `otel`.t (a String) ENGINE = Log", "no Replicated"),
        (
            "CREATE TABLE IF NOT EXISTS `otel`.t (a String) "
            "ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
            "no Replicated",
        ),
        ("CREATE TABLE IF NOT EXISTS `otel`.t (a String) ORDER BY a", "no ENGINE"),
        ("CREATE TABLE `otel`.t (a String) ENGINE = MergeTree ORDER BY a", "cannot render"),
        ("CREATE TABLE IF NOT EXISTS `other`.t (a String) ENGINE = MergeTree", "plain name"),
        (
            "CREATE TABLE IF NOT EXISTS `otel`.t (a String) ENGINE = ReplacingMergeTree "
            "ORDER BY tuple()",
            "no ORDER BY key",
        ),
        ("CREATE TABLE IF NOT EXISTS `otel`.t (a String ENGINE = MergeTree", "unbalanced"),
        ("CREATE TABLE IF NOT EXISTS `otel`.t (a String COMMENT 'x) ENGINE", "unterminated"),
        (
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.v AS SELECT a FROM `otel`.t",
            "cannot render",
        ),
        (
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.v TO `otel`.t AS SELECT a FROM t",
            "must read tables",
        ),
        (
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.v TO `otel`.t "
            "AS SELECT a FROM `otel`.unknown",
            "not a table created",
        ),
    ],
)
def test_cluster_rendering_refuses_what_it_cannot_convert(statement: str, complaint: str) -> None:
    renderer = _ClusterRenderer("otel", CLUSTER)
    renderer.render(
        "CREATE TABLE IF NOT EXISTS `otel`.t (a String) ENGINE = MergeTree ORDER BY a", "setup"
    )
    with pytest.raises(ConfigError, match=complaint):
        renderer.render(statement, "test")


def test_cluster_rendering_is_not_fooled_by_quoted_text() -> None:
    renderer = _ClusterRenderer("otel", CLUSTER)
    local, distributed = renderer.render(
        "-- ENGINE = Log ( in a comment\n"
        "CREATE TABLE IF NOT EXISTS `otel`.t (\n"
        "    `a.b` String COMMENT 'ORDER BY x) ENGINE = Log',\n"
        "    v UInt8\n"
        ") ENGINE = ReplacingMergeTree(v) ORDER BY (`a.b`, v)",
        "test",
    )
    assert local.endswith(
        f") ENGINE = ReplicatedReplacingMergeTree({_ZK_ARGS}, v) ORDER BY (`a.b`, v)"
    )
    assert "COMMENT 'ORDER BY x) ENGINE = Log'" in local
    assert distributed.endswith("'t_local', cityHash64(`a.b`))")


@pytest.mark.parametrize("cluster", ["", "my-cluster", "c1; DROP DATABASE x", "`c1`"])
def test_cluster_name_must_be_an_identifier(cluster: str) -> None:
    with pytest.raises(ConfigError, match="invalid cluster name"):
        migrations("otel", cluster)
    with pytest.raises(ConfigError, match="invalid cluster name"):
        setup_statements("otel", cluster)


# -- retention ------------------------------------------------------------------------


def test_retention_uses_the_exporters_ttl_expressions() -> None:
    # The clickhouseexporter's own `ttl` setting writes these, so either side can set it.
    assert retention_statements("otel", span_days=7) == (
        "ALTER TABLE `otel`.otel_traces MODIFY TTL toDateTime(Timestamp) + toIntervalDay(7)",
        "ALTER TABLE `otel`.otel_traces_trace_id_ts MODIFY TTL "
        "toDateTime(Start) + toIntervalDay(7)",
        "ALTER TABLE `otel`.otel_logs MODIFY TTL toDateTime(Timestamp) + toIntervalDay(7)",
    )
    assert retention_statements("otel", score_days=90) == (
        "ALTER TABLE `otel`.tracescore_scores MODIFY TTL toDateTime(Timestamp) + toIntervalDay(90)",
    )
    assert retention_statements("otel") == ()


def test_retention_on_a_cluster_changes_only_the_local_tables() -> None:
    statements = retention_statements("obs", span_days=3, score_days=30, cluster=CLUSTER)
    assert len(statements) == 4
    for statement in statements:
        assert re.match(
            rf"ALTER TABLE `obs`\.\w+_local ON CLUSTER `{CLUSTER}` MODIFY TTL toDateTime", statement
        ), statement
    assert statements[0].endswith(
        "otel_traces_local ON CLUSTER `c1` MODIFY TTL toDateTime(Timestamp) + toIntervalDay(3)"
    )


@pytest.mark.parametrize("days", [0, -1, True])
def test_retention_must_be_a_positive_number_of_days(days: int) -> None:
    with pytest.raises(ConfigError, match="whole number of days >= 1"):
        retention_statements("otel", span_days=days)


def test_cluster_ttl_is_refused_for_a_table_no_migration_made() -> None:
    renderer = _ClusterRenderer("otel", CLUSTER)
    with pytest.raises(ConfigError, match="not a table our migrations made"):
        renderer.render("ALTER TABLE `otel`.t MODIFY TTL toDateTime(x) + toIntervalDay(1)", "test")


def test_retention_can_be_changed_on_a_store(store: Store) -> None:
    def ttl(table: str) -> str:
        rows = store.query(
            "SELECT engine_full FROM system.tables "
            "WHERE database = {d:String} AND name = {t:String}",
            {"d": store.database, "t": table},
        )
        match = re.search(r"TTL (.*?) SETTINGS", str(rows[0]["engine_full"]))
        return match.group(1) if match else ""

    assert ttl("otel_traces") == ""
    for days in (7, 30):
        for statement in retention_statements(store.database, span_days=days):
            store.command(statement)
        assert ttl("otel_traces") == f"toDateTime(Timestamp) + toIntervalDay({days})"
        assert ttl("otel_traces_trace_id_ts") == f"toDateTime(Start) + toIntervalDay({days})"
        assert ttl("otel_logs") == f"toDateTime(Timestamp) + toIntervalDay({days})"
    assert "TTL" not in ttl("tracescore_scores")
