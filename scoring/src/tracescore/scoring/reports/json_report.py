"""The run as one JSON document for scripts (``tracescore run --json FILE``).

Its shape is documented in the README (CLI → Reports); a change that could break a
reader bumps ``FORMAT_VERSION``, adding a key does not.
"""

import json
import math
from datetime import UTC, datetime
from typing import Any

from tracescore.schemas.scores import Score
from tracescore.scoring.reports.summary import case_stats, evaluator_stats, repeat_stats
from tracescore.scoring.reports.text import unicode_safe
from tracescore.scoring.results import RunRecord, ScoredCase

FORMAT_VERSION = 1


def _iso(ns: int) -> str | None:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat() if ns else None


def _number(value: float | None) -> float | None:
    # JSON has no NaN or infinity; a strict reader would reject the whole document.
    return value if value is not None and math.isfinite(value) else None


def _score(score: Score, case: ScoredCase) -> dict[str, Any]:
    kind, config_hash = case.score_configs.get(score.evaluator, ("", ""))
    return {
        "evaluator": score.evaluator,
        "type": kind,
        "config_hash": config_hash,
        "value": _number(score.value),
        "passed": score.passed,
        "label": score.label,
        "explanation": score.explanation,
        "error": score.error,
        "skipped": score.skipped,
    }


def _case(case: ScoredCase) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "variant": case.variant,
        "repeat": case.repeat,
        "status": case.status,
        "error": case.error,
        "trace_id": case.trace_id,
        "duration_ms": case.duration_ns / 1e6,
        "span_count": case.span_count,
        "orphan_spans": case.orphan_spans,
        "tokens": {
            "input": case.input_tokens,
            "output": case.output_tokens,
            "total": case.input_tokens + case.output_tokens,
        },
        "input": case.input,
        "output": case.output,
        "scores": [_score(s, case) for s in case.scores],
    }


def _summary(run: RunRecord, evaluator_names: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant in run.variants:
        cases = case_stats(run, variant)
        evaluators: dict[str, Any] = {}
        for name in evaluator_names:
            stats = evaluator_stats(run, variant, name)
            evaluators[name] = {
                "passed": stats.passed,
                "failed": stats.failed,
                "errors": stats.errors,
                "skipped": stats.skipped,
                "unscored": stats.unscored,
                "pass_rate": stats.pass_rate,
                "mean": _number(stats.mean),
            }
        summary[variant] = {
            "cases": {
                "total": cases.total,
                "passed": cases.passed,
                "failed": cases.failed,
                "errors": cases.errors,
                "pass_rate": cases.pass_rate,
            },
            "evaluators": evaluators,
        }
        repeats = repeat_stats(run, variant)
        if repeats is not None:
            summary[variant]["repeats"] = {
                "k": repeats.k,
                "cases": repeats.cases,
                "pass_at_k": repeats.pass_at_k,
                "pass_hat_k": repeats.pass_hat_k,
            }
    return summary


def json_report(run: RunRecord, evaluator_names: list[str]) -> dict[str, Any]:
    """The report as plain JSON values."""
    counts = run.counts()
    return {
        "format_version": FORMAT_VERSION,
        "run": {
            "run_id": run.run_id,
            "suite": run.suite,
            "status": run.status,
            "config_path": run.config_path,
            "config_hash": run.config_hash,
            "dataset_hash": run.dataset_hash,
            "git_sha": run.git_sha,
            "git_dirty": run.git_dirty,
            "tracescore_version": run.version,
            "variant_key": run.variant_key,
            "variants": list(run.variants),
            "evaluators": list(evaluator_names),
            "started_at": _iso(run.started_ns),
            "finished_at": _iso(run.finished_ns),
            "duration_s": (run.finished_ns - run.started_ns) / 1e9 if run.finished_ns else None,
        },
        "totals": {
            "cases": len(run.cases),
            "passed": counts["passed"],
            "failed": counts["failed"],
            "errors": counts["error"],
        },
        "summary": _summary(run, evaluator_names),
        "cases": [_case(c) for c in run.cases],
    }


def render_json(run: RunRecord, evaluator_names: list[str]) -> str:
    text = json.dumps(
        json_report(run, evaluator_names), indent=2, allow_nan=False, ensure_ascii=False
    )
    # Every string is escaped by now; surrogates can only be inside string literals.
    return unicode_safe(text) + "\n"
