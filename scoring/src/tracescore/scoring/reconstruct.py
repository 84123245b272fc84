"""Spans to a ``Trace``: the tree (orphans kept) and the agent-level facts evaluators read."""

import json
from collections.abc import Iterable
from typing import Any

from tracescore.schemas import attributes as attr
from tracescore.schemas.spans import Span
from tracescore.schemas.trace import AgentStep, LlmCall, SpanNode, ToolCall, Trace


def build_tree(spans: Iterable[Span]) -> tuple[list[SpanNode], list[SpanNode]]:
    """Parent/child tree by span id. Returns (roots, orphans), each ordered by start time.

    An orphan is a span whose parent id names a span that is not in the trace:
    its subtree is kept and reported rather than dropped or re-parented.
    """
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    nodes = {s.span_id: SpanNode(span=s) for s in ordered}
    roots: list[SpanNode] = []
    orphans: list[SpanNode] = []
    for span in ordered:
        node = nodes[span.span_id]
        parent_id = span.parent_span_id
        if not parent_id:
            roots.append(node)
        elif parent_id in nodes and parent_id != span.span_id:
            nodes[parent_id].children.append(node)
        else:
            orphans.append(node)
    _break_cycles(nodes, roots, orphans)
    return roots, orphans


def _break_cycles(
    nodes: dict[str, SpanNode], roots: list[SpanNode], orphans: list[SpanNode]
) -> None:
    """Spans whose parent links form a loop reach no root; keep them as orphans."""
    reached: set[str] = set()

    def walk(node: SpanNode) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            reached.add(current.span.span_id)
            stack.extend(current.children)

    for node in (*roots, *orphans):
        walk(node)
    for span_id, node in nodes.items():  # in start order
        if span_id in reached:
            continue
        parent = nodes[node.span.parent_span_id]
        parent.children.remove(node)
        orphans.append(node)
        walk(node)


def operation_of(span: Span) -> str | None:
    """The GenAI operation a span performs, from ``gen_ai.operation.name`` or its span name."""
    op = span.attributes.get(attr.GEN_AI_OPERATION_NAME)
    if op:
        return op
    first_word = span.name.split(" ", 1)[0]
    known = attr.LLM_OPERATIONS | {attr.OP_EXECUTE_TOOL, attr.OP_INVOKE_AGENT}
    return first_word if first_word in known else None


def reconstruct(trace_id: str, spans: list[Span]) -> Trace:
    roots, orphans = build_tree(spans)
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    llm_calls: list[LlmCall] = []
    seen_responses: set[str] = set()
    tool_calls: list[ToolCall] = []
    agent_steps: list[AgentStep] = []
    for span in ordered:
        op = operation_of(span)
        if op in attr.LLM_OPERATIONS:
            call = _llm_call(span, op or "")
            # The same call traced twice (SDK and instrumentor) shares a response id.
            if call.response_id and call.response_id in seen_responses:
                continue
            if call.response_id:
                seen_responses.add(call.response_id)
            llm_calls.append(call)
        elif op == attr.OP_EXECUTE_TOOL:
            tool_calls.append(_tool_call(span))
        elif op == attr.OP_INVOKE_AGENT:
            agent_steps.append(
                AgentStep(
                    span_id=span.span_id,
                    agent_name=span.attributes.get(attr.GEN_AI_AGENT_NAME),
                    output_text=_messages_text(
                        _json(span.attributes.get(attr.GEN_AI_OUTPUT_MESSAGES))
                    ),
                    duration_ns=span.duration_ns,
                )
            )
    depth = _depths(roots, orphans)
    # Outermost agent first: by tree depth, then start time.
    agent_steps.sort(key=lambda step: depth.get(step.span_id, 0))
    harness = _harness_root(roots)
    return Trace(
        trace_id=trace_id,
        spans=ordered,
        roots=roots,
        orphans=orphans,
        input=_input_of(harness, ordered),
        final_output=_final_output(agent_steps, llm_calls, harness),
        llm_calls=llm_calls,
        tool_calls=tool_calls,
        agent_steps=agent_steps,
        error_spans=[s.span_id for s in ordered if s.is_error],
        duration_ns=_duration(harness, ordered),
        input_tokens=sum(c.input_tokens or 0 for c in llm_calls),
        output_tokens=sum(c.output_tokens or 0 for c in llm_calls),
    )


def _depths(roots: list[SpanNode], orphans: list[SpanNode]) -> dict[str, int]:
    depth: dict[str, int] = {}
    stack = [(node, 0) for node in (*roots, *orphans)]
    while stack:
        node, level = stack.pop()
        depth[node.span.span_id] = level
        stack.extend((child, level + 1) for child in node.children)
    return depth


def _harness_root(roots: list[SpanNode]) -> Span | None:
    for node in roots:
        if node.span.name.startswith(attr.HARNESS_SPAN_PREFIX):
            return node.span
    return None


def _input_of(harness: Span | None, spans: list[Span]) -> str | None:
    if harness is not None and attr.CASE_INPUT in harness.attributes:
        return harness.attributes[attr.CASE_INPUT]
    for span in spans:
        messages = _json(span.attributes.get(attr.GEN_AI_INPUT_MESSAGES))
        text = _messages_text(messages, role="user")
        if text is not None:
            return text
    return None


def _final_output(steps: list[AgentStep], calls: list[LlmCall], harness: Span | None) -> str | None:
    # Outermost agent first (steps are sorted by depth), then the last model reply,
    # then what the SUT itself returned to the harness.
    for step in steps:
        if step.output_text is not None:
            return step.output_text
    for call in reversed(calls):
        if call.output_text is not None:
            return call.output_text
    if harness is not None:
        return harness.attributes.get(attr.SUT_OUTPUT)
    return None


def _duration(harness: Span | None, spans: list[Span]) -> int:
    if harness is not None:
        return harness.duration_ns
    if not spans:
        return 0
    return max(s.end_ns for s in spans) - min(s.start_ns for s in spans)


def _llm_call(span: Span, op: str) -> LlmCall:
    a = span.attributes
    output_messages = _as_message_list(_json(a.get(attr.GEN_AI_OUTPUT_MESSAGES)))
    return LlmCall(
        span_id=span.span_id,
        operation=op,
        provider=a.get(attr.GEN_AI_PROVIDER_NAME) or a.get(attr.GEN_AI_SYSTEM),
        request_model=a.get(attr.GEN_AI_REQUEST_MODEL),
        response_model=a.get(attr.GEN_AI_RESPONSE_MODEL),
        response_id=a.get(attr.GEN_AI_RESPONSE_ID),
        input_messages=_as_message_list(_json(a.get(attr.GEN_AI_INPUT_MESSAGES))),
        output_messages=output_messages,
        output_text=_messages_text(output_messages),
        finish_reasons=_string_list(a.get(attr.GEN_AI_RESPONSE_FINISH_REASONS)),
        input_tokens=_int(a.get(attr.GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=_int(a.get(attr.GEN_AI_USAGE_OUTPUT_TOKENS)),
        duration_ns=span.duration_ns,
        error=(span.status_message or "error") if span.is_error else None,
    )


def _tool_call(span: Span) -> ToolCall:
    a = span.attributes
    name = a.get(attr.GEN_AI_TOOL_NAME) or span.name.removeprefix(attr.OP_EXECUTE_TOOL).strip()
    error = None
    if span.is_error:
        error = span.status_message or a.get("error.type") or "error"
    return ToolCall(
        span_id=span.span_id,
        name=name,
        call_id=a.get(attr.GEN_AI_TOOL_CALL_ID),
        arguments=_json_or_text(a.get(attr.GEN_AI_TOOL_CALL_ARGUMENTS)),
        result=_json_or_text(a.get(attr.GEN_AI_TOOL_CALL_RESULT)),
        error=error,
        duration_ns=span.duration_ns,
    )


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    parsed = _json(text)
    return text if parsed is None and text != "null" else parsed


def _as_message_list(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return value
    return None


def _messages_text(messages: Any, role: str = "assistant") -> str | None:
    """Text of the last message with ``role`` (GenAI ``parts`` or a plain ``content``)."""
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role", role) != role:
            continue
        texts: list[str] = []
        for part in message.get("parts") or []:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("content", "")))
        if not texts and isinstance(message.get("content"), str):
            texts.append(message["content"])
        if texts:
            return "".join(texts)
    return None


def _string_list(text: str | None) -> list[str]:
    if text is None:
        return []
    parsed = _json(text)
    if isinstance(parsed, list):
        return [str(v) for v in parsed]
    return [text]


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None
