"""One logical agent run, captured from real instrumentation libraries (see
tests/fixtures/traces/capture.py), normalizes to the same facts in every convention."""

import json
from pathlib import Path

import pytest

from tracescore.schemas.spans import LogRecord, Span
from tracescore.schemas.trace import Trace
from tracescore.scoring.reconstruct import reconstruct

FIXTURES = Path(__file__).parent.parent / "fixtures" / "traces"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
# Instrumentors that record the prompt-cache read of the first call.
RECORDS_CACHED_TOKENS = {
    "anthropic_native_plus_openinference",
    "openinference_anthropic",
    "openinference_openai",
    "openllmetry_anthropic",
}


def load(name: str) -> tuple[Trace, list[Span]]:
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    spans = [Span.model_validate(s) for s in data["spans"]]
    logs = [LogRecord.model_validate(r) for r in data["logs"]]
    return reconstruct(data["trace_id"], spans, logs), spans


def test_every_convention_is_captured() -> None:
    assert set(NAMES) >= {
        "otel_genai_openai_latest",
        "otel_genai_openai_events",
        "openinference_openai",
        "openinference_anthropic",
        "openllmetry_anthropic",
        "anthropic_native_plus_openinference",
    }


@pytest.mark.parametrize("name", NAMES)
def test_same_run_same_facts(name: str) -> None:
    trace, spans = load(name)
    provider = "anthropic" if "anthropic" in name else "openai"
    call_id = "toolu_1" if provider == "anthropic" else "call_1"

    assert trace.input == "What is the weather in Paris?"
    assert trace.final_output == "It is 18°C and sunny in Paris."
    assert [c.provider for c in trace.llm_calls] == [provider, provider]
    assert [c.finish_reasons for c in trace.llm_calls] == [["tool_call"], ["stop"]]
    assert [(c.input_tokens, c.output_tokens) for c in trace.llm_calls] == [(50, 12), (80, 15)]
    assert (trace.input_tokens, trace.output_tokens) == (130, 27)
    expected_cached = 10 if name in RECORDS_CACHED_TOKENS else 0
    assert trace.cached_input_tokens == expected_cached

    [tool] = trace.tool_calls
    assert tool.name == "get_weather"
    assert tool.call_id == call_id
    assert tool.arguments == {"city": "Paris"}
    assert tool.result == {"temp_c": 18, "conditions": "sunny"}
    # The tool call is the agent's tool span, not only the model's request.
    tool_span = next(s for s in spans if s.span_id == tool.span_id)
    assert "get_weather" in tool_span.name

    [step] = trace.agent_steps
    assert step.agent_name is not None
    assert "weather-agent" in step.agent_name
    assert trace.is_complete
    assert trace.error_spans == []


def test_the_sdk_and_the_instrumentor_span_of_one_call_count_once() -> None:
    trace, spans = load("anthropic_native_plus_openinference")
    llm_spans = [
        s
        for s in spans
        if s.scope_name == "com.anthropic.sdk.python" or "messages.create" in s.name
    ]
    assert len(llm_spans) == 4  # two calls, each traced by the SDK and by OpenInference
    assert [c.response_id for c in trace.llm_calls] == ["msg_1", "msg_2"]
    assert trace.input_tokens == 130


def test_message_content_sent_as_log_events_is_read() -> None:
    trace, spans = load("otel_genai_openai_events")
    assert not any("gen_ai.output.messages" in s.attributes for s in spans)
    assert trace.logs
    assert trace.llm_calls[1].output_text == "It is 18°C and sunny in Paris."


@pytest.mark.parametrize("name", NAMES)
def test_rebuilt_traces_are_valid_models(name: str) -> None:
    # reconstruct builds its models without validating them again; they must be what
    # validation would have produced.
    trace, _ = load(name)
    assert Trace.model_validate(trace.model_dump()) == trace
