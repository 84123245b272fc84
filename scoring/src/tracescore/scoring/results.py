"""Run and case results, and writing them (with their scores) to the store column-wise."""

import time
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
    now = _micros(time.time_ns())
    store.insert_arrow(
        CASE_RESULTS_TABLE,
        pa.table(
            {
                "RunId": [run.run_id],
                "Suite": [run.suite],
                "CaseId": [case.case_id],
                "Variant": [case.variant],
                "Repeat": pa.array([case.repeat], pa.uint32()),
                "TraceId": [case.trace_id],
                "Status": [case.status],
                "Error": [case.error or ""],
                "Input": [case.input],
                "Output": [case.output],
                "DurationNs": pa.array([case.duration_ns], pa.uint64()),
                "SpanCount": pa.array([case.span_count], pa.uint32()),
                "InputTokens": pa.array([case.input_tokens], pa.uint64()),
                "OutputTokens": pa.array([case.output_tokens], pa.uint64()),
                "Timestamp": pa.array([now], _TS),
            }
        ),
    )
    if not case.scores:
        return
    n = len(case.scores)
    configs = [case.score_configs.get(s.evaluator, ("", "")) for s in case.scores]
    store.insert_arrow(
        SCORES_TABLE,
        pa.table(
            {
                "Timestamp": pa.array([now] * n, _TS),
                "TraceId": [case.trace_id] * n,
                "RunId": [run.run_id] * n,
                "CaseId": [case.case_id] * n,
                "Variant": [case.variant] * n,
                "Evaluator": [s.evaluator for s in case.scores],
                "EvaluatorType": [c[0] for c in configs],
                "ConfigHash": [c[1] for c in configs],
                "Value": pa.array([s.value for s in case.scores], pa.float64()),
                "Passed": pa.array([s.passed for s in case.scores], pa.bool_()),
                "Label": [s.label for s in case.scores],
                "Explanation": [s.explanation for s in case.scores],
                "Error": [s.error or "" for s in case.scores],
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
