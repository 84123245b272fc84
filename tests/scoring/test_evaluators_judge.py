"""The ``llm_judge`` evaluator, with the real anthropic client against a local stand-in."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.support.standin_llm import (
    Reply,
    StandinLLM,
    anthropic_error,
    anthropic_message,
    anthropic_text,
)
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import Span
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import SpanNode, ToolCall, Trace
from tracescore.scoring.evaluators import build_evaluator, registered
from tracescore.scoring.evaluators.judge import LlmJudge, LlmJudgeParams

MODEL = "claude-standin-1"
TRACE_ID = "5b8efff798038103d269b633813fc60c"
ROOT_SPAN_ID = "051581bf3cb55c13"
CASE = Case(id="c1", input="capital of France?", expected={"output": "Paris"})
ASSERTIONS = ["names Paris", "cites a source", "is one sentence"]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "placeholder-for-tests")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[StandinLLM]:
    # One stand-in for the module: stopping one takes half a second (its poll interval).
    with StandinLLM(answer({"reasoning": "ok", "score": 1})) as running:
        yield running


@pytest.fixture
def llm(server: StandinLLM) -> StandinLLM:
    server.requests.clear()
    return server


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


def root_span() -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=ROOT_SPAN_ID,
        parent_span_id="",
        trace_state="",
        name="invoke_agent",
        kind="Internal",
        service_name="agent",
        start_ns=0,
        duration_ns=1_000,
        status_code="Unset",
        status_message="",
        resource_attributes={},
        scope_name="test",
        scope_version="",
        attributes={},
    )


def make_trace(output: str | None = "It is Paris.") -> Trace:
    root = root_span()
    return Trace(
        trace_id=TRACE_ID,
        spans=[root],
        roots=[SpanNode(span=root)],
        input="capital of France?",
        final_output=output,
        tool_calls=[
            ToolCall(span_id="s1", name="search", arguments={"q": "France"}, result="Paris")
        ],
    )


def verdict(tool_input: dict[str, Any], name: str = "record_score") -> dict[str, Any]:
    return anthropic_message(
        [{"type": "tool_use", "id": "toolu_01", "name": name, "input": tool_input}],
        model=MODEL,
        input_tokens=321,
        output_tokens=45,
        stop_reason="tool_use",
        message_id="msg_judge_01",
    )


def answer(tool_input: dict[str, Any]) -> Reply:
    """Always the same verdict, under whichever tool the request forces."""

    def reply(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, verdict(tool_input, body["tool_choice"]["name"])

    return reply


def scripted(*replies: tuple[int, dict[str, Any]]) -> Reply:
    """The given replies in order, one per request; the last one repeats."""
    queue = list(replies)
    lock = threading.Lock()

    def reply(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return reply


def assertion_results(*holds: bool) -> dict[str, Any]:
    return {
        "results": [
            {"id": i, "reasoning": f"reason {i}", "holds": held} for i, held in enumerate(holds, 1)
        ]
    }


def judge(
    llm: StandinLLM | None,
    tmp_path: Path,
    provider: TracerProvider | None = None,
    **params: Any,
) -> LlmJudge:
    if "assertions" not in params:
        params.setdefault("rubric", "The answer names the right city.")
    settings = {
        "model": MODEL,
        "base_url": llm.base_url if llm else None,
        "cache_dir": str(tmp_path / "judge-cache"),
        **params,
    }
    return LlmJudge("judge", LlmJudgeParams.model_validate(settings), tracer_provider=provider)


def run(evaluator: LlmJudge, trace: Trace | None = None) -> Score:
    try:
        return evaluator.safe_score(trace or make_trace(), CASE)
    finally:
        evaluator.close()


# --- rubric ------------------------------------------------------------------------------------


def test_rubric_pass_normalizes_the_scale_and_forces_the_tool(
    llm: StandinLLM, tmp_path: Path
) -> None:
    llm.reply = answer({"reasoning": "Names Paris, correctly.", "score": 4})
    score = run(judge(llm, tmp_path, scale=[1, 5], pass_threshold=0.7))
    assert (score.passed, score.label, score.value, score.error) == (True, "pass", 0.75, None)
    assert score.explanation == "4 on 1–5 → 0.750 ≥ threshold 0.7; Names Paris, correctly."
    [(path, body)] = llm.requests
    assert path == "/v1/messages"
    assert (body["model"], body["max_tokens"]) == (MODEL, 1024)
    assert "temperature" not in body
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "record_score",
        "disable_parallel_tool_use": True,
    }
    [tool] = body["tools"]
    assert tool["input_schema"]["properties"]["score"] == {
        "type": "number",
        "minimum": 1,
        "maximum": 5,
    }
    prompt = body["messages"][0]["content"]
    # The default include: input, final output and expected, but not the tool calls.
    assert "<input>\ncapital of France?\n</input>" in prompt
    assert "<final_output>\nIt is Paris.\n</final_output>" in prompt
    assert '"output": "Paris"' in prompt
    assert "<tool_calls>" not in prompt
    assert "The answer names the right city." in prompt


def test_rubric_fail_keeps_the_value(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = answer({"reasoning": "Says Lyon.", "score": 0.2})
    score = run(judge(llm, tmp_path))
    assert (score.passed, score.label, score.value) == (False, "fail", 0.2)
    assert score.explanation == "0.200 < threshold 0.5; Says Lyon."


def test_include_tool_calls_shows_them_to_the_judge(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    run(judge(llm, tmp_path, include=["tool_calls"]))
    prompt = llm.requests[0][1]["messages"][0]["content"]
    assert "<tool_calls>" in prompt and '"name": "search"' in prompt
    assert "<final_output>" not in prompt and "<input>" not in prompt


# --- assertions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holds", "require", "passed"),
    [
        ((True, True, True), "all", True),
        ((True, False, True), "all", False),
        ((False, False, True), "any", True),
        ((False, False, False), "any", False),
        ((True, False, True), "majority", True),
        ((True, False, False), "majority", False),
    ],
)
def test_assertions_require(
    llm: StandinLLM, tmp_path: Path, holds: tuple[bool, ...], require: str, passed: bool
) -> None:
    llm.reply = answer(assertion_results(*holds))
    score = run(judge(llm, tmp_path, assertions=ASSERTIONS, require=require))
    assert (score.passed, score.label, score.error) == (passed, "pass" if passed else "fail", None)
    assert score.value == pytest.approx(sum(holds) / 3)
    body = llm.requests[0][1]
    assert body["tool_choice"]["name"] == "record_assertions"
    assert "1. names Paris\n2. cites a source\n3. is one sentence" in body["messages"][0]["content"]
    mark = {True: "✓", False: "✗"}
    assert score.explanation.startswith(f"{sum(holds)}/3 assertions hold (require {require}): ")
    for i, (text, held) in enumerate(zip(ASSERTIONS, holds, strict=True), 1):
        assert f"{mark[held]} {i}. {text!r}: reason {i}" in score.explanation


def test_assertion_results_in_any_order_are_matched_by_id(llm: StandinLLM, tmp_path: Path) -> None:
    results = assertion_results(True, False, True)
    results["results"].reverse()
    llm.reply = answer(results)
    score = run(judge(llm, tmp_path, assertions=ASSERTIONS))
    assert "✓ 1. 'names Paris'" in score.explanation
    assert "✗ 2. 'cites a source'" in score.explanation


# --- missing data and bad replies ---------------------------------------------------------------


def test_missing_final_output_is_an_error_without_a_call(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    score = run(judge(llm, tmp_path), make_trace(output=None))
    assert score.passed is None and score.label == "error"
    assert score.error is not None and score.error.startswith("trace has no final output")
    assert llm.requests == []


def test_missing_final_output_is_fine_when_the_judge_does_not_see_it(
    llm: StandinLLM, tmp_path: Path
) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    score = run(judge(llm, tmp_path, include=["input", "tool_calls"]), make_trace(None))
    assert score.passed is True


def test_text_reply_without_the_tool_call_is_an_error_and_not_cached(
    llm: StandinLLM, tmp_path: Path
) -> None:
    llm.reply = scripted(
        (200, anthropic_text("I think it is fine.", model=MODEL, input_tokens=9, output_tokens=5))
    )
    evaluator = judge(llm, tmp_path)
    first = evaluator.safe_score(make_trace(), CASE)
    second = run(evaluator)
    assert first.passed is None and first.label == "error"
    assert first.error == (
        "judge reply has no record_score tool call: got text 'I think it is fine.'"
    )
    assert second == first
    assert len(llm.requests) == 2


def test_json_text_reply_is_accepted(llm: StandinLLM, tmp_path: Path) -> None:
    text = '```json\n{"reasoning": "Names Paris.", "score": 0.9}\n```'
    llm.reply = scripted((200, anthropic_text(text, model=MODEL, input_tokens=9, output_tokens=5)))
    score = run(judge(llm, tmp_path))
    assert (score.passed, score.value) == (True, 0.9)


@pytest.mark.parametrize(
    ("params", "tool_input", "why"),
    [
        ({}, {"reasoning": "x", "score": 7}, "score 7 is outside the scale 0–1"),
        ({}, {"reasoning": "x"}, "score: Field required"),
        (
            {},
            {"reasoning": "x", "score": "high"},
            "score: Input should be a valid number, unable to parse string as a number",
        ),
        (
            {"assertions": ASSERTIONS},
            assertion_results(True, True),
            "expected one result for each id 1–3, got ids [1, 2]",
        ),
    ],
)
def test_invalid_verdict_is_an_error_showing_the_reply(
    llm: StandinLLM, tmp_path: Path, params: dict[str, Any], tool_input: dict[str, Any], why: str
) -> None:
    llm.reply = answer(tool_input)
    score = run(judge(llm, tmp_path, **params))
    assert score.passed is None and score.error is not None
    assert score.error.startswith(f"judge reply is not a valid verdict: {why}; got {{")


def test_reply_cut_off_at_max_tokens_says_so(llm: StandinLLM, tmp_path: Path) -> None:
    cut = anthropic_message(
        [
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "record_score",
                "input": {"reasoning": "x"},
            }
        ],
        model=MODEL,
        input_tokens=9,
        output_tokens=16,
        stop_reason="max_tokens",
    )
    llm.reply = scripted((200, cut))
    score = run(judge(llm, tmp_path, max_tokens=16))
    assert score.error is not None
    assert score.error.endswith("(the reply hit max_tokens=16; raise params.max_tokens)")


def test_long_unparseable_reply_is_truncated_in_the_error(llm: StandinLLM, tmp_path: Path) -> None:
    text = "blah " * 1000
    llm.reply = scripted((200, anthropic_text(text, model=MODEL, input_tokens=9, output_tokens=5)))
    score = run(judge(llm, tmp_path))
    assert score.error is not None and len(score.error) < 400 and score.error.endswith("…'")


# --- HTTP errors, retries, keys --------------------------------------------------------------


def test_overloaded_then_success_is_retried(llm: StandinLLM, tmp_path: Path) -> None:
    ok = verdict({"reasoning": "fine", "score": 1})
    llm.reply = scripted(anthropic_error(529), (200, ok))
    score = run(judge(llm, tmp_path, max_retries=2))
    assert (score.passed, score.error) == (True, None)
    assert len(llm.requests) == 2


def test_retries_give_up_with_the_status(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = scripted(anthropic_error(429, "slow down"))
    score = run(judge(llm, tmp_path, max_retries=1))
    assert score.error == (
        "judge call failed: HTTP 429 rate_limit_error: slow down (gave up after 1 retries)"
    )
    assert len(llm.requests) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (
            401,
            "judge call failed: HTTP 401 authentication_error: invalid x-api-key "
            "(check the API key in ANTHROPIC_API_KEY)",
        ),
        (400, "judge call failed: HTTP 400 invalid_request_error: invalid x-api-key"),
    ],
)
def test_non_retryable_status_is_an_error_after_one_request(
    llm: StandinLLM, tmp_path: Path, status: int, error: str
) -> None:
    llm.reply = scripted(anthropic_error(status, "invalid x-api-key"))
    score = run(judge(llm, tmp_path, max_retries=3))
    assert (score.passed, score.label, score.error) == (None, "error", error)
    assert len(llm.requests) == 1


def test_unreachable_server_is_an_error(tmp_path: Path) -> None:
    with StandinLLM(scripted((200, {}))) as llm:
        base_url = llm.base_url  # closed once the block ends
    evaluator = judge(None, tmp_path, base_url=base_url, max_retries=0, timeout_s=2)
    score = run(evaluator)
    assert score.error is not None
    assert score.error.startswith(f"judge call could not reach {base_url}: ")


def test_no_api_key_is_an_error_without_a_call(
    llm: StandinLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    llm.reply = answer({"reasoning": "ok", "score": 1})
    score = run(judge(llm, tmp_path))
    assert score.label == "error"
    assert score.error is not None and "set ANTHROPIC_API_KEY" in score.error
    assert llm.requests == []


def test_api_key_env_names_the_variable(
    llm: StandinLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("JUDGE_KEY", "other-placeholder")
    llm.reply = answer({"reasoning": "ok", "score": 1})
    score = run(judge(llm, tmp_path, api_key_env="JUDGE_KEY"))
    assert score.passed is True


# --- cache --------------------------------------------------------------------------------------


def test_cache_hit_makes_no_request_and_changed_content_misses(
    llm: StandinLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.reply = answer({"reasoning": "Names Paris.", "score": 0.8})
    first = run(judge(llm, tmp_path))
    # A new evaluator (a new process, as far as it can tell) reads the same files.
    again = run(judge(llm, tmp_path))
    assert len(llm.requests) == 1
    assert again == first
    changed = run(judge(llm, tmp_path), make_trace("It is Paris, France."))
    assert len(llm.requests) == 2
    assert changed.passed is True
    # A warm cache needs no key: re-scoring stored runs offline works.
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert run(judge(llm, tmp_path)) == first
    assert len(llm.requests) == 2
    entries = list((tmp_path / "judge-cache").rglob("*.json"))
    assert len(entries) == 2
    assert not list((tmp_path / "judge-cache").rglob("*.tmp"))


def test_params_that_change_the_reply_change_the_key(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    run(judge(llm, tmp_path))
    run(judge(llm, tmp_path, rubric="Another rubric."))
    run(judge(llm, tmp_path, model="claude-other"))
    run(judge(llm, tmp_path, max_tokens=99))
    # Operational params do not: same request, same entry.
    run(judge(llm, tmp_path, concurrency=1, timeout_s=5))
    assert len(llm.requests) == 4


def test_corrupt_cache_entry_is_refetched(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    first = run(judge(llm, tmp_path))
    [entry] = (tmp_path / "judge-cache").rglob("*.json")
    entry.write_text('{"verdict": {"reasoning": "ok", "sco')
    assert run(judge(llm, tmp_path)) == first
    assert len(llm.requests) == 2
    entry.write_text('{"format": 1, "verdict": {"nonsense": true}}')
    assert run(judge(llm, tmp_path)) == first
    assert len(llm.requests) == 3
    assert run(judge(llm, tmp_path)) == first
    assert len(llm.requests) == 3


def test_cache_off_always_asks(llm: StandinLLM, tmp_path: Path) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    run(judge(llm, tmp_path, cache=False))
    run(judge(llm, tmp_path, cache=False))
    assert len(llm.requests) == 2
    assert not (tmp_path / "judge-cache").exists()


def test_unwritable_cache_keeps_the_verdict(llm: StandinLLM, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    llm.reply = answer({"reasoning": "ok", "score": 1})
    score = run(judge(llm, tmp_path, cache_dir=str(blocker / "cache")))
    assert (score.passed, score.error) == (True, None)


# --- concurrency --------------------------------------------------------------------------------


def test_concurrency_limits_calls_in_flight_across_evaluators(tmp_path: Path) -> None:
    lock = threading.Lock()
    in_flight = 0
    most = 0

    def slow(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.1)
        with lock:
            in_flight -= 1
        return 200, verdict({"reasoning": "ok", "score": 1})

    with StandinLLM(slow) as llm:
        # Two evaluators on one endpoint and model share the process-wide limit.
        evaluators = [judge(llm, tmp_path, cache=False, concurrency=2) for _ in range(2)]
        jobs = [(evaluators[i % 2], make_trace(f"answer {i}")) for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            scores = list(pool.map(lambda job: job[0].safe_score(job[1], CASE), jobs))
        for evaluator in evaluators:
            evaluator.close()
    assert all(score.passed for score in scores)
    assert len(llm.requests) == 8
    assert most == 2


# --- spans --------------------------------------------------------------------------------------


def test_judge_call_emits_a_genai_client_span(
    llm: StandinLLM, tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    llm.reply = answer({"reasoning": "ok", "score": 1})
    run(judge(llm, tmp_path, provider))
    run(judge(llm, tmp_path, provider))  # a cache hit: no call, no span
    [span] = exporter.get_finished_spans()
    assert span.name == f"chat {MODEL}"
    assert span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.id"] == "msg_judge_01"
    assert attributes["gen_ai.response.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] == 321
    assert attributes["gen_ai.usage.output_tokens"] == 45
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert attributes["tracescore.evaluator.name"] == "judge"
    assert attributes["tracescore.scored.trace_id"] == TRACE_ID
    assert attributes["server.address"] == "127.0.0.1"
    [link] = span.links
    assert f"{link.context.trace_id:032x}" == TRACE_ID
    assert f"{link.context.span_id:016x}" == ROOT_SPAN_ID


def test_failed_judge_call_span_has_error_status(
    llm: StandinLLM, tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    llm.reply = scripted(anthropic_error(401))
    run(judge(llm, tmp_path, provider))
    [span] = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "401"


def test_sdk_client_spans_are_off(tmp_path: Path) -> None:
    # The judge's span is the GenAI client span; the SDK's own would be a second one.
    evaluator = judge(None, tmp_path)
    client = evaluator._client_for("placeholder-for-tests")
    try:
        assert client.open_telemetry["traces"]["enabled"] is False
    finally:
        evaluator.close()


# --- config -------------------------------------------------------------------------------------


def build(**params: Any) -> LlmJudge:
    evaluator = build_evaluator(EvaluatorSpec(type="llm_judge", params=params))
    assert isinstance(evaluator, LlmJudge)
    return evaluator


def test_registered_as_a_built_in() -> None:
    assert registered()["llm_judge"] is LlmJudge


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "params: Value error, give exactly one of `rubric`"),
        ({"rubric": "r", "assertions": ["a"]}, "params: Value error, give exactly one of `rubric`"),
        ({"assertions": []}, "params.assertions: Value error, give at least one assertion"),
        ({"assertions": ["ok", " "]}, "params.assertions: Value error, item 1: assertion is empty"),
        ({"rubric": "r", "scale": [5, 1]}, "params.scale: Value error, scale [5, 1] must go"),
        ({"rubric": "r", "require": "any"}, "params: Value error, require does not apply"),
        ({"assertions": ["a"], "pass_threshold": 0.9}, "params: Value error, pass_threshold does"),
        ({"rubric": "r", "include": ["output"]}, "params.include[0]: Input should be"),
        ({"rubric": "r", "max_token": 5}, "params.max_token: Extra inputs are not permitted"),
        ({"rubric": "r", "temperature": 0}, "params: Value error, temperature cannot be set"),
    ],
)
def test_bad_params_are_config_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(**params)
    assert str(caught.value).startswith(message)


def test_defaults() -> None:
    p = build(rubric="r").params
    assert isinstance(p, LlmJudgeParams)
    assert (p.model, p.scale, p.pass_threshold) == ("claude-sonnet-5-5", (0.0, 1.0), 0.5)
    assert p.include == ["input", "final_output", "expected"]
    assert (p.api_key_env, p.base_url, p.cache, p.cache_dir) == (
        "ANTHROPIC_API_KEY",
        None,
        True,
        ".tracescore/judge-cache",
    )


def test_config_hash_ignores_operational_params() -> None:
    base = build(rubric="r").config_hash
    assert build(rubric="r", concurrency=1, timeout_s=5, cache=False).config_hash == base
    assert build(rubric="r2").config_hash != base
    assert build(rubric="r", model="claude-other").config_hash != base
