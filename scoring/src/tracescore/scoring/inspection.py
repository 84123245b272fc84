"""``tracescore runs`` and ``tracescore inspect``: stored runs and their traces in the terminal."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tracescore.collector.store import Store
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.trace import LlmCall, SpanNode, ToolCall, Trace
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.results import RunRecord, ScoredCase
from tracescore.scoring.runs import RunSummary
from tracescore.scoring.traces import load_traces

_STATUS_STYLE = {"passed": "green", "failed": "red", "error": "yellow", "running": "yellow"}
# Tool arguments and results are often whole documents; a tree line shows their start.
SHORT = 120


def shorten(value: Any, limit: int = SHORT) -> str:
    """``value`` on one line (JSON unless it is text), cut to ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(ns: int) -> str:
    if not ns:
        return "–"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def runs_table(summaries: Sequence[RunSummary]) -> Table:
    table = Table(title="Runs (newest first; times in UTC)", title_justify="left")
    table.add_column("run id", no_wrap=True)
    table.add_column("suite")
    table.add_column("started", no_wrap=True)
    table.add_column("variants", style="cyan")
    table.add_column("passed", justify="right", style="green")
    table.add_column("failed", justify="right", style="red")
    table.add_column("errors", justify="right", style="yellow")
    table.add_column("git sha", no_wrap=True)
    for summary in summaries:
        run = summary.run
        sha = run.git_sha[:12] + ("+dirty" if run.git_dirty else "") if run.git_sha else "–"
        status = "" if run.status == "finished" else f" ({run.status})"
        table.add_row(
            Text(run.run_id),
            Text(run.suite + status),
            _when(run.started_ns),
            Text(", ".join(run.variants)),
            str(summary.passed),
            str(summary.failed),
            str(summary.errors),
            sha,
        )
    return table


def select_cases(
    run: RunRecord, case_ids: Sequence[str] = (), variants: Sequence[str] = ()
) -> list[ScoredCase]:
    """The run's cases filtered by id and variant; a name the run lacks is an error."""
    for wanted, known, flag in (
        (case_ids, {c.case_id for c in run.cases}, "--case"),
        (variants, {c.variant for c in run.cases}, "--variant"),
    ):
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ConfigError(
                f"{flag} {', '.join(unknown)}: not in run {run.run_id} "
                f"(it has: {', '.join(sorted(known)) or 'no cases'})"
            )
    return [
        c
        for c in run.cases
        if (not case_ids or c.case_id in case_ids) and (not variants or c.variant in variants)
    ]


def _tokens(call: LlmCall) -> str:
    def count(n: int | None) -> str:
        return "?" if n is None else str(n)

    cached = f", cached {call.cached_input_tokens}" if call.cached_input_tokens else ""
    return f"tokens in {count(call.input_tokens)}/out {count(call.output_tokens)}{cached}"


def _cost(usd: float | None) -> str:
    return "unpriced" if usd is None else f"${usd:.6f}"


def _span_label(
    node: SpanNode,
    start_ns: int,
    llm: dict[str, list[LlmCall]],
    tools: dict[str, list[ToolCall]],
) -> RenderableType:
    span = node.span
    head = Text()
    if span.is_error:
        head.append("✗ ", style="bold red")
    head.append(span.name, style="bold red" if span.is_error else "bold")
    head.append(f"  {_ms(span.duration_ns)}", style="magenta")
    head.append(f"  @+{_ms(span.start_ns - start_ns)}", style="dim")
    if span.is_error:
        head.append(f"  error: {span.status_message or 'status Error'}", style="red")
    lines: list[RenderableType] = [head]
    for call in llm.get(span.span_id, []):
        detail = Text("  ")
        detail.append(f"llm {call.model or 'unknown model'}", style="cyan")
        detail.append(f"  {_tokens(call)}  {_cost(call.cost_usd)}")
        if call.error:
            detail.append(f"  error: {call.error}", style="red")
        lines.append(detail)
    for tool in tools.get(span.span_id, []):
        detail = Text("  ")
        detail.append(f"tool {tool.name}", style="cyan")
        detail.append(f"  args {shorten(tool.arguments)}")
        lines.append(detail)
        result = Text("    ")
        if tool.error:
            result.append(f"→ error: {shorten(tool.error)}", style="red")
        else:
            result.append(f"→ {shorten(tool.result)}", style="green")
        lines.append(result)
    return lines[0] if len(lines) == 1 else Group(*lines)


def trace_tree(trace: Trace, title: Text | str) -> Tree:
    """The trace's spans as a tree: name, duration, offset from the trace's start, errors,
    and what the span was as an LLM call (model, tokens, cost) or a tool call."""
    tree = Tree(title)
    if not trace.spans:
        tree.add(Text(f"no spans stored for trace {trace.trace_id}", style="yellow"))
        return tree
    start = min(s.start_ns for s in trace.spans)
    llm: dict[str, list[LlmCall]] = {}
    for call in trace.llm_calls:
        llm.setdefault(call.span_id, []).append(call)
    tools: dict[str, list[ToolCall]] = {}
    for tool in trace.tool_calls:
        tools.setdefault(tool.span_id, []).append(tool)

    def add(parent: Tree, node: SpanNode) -> None:
        branch = parent.add(_span_label(node, start, llm, tools))
        for child in node.children:
            add(branch, child)

    for root in trace.roots:
        add(tree, root)
    if trace.orphans:
        lost = tree.add(Text("orphans (parent span never arrived)", style="yellow"))
        for orphan in trace.orphans:
            add(lost, orphan)
    return tree


def _score_line(score: Score) -> Text:
    line = Text("  ")
    if score.skipped:
        line.append("skip ", style="dim")
    elif score.error:
        line.append("error", style="yellow")
    elif score.passed:
        line.append("pass ", style="green")
    else:
        line.append("FAIL ", style="bold red")
    line.append(f" {score.evaluator}", style="bold")
    if score.value is not None:
        line.append(f" ({score.value:g})")
    detail = score.error or score.explanation
    if detail:
        line.append(f": {detail}")
    return line


def case_view(case: ScoredCase, trace: Trace) -> list[RenderableType]:
    """One case × variant: heading, the trace tree with totals, then each score."""
    title = Text()
    title.append(case.case_id, style="bold")
    title.append(f" [{case.variant}]", style="cyan")
    if case.repeat:
        title.append(f" repeat {case.repeat}")
    title.append(f" {case.status}", style=_STATUS_STYLE.get(case.status, ""))
    title.append(f"  trace {case.trace_id}", style="dim")
    parts: list[RenderableType] = [title]
    totals = Text(
        f"  {_ms(trace.duration_ns)}, {len(trace.spans)} spans, {len(trace.llm_calls)} LLM "
        f"calls (tokens in {trace.input_tokens}/out {trace.output_tokens}"
        f"{f', cached {trace.cached_input_tokens}' if trace.cached_input_tokens else ''}, "
        f"{_cost(trace.cost_usd)}), {len(trace.tool_calls)} tool calls",
        style="dim",
    )
    parts.append(totals)
    parts.append(Text(f"  input:  {shorten(case.input, 200)}"))
    parts.append(Text(f"  output: {shorten(case.output, 200)}"))
    if case.error:
        parts.append(Text(f"  error: {case.error}", style="yellow"))
    parts.append(trace_tree(trace, Text("spans", style="dim")))
    if case.scores:
        parts.append(Text("scores", style="dim"))
        parts.extend(_score_line(s) for s in case.scores)
    return parts


def print_inspection(
    console: Console,
    store: Store,
    run: RunRecord,
    cases: Sequence[ScoredCase],
    prices: PriceTable | None = None,
) -> None:
    heading = Text()
    heading.append(f"run {run.run_id}", style="bold")
    heading.append(f"  suite {run.suite}, started {_when(run.started_ns)} UTC, {run.status}")
    console.print(heading)
    traces = load_traces(
        store,
        [c.trace_id for c in cases if c.trace_id],
        prices if prices is not None else PriceTable.with_overrides(),
    )
    for case in cases:
        trace = traces.get(case.trace_id) or Trace(trace_id=case.trace_id, spans=[], roots=[])
        console.print()
        for part in case_view(case, trace):
            console.print(part)
