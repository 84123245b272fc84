-- tracescore's own tables. ReplacingMergeTree keyed on identity so that writing
-- the same run, case result or score again replaces it instead of duplicating it
-- (read with FINAL, or argMax on the version column, for exact answers before merges).
CREATE TABLE IF NOT EXISTS {database}.tracescore_runs (
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
) ENGINE = ReplacingMergeTree(FinishedAt)
ORDER BY (RunId);

CREATE TABLE IF NOT EXISTS {database}.tracescore_case_results (
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
) ENGINE = ReplacingMergeTree(Timestamp)
ORDER BY (RunId, CaseId, Variant, Repeat);

CREATE TABLE IF NOT EXISTS {database}.tracescore_scores (
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
) ENGINE = ReplacingMergeTree(Timestamp)
PARTITION BY toYYYYMM(Timestamp)
ORDER BY (TraceId, Evaluator, ConfigHash);
