"""What one span means, read from whichever convention its instrumentor wrote.

Conventions read, in the order they win when a span carries more than one:

1. OTel GenAI, current (``gen_ai.input.messages``, ``gen_ai.provider.name``, ...);
2. OTel GenAI, older forms: ``gen_ai.system``, ``gen_ai.usage.prompt_tokens``, message
   events (``gen_ai.user.message``, ``gen_ai.choice``, ...) on the span or as log records
   carrying its span id, and ``gen_ai.client.inference.operation.details`` log events;
3. OpenLLMetry: indexed ``gen_ai.prompt.N.*``/``gen_ai.completion.N.*`` and ``traceloop.*``;
4. OpenInference: ``openinference.span.kind``, ``llm.*``, ``input.value``/``output.value``,
   ``tool.*``, ``retrieval.documents.*``.

Each field is taken from the first convention that has it, so a span instrumented twice
gets, say, its model from GenAI and its messages from OpenInference when only OpenInference
recorded messages.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from tracescore.schemas import attributes as attr
from tracescore.schemas.spans import LogRecord, Span
from tracescore.scoring import messages as msg
from tracescore.scoring.messages import Message

T = TypeVar("T")
Kind = Literal["llm", "tool", "agent", "retriever"]

# OpenInference
OI_SPAN_KIND = "openinference.span.kind"
OI_INPUT = "input.value"
OI_OUTPUT = "output.value"
# OpenLLMetry
TL_SPAN_KIND = "traceloop.span.kind"
TL_ENTITY_NAME = "traceloop.entity.name"
TL_ENTITY_INPUT = "traceloop.entity.input"
TL_ENTITY_OUTPUT = "traceloop.entity.output"
TL_REQUEST_TYPE = "llm.request.type"

_OI_KINDS: dict[str, Kind] = {
    "LLM": "llm",
    "TOOL": "tool",
    "AGENT": "agent",
    "RETRIEVER": "retriever",
}
_TL_KINDS: dict[str, Kind] = {"tool": "tool", "agent": "agent", "workflow": "agent"}
_GENAI_KINDS: dict[str, Kind] = {
    **dict.fromkeys(attr.LLM_OPERATIONS, "llm"),
    attr.OP_EXECUTE_TOOL: "tool",
    attr.OP_INVOKE_AGENT: "agent",
    "retrieval": "retriever",
}

# Older GenAI message events; the role is in the event name.
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# Semconv ≤ 1.27 put whole prompt/completion lists on two span events.
_CONTENT_PROMPT_EVENT = "gen_ai.content.prompt"
_CONTENT_COMPLETION_EVENT = "gen_ai.content.completion"


def operation_of(span: Span) -> str | None:
    """The GenAI operation a span performs, from ``gen_ai.operation.name`` or its span name."""
    op = span.attributes.get(attr.GEN_AI_OPERATION_NAME)
    if op:
        return op
    first_word = span.name.split(" ", 1)[0]
    return first_word if first_word in _GENAI_KINDS else None


def kind_of(span: Span) -> Kind | None:
    a = span.attributes
    op = operation_of(span)
    if op in _GENAI_KINDS:
        return _GENAI_KINDS[op]
    oi = a.get(OI_SPAN_KIND)
    if oi is not None and oi.upper() in _OI_KINDS:
        return _OI_KINDS[oi.upper()]
    tl = a.get(TL_SPAN_KIND)
    if tl in _TL_KINDS:
        return _TL_KINDS[tl]
    if a.get(TL_REQUEST_TYPE) in ("chat", "completion"):
        return "llm"
    return None


@dataclass
class Event:
    """A span event or a log record tied to the span: name, attributes, body (JSON text)."""

    name: str
    attributes: Mapping[str, str]
    body: str = ""

    @classmethod
    def from_log(cls, record: LogRecord) -> "Event":
        return cls(
            record.event_name or record.attributes.get("event.name", ""),
            record.attributes,
            record.body,
        )


def events_of(span: Span, logs: Sequence[LogRecord]) -> list[Event]:
    events = [Event(e.name, e.attributes) for e in span.events]
    events += [Event.from_log(r) for r in logs]
    return events


@dataclass
class LlmFacts:
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    input_messages: list[Message] | None = None
    output_messages: list[Message] | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None


def first(*values: T | None) -> T | None:
    for value in values:
        if value is not None and value != "" and value != []:
            return value
    return None


def first_of(*readers: Callable[[], Any]) -> Any:
    """``first`` for values that cost something to read: stops at the first one found."""
    for read in readers:
        value = read()
        if value is not None and value != "" and value != []:
            return value
    return None


def integer(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


def llm_facts(span: Span, events: Sequence[Event]) -> LlmFacts:
    a = span.attributes
    legacy_in, legacy_out, legacy_reasons = _event_messages(events) if events else (None, None, [])
    oi_out, oi_reasons = msg.from_response_body(a.get(OI_OUTPUT)) if OI_OUTPUT in a else (None, [])
    # The current GenAI attributes first; the other conventions only when they are absent.
    # The fallbacks are built only when the current form is absent (the common case
    # has it: no closures per span).
    input_messages = _genai_messages(a)
    if not input_messages:
        input_messages = first_of(
            lambda: legacy_in,
            lambda: msg.from_openllmetry(a, "gen_ai.prompt", "user"),
            lambda: msg.from_openinference(a, "llm.input_messages"),
            lambda: msg.from_request_body(a.get(OI_INPUT)),
        )
    output_messages = msg.from_any(a.get(attr.GEN_AI_OUTPUT_MESSAGES), "assistant")
    if not output_messages:
        output_messages = first_of(
            lambda: legacy_out,
            lambda: msg.from_openllmetry(a, "gen_ai.completion", "assistant"),
            lambda: msg.from_openinference(a, "llm.output_messages"),
            lambda: oi_out,
        )
    reasons = _reason_list(a.get(attr.GEN_AI_RESPONSE_FINISH_REASONS))
    if not reasons:
        reasons = first_of(
            lambda: [r for m in output_messages or [] if (r := m.get("finish_reason"))],
            lambda: legacy_reasons,
            lambda: oi_reasons,
        )
    provider = _first_attr(a, _PROVIDER_KEYS)
    return LlmFacts(
        provider=provider.lower() if provider is not None else None,
        request_model=_first_attr(a, _REQUEST_MODEL_KEYS),
        response_model=_first_attr(a, _RESPONSE_MODEL_KEYS),
        response_id=a.get(attr.GEN_AI_RESPONSE_ID) or _response_id(a.get(OI_OUTPUT)),
        input_messages=input_messages,
        output_messages=output_messages,
        finish_reasons=reasons or [],
        input_tokens=_first_int(a, _INPUT_TOKEN_KEYS),
        output_tokens=_first_int(a, _OUTPUT_TOKEN_KEYS),
        cached_input_tokens=_first_int(a, _CACHED_TOKEN_KEYS),
    )


# Each fact's attribute in every convention, in the order they win.
_PROVIDER_KEYS = (attr.GEN_AI_PROVIDER_NAME, attr.GEN_AI_SYSTEM, "llm.provider", "llm.system")
_REQUEST_MODEL_KEYS = (attr.GEN_AI_REQUEST_MODEL, "llm.model_name")
_RESPONSE_MODEL_KEYS = (attr.GEN_AI_RESPONSE_MODEL, "llm.model_name")
_INPUT_TOKEN_KEYS = (
    attr.GEN_AI_USAGE_INPUT_TOKENS,
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
_OUTPUT_TOKEN_KEYS = (
    attr.GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
_CACHED_TOKEN_KEYS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)


def _first_attr(a: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = a.get(key)
        if value:
            return value
    return None


def _first_int(a: Mapping[str, str], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = integer(a.get(key))
        if value is not None:
            return value
    return None


def _genai_messages(a: Mapping[str, str]) -> list[Message] | None:
    found = msg.from_any(a.get(attr.GEN_AI_INPUT_MESSAGES))
    system = a.get("gen_ai.system_instructions")
    if found is not None and system:
        parsed = msg.parse_json(system)
        parts = msg.from_any(parsed if isinstance(parsed, list) else system)
        if parts:
            found = [{"role": "system", "parts": [p for m in parts for p in m["parts"]]}, *found]
    return found


def _reason_list(text: str | None) -> list[str] | None:
    return (msg.finish_reasons(text) or None) if text is not None else None


def _response_id(body: str | None) -> str | None:
    parsed = msg.parse_json(body)
    if isinstance(parsed, Mapping) and isinstance(parsed.get("id"), str):
        return str(parsed["id"])
    return None


def _event_payload(event: Event) -> dict[str, Any]:
    """An event's fields: its body (log records) merged over its attributes (span events)."""
    payload: dict[str, Any] = {
        key: msg.parse_json(value) if value[:1] in "[{" else value
        for key, value in event.attributes.items()
    }
    body = msg.parse_json(event.body) if event.body else None
    if isinstance(body, Mapping):
        payload.update(body)
    elif event.body and body is None:
        payload.setdefault("content", event.body)
    return payload


def _event_messages(
    events: Sequence[Event],
) -> tuple[list[Message] | None, list[Message] | None, list[str]]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    reasons: list[str] = []
    for event in events:
        if event.name in _EVENT_ROLES:
            payload = _event_payload(event)
            role = payload.get("role") or _EVENT_ROLES[event.name]
            if role == "tool" and "id" in payload:
                payload["tool_call_id"] = payload["id"]
            found = msg.message({**payload, "role": role})
            if found is not None:
                inputs.append(found)
        elif event.name == _CHOICE_EVENT:
            payload = _event_payload(event)
            inner = payload["message"] if isinstance(payload.get("message"), Mapping) else {}
            found = msg.message({"role": "assistant", **inner})
            reason = msg.finish_reason(payload.get("finish_reason"))
            if found is not None:
                if reason is not None:
                    found["finish_reason"] = reason
                outputs.append(found)
            if reason is not None:
                reasons.append(reason)
        elif event.name == _DETAILS_EVENT:
            payload = _event_payload(event)
            inputs += (
                msg.from_any(payload.get(attr.GEN_AI_INPUT_MESSAGES, payload.get("input"))) or []
            )
            out = (
                msg.from_any(
                    payload.get(attr.GEN_AI_OUTPUT_MESSAGES, payload.get("output")), "assistant"
                )
                or []
            )
            outputs += out
            reasons += [r for m in out if (r := m.get("finish_reason"))]
        elif event.name == _CONTENT_PROMPT_EVENT:
            inputs += msg.from_any(event.attributes.get("gen_ai.prompt")) or []
        elif event.name == _CONTENT_COMPLETION_EVENT:
            outputs += msg.from_any(event.attributes.get("gen_ai.completion"), "assistant") or []
    return inputs or None, outputs or None, reasons


@dataclass
class ToolFacts:
    name: str
    call_id: str | None
    arguments: Any
    result: Any


def tool_facts(span: Span) -> ToolFacts:
    a = span.attributes
    name = first(
        a.get(attr.GEN_AI_TOOL_NAME),
        a.get("tool.name"),
        a.get(TL_ENTITY_NAME),
        span.name.removeprefix(attr.OP_EXECUTE_TOOL).strip(),
    )
    arguments = first(
        a.get(attr.GEN_AI_TOOL_CALL_ARGUMENTS),
        a.get(OI_INPUT),
        _traceloop_input(a.get(TL_ENTITY_INPUT)),
    )
    result = first(
        a.get(attr.GEN_AI_TOOL_CALL_RESULT),
        a.get(OI_OUTPUT),
        a.get(TL_ENTITY_OUTPUT),
    )
    return ToolFacts(
        name=str(name or span.name),
        call_id=first(a.get(attr.GEN_AI_TOOL_CALL_ID), a.get("tool_call.id"), a.get("tool.id")),
        arguments=msg.json_or_text(arguments),
        result=msg.json_or_text(result),
    )


def _traceloop_input(text: str | None) -> Any:
    """Traceloop records a decorated function's call as ``{"args": [...], "kwargs": {...}}``."""
    parsed = msg.parse_json(text)
    if isinstance(parsed, Mapping) and set(parsed) <= {"args", "kwargs"}:
        args, kwargs = parsed.get("args") or [], parsed.get("kwargs") or {}
        if not args:
            return kwargs
        if len(args) == 1 and not kwargs:
            return args[0]
        return parsed
    return text


def agent_name(span: Span) -> str | None:
    a = span.attributes
    # OpenInference names an AGENT span after the agent and has no attribute for it.
    named = span.name if a.get(OI_SPAN_KIND, "").upper() == "AGENT" else None
    return first(a.get(attr.GEN_AI_AGENT_NAME), a.get(TL_ENTITY_NAME), a.get("agent.name"), named)


def agent_output(span: Span) -> str | None:
    a = span.attributes
    text = msg.text_of(msg.from_any(a.get(attr.GEN_AI_OUTPUT_MESSAGES), "assistant"))
    return first(text, _plain_text(a.get(OI_OUTPUT)), _plain_text(a.get(TL_ENTITY_OUTPUT)))


def agent_input(span: Span) -> str | None:
    a = span.attributes
    text = msg.text_of(msg.from_any(a.get(attr.GEN_AI_INPUT_MESSAGES)), "user")
    return first(
        text, _plain_text(a.get(OI_INPUT)), _plain_text(_traceloop_input(a.get(TL_ENTITY_INPUT)))
    )


def _plain_text(value: Any) -> str | None:
    """A value recorded as text; JSON strings are unwrapped, structured JSON kept as text."""
    if value is None:
        return None
    if isinstance(value, str):
        parsed = msg.parse_json(value)
        return parsed if isinstance(parsed, str) else value
    return json.dumps(value, ensure_ascii=False)


@dataclass
class RetrievalFacts:
    query: str | None
    documents: list[dict[str, Any]]


def retrieval_facts(span: Span) -> RetrievalFacts:
    a = span.attributes
    documents = []
    for fields in msg.indexed(a, "retrieval.documents").values():
        score = fields.get("document.score")
        try:
            number = float(score) if score is not None else None
        except ValueError:
            number = None
        documents.append(
            {
                "id": fields.get("document.id"),
                "content": fields.get("document.content"),
                "score": number,
            }
        )
    return RetrievalFacts(query=_plain_text(a.get(OI_INPUT)), documents=documents)
