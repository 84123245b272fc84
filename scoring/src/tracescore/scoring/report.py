"""The terminal summary of a run."""

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tracescore.schemas.scores import Score
from tracescore.scoring.reports.summary import repeat_rows
from tracescore.scoring.results import RunRecord, ScoredCase

_STATUS_STYLE = {"passed": "green", "failed": "red", "error": "yellow"}


def _mark(score: Score | None) -> Text:
    if score is None or score.skipped:
        return Text("–", style="dim")
    if score.error:
        return Text("error", style="yellow")
    return Text("pass", style="green") if score.passed else Text("FAIL", style="bold red")


def _rate(decided: list[bool]) -> str:
    passed = sum(decided)
    return f"{passed}/{len(decided)} ({passed / len(decided):.0%})" if decided else "–"


def case_line(case: ScoredCase) -> Text:
    """One progress line as a case finishes."""
    line = Text()
    line.append(f"{case.status:>6} ", style=_STATUS_STYLE[case.status])
    line.append(f"{case.case_id} ")
    line.append(f"[{case.variant}]", style="cyan")
    if case.repeat:
        line.append(f" #{case.repeat + 1}", style="cyan")
    line.append(f"  {case.duration_ns / 1e6:.0f} ms, {case.span_count} spans", style="dim")
    if case.orphan_spans:
        line.append(f"  {case.orphan_spans} orphan span(s): parent never arrived", style="yellow")
    if case.error:
        line.append(f"  {case.error}", style="yellow")
    return line


def print_summary(console: Console, run: RunRecord, evaluator_names: list[str], store: str) -> None:
    cases = Table(title=f"Cases — run {run.run_id}", title_justify="left")
    cases.add_column("case")
    cases.add_column("variant", style="cyan")
    cases.add_column("result")
    for name in evaluator_names:
        cases.add_column(name, justify="center")
    cases.add_column("latency", justify="right")
    cases.add_column("tokens", justify="right")
    for case in run.cases:
        by_name = {s.evaluator: s for s in case.scores}
        cases.add_row(
            case.case_id + (f" #{case.repeat + 1}" if case.repeat else ""),
            case.variant,
            Text(case.status, style=_STATUS_STYLE[case.status]),
            *[_mark(by_name.get(n)) for n in evaluator_names],
            f"{case.duration_ns / 1e6:.0f} ms",
            str(case.input_tokens + case.output_tokens),
        )
    console.print(cases)

    rates = Table(title="Pass rate per evaluator", title_justify="left")
    rates.add_column("evaluator")
    for variant in run.variants:
        rates.add_column(variant, justify="right", style="cyan")
    for name in evaluator_names:
        cells = []
        for variant in run.variants:
            scores = [s for c in run.cases if c.variant == variant for s in c.scores]
            cells.append(
                _rate([bool(s.passed) for s in scores if s.evaluator == name and not s.skipped])
            )
        rates.add_row(name, *cells)
    rates.add_row(
        "case (all evaluators)",
        *[_rate([c.status == "passed" for c in run.cases if c.variant == v]) for v in run.variants],
    )
    for label, cells in repeat_rows(run):
        rates.add_row(label, *cells)
    console.print(rates)

    problems = [c for c in run.cases if c.status != "passed"]
    if problems:
        console.print(Text("Failures and errors", style="bold"))
        for case in problems:
            head = Text(f"  {case.case_id} [{case.variant}] ", style=_STATUS_STYLE[case.status])
            console.print(head + Text(f"trace {case.trace_id}", style="dim"))
            if case.error:
                console.print(f"      {case.error}", style="yellow", markup=False, highlight=False)
            for score in case.scores:
                if score.passed is False or score.error:
                    detail = score.error or score.explanation
                    console.print(
                        f"      {score.evaluator}: {detail}", markup=False, highlight=False
                    )
    counts = run.counts()
    console.print(
        f"{len(run.cases)} cases: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors. Stored in {store}.",
        markup=False,
        highlight=False,
    )
