"""Spans (and log records) to a ``Trace``: the tree, orphans kept, and the agent-level facts
evaluators read, whichever convention the agent was instrumented with (see conventions.py)."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from tracescore.schemas import attributes as attr
from tracescore.schemas.spans import LogRecord, Span, start_order
from tracescore.schemas.trace import (
    AgentStep,
    LlmCall,
    Retrieval,
    RetrievedDocument,
    SpanNode,
    ToolCall,
    Trace,
)
from tracescore.schemas.trusted import M, trusted
from tracescore.scoring import messages as msg
from tracescore.scoring.conventions import (
    LlmFacts,
    agent_input,
    agent_name,
    agent_output,
    events_of,
    first,
    kind_of,
    llm_facts,
    operation_of,
    retrieval_facts,
    tool_facts,
)
from tracescore.scoring.pricing import (
    PriceTable,
    price_of,
    tokens_cost,
    total_cost,
    unique,
    unpriced_name,
)

__all__ = ["build_tree", "operation_of", "reconstruct"]


def build_tree(spans: Iterable[Span]) -> tuple[list[SpanNode], list[SpanNode]]:
    """Parent/child tree by span id. Returns (roots, orphans), each ordered by start time.

    An orphan is a span whose parent id names a span that is not in the trace:
    its subtree is kept and reported rather than dropped or re-parented.
    """
    return _tree(sorted(spans, key=start_order))


def _tree(ordered: list[Span]) -> tuple[list[SpanNode], list[SpanNode]]:
    """``build_tree`` of spans already in start order."""
    nodes = {s.span_id: trusted(SpanNode, {"span": s, "children": []}) for s in ordered}
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


def reconstruct(
    trace_id: str,
    spans: list[Span],
    logs: Sequence[LogRecord] = (),
    prices: PriceTable | None = None,
) -> Trace:
    """The trace's facts; with ``prices``, each LLM call's cost and the total too."""
    ordered = sorted(spans, key=start_order)
    roots, orphans = _tree(ordered)
    by_id = {s.span_id: s for s in ordered}
    logs_by_span: dict[str, list[LogRecord]] = defaultdict(list)
    for record in logs:
        logs_by_span[record.span_id].append(record)
    kinds = {s.span_id: kind_of(s) for s in ordered}

    llm_calls = _llm_calls(ordered, by_id, kinds, logs_by_span, prices)
    tool_calls = _tool_calls([s for s in ordered if kinds[s.span_id] == "tool"], llm_calls, by_id)
    agent_spans = [s for s in ordered if kinds[s.span_id] == "agent"]
    if len(agent_spans) > 1:
        # Outermost first; spans are already in start order, so one agent needs no depths.
        depth = _depths(roots, orphans)
        agent_spans.sort(key=lambda s: (depth.get(s.span_id, 0), s.start_ns))
    agent_steps = [
        _make(
            AgentStep,
            span_id=s.span_id,
            agent_name=agent_name(s),
            output_text=agent_output(s),
            duration_ns=s.duration_ns,
        )
        for s in agent_spans
    ]
    harness = _harness_root(roots)
    return _make(
        Trace,
        trace_id=trace_id,
        spans=ordered,
        roots=roots,
        orphans=orphans,
        input=_input_of(harness, agent_spans, llm_calls),
        final_output=_final_output(agent_steps, llm_calls, harness),
        llm_calls=llm_calls,
        tool_calls=tool_calls,
        agent_steps=agent_steps,
        retrievals=[_retrieval(s) for s in ordered if kinds[s.span_id] == "retriever"],
        logs=list(logs),
        error_spans=[s.span_id for s in ordered if s.is_error],
        duration_ns=_duration(harness, ordered),
        input_tokens=sum(c.input_tokens or 0 for c in llm_calls),
        output_tokens=sum(c.output_tokens or 0 for c in llm_calls),
        cached_input_tokens=sum(c.cached_input_tokens or 0 for c in llm_calls),
        has_token_usage=any(
            c.input_tokens is not None or c.output_tokens is not None for c in llm_calls
        ),
        cost_usd=total_cost(llm_calls) if prices is not None else None,
        unpriced_models=unique(unpriced_name(c) for c in llm_calls if c.cost_usd is None)
        if prices is not None
        else [],
    )


# -- LLM calls ---------------------------------------------------------------------------------


def _llm_calls(
    ordered: list[Span],
    by_id: dict[str, Span],
    kinds: dict[str, Any],
    logs_by_span: dict[str, list[LogRecord]],
    prices: PriceTable | None,
) -> list[LlmCall]:
    """One LlmCall per model call, however many spans recorded it.

    A call is recorded twice when an instrumentor wraps an SDK that traces itself (the
    Anthropic SDK 2.x), or two instrumentors wrap one client: the spans then nest, or share
    a ``gen_ai.response.id``. Their facts are merged, so tokens count once.
    """
    groups: dict[str, list[tuple[Span, LlmFacts]]] = {}
    group_of: dict[str, str] = {}
    by_response: dict[str, str] = {}
    for span in ordered:
        if kinds[span.span_id] != "llm":
            continue
        facts = llm_facts(span, events_of(span, logs_by_span.get(span.span_id, ())))
        leader = _llm_ancestor(span, by_id, kinds, group_of)
        if leader is None and facts.response_id:
            leader = by_response.get(facts.response_id)
        if leader is None:
            leader = span.span_id
            groups[leader] = []
        groups[leader].append((span, facts))
        group_of[span.span_id] = leader
        if facts.response_id:
            by_response.setdefault(facts.response_id, leader)
    return [_merge(members, prices) for members in groups.values()]


def _llm_ancestor(
    span: Span, by_id: dict[str, Span], kinds: dict[str, Any], group_of: dict[str, str]
) -> str | None:
    """The group of the nearest enclosing LLM span: a model call does not contain another."""
    seen = {span.span_id}
    parent = by_id.get(span.parent_span_id)
    while parent is not None and parent.span_id not in seen:
        if kinds[parent.span_id] == "llm":
            return group_of.get(parent.span_id)
        if kinds[parent.span_id] is not None:
            return None  # an agent or tool in between: a separate call
        seen.add(parent.span_id)
        parent = by_id.get(parent.parent_span_id)
    return None


def _merge(members: list[tuple[Span, LlmFacts]], prices: PriceTable | None) -> LlmCall:
    if len(members) == 1:
        span, facts = members[0]
        fields = vars(facts)
    else:
        # Spans in the current GenAI form first: their fields win over older conventions'.
        members = sorted(members, key=lambda m: attr.GEN_AI_OPERATION_NAME not in m[0].attributes)
        span = members[0][0]
        fields = {name: first(*(getattr(f, name) for _, f in members)) for name in _LLM_FACT_FIELDS}
        fields["finish_reasons"] = fields["finish_reasons"] or []
    errors = [s for s, _ in members if s.is_error]
    cost = None
    if prices is not None:
        price = price_of(
            prices, fields["provider"], fields["response_model"], fields["request_model"]
        )
        if price is not None:
            cost = tokens_cost(
                price,
                fields["input_tokens"],
                fields["cached_input_tokens"],
                fields["output_tokens"],
            )
    # The call's own fields, then every LlmFacts field: all of LlmCall's (see _make).
    return trusted(
        LlmCall,
        {
            "span_id": span.span_id,
            "operation": operation_of(span) or attr.OP_CHAT,
            "output_text": msg.text_of(fields["output_messages"]),
            "duration_ns": max(s.duration_ns for s, _ in members),
            "error": (errors[0].status_message or "error") if errors else None,
            "cost_usd": cost,
            **fields,
        },
    )


_LLM_FACT_FIELDS = tuple(f.name for f in dataclass_fields(LlmFacts))


# -- tool calls --------------------------------------------------------------------------------


@dataclass
class _Requested:
    """A tool call the model asked for in its output, and the result fed back to it."""

    call_id: str | None
    name: str
    arguments: Any
    llm_span_id: str
    result: Any = None
    matched: bool = False


def _tool_calls(
    tool_spans: list[Span], llm_calls: list[LlmCall], by_id: dict[str, Span]
) -> list[ToolCall]:
    """Tool calls from tool spans, completed from the messages (and vice versa).

    Instrumented SDK clients see the calls the model requests and the results the agent
    sends back, but not the tool's execution; agent frameworks trace the execution. A
    span is matched to a requested call by call id, else by name in order; requested calls
    with no span are tool calls too (the agent ran them untraced).
    """
    requested: list[_Requested] = []
    results: dict[str, Any] = {}
    for call in llm_calls:
        for part in msg.tool_responses(call.input_messages):
            if part.get("id"):
                results.setdefault(part["id"], part.get("response"))
        for part in msg.tool_call_parts(call.output_messages):
            requested.append(
                _Requested(part.get("id"), part["name"], part["arguments"], call.span_id)
            )
    for item in requested:
        if item.call_id is not None:
            item.result = results.get(item.call_id)

    llm_ids = {c.span_id for c in llm_calls}
    calls: list[ToolCall] = []
    for span in tool_spans:
        facts = tool_facts(span)
        match = _match(requested, facts.call_id, facts.name)
        error = None
        if span.is_error:
            error = span.status_message or span.attributes.get("error.type") or "error"
        calls.append(
            _make(
                ToolCall,
                span_id=span.span_id,
                name=facts.name,
                call_id=first(facts.call_id, match.call_id if match else None),
                arguments=facts.arguments
                if facts.arguments is not None or match is None
                else match.arguments,
                result=facts.result if facts.result is not None or match is None else match.result,
                error=error,
                duration_ns=span.duration_ns,
            )
        )
    calls += [
        _make(
            ToolCall,
            span_id=r.llm_span_id,
            name=r.name,
            call_id=r.call_id,
            arguments=r.arguments,
            result=r.result,
            error=None,
            duration_ns=0,
        )
        for r in requested
        if not r.matched
    ]
    # Requested-only calls are placed when the model call that asked for them ended.
    return sorted(
        calls,
        key=lambda c: (
            by_id[c.span_id].end_ns if c.span_id in llm_ids else by_id[c.span_id].start_ns
        ),
    )


def _match(requested: list[_Requested], call_id: str | None, name: str) -> _Requested | None:
    for item in requested:
        if not item.matched and call_id is not None and item.call_id == call_id:
            item.matched = True
            return item
    for item in requested:
        if not item.matched and (call_id is None or item.call_id is None) and item.name == name:
            item.matched = True
            return item
    return None


def _retrieval(span: Span) -> Retrieval:
    facts = retrieval_facts(span)
    return Retrieval(
        span_id=span.span_id,
        query=facts.query,
        documents=[RetrievedDocument(**d) for d in facts.documents],
        duration_ns=span.duration_ns,
    )


# -- trace-level facts -------------------------------------------------------------------------


def _make(cls: type[M], **values: Any) -> M:
    """A model built from the facts computed here, not validated again (see ``trusted``):
    every field must be given. test_fixture_normalization checks the results validate."""
    return trusted(cls, values)


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


def _input_of(harness: Span | None, agents: list[Span], calls: list[LlmCall]) -> str | None:
    if harness is not None and attr.CASE_INPUT in harness.attributes:
        return harness.attributes[attr.CASE_INPUT]
    for span in agents:
        text = agent_input(span)
        if text is not None:
            return text
    for call in calls:
        text = msg.text_of(call.input_messages, role="user")
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
