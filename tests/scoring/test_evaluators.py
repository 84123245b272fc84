"""Built-in evaluators: exact_match, contains_text and tool_called."""

from typing import Any

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import LlmCall, ToolCall, Trace
from tracescore.scoring.evaluators import Evaluator, EvaluatorParams, build_evaluator


def make_trace(output: str | None = None, tools: list[ToolCall] | None = None) -> Trace:
    return Trace(
        trace_id="t" * 32,
        spans=[],
        roots=[],
        final_output=output,
        tool_calls=tools or [],
    )


def tool(name: str, arguments: Any = None, span_id: str = "s1") -> ToolCall:
    return ToolCall(span_id=span_id, name=name, arguments=arguments)


def make_case(**expected: Any) -> Case:
    return Case(id="c1", input="question?", expected=expected)


def evaluator(type_: str, name: str | None = None, **params: Any) -> Evaluator:
    return build_evaluator(EvaluatorSpec(type=type_, name=name, params=params))


def assert_passed(score: Score) -> None:
    assert score.error is None, score.error
    assert score.passed is True, score.explanation
    assert score.value == 1.0
    assert score.label == "pass"
    assert not score.skipped


def assert_failed(score: Score) -> None:
    assert score.error is None, score.error
    assert score.passed is False, score.explanation
    assert score.value == 0.0
    assert score.label == "fail"
    assert not score.skipped


# --- exact_match ------------------------------------------------------------------------------


def test_exact_match_passes_on_equal_output() -> None:
    score = evaluator("exact_match").score(make_trace("Hello!"), make_case(output="Hello!"))
    assert_passed(score)
    assert score.evaluator == "exact_match"


def test_exact_match_fails_and_names_the_expected_value() -> None:
    score = evaluator("exact_match").score(make_trace("Goodbye"), make_case(output="Hello!"))
    assert_failed(score)
    assert "'Hello!'" in score.explanation
    assert "'Goodbye'" in score.explanation


def test_exact_match_skips_when_the_case_has_no_expected_output() -> None:
    score = evaluator("exact_match").score(make_trace("anything"), make_case(contains="x"))
    assert score.skipped is True
    assert score.passed is None
    assert score.error is None
    assert "expected.output" in score.explanation


def test_exact_match_errors_without_a_final_output() -> None:
    score = evaluator("exact_match").score(make_trace(None), make_case(output="Hello!"))
    assert score.passed is None
    assert not score.skipped
    assert score.error is not None
    assert "final output" in score.error
    assert score.label == "error"


def test_exact_match_param_overrides_the_case_value() -> None:
    ev = evaluator("exact_match", expected="from params")
    assert_passed(ev.score(make_trace("from params"), make_case(output="from case")))
    assert_failed(ev.score(make_trace("from case"), make_case(output="from case")))


def test_exact_match_reads_a_custom_case_key() -> None:
    ev = evaluator("exact_match", case_key="answer")
    assert_passed(ev.score(make_trace("42"), make_case(answer=42)))
    assert ev.score(make_trace("42"), make_case(output="42")).skipped


def test_exact_match_strips_by_default() -> None:
    case = make_case(output="  Hello!\n")
    assert_passed(evaluator("exact_match").score(make_trace("\nHello!  "), case))
    assert_failed(evaluator("exact_match", strip=False).score(make_trace("\nHello!  "), case))


def test_exact_match_is_case_sensitive_by_default() -> None:
    case = make_case(output="Hello")
    assert_failed(evaluator("exact_match").score(make_trace("HELLO"), case))
    assert_passed(evaluator("exact_match", case_sensitive=False).score(make_trace("HELLO"), case))


# --- contains_text ----------------------------------------------------------------------------


def test_contains_text_passes_when_the_output_contains_the_text() -> None:
    score = evaluator("contains_text").score(
        make_trace("The capital of France is Paris."), make_case(contains="Paris")
    )
    assert_passed(score)


def test_contains_text_fails_and_names_the_missing_text() -> None:
    score = evaluator("contains_text").score(
        make_trace("I do not know."), make_case(contains="Poseidonia")
    )
    assert_failed(score)
    assert "'Poseidonia'" in score.explanation


def test_contains_text_skips_without_expected_text() -> None:
    score = evaluator("contains_text").score(make_trace("x"), make_case(output="x"))
    assert score.skipped is True
    assert score.passed is None
    assert "expected.contains" in score.explanation


def test_contains_text_skips_on_an_empty_list() -> None:
    score = evaluator("contains_text").score(make_trace("x"), make_case(contains=[]))
    assert score.skipped is True
    assert score.passed is None


def test_contains_text_errors_without_a_final_output() -> None:
    score = evaluator("contains_text").score(make_trace(None), make_case(contains="Paris"))
    assert score.passed is None
    assert score.error is not None
    assert "final output" in score.error


def test_contains_text_param_overrides_the_case_value() -> None:
    ev = evaluator("contains_text", text="Tokyo")
    assert_passed(ev.score(make_trace("Tokyo it is"), make_case(contains="Paris")))
    assert_failed(ev.score(make_trace("Paris it is"), make_case(contains="Paris")))


def test_contains_text_all_mode_needs_every_text() -> None:
    ev = evaluator("contains_text")
    case = make_case(contains=["sunny", "24"])
    assert_passed(ev.score(make_trace("Lisbon: sunny, 24 C"), case))
    score = ev.score(make_trace("Lisbon: sunny"), case)
    assert_failed(score)
    assert "'24'" in score.explanation
    assert "'sunny'" not in score.explanation.split(";")[0]


def test_contains_text_any_mode_needs_one_text() -> None:
    ev = evaluator("contains_text", mode="any")
    case = make_case(contains=["sunny", "cloudy"])
    assert_passed(ev.score(make_trace("cloudy today"), case))
    score = ev.score(make_trace("raining"), case)
    assert_failed(score)
    assert "'sunny'" in score.explanation
    assert "'cloudy'" in score.explanation


def test_contains_text_is_case_insensitive_by_default() -> None:
    case = make_case(contains="PARIS")
    assert_passed(evaluator("contains_text").score(make_trace("paris"), case))
    assert_failed(evaluator("contains_text", case_sensitive=True).score(make_trace("paris"), case))
    assert_passed(evaluator("contains_text", case_sensitive=True).score(make_trace("PARIS"), case))


def test_contains_text_stringifies_non_string_expectations() -> None:
    score = evaluator("contains_text").score(make_trace("17 * 23 = 391"), make_case(contains=391))
    assert_passed(score)


# --- tool_called ------------------------------------------------------------------------------


def test_tool_called_passes_when_every_tool_was_called() -> None:
    trace = make_trace(tools=[tool("lookup_capital"), tool("calculator", span_id="s2")])
    score = evaluator("tool_called").score(trace, make_case(tools=["lookup_capital", "calculator"]))
    assert_passed(score)


def test_tool_called_fails_and_names_the_missing_tool() -> None:
    trace = make_trace(tools=[tool("calculator")])
    score = evaluator("tool_called").score(trace, make_case(tools=["lookup_capital"]))
    assert_failed(score)
    assert "lookup_capital" in score.explanation
    assert "calculator" in score.explanation  # what was called instead


def test_tool_called_fails_when_no_tools_were_called() -> None:
    # The model answered without calling a tool: a real fail.
    trace = make_trace("ok").model_copy(
        update={"llm_calls": [LlmCall(span_id="c", operation="chat")]}
    )
    score = evaluator("tool_called").score(trace, make_case(tools="get_weather"))
    assert_failed(score)
    assert "get_weather" in score.explanation
    assert "no tools" in score.explanation


def test_tool_called_without_tool_or_llm_spans_is_missing_data() -> None:
    score = evaluator("tool_called").score(make_trace("ok"), make_case(tools="get_weather"))
    assert score.passed is None
    assert score.error is not None
    assert "trace has no tool calls" in score.error


def test_tool_called_skips_without_expected_tools() -> None:
    score = evaluator("tool_called").score(make_trace(tools=[tool("x")]), make_case(output="o"))
    assert score.skipped is True
    assert score.passed is None
    assert "expected.tools" in score.explanation


def test_tool_called_does_not_need_a_final_output() -> None:
    score = evaluator("tool_called").score(
        make_trace(None, tools=[tool("calculator")]), make_case(tools=["calculator"])
    )
    assert_passed(score)


def test_tool_called_param_overrides_the_case_value() -> None:
    ev = evaluator("tool_called", tool="calculator")
    trace = make_trace(tools=[tool("calculator")])
    assert_passed(ev.score(trace, make_case(tools=["lookup_capital"])))
    assert_failed(
        ev.score(make_trace(tools=[tool("lookup_capital")]), make_case(tools=["lookup_capital"]))
    )


def test_tool_called_matches_an_argument_subset_including_nested_dicts() -> None:
    args = {"city": "Lisbon", "options": {"units": "metric", "days": 3}, "verbose": False}
    trace = make_trace(tools=[tool("get_weather", args)])
    case = make_case(tools=["get_weather"])
    for subset in (
        {"city": "Lisbon"},
        {"options": {"units": "metric"}},
        {"city": "Lisbon", "options": {"days": 3}, "verbose": False},
        {},
    ):
        assert_passed(evaluator("tool_called", arguments=subset).score(trace, case))
    for mismatch in (
        {"city": "Porto"},
        {"options": {"units": "imperial"}},
        {"options": {"missing": 1}},
        {"absent": "key"},
        {"city": {"name": "Lisbon"}},
    ):
        score = evaluator("tool_called", arguments=mismatch).score(trace, case)
        assert_failed(score)
        assert "get_weather" in score.explanation


def test_tool_called_arguments_must_match_on_one_call() -> None:
    trace = make_trace(
        tools=[
            tool("get_weather", {"city": "Porto"}, span_id="s1"),
            tool("get_weather", {"city": "Lisbon"}, span_id="s2"),
        ]
    )
    case = make_case(tools=["get_weather"])
    assert_passed(evaluator("tool_called", arguments={"city": "Lisbon"}).score(trace, case))
    assert_failed(evaluator("tool_called", arguments={"city": "Faro"}).score(trace, case))


def test_tool_called_arguments_that_are_not_a_dict_do_not_match() -> None:
    trace = make_trace(tools=[tool("search", "raw text arguments")])
    score = evaluator("tool_called", arguments={"q": "x"}).score(trace, make_case(tools="search"))
    assert_failed(score)


def test_tool_called_min_times() -> None:
    calls = [tool("calculator", span_id="s1"), tool("calculator", span_id="s2")]
    case = make_case(tools=["calculator"])
    assert_passed(evaluator("tool_called", min_times=2).score(make_trace(tools=calls), case))
    score = evaluator("tool_called", min_times=3).score(make_trace(tools=calls), case)
    assert_failed(score)
    assert "at least 3 times" in score.explanation
    assert "matched 2" in score.explanation


def test_tool_called_min_times_counts_only_calls_with_matching_arguments() -> None:
    calls = [
        tool("calculator", {"expression": "1+1"}, span_id="s1"),
        tool("calculator", {"expression": "2+2"}, span_id="s2"),
        tool("calculator", {"expression": "1+1"}, span_id="s3"),
    ]
    case = make_case(tools=["calculator"])
    ev = evaluator("tool_called", arguments={"expression": "1+1"}, min_times=2)
    assert_passed(ev.score(make_trace(tools=calls), case))
    ev = evaluator("tool_called", arguments={"expression": "2+2"}, min_times=2)
    assert_failed(ev.score(make_trace(tools=calls), case))


# --- safe_score, naming and hashing -----------------------------------------------------------


class Crashing(Evaluator):
    type_name = "crashing"

    def score(self, trace: Trace, case: Case) -> Score:
        raise RuntimeError("kaboom")


def test_safe_score_turns_a_crash_into_an_error_score() -> None:
    ev = Crashing("crash-test", EvaluatorParams())
    with pytest.raises(RuntimeError):
        ev.score(make_trace("x"), make_case())
    score = ev.safe_score(make_trace("x"), make_case())
    assert score.evaluator == "crash-test"
    assert score.passed is None
    assert score.error is not None
    assert "RuntimeError" in score.error
    assert "kaboom" in score.error


def test_safe_score_returns_the_normal_score() -> None:
    ev = evaluator("exact_match")
    assert_passed(ev.safe_score(make_trace("a"), make_case(output="a")))


def test_evaluator_name_defaults_to_type_and_can_be_set() -> None:
    assert evaluator("contains_text").name == "contains_text"
    ev = evaluator("contains_text", name="answer")
    assert ev.name == "answer"
    assert ev.score(make_trace("x"), make_case(contains="x")).evaluator == "answer"


def test_config_hash_is_stable_and_ignores_the_display_name() -> None:
    first = evaluator("tool_called", arguments={"a": 1, "b": 2}).config_hash
    assert len(first) == 16
    int(first, 16)  # hex
    assert evaluator("tool_called", arguments={"b": 2, "a": 1}).config_hash == first
    assert evaluator("tool_called", "renamed", arguments={"a": 1, "b": 2}).config_hash == first


def test_config_hash_treats_explicit_defaults_as_defaults() -> None:
    assert evaluator("exact_match").config_hash == evaluator("exact_match", strip=True).config_hash


def test_config_hash_differs_when_params_differ() -> None:
    hashes = {
        evaluator("exact_match").config_hash,
        evaluator("exact_match", strip=False).config_hash,
        evaluator("exact_match", case_sensitive=False).config_hash,
        evaluator("exact_match", expected="x").config_hash,
        evaluator("tool_called").config_hash,
        evaluator("tool_called", min_times=2).config_hash,
    }
    assert len(hashes) == 6


# --- build errors -----------------------------------------------------------------------------


def test_unknown_type_lists_the_known_types() -> None:
    with pytest.raises(ConfigError) as info:
        evaluator("llm_judge_9000")
    message = str(info.value)
    assert "llm_judge_9000" in message
    for known in ("contains_text", "exact_match", "tool_called"):
        assert known in message


@pytest.mark.parametrize(
    ("type_", "params", "field"),
    [
        ("exact_match", {"expectd": "typo"}, "params.expectd"),
        ("contains_text", {"mode": "some"}, "params.mode"),
        ("contains_text", {"case_sensitive": "sometimes"}, "params.case_sensitive"),
        ("tool_called", {"min_times": "twice"}, "params.min_times"),
        ("tool_called", {"arguments": ["not", "a", "dict"]}, "params.arguments"),
    ],
)
def test_bad_params_raise_config_error_naming_the_param(
    type_: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_evaluator(EvaluatorSpec(type=type_, params=params))
    message = str(info.value)
    assert message.startswith(f"{field}: "), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("type_", "params", "field"),
    [
        ("contains_text", {"text": 5}, "params.text"),
        ("tool_called", {"tool": {"name": "x"}}, "params.tool"),
    ],
)
def test_bad_union_param_names_the_param_not_the_union_member(
    type_: str, params: dict[str, Any], field: str
) -> None:
    # `text: str | list[str]`: pydantic tags the error location with the union member
    # ("text", "str"); the reported field must still be the param the user wrote.
    with pytest.raises(ConfigError) as info:
        build_evaluator(EvaluatorSpec(type=type_, params=params))
    assert str(info.value).startswith(f"{field}: "), str(info.value)
