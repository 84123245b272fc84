"""tracescore data models, attribute names and ClickHouse DDL. No I/O beyond package data."""

from tracescore.schemas.errors import ConfigError, OtlpDecodeError, StoreError, TracescoreError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import Span, SpanEvent, SpanLink
from tracescore.schemas.suite import Case, CommandSystem, EvaluatorSpec, SuiteConfig, Variant
from tracescore.schemas.trace import AgentStep, LlmCall, SpanNode, ToolCall, Trace

__all__ = [
    "AgentStep",
    "Case",
    "CommandSystem",
    "ConfigError",
    "EvaluatorSpec",
    "LlmCall",
    "OtlpDecodeError",
    "Score",
    "Span",
    "SpanEvent",
    "SpanLink",
    "SpanNode",
    "StoreError",
    "SuiteConfig",
    "ToolCall",
    "Trace",
    "TracescoreError",
    "Variant",
]
