-- The priced model cost of each case's trace (NULL when no LLM call in it was priced),
-- so comparisons can show cost deltas without rebuilding every trace.
ALTER TABLE {database}.tracescore_case_results ADD COLUMN IF NOT EXISTS CostUsd Nullable(Float64);
