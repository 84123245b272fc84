"""The ``llm`` system: one model request per case, traced by tracescore itself.

The span follows the OTel GenAI client conventions (``chat {model}``, kind CLIENT, the
``gen_ai.*`` request, response and usage attributes, messages as JSON in the GenAI parts
form), so reconstruction reads it like any instrumented agent's model call.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx2
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from tracescore.instrumentation import context_from_env
from tracescore.schemas import attributes as attr
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, LlmSystem, Variant
from tracescore.scoring.messages import finish_reason
from tracescore.scoring.systems.base import CallContext, Invocation, SystemAdapter, VariantContext
from tracescore.scoring.systems.templates import render_text

OPENAI_API = "https://api.openai.com/v1"
_DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCOPE = "tracescore.llm"


def _transient(status: int) -> bool:
    # 529 is Anthropic's "overloaded"; 408 a request timeout: all may pass on a retry.
    return status in (408, 429) or status >= 500


@dataclass
class _Reply:
    text: str
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None


class _CallError(Exception):
    def __init__(self, message: str, error_type: str, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.transient = transient


class LlmAdapter(SystemAdapter):
    """Sends the rendered ``prompt`` (and ``system_prompt``) to the model and returns its
    reply text; the GenAI client span goes to the variant's own TracerProvider."""

    in_process = True

    def __init__(self, system: LlmSystem) -> None:
        self.system = system
        self._tracer: Tracer | None = None
        self._anthropic: anthropic.Anthropic | None = None
        self._http: httpx2.Client | None = None
        self._url = ""

    def start(self, context: VariantContext) -> None:
        system = self.system
        key_env = system.api_key_env or _DEFAULT_KEY_ENV[system.provider]
        key = os.environ.get(key_env) or None
        # OpenAI-compatible servers (vLLM, Ollama...) often need no key.
        if key is None and not (system.provider == "openai" and system.base_url):
            raise ConfigError(
                f"system: the {system.provider} API key is missing: set ${key_env}"
                + ("" if system.api_key_env else " (or name another variable in api_key_env)")
            )
        self._tracer = context.tracer_provider.get_tracer(_SCOPE)
        if system.provider == "anthropic":
            self._anthropic = anthropic.Anthropic(
                api_key=key,
                base_url=system.base_url,
                timeout=system.timeout_s,
                # Retries (with backoff) are the runner's, on transient errors.
                max_retries=0,
                # The SDK would trace its own calls through the global provider: that span
                # would count the call twice beside the one tracescore makes here.
                open_telemetry=False,
            )
            self._url = str(self._anthropic.base_url)
        else:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            self._http = httpx2.Client(timeout=system.timeout_s, headers=headers)
            self._url = (system.base_url or OPENAI_API).rstrip("/") + "/chat/completions"

    def stop(self) -> None:
        if self._anthropic is not None:
            self._anthropic.close()
            self._anthropic = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation:
        if self._tracer is None:
            raise RuntimeError("LlmAdapter.invoke before start()")
        system = self.system
        prompt = render_text(system.prompt, case)
        instructions = render_text(system.system_prompt, case) if system.system_prompt else None
        with self._tracer.start_as_current_span(
            f"chat {system.model}",
            context=context_from_env(call.trace_env),
            kind=SpanKind.CLIENT,
            attributes=self._request_attributes(prompt, instructions),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                reply = (
                    self._call_anthropic(prompt, instructions)
                    if system.provider == "anthropic"
                    else self._call_openai(prompt, instructions)
                )
            except _CallError as failed:
                span.set_attribute("error.type", failed.error_type)
                span.set_status(Status(StatusCode.ERROR, failed.message))
                return Invocation(output="", error=failed.message, transient=failed.transient)
            span.set_attributes(_response_attributes(reply))
            return Invocation(output=reply.text)

    def _request_attributes(
        self, prompt: str, instructions: str | None
    ) -> dict[str, AttributeValue]:
        system = self.system
        messages = [{"role": "user", "parts": [_text(prompt)]}]
        attributes: dict[str, AttributeValue] = {
            attr.GEN_AI_OPERATION_NAME: attr.OP_CHAT,
            attr.GEN_AI_PROVIDER_NAME: system.provider,
            attr.GEN_AI_REQUEST_MODEL: system.model,
            "gen_ai.request.max_tokens": system.max_tokens,
        }
        if system.temperature is not None:
            attributes["gen_ai.request.temperature"] = system.temperature
        if instructions is not None:
            if system.provider == "anthropic":
                # Anthropic takes it apart from the chat history: the GenAI conventions
                # record such instructions on their own attribute.
                attributes["gen_ai.system_instructions"] = _json([_text(instructions)])
            else:
                messages.insert(0, {"role": "system", "parts": [_text(instructions)]})
        attributes[attr.GEN_AI_INPUT_MESSAGES] = _json(messages)
        url = urlsplit(self._url)
        if url.hostname:
            attributes["server.address"] = url.hostname
            port = url.port or _DEFAULT_PORTS.get(url.scheme)
            if port is not None:
                attributes["server.port"] = port
        return attributes

    def _call_anthropic(self, prompt: str, instructions: str | None) -> _Reply:
        assert self._anthropic is not None
        system = self.system
        try:
            message = self._anthropic.messages.create(
                model=system.model,
                max_tokens=system.max_tokens,
                messages=[{"role": "user", "content": prompt}],
                system=instructions if instructions is not None else anthropic.omit,
                # Not a named parameter of this SDK version's create(); the API takes it.
                extra_body=(
                    {"temperature": system.temperature} if system.temperature is not None else None
                ),
            )
        except anthropic.APITimeoutError:
            raise self._timed_out() from None
        except anthropic.APIConnectionError as exc:
            raise _CallError(
                f"cannot reach the anthropic API at {self._url}: {exc}",
                type(exc.__cause__ or exc).__name__,
                transient=True,
            ) from None
        except anthropic.APIStatusError as exc:
            kind = str(exc.type) if exc.type else str(exc.status_code)
            raise _CallError(
                f"anthropic API error {exc.status_code} ({kind}): {exc.api_message or exc.message}",
                kind,
                transient=_transient(exc.status_code),
            ) from None
        usage = message.usage
        cache_read = usage.cache_read_input_tokens or 0
        cache_creation = usage.cache_creation_input_tokens or 0
        return _Reply(
            text="".join(block.text for block in message.content if block.type == "text"),
            response_id=message.id,
            response_model=message.model,
            finish_reasons=[message.stop_reason] if message.stop_reason else [],
            # GenAI counts every prompt token as input; Anthropic leaves cache reads and
            # writes out of input_tokens.
            input_tokens=usage.input_tokens + cache_read + cache_creation,
            output_tokens=usage.output_tokens,
            cache_read_tokens=cache_read,
            cache_creation_tokens=cache_creation,
        )

    def _call_openai(self, prompt: str, instructions: str | None) -> _Reply:
        assert self._http is not None
        system = self.system
        messages = [{"role": "user", "content": prompt}]
        if instructions is not None:
            messages.insert(0, {"role": "system", "content": instructions})
        body: dict[str, Any] = {"model": system.model, "messages": messages}
        # OpenAI's own API refuses max_tokens for its reasoning models; compatible
        # servers (vLLM, Ollama...) know max_tokens best.
        body["max_completion_tokens" if system.base_url is None else "max_tokens"] = (
            system.max_tokens
        )
        if system.temperature is not None:
            body["temperature"] = system.temperature
        try:
            response = self._http.post(self._url, json=body)
        except httpx2.TimeoutException:
            raise self._timed_out() from None
        except httpx2.TransportError as exc:
            raise _CallError(
                f"cannot reach {self._url}: {type(exc).__name__}: {exc}",
                type(exc).__name__,
                transient=True,
            ) from None
        payload = _json_body(response)
        if response.status_code >= 400:
            kind, message = _openai_error(payload, response)
            raise _CallError(
                f"openai API error {response.status_code} ({kind}): {message}",
                kind,
                transient=_transient(response.status_code),
            )
        try:
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
            reason = _str_or_none(choice.get("finish_reason"))
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _CallError(
                f"openai API returned no choice: {response.text[:300]}",
                "invalid_response",
                transient=False,
            ) from None
        found = payload.get("usage")
        usage: dict[str, Any] = found if isinstance(found, dict) else {}
        details = usage.get("prompt_tokens_details")
        return _Reply(
            text=text if isinstance(text, str) else _json(text),
            response_id=_str_or_none(payload.get("id")),
            response_model=_str_or_none(payload.get("model")),
            finish_reasons=[reason] if reason else [],
            input_tokens=_int_or_none(usage.get("prompt_tokens")),
            output_tokens=_int_or_none(usage.get("completion_tokens")),
            cache_read_tokens=(
                _int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
            ),
        )

    def _timed_out(self) -> _CallError:
        return _CallError(
            f"{self.system.provider} API timed out after {self.system.timeout_s:g}s",
            "timeout",
            transient=True,
        )


def _response_attributes(reply: _Reply) -> dict[str, AttributeValue]:
    output: dict[str, Any] = {"role": "assistant", "parts": [_text(reply.text)]}
    reason = finish_reason(reply.finish_reasons[0]) if reply.finish_reasons else None
    if reason is not None:
        output["finish_reason"] = reason
    attributes: dict[str, AttributeValue] = {
        attr.GEN_AI_OUTPUT_MESSAGES: _json([output]),
        attr.GEN_AI_RESPONSE_FINISH_REASONS: reply.finish_reasons,
    }
    optional: dict[str, str | int | None] = {
        attr.GEN_AI_RESPONSE_ID: reply.response_id,
        attr.GEN_AI_RESPONSE_MODEL: reply.response_model,
        attr.GEN_AI_USAGE_INPUT_TOKENS: reply.input_tokens,
        attr.GEN_AI_USAGE_OUTPUT_TOKENS: reply.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": reply.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": reply.cache_creation_tokens,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    return attributes


def _text(content: str) -> dict[str, str]:
    return {"type": "text", "content": content}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_body(response: httpx2.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _openai_error(payload: dict[str, Any], response: httpx2.Response) -> tuple[str, str]:
    """(error.type, message) from ``{"error": {...}}``, or Ollama's ``{"error": "..."}``."""
    error = payload.get("error")
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or response.status_code
        return str(kind), str(error.get("message") or response.reason_phrase)
    if isinstance(error, str):
        return str(response.status_code), error
    return str(response.status_code), response.text[:300] or response.reason_phrase


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
