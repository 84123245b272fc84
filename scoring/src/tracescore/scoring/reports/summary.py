"""Per variant × evaluator counts, shared by the JSON and Markdown reports.

The pass rate is computed as the terminal summary computes it: over the scores that
were decided or errored (skipped ones left out), so every report agrees with what
``tracescore run`` printed.
"""

import math
from dataclasses import dataclass

from tracescore.scoring.results import RunRecord
from tracescore.scoring.stats import pass_at_k, pass_hat_k


@dataclass(frozen=True)
class EvaluatorStats:
    passed: int
    failed: int
    errors: int
    """Scores whose evaluator raised or lacked a field it needs."""
    skipped: int
    unscored: int
    """Cases of the variant that errored before scoring (the SUT failed): no score at all."""
    mean: float | None
    """Mean of the finite values, None when no score had one."""

    @property
    def pass_rate(self) -> float | None:
        counted = self.passed + self.failed + self.errors
        return self.passed / counted if counted else None


@dataclass(frozen=True)
class CaseStats:
    total: int
    passed: int
    failed: int
    errors: int

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.total if self.total else None


def evaluator_stats(run: RunRecord, variant: str, evaluator: str) -> EvaluatorStats:
    passed = failed = errors = skipped = unscored = 0
    values: list[float] = []
    for case in run.cases:
        if case.variant != variant:
            continue
        score = next((s for s in case.scores if s.evaluator == evaluator), None)
        if score is None:
            unscored += case.status == "error"
            continue
        if score.skipped:
            skipped += 1
            continue
        if score.error:
            errors += 1
        elif score.passed is False:
            failed += 1
        else:
            # passed None without error or skip: the runner counts it as a pass too.
            passed += 1
        if score.value is not None and math.isfinite(score.value):
            values.append(score.value)
    mean = sum(values) / len(values) if values else None
    return EvaluatorStats(passed, failed, errors, skipped, unscored, mean)


def case_stats(run: RunRecord, variant: str) -> CaseStats:
    statuses = [c.status for c in run.cases if c.variant == variant]
    return CaseStats(
        total=len(statuses),
        passed=statuses.count("passed"),
        failed=statuses.count("failed"),
        errors=statuses.count("error"),
    )


@dataclass(frozen=True)
class RepeatStats:
    """Over cases run ``k`` times: the mean over cases of pass@k (at least one of the
    k runs passed, all evaluators) and pass^k (all k passed)."""

    k: int
    cases: int
    pass_at_k: float
    pass_hat_k: float


def repeat_stats(run: RunRecord, variant: str) -> RepeatStats | None:
    """None unless the variant's cases were repeated. Cases with fewer stored repeats
    (a stopped run) count with the repeats they have, as unbiased estimates need n ≥ k:
    k is the smallest repeat count among the cases."""
    outcomes: dict[str, list[bool]] = {}
    for case in run.cases:
        if case.variant == variant:
            outcomes.setdefault(case.case_id, []).append(case.status == "passed")
    if not outcomes:
        return None
    k = min(len(runs) for runs in outcomes.values())
    if max(len(runs) for runs in outcomes.values()) < 2:
        return None
    at = [pass_at_k(len(r), sum(r), k) for r in outcomes.values()]
    hat = [pass_hat_k(len(r), sum(r), k) for r in outcomes.values()]
    return RepeatStats(k, len(outcomes), sum(at) / len(at), sum(hat) / len(hat))


def repeat_rows(run: RunRecord) -> list[tuple[str, list[str]]]:
    """The summary rows ``case pass@k`` and ``case pass^k``, one cell per variant (``–``
    for a variant without repeats); none when no variant was repeated."""
    repeated = [repeat_stats(run, v) for v in run.variants]
    if all(r is None for r in repeated):
        return []
    k = min(r.k for r in repeated if r is not None)
    return [
        (f"case pass@{k}", [f"{r.pass_at_k:.0%}" if r else "–" for r in repeated]),
        (f"case pass^{k}", [f"{r.pass_hat_k:.0%}" if r else "–" for r in repeated]),
    ]
