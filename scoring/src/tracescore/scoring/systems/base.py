"""The adapter interface."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

from tracescore.schemas.suite import Case, Variant


@dataclass(frozen=True)
class Invocation:
    """What happened when the SUT was called for one case."""

    output: str
    error: str | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class CallContext:
    """What the runner hands every adapter call: where to send spans and which trace to join."""

    otlp_endpoint: str
    trace_env: dict[str, str]
    """TRACEPARENT / TRACESTATE / BAGGAGE for the case's harness span."""
    resource_attributes: dict[str, str]


class SystemAdapter(ABC):
    @abstractmethod
    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation: ...
