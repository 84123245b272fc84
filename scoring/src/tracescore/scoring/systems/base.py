"""The adapter interface: how the runner calls one case of one variant."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from opentelemetry.sdk.trace import TracerProvider

from tracescore.schemas.suite import Case, Variant


@dataclass(frozen=True)
class Invocation:
    """What happened when the SUT was called for one case."""

    output: str
    error: str | None = None
    exit_code: int | None = None
    transient: bool = False
    """The failure may pass on a retry (timeout, refused connection, HTTP 429/503...)."""
    trace_id: str | None = None
    """Set by adapters that score an existing trace (replay) instead of the case's own."""


@dataclass(frozen=True)
class VariantContext:
    """What an adapter gets once per variant, before its first case."""

    variant: Variant
    otlp_endpoint: str
    """Base URL of the run's OTLP/HTTP receiver (``/v1/traces`` is appended)."""
    resource_attributes: dict[str, str]
    """The variant attribute (and suite) every SUT span's resource must carry."""
    tracer_provider: TracerProvider
    """An SDK provider exporting to the receiver with ``resource_attributes``, for SUTs
    that run inside this process (``python``, ``llm``); its service name is the
    system's ``service_name``."""


@dataclass(frozen=True)
class CallContext:
    """What the runner hands every adapter call."""

    otlp_endpoint: str
    trace_env: dict[str, str]
    """TRACEPARENT / TRACESTATE / BAGGAGE for the case's harness span."""
    resource_attributes: dict[str, str]
    workspace: Path | None = None
    """The case's own working folder, when the suite has ``workspace:``."""
    attempt: int = 1


class SystemAdapter(ABC):
    """One adapter per variant: ``start`` before the variant's first case, ``invoke`` per
    case (from several threads at once), ``stop`` after its last (also on errors)."""

    in_process: ClassVar[bool] = False
    """True for SUTs that run in this process and emit through
    ``VariantContext.tracer_provider``: the runner flushes it after each call."""

    replays: ClassVar[bool] = False
    """True for adapters that score stored traces: the runner opens no harness span,
    calls ``replay_cases`` for the variant's cases, and scores the trace each
    ``invoke`` names in ``Invocation.trace_id``."""

    def replay_cases(self, variant: Variant, cases: list[Case], variant_key: str) -> list[Case]:
        """The cases to replay for ``variant`` (``cases`` is the suite's, maybe empty)."""
        return cases

    def start(self, context: VariantContext) -> None:  # noqa: B027 - optional hook
        """Start what the variant needs (a server). Raise ConfigError or SystemStartError."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired; must be safe to call if ``start`` failed."""

    @abstractmethod
    def invoke(self, case: Case, variant: Variant, call: CallContext) -> Invocation: ...


class SystemStartError(Exception):
    """A variant's SUT could not be started (its cases are recorded as errors)."""
