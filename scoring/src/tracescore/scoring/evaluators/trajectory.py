"""Evaluators on what the agent did: its tool calls, steps, spans and errors."""

import json
from collections import Counter
from fnmatch import fnmatchcase
from typing import Any, Literal, Self

import jsonpath
from pydantic import Field, ValidationInfo, field_validator, model_validator

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import ToolCall, Trace
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    register,
)


class ToolCalledParams(EvaluatorParams):
    tool: str | list[str] | None = None
    """Tool name(s) that must each be called; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "tools"
    arguments: dict[str, Any] | None = None
    """If set, at least ``min_times`` calls of each tool must have matching arguments."""
    match: Literal["subset", "exact", "jsonpath"] = "subset"
    """``subset``: the call's arguments contain these keys and values (recursively);
    ``exact``: they are equal; ``jsonpath``: each key is a JSONPath (RFC 9535) into the
    arguments and some value it selects equals the given value."""
    min_times: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _paths_compile(self) -> Self:
        if self.match == "jsonpath":
            if not self.arguments:
                raise ValueError("match: jsonpath needs arguments: {<JSONPath>: <value>, ...}")
            for path in self.arguments:
                try:
                    jsonpath.compile(path)
                except jsonpath.JSONPathError as exc:
                    first_line = str(exc).splitlines()[0]
                    raise ValueError(
                        f"arguments: {path!r} is not a JSONPath: {first_line}"
                    ) from None
        return self


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


def _arguments_match(p: ToolCalledParams, actual: Any) -> bool:
    expected = p.arguments
    if expected is None:
        return True
    if p.match == "exact":
        return bool(expected == actual)
    if p.match == "jsonpath":
        return all(value in jsonpath.findall(path, actual) for path, value in expected.items())
    return _subset(expected, actual)


@register
class ToolCalled(Evaluator):
    type_name = "tool_called"
    summary = "the agent called the given tool(s), optionally with matching arguments"
    Params = ToolCalledParams

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ToolCalledParams)
        wanted = self.expected_values(p.tool, case, p.case_key)
        if not wanted:
            return self.nothing_to_check(p.case_key)
        if (missing := _no_activity(self, trace)) is not None:
            return missing
        called = [c.name for c in trace.tool_calls]
        problems: list[str] = []
        for name in wanted:
            calls = [c for c in trace.tool_calls if c.name == name]
            matching = [c for c in calls if _arguments_match(p, c.arguments)]
            if len(matching) < p.min_times:
                problems.append(_describe_miss(name, calls, matching, p))
        if problems:
            seen = ", ".join(called) if called else "no tools"
            return self.verdict(False, f"{'; '.join(problems)} (called: {seen})")
        return self.verdict(True, f"called {', '.join(wanted)}")


def _no_activity(evaluator: Evaluator, trace: Trace) -> Score | None:
    """With LLM calls but no tools the agent chose not to call any: a real fail.
    With neither, the agent is probably not instrumented: nothing to judge."""
    if not trace.tool_calls and not trace.llm_calls:
        return evaluator.missing(
            "tool calls", "no tool spans, no LLM call spans and no tool calls in messages"
        )
    return None


def _describe_miss(
    name: str, calls: list[ToolCall], matching: list[ToolCall], p: ToolCalledParams
) -> str:
    relation = {"subset": "⊇", "exact": "=", "jsonpath": "matching"}[p.match]
    with_args = f" with arguments {relation} {p.arguments}" if p.arguments is not None else ""
    times = "" if p.min_times == 1 else f" at least {p.min_times} times"
    text = f"{name} not called{with_args}{times}"
    if p.arguments is not None and calls:
        shown = "; ".join(json.dumps(c.arguments, default=str)[:200] for c in calls[:3])
        text += f" ({len(matching)} of {len(calls)} calls matched; arguments: {shown})"
    elif matching:
        text += f" (matched {len(matching)})"
    return text


# --- tool_sequence ----------------------------------------------------------------------------


class ToolSequenceParams(EvaluatorParams):
    tools: list[str] | None = None
    """Tool names in the expected order; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "tool_sequence"
    order: Literal["exact", "in_order", "any_order"] = "in_order"
    """``in_order``: the calls follow this order; ``any_order``: each name is called as
    many times as it is listed, in any order; ``exact``: ``in_order`` with no extras."""
    allow_extras: bool = True
    """Whether calls beyond the listed ones are allowed (``exact`` never allows them)."""


def _sequence(names: list[str]) -> str:
    return " → ".join(names) if names else "no tool calls"


def _is_subsequence(wanted: list[str], actual: list[str]) -> bool:
    remaining = iter(actual)
    # `in` on an iterator consumes it up to the match, so later names must come later.
    return all(name in remaining for name in wanted)


@register
class ToolSequence(Evaluator):
    type_name = "tool_sequence"
    summary = "the agent called tools in the expected order (exact, in order, or any order)"
    Params = ToolSequenceParams

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ToolSequenceParams)
        wanted = self.expected_values(p.tools, case, p.case_key)
        if not wanted:
            return self.nothing_to_check(p.case_key)
        if (missing := _no_activity(self, trace)) is not None:
            return missing
        actual = [c.name for c in trace.tool_calls]
        extras_ok = p.allow_extras and p.order != "exact"
        if p.order == "any_order":
            passed = not Counter(wanted) - Counter(actual)
            if not extras_ok:
                passed = passed and Counter(wanted) == Counter(actual)
        elif extras_ok:
            passed = _is_subsequence(wanted, actual)
        else:
            passed = actual == wanted
        mode = p.order if p.order == "exact" or extras_ok else f"{p.order}, no extras"
        explanation = f"expected ({mode}) {_sequence(wanted)}; called {_sequence(actual)}"
        if not passed and p.order == "any_order":
            lacking = Counter(wanted) - Counter(actual)
            extra = Counter(actual) - Counter(wanted)
            if lacking:
                explanation += f"; missing {', '.join(sorted(lacking.elements()))}"
            if extra and not extras_ok:
                explanation += f"; extra {', '.join(sorted(extra.elements()))}"
        return self.verdict(passed, explanation)


# --- count bounds shared by step_count and span_count -----------------------------------------


class CountBoundsParams(EvaluatorParams):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0, validate_default=True)

    # A field validator rather than a model validator: the latter's errors have no
    # location, and ConfigError messages name the param they are about.
    @field_validator("max")
    @classmethod
    def _needs_a_bound(cls, high: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min")
        if high is None and low is None:
            raise ValueError("give min, max or both")
        if high is not None and low is not None and low > high:
            raise ValueError(f"max ({high}) is below min ({low})")
        return high


def _check_bounds(count: int, p: CountBoundsParams, what: str) -> tuple[bool, str]:
    if p.min is not None and count < p.min:
        return False, f"{count} {what}, fewer than min {p.min}"
    if p.max is not None and count > p.max:
        return False, f"{count} {what}, more than max {p.max}"
    low = "" if p.min is None else f"{p.min} ≤ "
    high = "" if p.max is None else f" ≤ {p.max}"
    return True, f"{low}{count} {what}{high}"


# --- step_count -------------------------------------------------------------------------------

_STEP_KINDS = {"llm_calls": "LLM calls", "tool_calls": "tool calls", "agent_steps": "agent steps"}


class StepCountParams(CountBoundsParams):
    count: Literal["llm_calls", "tool_calls", "agent_steps"] = "llm_calls"


@register
class StepCount(Evaluator):
    type_name = "step_count"
    summary = "the number of LLM calls, tool calls or agent steps is within min/max"
    Params = StepCountParams

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, StepCountParams)
        if not trace.llm_calls and not trace.tool_calls and not trace.agent_steps:
            # Zero of everything means no GenAI spans at all; counting it as 0 steps
            # would silently pass any `max`.
            return self.missing(
                "GenAI spans", "no chat, execute_tool or invoke_agent spans to count"
            )
        count = {
            "llm_calls": len(trace.llm_calls),
            "tool_calls": len(trace.tool_calls),
            "agent_steps": len(trace.agent_steps),
        }[p.count]
        passed, explanation = _check_bounds(count, p, _STEP_KINDS[p.count])
        return self.verdict(passed, explanation, value=float(count))


# --- no_error_spans ---------------------------------------------------------------------------


class NoErrorSpansParams(EvaluatorParams):
    ignore: list[str] = Field(default_factory=list)
    """Span-name globs (fnmatch, case-sensitive) whose errors do not count."""


_MAX_LISTED = 3


@register
class NoErrorSpans(Evaluator):
    type_name = "no_error_spans"
    summary = "no span in the trace has an error status"
    Params = NoErrorSpansParams
    requires = ("spans",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, NoErrorSpansParams)
        if (missing := self.require(trace)) is not None:
            return missing
        by_id = {s.span_id: s for s in trace.spans}
        failing: list[str] = []
        # Only spans whose own status is error count; the harness root is not marked
        # failed just because a child is, so it needs no special case here.
        for span_id in trace.error_spans:
            span = by_id.get(span_id)
            name = span.name if span is not None else f"span {span_id}"
            if any(fnmatchcase(name, glob) for glob in p.ignore):
                continue
            message = span.status_message if span is not None else ""
            if not message and span is not None:
                message = span.attributes.get("error.type", "")
            failing.append(f"{name} ({message})" if message else name)
        if not failing:
            ignored = len(trace.error_spans)
            note = f" ({ignored} ignored)" if ignored else ""
            return self.verdict(True, f"no error spans{note}", value=0.0)
        listed = "; ".join(failing[:_MAX_LISTED])
        more = f" and {len(failing) - _MAX_LISTED} more" if len(failing) > _MAX_LISTED else ""
        explanation = f"{len(failing)} error span(s): {listed}{more}"
        return self.verdict(False, explanation, value=float(len(failing)))


# --- span_count -------------------------------------------------------------------------------


class SpanCountParams(CountBoundsParams):
    name_glob: str | None = None
    """Count only spans whose name matches this glob (fnmatch, case-sensitive)."""
    allow_orphans: bool = False
    """When false, a trace with spans whose parent never arrived fails: its count is partial."""


@register
class SpanCount(Evaluator):
    type_name = "span_count"
    summary = "the number of (matching) spans is within min/max and the trace is complete"
    Params = SpanCountParams
    requires = ("spans",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, SpanCountParams)
        if (missing := self.require(trace)) is not None:
            return missing
        if p.name_glob is None:
            count, what = len(trace.spans), "spans"
        else:
            glob = p.name_glob
            count = sum(1 for s in trace.spans if fnmatchcase(s.name, glob))
            what = f"spans matching {glob!r}"
        passed, explanation = _check_bounds(count, p, what)
        if trace.orphans and not p.allow_orphans:
            lost = sorted({node.span.parent_span_id for node in trace.orphans})
            passed = False
            explanation += (
                f"; trace is incomplete: {len(trace.orphans)} orphan subtree(s) whose "
                f"parent span never arrived (parent ids: {', '.join(lost)})"
            )
        return self.verdict(passed, explanation, value=float(count))
