-- setup: database and applied-migrations table
CREATE DATABASE IF NOT EXISTS `otel` ON CLUSTER `tracescore`;

CREATE TABLE IF NOT EXISTS `otel`.tracescore_schema_migrations_local ON CLUSTER `tracescore` (Version UInt32, Name String, AppliedAt DateTime64(3, 'UTC')) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', AppliedAt) ORDER BY Version;

CREATE TABLE IF NOT EXISTS `otel`.tracescore_schema_migrations ON CLUSTER `tracescore` AS `otel`.tracescore_schema_migrations_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_schema_migrations_local', cityHash64(Version));

-- migration 0001_otel_traces
-- Column-for-column the table the OpenTelemetry Collector contrib clickhouseexporter
-- creates (bloom-filter index variant), so tables filled by either writer are interchangeable.
CREATE TABLE IF NOT EXISTS `otel`.otel_traces_local ON CLUSTER `tracescore` (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS `otel`.otel_traces ON CLUSTER `tracescore` AS `otel`.otel_traces_local
ENGINE = Distributed('tracescore', 'otel', 'otel_traces_local', cityHash64(TraceId));

CREATE TABLE IF NOT EXISTS `otel`.otel_traces_trace_id_ts_local ON CLUSTER `tracescore` (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS `otel`.otel_traces_trace_id_ts ON CLUSTER `tracescore` AS `otel`.otel_traces_trace_id_ts_local
ENGINE = Distributed('tracescore', 'otel', 'otel_traces_trace_id_ts_local', cityHash64(TraceId));

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.otel_traces_trace_id_ts_mv ON CLUSTER `tracescore`
TO `otel`.otel_traces_trace_id_ts_local
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp) AS End
FROM `otel`.otel_traces_local
WHERE TraceId != ''
GROUP BY TraceId;

-- migration 0002_tracescore_tables
-- tracescore's own tables. ReplacingMergeTree keyed on identity so that writing
-- the same run, case result or score again replaces it instead of duplicating it
-- (read with FINAL, or argMax on the version column, for exact answers before merges).
CREATE TABLE IF NOT EXISTS `otel`.tracescore_runs_local ON CLUSTER `tracescore` (
    RunId String,
    Suite LowCardinality(String),
    StartedAt DateTime64(6, 'UTC'),
    FinishedAt DateTime64(6, 'UTC'),
    Status LowCardinality(String),
    VariantKey LowCardinality(String),
    Variants Array(String),
    ConfigPath String,
    ConfigHash String,
    DatasetHash String,
    GitSha String,
    GitDirty Bool,
    TracescoreVersion LowCardinality(String),
    CaseCount UInt32,
    PassedCount UInt32,
    FailedCount UInt32,
    ErrorCount UInt32
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', FinishedAt)
ORDER BY (RunId);

CREATE TABLE IF NOT EXISTS `otel`.tracescore_runs ON CLUSTER `tracescore` AS `otel`.tracescore_runs_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_runs_local', cityHash64(RunId));

CREATE TABLE IF NOT EXISTS `otel`.tracescore_case_results_local ON CLUSTER `tracescore` (
    RunId String,
    Suite LowCardinality(String),
    CaseId String,
    Variant LowCardinality(String),
    Repeat UInt32,
    TraceId String,
    Status LowCardinality(String),
    Error String,
    Input String,
    Output String,
    DurationNs UInt64,
    SpanCount UInt32,
    InputTokens UInt64,
    OutputTokens UInt64,
    Timestamp DateTime64(6, 'UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Timestamp)
ORDER BY (RunId, CaseId, Variant, Repeat);

CREATE TABLE IF NOT EXISTS `otel`.tracescore_case_results ON CLUSTER `tracescore` AS `otel`.tracescore_case_results_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_case_results_local', cityHash64(RunId));

CREATE TABLE IF NOT EXISTS `otel`.tracescore_scores_local ON CLUSTER `tracescore` (
    Timestamp DateTime64(6, 'UTC'),
    TraceId String,
    RunId String,
    CaseId String,
    Variant LowCardinality(String),
    Evaluator LowCardinality(String),
    EvaluatorType LowCardinality(String),
    ConfigHash String,
    Value Nullable(Float64),
    Passed Nullable(Bool),
    Label LowCardinality(String),
    Explanation String,
    Error String,
    INDEX idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', Timestamp)
PARTITION BY toYYYYMM(Timestamp)
ORDER BY (TraceId, Evaluator, ConfigHash);

CREATE TABLE IF NOT EXISTS `otel`.tracescore_scores ON CLUSTER `tracescore` AS `otel`.tracescore_scores_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_scores_local', cityHash64(TraceId));

-- migration 0003_otel_logs
-- Column-for-column the otel_logs table the OpenTelemetry Collector contrib clickhouseexporter
-- creates (internal/sqltemplates/logs_table.sql as of v0.161/v0.162, after PR #47720: no
-- TimestampTime, __otel_materialized_* resource columns, five-minute-bucket ORDER BY), in its
-- bloom-filter index variant and without TTL, so log records written by either side are
-- interchangeable and Grafana's ClickHouse log view works on ours.
CREATE TABLE IF NOT EXISTS `otel`.otel_logs_local ON CLUSTER `tracescore` (
    `Timestamp` DateTime64(9) COMMENT 'Event timestamp with nanosecond precision' CODEC(Delta(8), ZSTD(1)),
    `TraceId` String COMMENT 'W3C trace identifier' CODEC(ZSTD(1)),
    `SpanId` String COMMENT 'W3C span identifier' CODEC(ZSTD(1)),
    `TraceFlags` UInt8 COMMENT 'W3C trace flags',
    `SeverityText` LowCardinality(String) COMMENT 'Log severity as text' CODEC(ZSTD(1)),
    `SeverityNumber` UInt8 COMMENT 'Log severity as number (1-24)',
    `ServiceName` LowCardinality(String) COMMENT 'Service that emitted the log' CODEC(ZSTD(1)),
    `Body` String COMMENT 'Log message body' CODEC(ZSTD(1)),
    `ResourceSchemaUrl` LowCardinality(String) COMMENT 'Schema URL for the resource' CODEC(ZSTD(1)),
    `ResourceAttributes` Map(LowCardinality(String), String) COMMENT 'Resource attributes as key-value pairs' CODEC(ZSTD(1)),
    `ScopeSchemaUrl` LowCardinality(String) COMMENT 'Schema URL for the instrumentation scope' CODEC(ZSTD(1)),
    `ScopeName` String COMMENT 'Instrumentation scope name' CODEC(ZSTD(1)),
    `ScopeVersion` LowCardinality(String) COMMENT 'Instrumentation scope version' CODEC(ZSTD(1)),
    `ScopeAttributes` Map(LowCardinality(String), String) COMMENT 'Instrumentation scope attributes' CODEC(ZSTD(1)),
    `LogAttributes` Map(LowCardinality(String), String) COMMENT 'Log record attributes' CODEC(ZSTD(1)),
    `EventName` String COMMENT 'Event name for log records representing events' CODEC(ZSTD(1)),
    `__otel_materialized_k8s.cluster.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.cluster.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.container.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.container.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.deployment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.deployment.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.namespace.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.namespace.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.node.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.node.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.name` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.uid` LowCardinality(String) MATERIALIZED ResourceAttributes['k8s.pod.uid'] CODEC(ZSTD(1)),
    `__otel_materialized_deployment.environment.name` LowCardinality(String) MATERIALIZED ResourceAttributes['deployment.environment.name'] CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_lower_body lower(Body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toDate(Timestamp)
ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS `otel`.otel_logs ON CLUSTER `tracescore` AS `otel`.otel_logs_local
ENGINE = Distributed('tracescore', 'otel', 'otel_logs_local', rand());

-- migration 0004_tracescore_baselines
-- Promoted baselines: `tracescore promote RUN` appends one row, and a suite's baseline
-- is its newest row (ORDER BY PromotedAt DESC LIMIT 1). Every promotion is its own row
-- rather than one row per suite replaced in place, so the history of what was the
-- baseline when stays readable (who promoted which run, at which commit, and why).
-- ReplacingMergeTree only collapses a row written twice with the same (Suite,
-- PromotedAt), i.e. a retried insert; on a cluster it also shards by Suite, so one
-- suite's promotions live on one shard.
CREATE TABLE IF NOT EXISTS `otel`.tracescore_baselines_local ON CLUSTER `tracescore` (
    Suite LowCardinality(String),
    RunId String,
    PromotedAt DateTime64(6, 'UTC'),
    GitSha String,
    GitDirty Bool,
    PromotedBy String,
    Note String
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', PromotedAt)
ORDER BY (Suite, PromotedAt);

CREATE TABLE IF NOT EXISTS `otel`.tracescore_baselines ON CLUSTER `tracescore` AS `otel`.tracescore_baselines_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_baselines_local', cityHash64(Suite));

-- migration 0005_case_cost
ALTER TABLE `otel`.tracescore_case_results_local ON CLUSTER `tracescore` ADD COLUMN IF NOT EXISTS CostUsd Nullable(Float64);

ALTER TABLE `otel`.tracescore_case_results ON CLUSTER `tracescore` ADD COLUMN IF NOT EXISTS CostUsd Nullable(Float64);

-- migration 0006_watch_checkpoints
-- Online scoring (`tracescore watch`). A span's Timestamp is the sender's start time,
-- not when it reached the store, and nothing in otel_traces records arrival (inserts
-- from the OpenTelemetry Collector's exporter included). This view does: it runs on
-- every INSERT into otel_traces and writes one row per trace and insert block, stamped
-- with the server's clock at that moment. A trace is sealed when its newest arrival is
-- older than the quiet period, whatever clocks its senders have.
CREATE TABLE IF NOT EXISTS `otel`.tracescore_trace_arrivals_local ON CLUSTER `tracescore` (
    InsertedAt DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    Spans UInt32
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toDate(InsertedAt)
ORDER BY (InsertedAt, TraceId)
TTL toDateTime(InsertedAt) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS `otel`.tracescore_trace_arrivals ON CLUSTER `tracescore` AS `otel`.tracescore_trace_arrivals_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_trace_arrivals_local', cityHash64(TraceId));

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.tracescore_trace_arrivals_mv ON CLUSTER `tracescore`
TO `otel`.tracescore_trace_arrivals_local
AS SELECT
    now64(3, 'UTC') AS InsertedAt,
    TraceId,
    toUInt32(count()) AS Spans
FROM `otel`.otel_traces_local
WHERE TraceId != ''
GROUP BY TraceId;

-- What each watcher scored: one row per (watcher, trace), replaced on a re-score. A trace
-- is due again only when it has an arrival newer than LastArrival (a late span), and
-- only while that arrival is within the late-span window of FirstScoredAt.
CREATE TABLE IF NOT EXISTS `otel`.tracescore_watch_state_local ON CLUSTER `tracescore` (
    Watcher String,
    TraceId String,
    LastArrival DateTime64(3, 'UTC'),
    SpanCount UInt32,
    Scores UInt32,
    ConfigHash String,
    FirstScoredAt DateTime64(6, 'UTC'),
    ScoredAt DateTime64(6, 'UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', ScoredAt)
PARTITION BY toYYYYMM(FirstScoredAt)
ORDER BY (Watcher, TraceId)
TTL toDateTime(ScoredAt) + INTERVAL 30 DAY;

CREATE TABLE IF NOT EXISTS `otel`.tracescore_watch_state ON CLUSTER `tracescore` AS `otel`.tracescore_watch_state_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_watch_state_local', cityHash64(Watcher));

-- Each watcher's checkpoint: every trace whose newest arrival is at or before Watermark
-- has been handled. The next poll reads arrivals from a little before it.
CREATE TABLE IF NOT EXISTS `otel`.tracescore_watch_checkpoints_local ON CLUSTER `tracescore` (
    Watcher String,
    Watermark DateTime64(3, 'UTC'),
    ConfigHash String,
    UpdatedAt DateTime64(6, 'UTC')
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', UpdatedAt)
ORDER BY (Watcher);

CREATE TABLE IF NOT EXISTS `otel`.tracescore_watch_checkpoints ON CLUSTER `tracescore` AS `otel`.tracescore_watch_checkpoints_local
ENGINE = Distributed('tracescore', 'otel', 'tracescore_watch_checkpoints_local', cityHash64(Watcher));

-- migration 0007_arrival_sources
ALTER TABLE `otel`.tracescore_trace_arrivals_local ON CLUSTER `tracescore` ADD COLUMN IF NOT EXISTS Source LowCardinality(String) DEFAULT '';

ALTER TABLE `otel`.tracescore_trace_arrivals ON CLUSTER `tracescore` ADD COLUMN IF NOT EXISTS Source LowCardinality(String) DEFAULT '';
