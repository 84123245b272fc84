"""tool_called argument matching (subset, exact, JSONPath) and tool_sequence extras."""

from typing import Any

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import LlmCall, ToolCall, Trace
from tracescore.scoring.evaluators import Evaluator, build_evaluator

ARGS = {"city": "Paris", "units": "c", "days": [{"day": 1}, {"day": 2}]}


def trace(*calls: tuple[str, Any]) -> Trace:
    return Trace(
        trace_id="a" * 32,
        spans=[],
        roots=[],
        llm_calls=[LlmCall(span_id="l", operation="chat")],
        tool_calls=[
            ToolCall(span_id=f"s{i}", name=name, arguments=args)
            for i, (name, args) in enumerate(calls)
        ],
    )


def evaluator(type_: str, **params: Any) -> Evaluator:
    return build_evaluator(EvaluatorSpec(type=type_, params=params))


CASE = Case(id="c", input="q")


@pytest.mark.parametrize(
    ("match", "arguments", "passed"),
    [
        ("subset", {"city": "Paris"}, True),
        ("subset", {"city": "Lyon"}, False),
        ("exact", ARGS, True),
        ("exact", {"city": "Paris"}, False),
        ("jsonpath", {"$.city": "Paris", "$.days[*].day": 2}, True),
        ("jsonpath", {"$.days[*].day": 3}, False),
        ("jsonpath", {"$.missing": "Paris"}, False),
    ],
)
def test_argument_match_modes(match: str, arguments: dict[str, Any], passed: bool) -> None:
    score = evaluator("tool_called", tool="get_weather", match=match, arguments=arguments).score(
        trace(("get_weather", ARGS)), CASE
    )
    assert score.error is None
    assert score.passed is passed
    if not passed:
        assert "0 of 1 calls matched" in score.explanation
        assert '"city": "Paris"' in score.explanation


def test_min_times_counts_only_matching_calls() -> None:
    calls = trace(("f", {"n": 1}), ("f", {"n": 2}), ("f", {"n": 1}))
    two = evaluator("tool_called", tool="f", arguments={"n": 1}, min_times=2)
    three = evaluator("tool_called", tool="f", arguments={"n": 1}, min_times=3)
    assert two.score(calls, CASE).passed is True
    assert three.score(calls, CASE).passed is False


def test_jsonpath_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"'\$\.\[' is not a JSONPath"):
        evaluator("tool_called", tool="f", match="jsonpath", arguments={"$.[": 1})
    with pytest.raises(ConfigError, match="match: jsonpath needs arguments"):
        evaluator("tool_called", tool="f", match="jsonpath")


@pytest.mark.parametrize(
    ("order", "allow_extras", "called", "passed"),
    [
        ("in_order", True, ["a", "x", "b"], True),
        ("in_order", False, ["a", "x", "b"], False),
        ("in_order", False, ["a", "b"], True),
        ("in_order", True, ["b", "a"], False),
        ("any_order", True, ["b", "x", "a"], True),
        ("any_order", False, ["b", "x", "a"], False),
        ("any_order", False, ["b", "a"], True),
        ("exact", True, ["a", "b", "x"], False),
    ],
)
def test_tool_sequence_order_and_extras(
    order: str, allow_extras: bool, called: list[str], passed: bool
) -> None:
    score = evaluator(
        "tool_sequence", tools=["a", "b"], order=order, allow_extras=allow_extras
    ).score(trace(*((name, {}) for name in called)), CASE)
    assert score.passed is passed, score.explanation
    if not passed and order == "any_order" and not allow_extras:
        assert "extra x" in score.explanation


def test_tool_sequence_without_tool_or_llm_spans_is_missing_data() -> None:
    empty = Trace(trace_id="a" * 32, spans=[], roots=[])
    score = evaluator("tool_sequence", tools=["a"]).score(empty, CASE)
    assert score.passed is None
    assert score.error is not None
    assert "no tool calls" in score.error
