"""Spans to a Trace: the span tree (orphans kept) and GenAI normalization."""

import json

from tracescore.schemas.spans import Span, SpanEvent
from tracescore.schemas.trace import SpanNode
from tracescore.scoring.reconstruct import build_tree, operation_of, reconstruct

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def span(
    span_id: str,
    parent: str = "",
    *,
    name: str = "work",
    start: int = 0,
    duration: int = 10,
    attributes: dict[str, str] | None = None,
    status: str = "Unset",
    status_message: str = "",
    service: str = "agent",
    scope: str = "test",
    events: tuple[SpanEvent, ...] = (),
) -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=span_id,
        parent_span_id=parent,
        trace_state="",
        name=name,
        kind="Internal",
        service_name=service,
        start_ns=start,
        duration_ns=duration,
        status_code=status,
        status_message=status_message,
        resource_attributes={"service.name": service},
        scope_name=scope,
        scope_version="",
        attributes=attributes or {},
        events=events,
    )


def messages(text: str, role: str = "assistant") -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def ids(nodes: list[SpanNode]) -> list[str]:
    return [n.span.span_id for n in nodes]


def find(nodes: list[SpanNode], span_id: str) -> SpanNode:
    for node in nodes:
        if node.span.span_id == span_id:
            return node
        try:
            return find(node.children, span_id)
        except LookupError:
            continue
    raise LookupError(span_id)


def chat(span_id: str, parent: str, start: int, **attributes: str) -> Span:
    attrs = {"gen_ai.operation.name": "chat", **attributes}
    return span(span_id, parent, name="chat gpt-4o", start=start, attributes=attrs)


# --- build_tree -------------------------------------------------------------------------------


def test_children_are_ordered_by_start_time() -> None:
    spans = [
        span("c3", "root", start=30),
        span("root", start=0, duration=100),
        span("c1", "root", start=10),
        span("g1", "c1", start=12),
        span("c2", "root", start=20),
    ]
    roots, orphans = build_tree(spans)
    assert ids(roots) == ["root"]
    assert orphans == []
    assert ids(roots[0].children) == ["c1", "c2", "c3"]
    assert ids(roots[0].children[0].children) == ["g1"]
    assert roots[0].children[1].children == []


def test_equal_start_times_order_deterministically_by_span_id() -> None:
    roots, _ = build_tree([span("p"), span("b", "p", start=5), span("a", "p", start=5)])
    assert ids(roots[0].children) == ["a", "b"]


def test_empty_parent_is_a_root_and_roots_are_ordered_by_start() -> None:
    roots, orphans = build_tree([span("late", start=50), span("early", start=5)])
    assert ids(roots) == ["early", "late"]
    assert orphans == []


def test_orphan_subtree_is_kept_not_dropped() -> None:
    spans = [
        span("root", start=0, duration=100),
        span("child", "root", start=1),
        span("orphan", "missing-parent", start=10),
        span("orphan-kid", "orphan", start=11),
        span("orphan-grandkid", "orphan-kid", start=12),
    ]
    roots, orphans = build_tree(spans)
    assert ids(roots) == ["root"]
    assert ids(orphans) == ["orphan"]
    assert ids(orphans[0].children) == ["orphan-kid"]
    assert ids(orphans[0].children[0].children) == ["orphan-grandkid"]
    # Not re-parented under the root either.
    assert ids(roots[0].children) == ["child"]


def test_a_span_that_is_its_own_parent_is_an_orphan() -> None:
    roots, orphans = build_tree([span("loop", "loop")])
    assert roots == []
    assert ids(orphans) == ["loop"]


def test_trace_with_an_orphan_is_incomplete() -> None:
    trace = reconstruct(
        TRACE_ID,
        [span("root"), span("lost", "gone", start=5), span("lost-kid", "lost", start=6)],
    )
    assert not trace.is_complete
    assert ids(trace.orphans) == ["lost"]
    assert ids(trace.orphans[0].children) == ["lost-kid"]
    # Every span is still in the flat list.
    assert {s.span_id for s in trace.spans} == {"root", "lost", "lost-kid"}


def test_trace_with_one_root_and_no_orphans_is_complete() -> None:
    trace = reconstruct(TRACE_ID, [span("root"), span("kid", "root", start=1)])
    assert trace.is_complete
    assert trace.trace_id == TRACE_ID


def test_trace_with_two_roots_is_incomplete() -> None:
    trace = reconstruct(TRACE_ID, [span("r1"), span("r2", start=1)])
    assert trace.orphans == []
    assert not trace.is_complete


# --- GenAI normalization ----------------------------------------------------------------------


def test_chat_span_becomes_an_llm_call() -> None:
    s = chat(
        "llm",
        "",
        0,
        **{
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "resp-1",
            "gen_ai.usage.input_tokens": "12",
            "gen_ai.usage.output_tokens": "34",
            "gen_ai.response.finish_reasons": '["stop"]',
            "gen_ai.input.messages": messages("What is 2+2?", role="user"),
            "gen_ai.output.messages": messages("4"),
        },
    )
    trace = reconstruct(TRACE_ID, [s])
    assert len(trace.llm_calls) == 1
    call = trace.llm_calls[0]
    assert call.span_id == "llm"
    assert call.operation == "chat"
    assert call.provider == "openai"
    assert call.request_model == "gpt-4o"
    assert call.response_model == "gpt-4o-2024-08-06"
    assert call.response_id == "resp-1"
    assert call.input_tokens == 12
    assert call.output_tokens == 34
    assert call.finish_reasons == ["stop"]
    assert call.output_text == "4"
    assert call.input_messages is not None
    assert call.input_messages[0]["role"] == "user"
    assert call.error is None
    assert call.duration_ns == 10
    assert trace.input_tokens == 12
    assert trace.output_tokens == 34
    assert trace.total_tokens == 46
    assert trace.tool_calls == []


def test_provider_falls_back_to_gen_ai_system() -> None:
    trace = reconstruct(TRACE_ID, [chat("llm", "", 0, **{"gen_ai.system": "anthropic"})])
    assert trace.llm_calls[0].provider == "anthropic"


def test_provider_name_wins_over_gen_ai_system() -> None:
    s = chat("llm", "", 0, **{"gen_ai.provider.name": "openai", "gen_ai.system": "legacy"})
    assert reconstruct(TRACE_ID, [s]).llm_calls[0].provider == "openai"


def test_output_text_joins_text_parts_of_the_last_assistant_message() -> None:
    output = json.dumps(
        [
            {"role": "assistant", "parts": [{"type": "text", "content": "first"}]},
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": "Hello, "},
                    {"type": "tool_call", "name": "x", "arguments": {}},
                    {"type": "text", "content": "world"},
                ],
            },
        ]
    )
    s = chat("llm", "", 0, **{"gen_ai.output.messages": output})
    assert reconstruct(TRACE_ID, [s]).llm_calls[0].output_text == "Hello, world"


def test_unparseable_numbers_and_messages_do_not_crash() -> None:
    s = chat(
        "llm",
        "",
        0,
        **{
            "gen_ai.usage.input_tokens": "many",
            "gen_ai.output.messages": "not json",
            "gen_ai.response.finish_reasons": "length",
        },
    )
    call = reconstruct(TRACE_ID, [s]).llm_calls[0]
    assert call.input_tokens is None
    assert call.output_text is None
    assert call.output_messages is None
    assert call.finish_reasons == ["length"]


def test_chat_spans_sharing_a_response_id_are_counted_once() -> None:
    tokens = {"gen_ai.usage.input_tokens": "10", "gen_ai.usage.output_tokens": "5"}
    spans = [
        span(
            "agent", name="invoke_agent demo", attributes={"gen_ai.operation.name": "invoke_agent"}
        ),
        chat("sdk", "agent", 1, **{"gen_ai.response.id": "resp-42"}, **tokens),
        chat("instr", "sdk", 2, **{"gen_ai.response.id": "resp-42"}, **tokens),
        chat("other", "agent", 3, **{"gen_ai.response.id": "resp-43"}, **tokens),
    ]
    trace = reconstruct(TRACE_ID, spans)
    assert [c.span_id for c in trace.llm_calls] == ["sdk", "other"]
    assert trace.input_tokens == 20
    assert trace.output_tokens == 10


def test_chat_spans_without_response_id_are_not_deduplicated() -> None:
    tokens = {"gen_ai.usage.input_tokens": "3"}
    trace = reconstruct(TRACE_ID, [chat("a", "", 0, **tokens), chat("b", "", 1, **tokens)])
    assert [c.span_id for c in trace.llm_calls] == ["a", "b"]
    assert trace.input_tokens == 6


def test_execute_tool_span_becomes_a_tool_call() -> None:
    s = span(
        "tool",
        name="execute_tool calculator",
        duration=7,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "calculator",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"expression": "17 * 23", "opts": {"exact": true}}',
            "gen_ai.tool.call.result": '{"value": 391}',
        },
    )
    trace = reconstruct(TRACE_ID, [s])
    assert trace.llm_calls == []
    assert len(trace.tool_calls) == 1
    call = trace.tool_calls[0]
    assert call.span_id == "tool"
    assert call.name == "calculator"
    assert call.call_id == "call_1"
    assert call.arguments == {"expression": "17 * 23", "opts": {"exact": True}}
    assert call.result == {"value": 391}
    assert call.error is None
    assert call.duration_ns == 7


def test_tool_result_that_is_not_json_is_kept_as_text() -> None:
    s = span(
        "tool",
        name="execute_tool get_weather",
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.result": "sunny, 24 C",
        },
    )
    call = reconstruct(TRACE_ID, [s]).tool_calls[0]
    assert call.result == "sunny, 24 C"
    assert call.arguments is None


def test_failed_tool_call_carries_the_status_message() -> None:
    s = span(
        "tool",
        name="execute_tool lookup_capital",
        status="Error",
        status_message="KeyError: 'Atlantis'",
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_capital"},
    )
    trace = reconstruct(TRACE_ID, [s])
    assert trace.tool_calls[0].error == "KeyError: 'Atlantis'"
    assert trace.error_spans == ["tool"]


def test_operation_is_inferred_from_the_span_name() -> None:
    spans = [
        span("agent", name="invoke_agent planner", start=0, duration=100),
        span("llm", "agent", name="chat gpt-4o", start=1),
        span(
            "tool",
            "agent",
            name="execute_tool calculator",
            start=2,
            attributes={"gen_ai.tool.call.arguments": '{"x": 1}'},
        ),
        span("misc", "agent", name="chatter box", start=3),
    ]
    assert [operation_of(s) for s in spans] == ["invoke_agent", "chat", "execute_tool", None]
    trace = reconstruct(TRACE_ID, spans)
    assert [c.span_id for c in trace.llm_calls] == ["llm"]
    assert trace.llm_calls[0].operation == "chat"
    # Without gen_ai.tool.name the tool name comes from the span name.
    assert [(c.span_id, c.name) for c in trace.tool_calls] == [("tool", "calculator")]
    assert trace.tool_calls[0].arguments == {"x": 1}
    assert [s.span_id for s in trace.agent_steps] == ["agent"]


def test_operation_attribute_wins_over_the_span_name() -> None:
    s = span("x", name="chat something", attributes={"gen_ai.operation.name": "execute_tool"})
    assert operation_of(s) == "execute_tool"


# --- final output, input, errors and duration -------------------------------------------------


def harness(span_id: str = "case", **attributes: str) -> Span:
    return span(
        span_id,
        name="tracescore.case greet",
        start=0,
        duration=1_000,
        attributes=attributes,
        service="tracescore-harness",
    )


def test_final_output_prefers_the_outermost_agent() -> None:
    spans = [
        harness(**{"tracescore.sut.output": "from harness"}),
        span(
            "outer",
            "case",
            name="invoke_agent outer",
            start=10,
            duration=500,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "outer",
                "gen_ai.output.messages": messages("outer answer"),
            },
        ),
        span(
            "inner",
            "outer",
            name="invoke_agent inner",
            start=20,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.output.messages": messages("inner answer"),
            },
        ),
        chat("llm", "inner", 30, **{"gen_ai.output.messages": messages("chat answer")}),
    ]
    trace = reconstruct(TRACE_ID, spans)
    assert trace.final_output == "outer answer"
    assert [(s.span_id, s.agent_name) for s in trace.agent_steps] == [
        ("outer", "outer"),
        ("inner", None),
    ]
    assert trace.agent_steps[0].output_text == "outer answer"


def test_final_output_falls_back_to_the_last_chat_output() -> None:
    spans = [
        harness(**{"tracescore.sut.output": "from harness"}),
        span("agent", "case", name="invoke_agent a", start=5, duration=500),
        chat("llm1", "agent", 10, **{"gen_ai.output.messages": messages("first reply")}),
        chat("llm2", "agent", 20, **{"gen_ai.output.messages": messages("last reply")}),
        chat("llm3", "agent", 30),
    ]
    assert reconstruct(TRACE_ID, spans).final_output == "last reply"


def test_final_output_falls_back_to_the_harness_sut_output() -> None:
    spans = [
        harness(**{"tracescore.sut.output": "Hello! How can I help you today?"}),
        chat("llm", "case", 10),
    ]
    assert reconstruct(TRACE_ID, spans).final_output == "Hello! How can I help you today?"


def test_sut_output_on_a_non_harness_root_is_ignored() -> None:
    s = span("root", name="main", attributes={"tracescore.sut.output": "ignored"})
    assert reconstruct(TRACE_ID, [s]).final_output is None


def test_no_output_anywhere_is_none() -> None:
    trace = reconstruct(TRACE_ID, [harness(), span("kid", "case", start=1)])
    assert trace.final_output is None


def test_input_and_duration_come_from_the_harness_root() -> None:
    spans = [
        harness(**{"tracescore.case.input": "What is 17 * 23?"}),
        chat(
            "llm",
            "case",
            10,
            **{"gen_ai.input.messages": messages("a rephrased question", role="user")},
        ),
        span("late", "case", start=900, duration=5_000),
    ]
    trace = reconstruct(TRACE_ID, spans)
    assert trace.input == "What is 17 * 23?"
    assert trace.duration_ns == 1_000


def test_without_a_harness_input_and_duration_come_from_the_spans() -> None:
    spans = [
        span("root", name="main", start=100, duration=50),
        chat(
            "llm",
            "root",
            120,
            **{"gen_ai.input.messages": messages("the user question", role="user")},
        ),
        span("tail", "root", start=140, duration=60),
    ]
    trace = reconstruct(TRACE_ID, spans)
    assert trace.input == "the user question"
    assert trace.duration_ns == 100  # 200 (last end) - 100 (first start)


def test_error_spans_lists_error_status_spans_in_start_order() -> None:
    spans = [
        harness(),
        span("ok", "case", start=1, status="Ok"),
        span("bad2", "case", start=3, status="Error", status_message="boom"),
        span("bad1", "case", start=2, status="STATUS_CODE_ERROR"),
        chat("llm", "case", 4),
    ]
    trace = reconstruct(TRACE_ID, spans)
    assert trace.error_spans == ["bad1", "bad2"]


def test_failed_chat_call_carries_its_error() -> None:
    s = span(
        "llm",
        name="chat gpt-4o",
        status="Error",
        status_message="rate limited",
        attributes={"gen_ai.operation.name": "chat"},
    )
    trace = reconstruct(TRACE_ID, [s])
    assert trace.llm_calls[0].error == "rate limited"
    assert trace.error_spans == ["llm"]


def test_reconstruct_orders_spans_and_finds_nested_nodes() -> None:
    spans = [
        span("b", "case", start=20),
        harness(),
        span("a", "case", start=10),
        span("a1", "a", start=11),
    ]
    trace = reconstruct(TRACE_ID, spans)
    assert [s.span_id for s in trace.spans] == ["case", "a", "a1", "b"]
    assert ids(trace.roots) == ["case"]
    assert ids(find(trace.roots, "a").children) == ["a1"]


def test_empty_trace() -> None:
    trace = reconstruct(TRACE_ID, [])
    assert trace.roots == []
    assert trace.final_output is None
    assert trace.input is None
    assert trace.duration_ns == 0
    assert trace.is_complete


def test_spans_in_a_parent_loop_are_kept_as_orphans() -> None:
    # a -> b -> a: neither reaches a root; both must survive, without a cyclic tree.
    spans = [span("r"), span("a", "b", start=1), span("b", "a", start=2)]
    roots, orphans = build_tree(spans)
    assert ids(roots) == ["r"]
    assert ids(orphans) == ["a"]
    assert ids(orphans[0].children) == ["b"]
    assert orphans[0].children[0].children == []
    trace = reconstruct(TRACE_ID, spans)
    assert not trace.is_complete
    assert len(trace.spans) == 3


def test_outermost_agent_is_chosen_by_depth_not_by_start_time() -> None:
    # The inner agent starts in the same nanosecond and sorts first by span id.
    outer = span(
        "b2",
        name="invoke_agent outer",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.output.messages": messages("outer"),
        },
    )
    inner = span(
        "a1",
        "b2",
        name="invoke_agent inner",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.output.messages": messages("inner"),
        },
    )
    trace = reconstruct(TRACE_ID, [inner, outer])
    assert trace.final_output == "outer"
    assert [s.span_id for s in trace.agent_steps] == ["b2", "a1"]
