-- Promoted baselines: `tracescore promote RUN` appends one row, and a suite's baseline
-- is its newest row (ORDER BY PromotedAt DESC LIMIT 1). Every promotion is its own row
-- rather than one row per suite replaced in place, so the history of what was the
-- baseline when stays readable (who promoted which run, at which commit, and why).
-- ReplacingMergeTree only collapses a row written twice with the same (Suite,
-- PromotedAt), i.e. a retried insert; on a cluster it also shards by Suite, so one
-- suite's promotions live on one shard.
CREATE TABLE IF NOT EXISTS {database}.tracescore_baselines (
    Suite LowCardinality(String),
    RunId String,
    PromotedAt DateTime64(6, 'UTC'),
    GitSha String,
    GitDirty Bool,
    PromotedBy String,
    Note String
) ENGINE = ReplacingMergeTree(PromotedAt)
ORDER BY (Suite, PromotedAt);
