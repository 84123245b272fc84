"""The ``llm`` system: one model request per case, with tracescore's own GenAI span."""

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.standin_llm import (
    StandinLLM,
    anthropic_error,
    anthropic_text,
    openai_completion,
    openai_error,
)
from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store import Store
from tracescore.instrumentation import env_from_context, with_case_baggage
from tracescore.schemas.attributes import CASE_INPUT
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, LlmSystem, Variant
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.reconstruct import reconstruct
from tracescore.scoring.systems.base import CallContext, Invocation, VariantContext
from tracescore.scoring.systems.llm import LlmAdapter
from tracescore.scoring.systems.routing import install_routing, use_provider

KEY = "placeholder-for-tests"
VARIANT = Variant(name="v1")
CASE = Case(id="c1", input="What is 2+2?", metadata={"topic": "math"})


@pytest.fixture(autouse=True)
def api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


class Sink:
    def __init__(self, exporter: Any = None) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "tracescore-llm", "tracescore.variant": "v1"})
        )
        self.provider.add_span_processor(SimpleSpanProcessor(exporter or self.memory))

    def spans(self) -> list[ReadableSpan]:
        return list(self.memory.get_finished_spans())


@pytest.fixture
def sink() -> Iterator[Sink]:
    made = Sink()
    yield made
    made.provider.shutdown()


def start(sink: Sink, **settings: Any) -> LlmAdapter:
    system = LlmSystem.model_validate({"type": "llm", **settings})
    adapter = LlmAdapter(system)
    adapter.start(VariantContext(VARIANT, "http://127.0.0.1:9", {}, sink.provider))
    return adapter


def invoke(
    adapter: LlmAdapter, case: Case = CASE, harness: TracerProvider | None = None
) -> tuple[Invocation, trace.SpanContext]:
    tracer = (harness or TracerProvider()).get_tracer("harness")
    with tracer.start_as_current_span(
        f"tracescore.case {case.id}", attributes={CASE_INPUT: case.input}
    ) as span:
        env = env_from_context(with_case_baggage("run-1", case.id))
        call = CallContext("http://127.0.0.1:9", env, {})
        try:
            return adapter.invoke(case, VARIANT, call), span.get_span_context()
        finally:
            adapter.stop()


def anthropic_reply(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, anthropic_text(
        "4",
        model=body["model"] + "-20251001",
        input_tokens=12,
        output_tokens=3,
        cache_read_input_tokens=5,
        message_id="msg_standin_1",
    )


def openai_reply(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 200, openai_completion(
        {"content": "four"},
        model=body["model"],
        prompt_tokens=20,
        completion_tokens=2,
        finish_reason="stop",
        cached_tokens=4,
        completion_id="chatcmpl-standin-1",
    )


def test_anthropic_call_and_its_genai_span(sink: Sink) -> None:
    with StandinLLM(anthropic_reply) as llm:
        adapter = start(
            sink,
            provider="anthropic",
            model="claude-haiku-4-5",
            base_url=llm.base_url,
            prompt="Q ({{metadata.topic}}): {{input}}",
            system_prompt="Answer tersely about {{metadata.topic}}.",
            max_tokens=64,
            temperature=0.2,
        )
        install_routing()
        # The SDK would trace itself through the global provider: it must not.
        with use_provider(sink.provider):
            result, parent = invoke(adapter)
    assert result == Invocation(output="4")
    [(path, body)] = llm.requests
    assert path == "/v1/messages"
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 64
    assert body["temperature"] == 0.2
    assert body["system"] == "Answer tersely about math."
    assert body["messages"] == [{"role": "user", "content": "Q (math): What is 2+2?"}]

    [span] = sink.spans()
    assert span.name == "chat claude-haiku-4-5"
    assert span.kind == trace.SpanKind.CLIENT
    assert span.context is not None and span.parent is not None
    assert span.context.trace_id == parent.trace_id
    assert span.parent.span_id == parent.span_id
    a = span.attributes or {}
    port = int(llm.base_url.rsplit(":", 1)[1])
    assert {k: a[k] for k in a if not k.startswith("gen_ai.") or "messages" not in k} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.system_instructions": json.dumps(
            [{"type": "text", "content": "Answer tersely about math."}]
        ),
        "server.address": "127.0.0.1",
        "server.port": port,
        "gen_ai.response.id": "msg_standin_1",
        "gen_ai.response.model": "claude-haiku-4-5-20251001",
        "gen_ai.response.finish_reasons": ("end_turn",),
        # Cache reads are part of the prompt in GenAI's count, not in Anthropic's.
        "gen_ai.usage.input_tokens": 17,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 5,
        "gen_ai.usage.cache_creation.input_tokens": 0,
    }
    assert json.loads(str(a["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Q (math): What is 2+2?"}]}
    ]
    assert json.loads(str(a["gen_ai.output.messages"])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}
    ]


def test_openai_call_without_key_on_a_compatible_server(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with StandinLLM(openai_reply) as llm:
        adapter = start(
            sink,
            provider="openai",
            model="gpt-4o-mini",
            base_url=llm.base_url + "/v1/",
            system_prompt="Be brief.",
        )
        result, parent = invoke(adapter)
    assert result == Invocation(output="four")
    [(path, body)] = llm.requests
    assert path == "/v1/chat/completions"
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "max_tokens": 1024,
    }
    [span] = sink.spans()
    assert span.name == "chat gpt-4o-mini"
    assert span.parent is not None and span.parent.span_id == parent.span_id
    a = span.attributes or {}
    assert a["gen_ai.provider.name"] == "openai"
    assert "gen_ai.request.temperature" not in a
    assert "gen_ai.system_instructions" not in a
    # OpenAI's system prompt is part of the chat history.
    assert json.loads(str(a["gen_ai.input.messages"]))[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "Be brief."}],
    }
    assert a["gen_ai.response.id"] == "chatcmpl-standin-1"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 20
    assert a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4


@pytest.mark.parametrize(
    ("provider", "reply", "transient", "error", "error_type"),
    [
        ("anthropic", anthropic_error(429, "slow down"), True, "429 (rate_limit_error): slow down",
         "rate_limit_error"),
        ("anthropic", anthropic_error(529), True, "529 (overloaded_error)", "overloaded_error"),
        ("anthropic", anthropic_error(400, "max_tokens too large"), False,
         "anthropic API error 400 (invalid_request_error): max_tokens too large",
         "invalid_request_error"),
        ("openai", openai_error(503, "busy"), True, "503 (server_error): busy", "server_error"),
        ("openai", openai_error(404, "model gpt-x does not exist"), False,
         "openai API error 404 (invalid_request_error): model gpt-x does not exist",
         "invalid_request_error"),
        ("openai", (400, {"error": "ollama says no"}), False, "400 (400): ollama says no", "400"),
    ],
)  # fmt: skip
def test_api_errors(
    sink: Sink,
    provider: str,
    reply: tuple[int, dict[str, Any]],
    transient: bool,
    error: str,
    error_type: str,
) -> None:
    with StandinLLM(lambda path, body: reply) as llm:
        base = llm.base_url if provider == "anthropic" else llm.base_url + "/v1"
        adapter = start(sink, provider=provider, model="m", base_url=base)
        result, _ = invoke(adapter)
    assert len(llm.requests) == 1  # no SDK retries: retrying is the runner's job
    assert result.output == ""
    assert result.transient is transient
    assert result.error is not None and error in result.error
    [span] = sink.spans()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.status.description == result.error
    assert (span.attributes or {})["error.type"] == error_type


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_unreachable_server_is_transient(sink: Sink, provider: str) -> None:
    adapter = start(
        sink, provider=provider, model="m", base_url=f"http://127.0.0.1:{_closed_port()}"
    )
    result, _ = invoke(adapter)
    assert result.transient is True
    assert result.error is not None and "cannot reach" in result.error
    [span] = sink.spans()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert (span.attributes or {})["error.type"]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_timeout_is_transient(sink: Sink, provider: str) -> None:
    release = threading.Event()

    def slow(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        release.wait(10)
        return anthropic_reply(path, body)

    with StandinLLM(slow) as llm:
        base = llm.base_url if provider == "anthropic" else llm.base_url + "/v1"
        adapter = start(sink, provider=provider, model="m", base_url=base, timeout_s=0.3)
        try:
            result, _ = invoke(adapter)
        finally:
            release.set()
    assert result == Invocation(
        output="", error=f"{provider} API timed out after 0.3s", transient=True
    )
    [span] = sink.spans()
    assert (span.attributes or {})["error.type"] == "timeout"


def test_missing_key_is_a_config_error(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match=r"\$ANTHROPIC_API_KEY"):
        start(sink, provider="anthropic", model="m", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"\$OPENAI_API_KEY"):
        start(sink, provider="openai", model="m")
    with pytest.raises(ConfigError, match=r"\$MY_LLM_KEY"):
        start(sink, provider="openai", model="m", api_key_env="MY_LLM_KEY")


def test_api_key_env_names_the_variable(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    with StandinLLM(anthropic_reply) as llm:
        adapter = start(
            sink, provider="anthropic", model="m", base_url=llm.base_url, api_key_env="MY_LLM_KEY"
        )
        result, _ = invoke(adapter)
    assert result.output == "4"


def test_missing_placeholder_is_a_config_error(sink: Sink) -> None:
    adapter = start(sink, provider="anthropic", model="m", prompt="{{metadata.nope}}")
    with pytest.raises(ConfigError, match=r"metadata\.nope"):
        invoke(adapter)
    assert sink.spans() == []


@pytest.mark.parametrize(
    ("provider", "model", "reply", "tokens", "cost"),
    [
        # claude-haiku-4-5: $1 in, $5 out, $0.10 cached per million tokens.
        ("anthropic", "claude-haiku-4-5", anthropic_reply, (17, 3, 5),
         (12 * 1.0 + 5 * 0.10 + 3 * 5.0) / 1e6),
        # gpt-4o-mini: $0.15 in, $0.60 out, $0.075 cached.
        ("openai", "gpt-4o-mini", openai_reply, (20, 2, 4),
         (16 * 0.15 + 4 * 0.075 + 2 * 0.60) / 1e6),
    ],
)  # fmt: skip
def test_stored_span_reconstructs_to_the_llm_call(
    store: Store,
    pipeline: IngestPipeline,
    provider: str,
    model: str,
    reply: Any,
    tokens: tuple[int, int, int],
    cost: float,
) -> None:
    with HttpReceiver(pipeline) as receiver, StandinLLM(reply) as llm:
        exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
        sink = Sink(exporter)
        harness = TracerProvider(resource=Resource.create({"service.name": "tracescore-harness"}))
        harness.add_span_processor(SimpleSpanProcessor(exporter))
        base = llm.base_url if provider == "anthropic" else llm.base_url + "/v1"
        adapter = start(
            sink, provider=provider, model=model, base_url=base, system_prompt="Be exact."
        )
        result, parent = invoke(adapter, harness=harness)
        sink.provider.shutdown()
        harness.shutdown()
    assert pipeline.flush()
    trace_id = format(parent.trace_id, "032x")
    spans = store.fetch_trace(trace_id)
    assert len(spans) == 2
    rebuilt = reconstruct(trace_id, spans, prices=PriceTable.with_overrides())
    assert rebuilt.input == CASE.input
    assert rebuilt.final_output == result.output
    [call] = rebuilt.llm_calls
    assert call.provider == provider
    assert call.request_model == model
    assert call.finish_reasons == ["stop"]
    assert (call.input_tokens, call.output_tokens, call.cached_input_tokens) == tokens
    assert (rebuilt.input_tokens, rebuilt.output_tokens) == tokens[:2]
    assert call.input_messages == [
        {"role": "system", "parts": [{"type": "text", "content": "Be exact."}]},
        {"role": "user", "parts": [{"type": "text", "content": CASE.input}]},
    ]
    assert call.output_text == result.output
    assert call.error is None
    assert rebuilt.cost_usd == pytest.approx(cost)
    assert [r.span.name for r in rebuilt.roots] == ["tracescore.case c1"]
    assert [c.span.name for c in rebuilt.roots[0].children] == [f"chat {model}"]
