"""The normalized view of one trace that evaluators score."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracescore.schemas.spans import LogRecord, Span


class LlmCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    span_id: str
    operation: str
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    output_text: str | None = None
    finish_reasons: list[str] = Field(
        default_factory=list,
        description="Normalized: stop, length, tool_call, content_filter, error (else as sent).",
    )
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = Field(
        default=None, description="Input tokens read from the provider's prompt cache."
    )
    cost_usd: float | None = Field(default=None, description="From the price table, if priced.")
    duration_ns: int = 0
    error: str | None = None

    @property
    def model(self) -> str | None:
        return self.response_model or self.request_model


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    span_id: str
    name: str
    call_id: str | None = None
    arguments: Any = None
    result: Any = None
    error: str | None = None
    duration_ns: int = 0


class RetrievedDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str | None = None
    content: str | None = None
    score: float | None = None


class Retrieval(BaseModel):
    model_config = ConfigDict(frozen=True)

    span_id: str
    query: str | None = None
    documents: list[RetrievedDocument] = Field(default_factory=list)
    duration_ns: int = 0


class AgentStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    span_id: str
    agent_name: str | None
    output_text: str | None = None
    duration_ns: int = 0


class SpanNode(BaseModel):
    """A span with its children, ordered by start time."""

    span: Span
    children: list["SpanNode"] = Field(default_factory=list)


class Trace(BaseModel):
    """Spans rebuilt into a tree plus the agent-level facts evaluators need."""

    trace_id: str
    spans: list[Span]
    roots: list[SpanNode]
    orphans: list[SpanNode] = Field(
        default_factory=list,
        description="Subtrees whose parent span never arrived; kept, not dropped.",
    )
    input: str | None = None
    final_output: str | None = None
    llm_calls: list[LlmCall] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    agent_steps: list[AgentStep] = Field(default_factory=list)
    retrievals: list[Retrieval] = Field(default_factory=list)
    logs: list[LogRecord] = Field(
        default_factory=list, description="Log records carrying this trace's id (GenAI events)."
    )
    error_spans: list[str] = Field(default_factory=list)
    duration_ns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    has_token_usage: bool = Field(
        default=False, description="At least one LLM call reported its token usage."
    )
    cost_usd: float | None = Field(
        default=None, description="Sum over LLM calls; None until priced, or if none was priced."
    )
    unpriced_models: list[str] = Field(
        default_factory=list, description="Models of LLM calls the price table does not know."
    )

    @property
    def is_complete(self) -> bool:
        return not self.orphans and len(self.roots) <= 1

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
