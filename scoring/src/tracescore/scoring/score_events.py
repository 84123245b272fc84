"""Scores sent as OpenTelemetry ``gen_ai.evaluation.result`` events.

Each score becomes one log record with the GenAI semantic conventions' evaluation
attributes, in the context of the scored trace (its harness root span), so any OTel
backend shows it on that trace. tracescore's own tables keep the scores regardless;
the events are for backends that only speak OTLP.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from opentelemetry.util.types import AttributeValue

from tracescore.schemas import attributes as attr
from tracescore.schemas.scores import Score

# GenAI semantic conventions: the evaluation event and its attributes.
EVALUATION_EVENT: Final = "gen_ai.evaluation.result"
EVALUATION_NAME: Final = "gen_ai.evaluation.name"
EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
ERROR_TYPE: Final = "error.type"

# tracescore's own additions: what the conventions have no attribute for.
SCORE_PASSED: Final = "tracescore.score.passed"
SCORE_SKIPPED: Final = "tracescore.score.skipped"
SCORE_ERROR: Final = "tracescore.score.error"
EVALUATOR_TYPE: Final = "tracescore.evaluator.type"

LOGS_PATH: Final = "/v1/logs"
SCOPE: Final = "tracescore.scoring"


def logs_url(endpoint: str) -> str:
    """The OTLP/HTTP logs URL for a base endpoint (as OTEL_EXPORTER_OTLP_ENDPOINT is)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(LOGS_PATH) else endpoint + LOGS_PATH


@dataclass(frozen=True)
class ScoredTrace:
    """Where a score belongs: the trace, the span to attach it to, and the run's identity."""

    trace_id: str
    span_id: str
    run_id: str = ""
    case_id: str = ""
    variant: str = ""


def error_type(score: Score) -> str:
    """A low-cardinality class for ``error.type`` (the full message is in its own attribute).

    The conventions want a class, not a message: a field the trace lacked, the exception
    an evaluator raised, else ``_OTHER`` as they prescribe for unknown errors.
    """
    message = score.error or ""
    if message.startswith("trace has no "):
        return "missing_field"
    if message.startswith("evaluator crashed: "):
        return message.removeprefix("evaluator crashed: ").split(":", 1)[0] or "_OTHER"
    return "_OTHER"


def event_attributes(
    score: Score, where: ScoredTrace, evaluator_type: str = ""
) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {EVALUATION_NAME: score.evaluator}
    if score.value is not None:
        found[EVALUATION_SCORE_VALUE] = score.value
    if score.label:
        found[EVALUATION_SCORE_LABEL] = score.label
    explanation = score.explanation or score.error or ""
    if explanation:
        found[EVALUATION_EXPLANATION] = explanation
    if score.error:
        found[ERROR_TYPE] = error_type(score)
        found[SCORE_ERROR] = score.error
    if score.passed is not None:
        found[SCORE_PASSED] = score.passed
    if score.skipped:
        found[SCORE_SKIPPED] = True
    if evaluator_type:
        found[EVALUATOR_TYPE] = evaluator_type
    for key, value in (
        (attr.RUN_ID, where.run_id),
        (attr.CASE_ID, where.case_id),
        (attr.VARIANT, where.variant),
    ):
        if value:
            found[key] = value
    return found


class ScoreEventEmitter:
    """Sends scores as ``gen_ai.evaluation.result`` log records over OTLP/HTTP.

    Records are batched in the background; ``flush`` (or ``shutdown``) before reading
    them back or exiting. Export failures are the SDK's to log: a score event that does
    not arrive never fails a run, since the score itself is stored anyway.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        resource: Mapping[str, str] | None = None,
        version: str | None = None,
        processor: LogRecordProcessor | None = None,
    ) -> None:
        self.endpoint = logs_url(endpoint)
        self._provider = LoggerProvider(
            resource=Resource.create(
                {attr.SERVICE_NAME: attr.HARNESS_SERVICE_NAME, **(resource or {})}
            ),
            # The owner shuts it down; an atexit hook would keep every emitter alive.
            shutdown_on_exit=False,
        )
        self._provider.add_log_record_processor(
            processor
            or BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=self.endpoint, headers=dict(headers or {}))
            )
        )
        self._logger = self._provider.get_logger(SCOPE, version)

    def emit(self, score: Score, where: ScoredTrace, evaluator_type: str = "") -> None:
        span = NonRecordingSpan(
            SpanContext(
                trace_id=int(where.trace_id, 16),
                span_id=int(where.span_id, 16),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
        self._logger.emit(
            timestamp=time.time_ns(),
            context=set_span_in_context(span),
            severity_number=SeverityNumber.WARN if score.error else SeverityNumber.INFO,
            severity_text="WARN" if score.error else "INFO",
            attributes=event_attributes(score, where, evaluator_type),
            event_name=EVALUATION_EVENT,
        )

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self._provider.shutdown()

    def __enter__(self) -> "ScoreEventEmitter":
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
