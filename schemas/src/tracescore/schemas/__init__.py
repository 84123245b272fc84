"""tracescore data models, attribute names and ClickHouse DDL. No I/O beyond package data.

Names are loaded lazily so that agents importing only ``attributes`` (through
``tracescore.instrumentation``) do not pay for pydantic at start-up.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AgentStep": "trace",
    "Case": "suite",
    "CommandSystem": "suite",
    "ConfigError": "errors",
    "EvaluatorSpec": "suite",
    "LlmCall": "trace",
    "OtlpDecodeError": "errors",
    "Score": "scores",
    "Span": "spans",
    "SpanEvent": "spans",
    "SpanLink": "spans",
    "SpanNode": "trace",
    "StoreError": "errors",
    "SuiteConfig": "suite",
    "ToolCall": "trace",
    "Trace": "trace",
    "TracescoreError": "errors",
    "Variant": "suite",
}

if TYPE_CHECKING:
    from tracescore.schemas.errors import ConfigError, OtlpDecodeError, StoreError, TracescoreError
    from tracescore.schemas.scores import Score
    from tracescore.schemas.spans import Span, SpanEvent, SpanLink
    from tracescore.schemas.suite import Case, CommandSystem, EvaluatorSpec, SuiteConfig, Variant
    from tracescore.schemas.trace import AgentStep, LlmCall, SpanNode, ToolCall, Trace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tracescore.schemas' has no attribute {name!r}")
    return getattr(import_module(f"tracescore.schemas.{module}"), name)


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
