"""Chat messages in every shape instrumentors record them, turned into one shape.

The one shape is the OTel GenAI ``gen_ai.input.messages`` form::

    {"role": "assistant", "parts": [{"type": "text", "content": "..."},
                                    {"type": "tool_call", "id": "...", "name": "...",
                                     "arguments": {...}},
                                    {"type": "tool_call_response", "id": "...", "response": ...}],
     "finish_reason": "tool_call"}

Sources: OTel GenAI parts (current), OpenAI-style ``content``/``tool_calls`` (older GenAI
events, OpenLLMetry, request/response bodies), Anthropic content blocks, and the indexed
flattenings of OpenLLMetry (``gen_ai.prompt.N.*``) and OpenInference
(``llm.input_messages.N.message.*``).
"""

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

Message = dict[str, Any]
Part = dict[str, Any]

# One vocabulary for why a model stopped: the OTel GenAI values.
_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "complete": "stop",
    "finish_reason_stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "tool_call": "tool_call",
    "tool_calls": "tool_call",
    "tool_use": "tool_call",
    "function_call": "tool_call",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "error": "error",
}


def finish_reasons(text: str) -> list[str]:
    """A ``["stop", ...]`` attribute (a JSON list, or one bare reason), normalized."""
    inner = text[2:-2]
    simple = '"' not in inner.replace('","', "") and "\\" not in inner
    if simple and text.startswith('["') and text.endswith('"]'):
        # The common shape, without a JSON parse; escapes and spaces take the slow path.
        values: list[Any] = inner.split('","')
    else:
        parsed = parse_json(text)
        values = parsed if isinstance(parsed, list) else [text]
    return [r for r in (finish_reason(v) for v in values) if r is not None]


def finish_reason(value: Any) -> str | None:
    """``tool_calls``, ``tool_use``, ``end_turn``, ``MAX_TOKENS`` ... → the GenAI vocabulary.

    Unknown reasons are kept (lower-cased) rather than guessed.
    """
    if not isinstance(value, str) or not value:
        return None
    key = value.strip().lower()
    return _FINISH_REASONS.get(key, key)


def parse_json(text: str | None) -> Any:
    """Parsed JSON, or None for text that is not JSON.

    orjson first (several times faster, and attributes are parsed on every trace; it
    reads integers beyond 64 bits as floats), then the standard parser for what orjson
    refuses but JSON producers write (NaN, Infinity).
    """
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def json_or_text(value: Any) -> Any:
    """Tool arguments and results: parsed JSON when they are JSON text, else as given."""
    if isinstance(value, str):
        parsed = parse_json(value)
        if parsed is not None or value.strip() == "null":
            return parsed
    return value


def text_of(messages: list[Message] | None, role: str = "assistant") -> str | None:
    """The text of the last message with ``role``, or None when there is none."""
    for message in reversed(messages or []):
        if message.get("role") != role:
            continue
        texts = [p["content"] for p in message["parts"] if p["type"] == "text"]
        if texts:
            return "".join(texts)
    return None


def tool_call_parts(messages: list[Message] | None) -> list[Part]:
    return [p for m in messages or [] for p in m["parts"] if p["type"] == "tool_call"]


def tool_responses(messages: list[Message] | None) -> list[Part]:
    return [p for m in messages or [] for p in m["parts"] if p["type"] == "tool_call_response"]


# -- whole-list readers ------------------------------------------------------------------------


def from_any(value: Any, default_role: str = "user") -> list[Message] | None:
    """A list of messages in any known shape, given as JSON text or parsed.

    Text that is not JSON is no message list: GenAI message attributes are JSON by spec.
    """
    if isinstance(value, str):
        value = parse_json(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        return None
    if value and all(_is_canonical(item) for item in value):
        # Already the one shape (as current GenAI instrumentations write it): no copy.
        return value
    messages = [m for m in (message(item, default_role) for item in value) if m is not None]
    return messages or None


_CANONICAL_REASONS = frozenset(_FINISH_REASONS.values())


def _is_canonical(item: Any) -> bool:
    """A GenAI message whose parts are all plain text and whose finish reason, if any, is
    already in the one vocabulary."""
    if type(item) is not dict or type(item.get("role")) is not str:
        return False
    parts = item.get("parts")
    if type(parts) is not list:
        return False
    reason = item.get("finish_reason")
    if reason is not None and reason not in _CANONICAL_REASONS:
        return False
    return all(
        type(p) is dict and p.get("type") == "text" and type(p.get("content")) is str for p in parts
    )


def message(item: Any, default_role: str = "user") -> Message | None:
    """One message from a GenAI-parts, OpenAI-style or Anthropic-style dict."""
    if isinstance(item, str):
        return _message(default_role, [_text(item)])
    if not isinstance(item, Mapping):
        return None
    role = str(item.get("role") or default_role)
    if isinstance(item.get("parts"), list):
        parts = [p for p in (_genai_part(p) for p in item["parts"]) if p is not None]
    else:
        parts = _content_parts(item.get("content"))
        parts += [p for p in (_openai_tool_call(c) for c in item.get("tool_calls") or []) if p]
        call_id = item.get("tool_call_id")
        if role == "tool" and call_id is not None:
            content = item.get("content")
            parts = [_response(call_id, content)]
    result = _message(role, parts)
    reason = finish_reason(item.get("finish_reason") or item.get("stop_reason"))
    if reason is not None:
        result["finish_reason"] = reason
    return result


def from_response_body(body: Any) -> tuple[list[Message] | None, list[str]]:
    """Output messages and finish reasons from a provider's response body (JSON).

    OpenInference records whole response bodies in ``output.value``.
    """
    if isinstance(body, str):
        body = parse_json(body)
    if not isinstance(body, Mapping):
        return None, []
    if isinstance(body.get("choices"), list):  # OpenAI chat completion
        messages: list[Message] = []
        reasons: list[str] = []
        for choice in body["choices"]:
            if not isinstance(choice, Mapping):
                continue
            found = message(choice.get("message") or {}, "assistant")
            reason = finish_reason(choice.get("finish_reason"))
            if found is not None:
                if reason is not None:
                    found["finish_reason"] = reason
                messages.append(found)
            if reason is not None:
                reasons.append(reason)
        return messages or None, reasons
    if body.get("type") == "message" and "content" in body:  # Anthropic message
        found = message({"role": body.get("role", "assistant"), "content": body["content"]})
        reason = finish_reason(body.get("stop_reason"))
        if found is not None and reason is not None:
            found["finish_reason"] = reason
        return ([found] if found else None), ([reason] if reason else [])
    return None, []


def from_request_body(body: Any) -> list[Message] | None:
    """Input messages from a request body (``{"messages": [...], "system": ...}``)."""
    if isinstance(body, str):
        body = parse_json(body)
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return None
    messages = from_any(body["messages"]) or []
    system = body.get("system")
    if system:
        parts = _content_parts(system)
        if parts:
            messages.insert(0, _message("system", parts))
    return messages or None


# -- indexed flattenings -----------------------------------------------------------------------

_INDEXED = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$")


def indexed(attributes: Mapping[str, str], prefix: str) -> dict[int, dict[str, str]]:
    """``prefix.N.key = value`` attributes grouped by N (keys keep their sub-path)."""
    groups: dict[int, dict[str, str]] = {}
    dotted = prefix + "."
    for key, value in attributes.items():
        if not key.startswith(dotted):
            continue
        match = _INDEXED.match(key)
        if match is None or match["prefix"] != prefix:
            continue
        groups.setdefault(int(match["index"]), {})[match["rest"]] = value
    return dict(sorted(groups.items()))


def from_openllmetry(attributes: Mapping[str, str], prefix: str, role: str) -> list[Message] | None:
    """``gen_ai.prompt.N.role/content/tool_calls.M.*`` (OpenLLMetry) → messages."""
    messages = []
    for fields in indexed(attributes, prefix).values():
        item: dict[str, Any] = {"role": fields.get("role") or role}
        content = fields.get("content")
        if content is not None:
            parsed = parse_json(content)
            # Anthropic content block lists are recorded as JSON text.
            item["content"] = parsed if isinstance(parsed, list) else content
        calls = indexed(fields, "tool_calls")
        if calls:
            item["tool_calls"] = [
                {
                    "id": c.get("id"),
                    "function": {"name": c.get("name"), "arguments": c.get("arguments")},
                }
                for c in calls.values()
            ]
        if "tool_call_id" in fields:
            item["tool_call_id"] = fields["tool_call_id"]
        if "finish_reason" in fields:
            item["finish_reason"] = fields["finish_reason"]
        found = message(item, role)
        if found is not None:
            messages.append(found)
    return messages or None


def from_openinference(attributes: Mapping[str, str], prefix: str) -> list[Message] | None:
    """``llm.input_messages.N.message.*`` (OpenInference) → messages."""
    messages = []
    for fields in indexed(attributes, prefix).values():
        role = fields.get("message.role") or "user"
        parts: list[Part] = []
        if "message.content" in fields:
            parts += _content_parts(fields["message.content"])
        for content in indexed(fields, "message.contents").values():
            if content.get("message_content.type", "text") == "text":
                parts.append(_text(content.get("message_content.text", "")))
        for call in indexed(fields, "message.tool_calls").values():
            parts.append(
                _call(
                    call.get("tool_call.id"),
                    call.get("tool_call.function.name"),
                    call.get("tool_call.function.arguments"),
                )
            )
        if role == "tool" and "message.tool_call_id" in fields:
            parts = [_response(fields["message.tool_call_id"], fields.get("message.content"))]
        messages.append(_message(role, parts))
    return messages or None


# -- parts -------------------------------------------------------------------------------------


def _message(role: str, parts: list[Part]) -> Message:
    return {"role": role, "parts": parts}


def _text(text: Any) -> Part:
    return {"type": "text", "content": "" if text is None else str(text)}


def _call(call_id: Any, name: Any, arguments: Any) -> Part:
    return {
        "type": "tool_call",
        "id": None if call_id is None else str(call_id),
        "name": "" if name is None else str(name),
        "arguments": json_or_text(arguments),
    }


def _response(call_id: Any, response: Any) -> Part:
    return {
        "type": "tool_call_response",
        "id": None if call_id is None else str(call_id),
        "response": json_or_text(_flatten_text(response)),
    }


def _flatten_text(value: Any) -> Any:
    """A list of text blocks (Anthropic tool_result content) is its joined text."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(b, Mapping) and b.get("type") == "text" for b in value)
    ):
        return "".join(str(b.get("text", "")) for b in value)
    return value


def _genai_part(part: Any) -> Part | None:
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    # Most parts are already canonical text: keep the freshly parsed dict, no copy.
    if kind == "text" and type(part.get("content")) is str and type(part) is dict:
        return part
    if kind == "text":
        return _text(part.get("content"))
    if kind == "tool_call":
        return _call(part.get("id"), part.get("name"), part.get("arguments"))
    if kind == "tool_call_response":
        return _response(part.get("id"), part.get("response", part.get("result")))
    return dict(part)


def _openai_tool_call(call: Any) -> Part | None:
    if not isinstance(call, Mapping):
        return None
    function = call["function"] if isinstance(call.get("function"), Mapping) else call
    return _call(call.get("id"), function.get("name"), function.get("arguments"))


def _content_parts(content: Any) -> list[Part]:
    """OpenAI ``content`` (text or parts) or Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)]
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, list):
        return [_text(content)]
    parts: list[Part] = []
    for block in content:
        if isinstance(block, str):
            parts.append(_text(block))
            continue
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(_text(block.get("text", block.get("content"))))
        elif kind == "tool_use":
            parts.append(_call(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            parts.append(_response(block.get("tool_use_id"), block.get("content")))
        elif kind in ("tool_call", "tool_call_response"):
            part = _genai_part(block)
            if part is not None:
                parts.append(part)
    return parts
