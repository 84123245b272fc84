"""Run and case results, and writing them (with their scores) to the store column-wise."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

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
    write_scores(
        store,
        run.run_id,
        [
            ScoreRow(
                c.trace_id, c.case_id, c.variant, s, *c.score_configs.get(s.evaluator, ("", ""))
            )
            for c in cases
            for s in c.scores
        ],
        now,
    )


class ScoreRow(NamedTuple):
    trace_id: str
    case_id: str
    """Empty for traces scored outside a suite (rescore, watch)."""
    variant: str
    score: Score
    evaluator_type: str
    config_hash: str


def write_scores(
    store: Store, run_id: str, rows: Sequence[ScoreRow], now_us: int | None = None
) -> None:
    """Score rows in one insert. The table keeps the newest row per (trace, evaluator,
    config hash), so writing a score again replaces it."""
    if not rows:
        return
    m = len(rows)
    now = _micros(time.time_ns()) if now_us is None else now_us
    store.insert_arrow(
        SCORES_TABLE,
        pa.table(
            {
                "Timestamp": pa.array([now] * m, _TS),
                "TraceId": [r.trace_id for r in rows],
                "RunId": [run_id] * m,
                "CaseId": [r.case_id for r in rows],
                "Variant": [r.variant for r in rows],
                "Evaluator": [r.score.evaluator for r in rows],
                "EvaluatorType": [r.evaluator_type for r in rows],
                "ConfigHash": [r.config_hash for r in rows],
                "Value": pa.array([r.score.value for r in rows], pa.float64()),
                "Passed": pa.array([r.score.passed for r in rows], pa.bool_()),
                "Label": [r.score.label for r in rows],
                "Explanation": [r.score.explanation for r in rows],
                "Error": [r.score.error or "" for r in rows],
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
