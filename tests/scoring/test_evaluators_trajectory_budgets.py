"""Built-in evaluators: tool_sequence, step_count, no_error_spans, span_count, latency_under,
tokens_under and cost_under."""

from typing import Any

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import Span
from tracescore.schemas.suite import Case, EvaluatorSpec, ModelPrice
from tracescore.schemas.trace import AgentStep, LlmCall, ToolCall, Trace
from tracescore.scoring.evaluators import Evaluator, build_evaluator
from tracescore.scoring.pricing import PriceTable, apply_prices
from tracescore.scoring.reconstruct import reconstruct

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def make_trace(
    tools: list[str] | None = None,
    llm_calls: list[LlmCall] | None = None,
    agent_steps: int = 0,
    duration_ns: int = 0,
) -> Trace:
    return Trace(
        trace_id=TRACE_ID,
        spans=[],
        roots=[],
        tool_calls=[ToolCall(span_id=f"t{i}", name=n) for i, n in enumerate(tools or [])],
        llm_calls=llm_calls or [],
        agent_steps=[AgentStep(span_id=f"a{i}", agent_name="agent") for i in range(agent_steps)],
        duration_ns=duration_ns,
    )


def llm(
    span_id: str = "l1", input_tokens: int | None = None, output_tokens: int | None = None
) -> LlmCall:
    return LlmCall(
        span_id=span_id, operation="chat", input_tokens=input_tokens, output_tokens=output_tokens
    )


def span(
    span_id: str,
    parent: str = "",
    *,
    name: str = "work",
    status: str = "Unset",
    status_message: str = "",
    service: str = "agent",
    attributes: dict[str, str] | None = None,
) -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=span_id,
        parent_span_id=parent,
        trace_state="",
        name=name,
        kind="Internal",
        service_name=service,
        start_ns=int(span_id.removeprefix("s")),  # ids are s0, s1, ...: start order
        duration_ns=10,
        status_code=status,
        status_message=status_message,
        resource_attributes={"service.name": service},
        scope_name="test",
        scope_version="",
        attributes=attributes or {},
    )


def harness(status: str = "Unset", status_message: str = "") -> Span:
    return span(
        "s0",
        name="tracescore.case c1",
        service="tracescore-harness",
        status=status,
        status_message=status_message,
    )


def make_case(**expected: Any) -> Case:
    return Case(id="c1", input="question?", expected=expected)


def evaluator(type_: str, **params: Any) -> Evaluator:
    return build_evaluator(EvaluatorSpec(type=type_, params=params))


def assert_passed(score: Score, value: object = 1.0) -> None:  # object: pytest.approx too
    assert score.error is None, score.error
    assert score.passed is True, score.explanation
    assert score.value == value
    assert score.label == "pass"


def assert_failed(score: Score, value: object = 0.0) -> None:
    assert score.error is None, score.error
    assert score.passed is False, score.explanation
    assert score.value == value
    assert score.label == "fail"


def assert_missing(score: Score, field: str) -> None:
    assert score.passed is None
    assert not score.skipped
    assert score.label == "error"
    assert score.error is not None
    assert score.error.startswith(f"trace has no {field}"), score.error


def assert_skipped(score: Score, case_key: str) -> None:
    assert score.skipped is True
    assert score.passed is None
    assert score.error is None
    assert f"expected.{case_key}" in score.explanation


# --- tool_sequence ----------------------------------------------------------------------------


def test_tool_sequence_in_order_by_default_allows_extra_calls() -> None:
    trace = make_trace(tools=["search", "fetch", "search", "summarize"])
    score = evaluator("tool_sequence").score(
        trace, make_case(tool_sequence=["search", "summarize"])
    )
    assert_passed(score)
    assert "search → summarize" in score.explanation
    assert "search → fetch → search → summarize" in score.explanation


def test_tool_sequence_in_order_fails_on_the_wrong_order() -> None:
    trace = make_trace(tools=["summarize", "search"])
    score = evaluator("tool_sequence").score(
        trace, make_case(tool_sequence=["search", "summarize"])
    )
    assert_failed(score)
    assert "expected (in_order) search → summarize" in score.explanation
    assert "called summarize → search" in score.explanation


def test_tool_sequence_in_order_needs_repeated_names_repeated() -> None:
    ev = evaluator("tool_sequence", tools=["search", "search"])
    assert_failed(ev.score(make_trace(tools=["search", "fetch"]), make_case()))
    assert_passed(ev.score(make_trace(tools=["search", "fetch", "search"]), make_case()))


def test_tool_sequence_exact_rejects_extra_calls() -> None:
    ev = evaluator("tool_sequence", tools=["search", "summarize"], order="exact")
    assert_passed(ev.score(make_trace(tools=["search", "summarize"]), make_case()))
    assert_failed(ev.score(make_trace(tools=["search", "fetch", "summarize"]), make_case()))
    assert_failed(ev.score(make_trace(tools=["search"]), make_case()))


def test_tool_sequence_any_order_is_multiset_containment() -> None:
    ev = evaluator("tool_sequence", tools=["a", "b", "a"], order="any_order")
    assert_passed(ev.score(make_trace(tools=["b", "a", "c", "a"]), make_case()))
    score = ev.score(make_trace(tools=["b", "a"]), make_case())
    assert_failed(score)
    assert "missing a" in score.explanation


def test_tool_sequence_param_overrides_the_case_value() -> None:
    ev = evaluator("tool_sequence", tools=["fetch"])
    assert_passed(ev.score(make_trace(tools=["fetch"]), make_case(tool_sequence=["search"])))


def test_tool_sequence_fails_when_the_agent_called_no_tools() -> None:
    trace = make_trace(llm_calls=[llm()])
    score = evaluator("tool_sequence").score(trace, make_case(tool_sequence=["search"]))
    assert_failed(score)
    assert "no tool calls" in score.explanation


def test_tool_sequence_errors_without_tool_or_llm_calls() -> None:
    score = evaluator("tool_sequence").score(make_trace(), make_case(tool_sequence=["search"]))
    assert_missing(score, "tool calls")


def test_tool_sequence_skips_without_an_expected_sequence() -> None:
    score = evaluator("tool_sequence").score(make_trace(tools=["x"]), make_case(tools=["x"]))
    assert_skipped(score, "tool_sequence")


# --- step_count -------------------------------------------------------------------------------


def test_step_count_counts_llm_calls_by_default() -> None:
    trace = make_trace(llm_calls=[llm("l1"), llm("l2"), llm("l3")])
    assert_passed(evaluator("step_count", max=3).score(trace, make_case()), value=3.0)
    score = evaluator("step_count", max=2).score(trace, make_case())
    assert_failed(score, value=3.0)
    assert "3 LLM calls, more than max 2" in score.explanation


def test_step_count_min_bound_and_other_kinds() -> None:
    trace = make_trace(tools=["a", "b"], llm_calls=[llm()], agent_steps=1)
    assert_passed(evaluator("step_count", count="tool_calls", min=2).score(trace, make_case()), 2.0)
    score = evaluator("step_count", count="agent_steps", min=2, max=4).score(trace, make_case())
    assert_failed(score, value=1.0)
    assert "1 agent steps, fewer than min 2" in score.explanation


def test_step_count_zero_of_the_counted_kind_is_a_real_count() -> None:
    trace = make_trace(llm_calls=[llm()])
    score = evaluator("step_count", count="tool_calls", min=1).score(trace, make_case())
    assert_failed(score, value=0.0)


def test_step_count_errors_without_any_genai_spans() -> None:
    # Counting 0 here would silently pass `max`: the agent is probably not instrumented.
    score = evaluator("step_count", max=5).score(make_trace(), make_case())
    assert_missing(score, "GenAI spans")


# --- no_error_spans ---------------------------------------------------------------------------


def test_no_error_spans_passes_on_a_clean_trace() -> None:
    trace = reconstruct(TRACE_ID, [harness(), span("s1", "s0")])
    assert_passed(evaluator("no_error_spans").score(trace, make_case()), value=0.0)


def test_no_error_spans_lists_up_to_three_failing_spans_with_messages() -> None:
    spans = [harness()] + [
        span(f"s{i}", "s0", name=f"step{i}", status="Error", status_message=f"boom {i}")
        for i in range(1, 6)
    ]
    score = evaluator("no_error_spans").score(reconstruct(TRACE_ID, spans), make_case())
    assert_failed(score, value=5.0)
    assert "step1 (boom 1); step2 (boom 2); step3 (boom 3)" in score.explanation
    assert "step4" not in score.explanation
    assert "2 more" in score.explanation


def test_no_error_spans_accepts_the_older_status_code_and_error_type() -> None:
    spans = [
        harness(),
        span("s1", "s0", name="tool", status="STATUS_CODE_ERROR", attributes={"error.type": "E"}),
    ]
    score = evaluator("no_error_spans").score(reconstruct(TRACE_ID, spans), make_case())
    assert_failed(score, value=1.0)
    assert "tool (E)" in score.explanation


def test_no_error_spans_ignores_matching_span_names() -> None:
    spans = [
        harness(),
        span("s1", "s0", name="execute_tool flaky_search", status="Error", status_message="x"),
        span("s2", "s0", name="chat gpt-4o", status="Error", status_message="rate limited"),
    ]
    trace = reconstruct(TRACE_ID, spans)
    score = evaluator("no_error_spans", ignore=["execute_tool flaky_*"]).score(trace, make_case())
    assert_failed(score, value=1.0)
    assert "chat gpt-4o (rate limited)" in score.explanation
    assert "flaky" not in score.explanation
    ev = evaluator("no_error_spans", ignore=["execute_tool *", "chat *"])
    score = ev.score(trace, make_case())
    assert_passed(score, value=0.0)
    assert "2 ignored" in score.explanation


def test_no_error_spans_counts_the_harness_root_only_by_its_own_status() -> None:
    ok = reconstruct(TRACE_ID, [harness(), span("s1", "s0", status="Error")])
    score = evaluator("no_error_spans").score(ok, make_case())
    assert_failed(score, value=1.0)
    assert "tracescore.case" not in score.explanation
    failed = reconstruct(TRACE_ID, [harness("Error", "SUT exited with 2"), span("s1", "s0")])
    score = evaluator("no_error_spans").score(failed, make_case())
    assert_failed(score, value=1.0)
    assert "tracescore.case c1 (SUT exited with 2)" in score.explanation


def test_no_error_spans_errors_without_spans() -> None:
    assert_missing(evaluator("no_error_spans").score(make_trace(), make_case()), "spans")


# --- span_count -------------------------------------------------------------------------------


def test_span_count_counts_all_spans() -> None:
    trace = reconstruct(TRACE_ID, [harness(), span("s1", "s0"), span("s2", "s0")])
    assert_passed(evaluator("span_count", min=3, max=3).score(trace, make_case()), value=3.0)
    score = evaluator("span_count", max=2).score(trace, make_case())
    assert_failed(score, value=3.0)
    assert "more than max 2" in score.explanation


def test_span_count_name_glob_counts_matching_spans() -> None:
    spans = [harness(), span("s1", "s0", name="chat gpt-4o"), span("s2", "s0", name="chat o3")]
    trace = reconstruct(TRACE_ID, spans)
    score = evaluator("span_count", name_glob="chat *", min=2).score(trace, make_case())
    assert_passed(score, value=2.0)
    score = evaluator("span_count", name_glob="execute_tool *", min=1).score(trace, make_case())
    assert_failed(score, value=0.0)
    assert "'execute_tool *'" in score.explanation


def test_span_count_fails_an_incomplete_trace_unless_orphans_are_allowed() -> None:
    trace = reconstruct(TRACE_ID, [harness(), span("s1", "s0"), span("s2", "lost")])
    assert trace.orphans
    score = evaluator("span_count", min=1).score(trace, make_case())
    assert_failed(score, value=3.0)
    assert "incomplete" in score.explanation
    assert "lost" in score.explanation
    assert_passed(evaluator("span_count", min=1, allow_orphans=True).score(trace, make_case()), 3.0)


def test_span_count_errors_without_spans() -> None:
    assert_missing(evaluator("span_count", max=10).score(make_trace(), make_case()), "spans")


# --- latency_under ----------------------------------------------------------------------------


def test_latency_under_passes_within_the_budget_and_reports_ms() -> None:
    trace = make_trace(duration_ns=1_500_000_000)
    score = evaluator("latency_under", max_ms=2000).score(trace, make_case())
    assert_passed(score, value=1500.0)
    assert "1500.0 ms ≤ 2000 ms" in score.explanation


def test_latency_under_fails_over_the_case_budget() -> None:
    trace = make_trace(duration_ns=2_500_000_000)
    score = evaluator("latency_under").score(trace, make_case(max_latency_ms=2000))
    assert_failed(score, value=2500.0)
    assert "2500.0 ms > 2000 ms" in score.explanation


def test_latency_under_uses_the_harness_span_duration() -> None:
    trace = reconstruct(TRACE_ID, [harness()])
    assert_passed(evaluator("latency_under", max_ms=1).score(trace, make_case()), value=1e-5)


def test_latency_under_errors_without_a_duration() -> None:
    score = evaluator("latency_under", max_ms=100).score(make_trace(), make_case())
    assert_missing(score, "duration")


def test_latency_under_skips_without_a_budget() -> None:
    score = evaluator("latency_under").score(make_trace(duration_ns=5), make_case())
    assert_skipped(score, "max_latency_ms")


@pytest.mark.parametrize("bad", ["fast", True, [1, 2], -1])
def test_latency_under_reports_a_bad_case_budget(bad: Any) -> None:
    score = evaluator("latency_under").score(
        make_trace(duration_ns=5), make_case(max_latency_ms=bad)
    )
    assert score.passed is None
    assert score.error is not None
    assert "expected.max_latency_ms" in score.error


# --- tokens_under -----------------------------------------------------------------------------


def test_tokens_under_sums_input_and_output_tokens() -> None:
    trace = make_trace(llm_calls=[llm("l1", 100, 20), llm("l2", 200, 30)])
    score = evaluator("tokens_under", max_tokens=350).score(trace, make_case())
    assert_passed(score, value=350.0)
    score = evaluator("tokens_under").score(trace, make_case(max_tokens=300))
    assert_failed(score, value=350.0)
    assert "350 tokens > 300" in score.explanation


def test_tokens_under_which_input_or_output() -> None:
    trace = make_trace(llm_calls=[llm("l1", 100, 20), llm("l2", 200, 30)])
    assert_passed(
        evaluator("tokens_under", which="output", max_tokens=50).score(trace, make_case()), 50.0
    )
    score = evaluator("tokens_under", which="input", max_tokens=250).score(trace, make_case())
    assert_failed(score, value=300.0)
    assert "300 input tokens" in score.explanation


def test_tokens_under_reads_usage_from_spans() -> None:
    usage = {"gen_ai.usage.input_tokens": "40", "gen_ai.usage.output_tokens": "2"}
    spans = [harness(), span("s1", "s0", name="chat gpt-4o", attributes=usage)]
    score = evaluator("tokens_under", max_tokens=42).score(
        reconstruct(TRACE_ID, spans), make_case()
    )
    assert_passed(score, value=42.0)


def test_tokens_under_errors_when_no_call_reports_usage() -> None:
    trace = make_trace(llm_calls=[llm("l1"), llm("l2")])
    score = evaluator("tokens_under", max_tokens=100).score(trace, make_case())
    assert_missing(score, "token usage")
    assert score.error is not None
    assert "l1, l2" in score.error


def test_tokens_under_partial_usage_fails_over_budget_but_never_passes() -> None:
    trace = make_trace(llm_calls=[llm("l1", 100, 20), llm("l2")])
    score = evaluator("tokens_under", max_tokens=100).score(trace, make_case())
    assert_failed(score, value=120.0)  # the unreported call can only add tokens
    score = evaluator("tokens_under", max_tokens=1000).score(trace, make_case())
    assert_missing(score, "token usage")
    assert score.error is not None
    assert "1 of 2" in score.error
    assert "l2" in score.error


def test_tokens_under_errors_without_llm_calls() -> None:
    score = evaluator("tokens_under", max_tokens=100).score(make_trace(tools=["x"]), make_case())
    assert_missing(score, "LLM calls")


def test_tokens_under_skips_without_a_budget() -> None:
    score = evaluator("tokens_under").score(make_trace(llm_calls=[llm("l1", 1, 1)]), make_case())
    assert_skipped(score, "max_tokens")


# --- cost_under -------------------------------------------------------------------------------


def priced(*calls: LlmCall, prices: dict[str, ModelPrice] | None = None) -> Trace:
    return apply_prices(make_trace(llm_calls=list(calls)), PriceTable.with_overrides(prices))


def model_call(
    span_id: str, model: str, input_tokens: int | None, output_tokens: int | None
) -> LlmCall:
    return LlmCall(
        span_id=span_id,
        operation="chat",
        response_model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def test_cost_under_passes_within_the_budget_and_reports_usd() -> None:
    # gpt-4o: $2.50 in, $10 out per million tokens.
    trace = priced(model_call("l1", "gpt-4o-2024-08-06", 100_000, 10_000))
    score = evaluator("cost_under", max_usd=0.35).score(trace, make_case())
    assert_passed(score, value=pytest.approx(0.35))
    assert "$0.35 ≤ $0.35" in score.explanation


def test_cost_under_fails_over_the_case_budget() -> None:
    trace = priced(
        model_call("l1", "gpt-4o", 100_000, 0), model_call("l2", "gpt-4o-mini", 1_000_000, 0)
    )
    score = evaluator("cost_under").score(trace, make_case(max_cost_usd=0.2))
    assert_failed(score, value=pytest.approx(0.25 + 0.15))
    assert "$0.4 > $0.2" in score.explanation


def test_cost_under_uses_the_suite_prices() -> None:
    mine = {"my-model": ModelPrice(input=1.0, output=2.0)}
    trace = priced(model_call("l1", "my-model", 1_000_000, 1_000_000), prices=mine)
    assert_passed(evaluator("cost_under", max_usd=3).score(trace, make_case()), pytest.approx(3.0))


def test_cost_under_errors_naming_unpriced_models() -> None:
    trace = priced(model_call("l1", "gpt-4o", 10, 10), model_call("l2", "my-model", 10, 10))
    score = evaluator("cost_under", max_usd=100).score(trace, make_case())
    assert_missing(score, "price")
    assert score.error is not None
    assert "no price for model my-model; add it under prices: in eval.yaml" in score.error


def test_cost_under_errors_without_token_usage() -> None:
    trace = priced(model_call("l1", "gpt-4o", None, None))
    score = evaluator("cost_under", max_usd=1).score(trace, make_case())
    assert_missing(score, "token usage")


def test_cost_under_partial_usage_fails_over_budget_but_never_passes() -> None:
    trace = priced(model_call("l1", "gpt-4o", 1_000_000, 0), model_call("l2", "gpt-4o", None, None))
    assert_failed(evaluator("cost_under", max_usd=1).score(trace, make_case()), pytest.approx(2.5))
    score = evaluator("cost_under", max_usd=10).score(trace, make_case())
    assert_missing(score, "token usage")
    assert score.error is not None
    assert "1 of 2" in score.error and "l2" in score.error


def test_cost_under_errors_on_an_unpriced_trace() -> None:
    trace = make_trace(llm_calls=[model_call("l1", "gpt-4o", 10, 10)])
    assert_missing(evaluator("cost_under", max_usd=1).score(trace, make_case()), "cost")


def test_cost_under_errors_without_llm_calls() -> None:
    score = evaluator("cost_under", max_usd=1).score(priced(), make_case())
    assert_missing(score, "LLM calls")


def test_cost_under_skips_without_a_budget() -> None:
    trace = priced(model_call("l1", "gpt-4o", 1, 1))
    assert_skipped(evaluator("cost_under").score(trace, make_case()), "max_cost_usd")


def test_cost_under_reads_usage_and_model_from_spans() -> None:
    usage = {
        "gen_ai.operation.name": "chat",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.usage.input_tokens": "1000000",
        "gen_ai.usage.output_tokens": "0",
    }
    spans = [harness(), span("s1", "s0", name="chat claude", attributes=usage)]
    trace = apply_prices(reconstruct(TRACE_ID, spans), PriceTable.with_overrides())
    assert_failed(evaluator("cost_under", max_usd=2).score(trace, make_case()), pytest.approx(3.0))


# --- build errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "params", "field", "text"),
    [
        ("step_count", {}, "params.max", "give min, max or both"),
        ("step_count", {"min": 5, "max": 2}, "params.max", "below min"),
        ("step_count", {"max": 3, "count": "spans"}, "params.count", ""),
        ("step_count", {"min": -1}, "params.min", ""),
        ("span_count", {"name_glob": "chat *"}, "params.max", "give min, max or both"),
        ("span_count", {"max": 3, "allow_orphan": True}, "params.allow_orphan", ""),
        ("tool_sequence", {"order": "sorted"}, "params.order", ""),
        ("tool_sequence", {"tools": "search"}, "params.tools", ""),
        ("no_error_spans", {"ignore": "chat *"}, "params.ignore", ""),
        ("latency_under", {"max_ms": -5}, "params.max_ms", ""),
        ("tokens_under", {"which": "cached"}, "params.which", ""),
        ("tokens_under", {"max_tokens": "lots"}, "params.max_tokens", ""),
        ("cost_under", {"max_usd": -1}, "params.max_usd", ""),
        ("cost_under", {"max_usd": 1, "currency": "EUR"}, "params.currency", ""),
    ],
)
def test_bad_params_raise_config_error_naming_the_param(
    type_: str, params: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_evaluator(EvaluatorSpec(type=type_, params=params))
    message = str(info.value)
    assert message.startswith(f"{field}: "), message
    assert text in message
