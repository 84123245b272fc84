"""A span exporter that hands spans straight to the run's ingest pipeline.

The harness's and the evaluators' spans are produced in the same process that
receives them: encoding them as OTLP and posting them to our own receiver cost an
HTTP round trip per case (client, server and the GIL both sides). They are encoded
the same way and take the same path from ``IngestPipeline.export`` on, checks and
spool included, so what is stored does not depend on how a span arrived.
"""

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tracescore.collector.pipeline import IngestPipeline, Signal
from tracescore.schemas.errors import TracescoreError

PROTOCOL = "in-process"


class PipelineSpanExporter(SpanExporter):
    """``notify=False``: the spans do not count as arrivals of their trace (the harness's
    own root span, which must not seal a trace whose SUT spans are still on their way)."""

    def __init__(self, pipeline: IngestPipeline, *, notify: bool = True) -> None:
        self.pipeline = pipeline
        self.notify = notify

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = encode_spans(spans).SerializeToString()
        try:
            self.pipeline.export(Signal.TRACES, body, PROTOCOL, notify=self.notify)
        except TracescoreError:
            # The pipeline counted and logged it (a full spool); the SDK reports failures
            # only through this result.
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
