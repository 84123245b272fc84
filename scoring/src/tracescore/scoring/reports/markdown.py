"""A Markdown summary of a run, for a CI job summary or a pull-request comment."""

import re

from tracescore.scoring.reports.summary import (
    EvaluatorStats,
    case_stats,
    evaluator_stats,
    repeat_rows,
)
from tracescore.scoring.reports.text import printable
from tracescore.scoring.results import RunRecord

# Text from agents and evaluators must not turn into markup (a `|` would split a table
# cell, a `<tag>` would vanish on GitHub, `*` would start emphasis).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def _text(value: str) -> str:
    one_line = " ".join(printable(value).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)


def _rate(passed: int, counted: int) -> str:
    return f"{passed}/{counted} ({passed / counted:.0%})" if counted else "–"


def _evaluator_cell(stats: EvaluatorStats) -> str:
    cell = _rate(stats.passed, stats.passed + stats.failed + stats.errors)
    if stats.errors:
        cell += f", {stats.errors} error{'s' if stats.errors > 1 else ''}"
    return cell


def markdown_report(run: RunRecord, evaluator_names: list[str]) -> str:
    counts = run.counts()
    lines = [
        f"# tracescore: suite {_text(run.suite)}",
        "",
        f"Run `{run.run_id}` · git `{run.git_sha[:12] or 'unknown'}`"
        f"{' (dirty)' if run.git_dirty else ''} · tracescore {_text(run.version)}",
        "",
        f"**{len(run.cases)} cases: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors.**",
        "",
        "## Pass rate per evaluator",
        "",
        "| evaluator | " + " | ".join(_text(v) for v in run.variants) + " |",
        "|---|" + "---:|" * len(run.variants),
    ]
    for name in evaluator_names:
        cells = [_evaluator_cell(evaluator_stats(run, v, name)) for v in run.variants]
        lines.append(f"| {_text(name)} | " + " | ".join(cells) + " |")
    case_cells = []
    for variant in run.variants:
        stats = case_stats(run, variant)
        case_cells.append(_rate(stats.passed, stats.total))
    lines.append("| case (all evaluators) | " + " | ".join(case_cells) + " |")
    for label, cells in repeat_rows(run):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    failed = [c for c in run.cases if c.status == "failed"]
    if failed:
        lines += ["", "## Failing cases", ""]
        for case in failed:
            lines.append(
                f"- **{_text(case.case_id)}** [{_text(case.variant)}] trace `{case.trace_id}`"
            )
            for score in case.scores:
                if score.passed is False and not score.error:
                    lines.append(f"  - {_text(score.evaluator)}: {_text(score.explanation)}")

    errored = [c for c in run.cases if c.status == "error"]
    if errored:
        lines += ["", "## Errors", ""]
        for case in errored:
            lines.append(
                f"- **{_text(case.case_id)}** [{_text(case.variant)}] trace `{case.trace_id}`"
            )
            if case.error:
                lines.append(f"  - {_text(case.error)}")
            for score in case.scores:
                if score.error:
                    lines.append(f"  - {_text(score.evaluator)}: {_text(score.error)}")
            # An errored case can also have plain failures; they belong with it.
            for score in case.scores:
                if score.passed is False and not score.error:
                    lines.append(
                        f"  - {_text(score.evaluator)} (failed): {_text(score.explanation)}"
                    )
    return "\n".join(lines) + "\n"
