"""Evaluators on what the agent did: its tool calls."""

from typing import Any

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
    """If set, at least one call must have arguments containing these keys and values."""
    min_times: int = 1


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


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
        called = [c.name for c in trace.tool_calls]
        problems: list[str] = []
        for name in wanted:
            calls = [c for c in trace.tool_calls if c.name == name]
            if p.arguments is not None:
                calls = [c for c in calls if _subset(p.arguments, c.arguments)]
            if len(calls) < p.min_times:
                problems.append(_describe_miss(name, calls, p))
        if problems:
            seen = ", ".join(called) if called else "no tools"
            return self.verdict(False, f"{'; '.join(problems)} (called: {seen})")
        return self.verdict(True, f"called {', '.join(wanted)}")


def _describe_miss(name: str, calls: list[ToolCall], p: ToolCalledParams) -> str:
    with_args = f" with arguments ⊇ {p.arguments}" if p.arguments is not None else ""
    times = "" if p.min_times == 1 else f" at least {p.min_times} times"
    return f"{name} not called{with_args}{times}" + (f" (matched {len(calls)})" if calls else "")
