-- Online scoring (`tracescore watch`). A span's Timestamp is the sender's start time,
-- not when it reached the store, and nothing in otel_traces records arrival (inserts
-- from the OpenTelemetry Collector's exporter included). This view does: it runs on
-- every INSERT into otel_traces and writes one row per trace and insert block, stamped
-- with the server's clock at that moment. A trace is sealed when its newest arrival is
-- older than the quiet period, whatever clocks its senders have.
CREATE TABLE IF NOT EXISTS {database}.tracescore_trace_arrivals (
    InsertedAt DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    Spans UInt32
) ENGINE = MergeTree()
PARTITION BY toDate(InsertedAt)
ORDER BY (InsertedAt, TraceId)
TTL toDateTime(InsertedAt) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.tracescore_trace_arrivals_mv
TO {database}.tracescore_trace_arrivals
AS SELECT
    now64(3, 'UTC') AS InsertedAt,
    TraceId,
    toUInt32(count()) AS Spans
FROM {database}.otel_traces
WHERE TraceId != ''
GROUP BY TraceId;

-- What each watcher scored: one row per (watcher, trace), replaced on a re-score. A trace
-- is due again only when it has an arrival newer than LastArrival (a late span), and
-- only while that arrival is within the late-span window of FirstScoredAt.
CREATE TABLE IF NOT EXISTS {database}.tracescore_watch_state (
    Watcher String,
    TraceId String,
    LastArrival DateTime64(3, 'UTC'),
    SpanCount UInt32,
    Scores UInt32,
    ConfigHash String,
    FirstScoredAt DateTime64(6, 'UTC'),
    ScoredAt DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(ScoredAt)
PARTITION BY toYYYYMM(FirstScoredAt)
ORDER BY (Watcher, TraceId)
TTL toDateTime(ScoredAt) + INTERVAL 30 DAY;

-- Each watcher's checkpoint: every trace whose newest arrival is at or before Watermark
-- has been handled. The next poll reads arrivals from a little before it.
CREATE TABLE IF NOT EXISTS {database}.tracescore_watch_checkpoints (
    Watcher String,
    Watermark DateTime64(3, 'UTC'),
    ConfigHash String,
    UpdatedAt DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY (Watcher);
