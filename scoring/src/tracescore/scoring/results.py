"""Run and case results, and writing them (with their scores) to the store column-wise."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from tracescore.collector.store import Store
from tracescore.schemas.ddl import CASE_RESULTS_TABLE, RUNS_TABLE, SCORES_TABLE
from tracescore.schemas.scores import Score

CaseStatus = Literal["passed", "failed", "error"]
_TS = pa.timestamp("us", tz="UTC")


@dataclass
class ScoredCase:
    case_id: str
    variant: str
    repeat: int
    trace_id: str
    status: CaseStatus
    input: str
    output: str
    error: str | None = None
    scores: list[Score] = field(default_factory=list)
    score_configs: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Evaluator name -> (type, config hash)."""
    duration_ns: int = 0
    span_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    orphan_spans: int = 0
    cost_usd: float | None = None
    """Priced model cost of the trace; None when no LLM call in it was priced."""


@dataclass
class RunRecord:
    run_id: str
    suite: str
    config_path: str
    variant_key: str
    variants: list[str]
    config_hash: str
    dataset_hash: str
    git_sha: str
    git_dirty: bool
    version: str
    started_ns: int
    finished_ns: int = 0
    status: str = "running"
    cases: list[ScoredCase] = field(default_factory=list)

    def counts(self) -> dict[CaseStatus, int]:
        totals: dict[CaseStatus, int] = {"passed": 0, "failed": 0, "error": 0}
        for case in self.cases:
            totals[case.status] += 1
        return totals


def _micros(ns: int) -> int:
    return ns // 1000


def write_case(store: Store, run: RunRecord, case: ScoredCase) -> None:
    write_cases(store, run, [case])


def write_cases(store: Store, run: RunRecord, cases: Sequence[ScoredCase]) -> None:
    """Case rows and their scores, one insert per table for the whole batch."""
    if not cases:
        return
    now = _micros(time.time_ns())
    n = len(cases)
    store.insert_arrow(
        CASE_RESULTS_TABLE,
        pa.table(
            {
                "RunId": [run.run_id] * n,
                "Suite": [run.suite] * n,
                "CaseId": [c.case_id for c in cases],
                "Variant": [c.variant for c in cases],
                "Repeat": pa.array([c.repeat for c in cases], pa.uint32()),
                "TraceId": [c.trace_id for c in cases],
                "Status": [c.status for c in cases],
                "Error": [c.error or "" for c in cases],
                "Input": [c.input for c in cases],
                "Output": [c.output for c in cases],
                "DurationNs": pa.array([c.duration_ns for c in cases], pa.uint64()),
                "SpanCount": pa.array([c.span_count for c in cases], pa.uint32()),
                "InputTokens": pa.array([c.input_tokens for c in cases], pa.uint64()),
                "OutputTokens": pa.array([c.output_tokens for c in cases], pa.uint64()),
                "CostUsd": pa.array([c.cost_usd for c in cases], pa.float64()),
                "Timestamp": pa.array([now] * n, _TS),
            }
        ),
    )
    scored = [(c, s) for c in cases for s in c.scores]
    if not scored:
        return
    m = len(scored)
    configs = [c.score_configs.get(s.evaluator, ("", "")) for c, s in scored]
    store.insert_arrow(
        SCORES_TABLE,
        pa.table(
            {
                "Timestamp": pa.array([now] * m, _TS),
                "TraceId": [c.trace_id for c, _ in scored],
                "RunId": [run.run_id] * m,
                "CaseId": [c.case_id for c, _ in scored],
                "Variant": [c.variant for c, _ in scored],
                "Evaluator": [s.evaluator for _, s in scored],
                "EvaluatorType": [t for t, _ in configs],
                "ConfigHash": [h for _, h in configs],
                "Value": pa.array([s.value for _, s in scored], pa.float64()),
                "Passed": pa.array([s.passed for _, s in scored], pa.bool_()),
                "Label": [s.label for _, s in scored],
                "Explanation": [s.explanation for _, s in scored],
                "Error": [s.error or "" for _, s in scored],
            }
        ),
    )


def write_run(store: Store, run: RunRecord) -> None:
    counts = run.counts()
    store.insert_arrow(
        RUNS_TABLE,
        pa.table(
            {
                "RunId": [run.run_id],
                "Suite": [run.suite],
                "StartedAt": pa.array([_micros(run.started_ns)], _TS),
                "FinishedAt": pa.array([_micros(run.finished_ns or time.time_ns())], _TS),
                "Status": [run.status],
                "VariantKey": [run.variant_key],
                "Variants": pa.array([run.variants], pa.list_(pa.string())),
                "ConfigPath": [run.config_path],
                "ConfigHash": [run.config_hash],
                "DatasetHash": [run.dataset_hash],
                "GitSha": [run.git_sha],
                "GitDirty": [run.git_dirty],
                "TracescoreVersion": [run.version],
                "CaseCount": pa.array([len(run.cases)], pa.uint32()),
                "PassedCount": pa.array([counts["passed"]], pa.uint32()),
                "FailedCount": pa.array([counts["failed"]], pa.uint32()),
                "ErrorCount": pa.array([counts["error"]], pa.uint32()),
            }
        ),
    )
