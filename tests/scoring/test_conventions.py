"""Normalization of each instrumentation convention into the same Trace facts.

Hand-written spans in each convention's attribute shapes; the fixtures captured from the
real instrumentors are checked in test_fixture_normalization.py.
"""

import json
from typing import Any

import pytest

from tests.scoring.test_reconstruct import TRACE_ID, span
from tracescore.schemas.spans import LogRecord, SpanEvent
from tracescore.scoring.messages import finish_reason
from tracescore.scoring.reconstruct import reconstruct


def log(span_id: str, event: str, body: Any, at: int = 0) -> LogRecord:
    return LogRecord(
        trace_id=TRACE_ID,
        span_id=span_id,
        timestamp_ns=at,
        event_name=event,
        body=json.dumps(body),
    )


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("tool_calls", "tool_call"),
        ("tool_use", "tool_call"),
        ("function_call", "tool_call"),
        ("end_turn", "stop"),
        ("STOP", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("something_new", "something_new"),
    ],
)
def test_finish_reasons_share_one_vocabulary(raw: str, normal: str) -> None:
    assert finish_reason(raw) == normal


# -- OTel GenAI, current -----------------------------------------------------------------------


def test_current_genai_messages_tokens_and_tool_call_parts() -> None:
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "search", "arguments": {"q": "x"}}],
            "finish_reason": "tool_call",
        }
    ]
    chat = span(
        "a",
        name="chat gpt-4o",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "find x"}]}]
            ),
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "be brief"}]),
            "gen_ai.output.messages": json.dumps(output),
            "gen_ai.response.finish_reasons": '["tool_calls"]',
            "gen_ai.usage.input_tokens": "30",
            "gen_ai.usage.output_tokens": "5",
            "gen_ai.usage.cache_read.input_tokens": "10",
        },
    )
    trace = reconstruct(TRACE_ID, [chat])
    [call] = trace.llm_calls
    assert call.provider == "openai"
    assert call.finish_reasons == ["tool_call"]
    assert (call.input_tokens, call.output_tokens, call.cached_input_tokens) == (30, 5, 10)
    assert call.input_messages is not None
    assert [m["role"] for m in call.input_messages] == ["system", "user"]
    assert trace.input == "find x"
    [tool] = trace.tool_calls
    assert (tool.name, tool.call_id, tool.arguments, tool.span_id) == (
        "search",
        "c1",
        {"q": "x"},
        "a",
    )
    assert trace.cached_input_tokens == 10
    assert trace.has_token_usage


# -- OTel GenAI, older forms -------------------------------------------------------------------


def test_older_genai_message_events_as_logs_and_span_events() -> None:
    chat = span(
        "a",
        name="chat gpt-4o",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.usage.prompt_tokens": "12",
            "gen_ai.usage.completion_tokens": "3",
        },
        events=(
            SpanEvent(
                timestamp_ns=1,
                name="gen_ai.system.message",
                attributes={"content": "You are terse."},
            ),
        ),
    )
    logs = [
        log("a", "gen_ai.user.message", {"content": "Capital of France?"}),
        log(
            "a",
            "gen_ai.choice",
            {"index": 0, "finish_reason": "stop", "message": {"content": "Paris"}},
        ),
    ]
    trace = reconstruct(TRACE_ID, [chat], logs)
    [call] = trace.llm_calls
    assert call.provider == "openai"
    assert (call.input_tokens, call.output_tokens) == (12, 3)
    assert call.input_messages is not None
    assert [m["role"] for m in call.input_messages] == ["system", "user"]
    assert call.output_text == "Paris"
    assert call.finish_reasons == ["stop"]
    assert trace.final_output == "Paris"
    assert trace.input == "Capital of France?"
    assert len(trace.logs) == 2


def test_older_choice_event_with_tool_calls_and_tool_message() -> None:
    first = span("a", name="chat gpt-4o", start=0, attributes={"gen_ai.operation.name": "chat"})
    second = span("b", name="chat gpt-4o", start=500, attributes={"gen_ai.operation.name": "chat"})
    call = {"id": "c9", "type": "function", "function": {"name": "lookup", "arguments": '{"k": 1}'}}
    logs = [
        log(
            "a", "gen_ai.choice", {"finish_reason": "tool_calls", "message": {"tool_calls": [call]}}
        ),
        log("b", "gen_ai.tool.message", {"id": "c9", "content": '{"v": 2}'}),
        log("b", "gen_ai.choice", {"finish_reason": "stop", "message": {"content": "v is 2"}}),
    ]
    trace = reconstruct(TRACE_ID, [first, second], logs)
    [tool] = trace.tool_calls
    assert (tool.name, tool.call_id, tool.arguments, tool.result) == (
        "lookup",
        "c9",
        {"k": 1},
        {"v": 2},
    )
    assert trace.llm_calls[0].finish_reasons == ["tool_call"]
    assert trace.final_output == "v is 2"


# -- OpenLLMetry -------------------------------------------------------------------------------


def test_openllmetry_indexed_prompts_and_completions() -> None:
    chat = span(
        "a",
        name="anthropic.chat",
        scope="opentelemetry.instrumentation.anthropic",
        attributes={
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Weather in Paris?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Let me check.",
            "gen_ai.completion.0.finish_reason": "tool_use",
            "gen_ai.completion.0.tool_calls.0.id": "toolu_1",
            "gen_ai.completion.0.tool_calls.0.name": "get_weather",
            "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
            "gen_ai.usage.input_tokens": "50",
            "gen_ai.usage.output_tokens": "12",
            "gen_ai.usage.cache_read_input_tokens": "10",
        },
    )
    tool = span(
        "t",
        start=200,
        attributes={
            "traceloop.span.kind": "tool",
            "traceloop.entity.name": "get_weather",
            "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"city": "Paris"}}),
            "traceloop.entity.output": json.dumps({"temp_c": 18}),
        },
    )
    trace = reconstruct(TRACE_ID, [chat, tool])
    [call] = trace.llm_calls
    assert call.provider == "anthropic"
    assert (call.input_tokens, call.cached_input_tokens) == (50, 10)
    assert call.finish_reasons == ["tool_call"]
    [executed] = trace.tool_calls
    assert executed.span_id == "t"
    assert (executed.name, executed.call_id) == ("get_weather", "toolu_1")
    assert executed.arguments == {"city": "Paris"}
    assert executed.result == {"temp_c": 18}


# -- OpenInference -----------------------------------------------------------------------------


def test_openinference_llm_tool_agent_and_retriever_spans() -> None:
    agent = span(
        "ag",
        duration=1000,
        attributes={
            "openinference.span.kind": "AGENT",
            "input.value": "Weather in Paris?",
            "output.value": "Sunny, 18°C.",
        },
    )
    llm = span(
        "l1",
        "ag",
        start=10,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "Weather in Paris?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
                '{"city": "Paris"}'
            ),
            "llm.token_count.prompt": "50",
            "llm.token_count.completion": "12",
            "llm.token_count.prompt_details.cache_read": "10",
            "output.value": json.dumps(
                {"id": "chatcmpl-1", "choices": [{"finish_reason": "tool_calls", "message": {}}]}
            ),
        },
    )
    tool = span(
        "tl",
        "ag",
        start=200,
        attributes={
            "openinference.span.kind": "TOOL",
            "tool.name": "get_weather",
            # The tool's parameter schema, not the call's arguments (those are input.value).
            "tool.parameters": '{"type": "object"}',
            "input.value": '{"city": "Paris"}',
            "output.value": '{"temp_c": 18}',
        },
    )
    retriever = span(
        "rt",
        "ag",
        start=300,
        attributes={
            "openinference.span.kind": "RETRIEVER",
            "input.value": "paris climate",
            "retrieval.documents.0.document.id": "d1",
            "retrieval.documents.0.document.content": "Paris is temperate.",
            "retrieval.documents.0.document.score": "0.9",
        },
    )
    trace = reconstruct(TRACE_ID, [agent, llm, tool, retriever])
    [call] = trace.llm_calls
    assert (call.provider, call.request_model, call.response_id) == (
        "openai",
        "gpt-4o-mini",
        "chatcmpl-1",
    )
    assert (call.input_tokens, call.output_tokens, call.cached_input_tokens) == (50, 12, 10)
    assert call.finish_reasons == ["tool_call"]
    [executed] = trace.tool_calls
    assert (executed.span_id, executed.call_id, executed.result) == ("tl", "call_1", {"temp_c": 18})
    assert executed.arguments == {"city": "Paris"}
    assert trace.final_output == "Sunny, 18°C."
    assert trace.input == "Weather in Paris?"
    assert [s.agent_name for s in trace.agent_steps] == ["work"]
    [retrieval] = trace.retrievals
    assert retrieval.query == "paris climate"
    assert [(d.id, d.score) for d in retrieval.documents] == [("d1", 0.9)]


# -- one call, two spans -----------------------------------------------------------------------


def test_nested_spans_of_one_call_merge_and_count_tokens_once() -> None:
    outer = span(
        "oi",
        duration=300,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-sonnet-4-5",
            "llm.token_count.prompt": "50",
            "llm.token_count.completion": "12",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "hello",
        },
    )
    inner = span(
        "sdk",
        "oi",
        start=5,
        duration=290,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.id": "msg_1",
            "gen_ai.usage.input_tokens": "50",
            "gen_ai.usage.output_tokens": "12",
        },
    )
    trace = reconstruct(TRACE_ID, [outer, inner])
    [call] = trace.llm_calls
    assert trace.input_tokens == 50
    assert trace.output_tokens == 12
    # GenAI's fields win; OpenInference fills in the messages GenAI did not record.
    assert call.span_id == "sdk"
    assert (call.provider, call.response_id, call.output_text) == ("anthropic", "msg_1", "hello")


def test_sibling_spans_with_one_response_id_are_one_call() -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.response.id": "r1"}
    a = span("a", attributes={**attrs, "gen_ai.usage.input_tokens": "7"})
    b = span("b", start=1, attributes={**attrs, "gen_ai.usage.input_tokens": "7"})
    c = span("c", start=2, attributes={"gen_ai.operation.name": "chat", "gen_ai.response.id": "r2"})
    trace = reconstruct(TRACE_ID, [a, b, c])
    assert [call.response_id for call in trace.llm_calls] == ["r1", "r2"]
    assert trace.input_tokens == 7


def test_calls_separated_by_an_agent_span_are_not_merged() -> None:
    outer = span("o", duration=500, attributes={"gen_ai.operation.name": "chat"})
    agent = span("ag", "o", start=1, attributes={"gen_ai.operation.name": "invoke_agent"})
    inner = span("i", "ag", start=2, attributes={"gen_ai.operation.name": "chat"})
    assert len(reconstruct(TRACE_ID, [outer, agent, inner]).llm_calls) == 2


def test_requested_tool_calls_without_spans_are_tool_calls_with_results() -> None:
    call_1 = span(
        "a",
        start=0,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "tool_call", "id": "x", "name": "f", "arguments": {"n": 1}},
                            {"type": "tool_call", "id": "y", "name": "g", "arguments": {}},
                        ],
                    }
                ]
            ),
        },
    )
    call_2 = span(
        "b",
        start=1000,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "tool",
                        "parts": [{"type": "tool_call_response", "id": "x", "response": "one"}],
                    }
                ]
            ),
        },
    )
    trace = reconstruct(TRACE_ID, [call_1, call_2])
    assert [(t.name, t.call_id, t.result) for t in trace.tool_calls] == [
        ("f", "x", "one"),
        ("g", "y", None),
    ]


def test_rebuilt_traces_of_every_convention_are_valid_models() -> None:
    chat = span(
        "a",
        attributes={
            "llm.request.type": "chat",
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.tool_calls.0.name": "f",
            "gen_ai.usage.input_tokens": "3",
        },
    )
    tool = span("t", "a", start=5, attributes={"openinference.span.kind": "TOOL", "tool.name": "f"})
    retriever = span(
        "r",
        start=9,
        attributes={
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.content": "doc",
        },
    )
    trace = reconstruct(TRACE_ID, [chat, tool, retriever], [log("a", "gen_ai.user.message", {})])
    assert trace.tool_calls and trace.retrievals and trace.llm_calls
    assert type(trace).model_validate(trace.model_dump()) == trace
