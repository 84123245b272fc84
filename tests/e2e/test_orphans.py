"""A trace whose parent span never arrived is rebuilt with the orphan reported, not dropped."""

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store import Store
from tracescore.scoring.reconstruct import reconstruct

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
LOST_PARENT = 0x00F067AA0BA902B7


def test_orphan_subtree_survives_the_round_trip(store: Store, pipeline: IngestPipeline) -> None:
    with HttpReceiver(pipeline) as receiver:
        provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
        )
        tracer = provider.get_tracer("t")
        # The parent exists only as a context: its span is never exported.
        lost = SpanContext(TRACE_ID, LOST_PARENT, is_remote=True, trace_flags=TraceFlags(1))
        with (
            tracer.start_as_current_span(
                "execute_tool search",
                context=set_span_in_context(NonRecordingSpan(lost)),
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
            ),
            tracer.start_as_current_span("http GET"),
        ):
            pass
        provider.shutdown()
    assert pipeline.flush()

    trace_id = format(TRACE_ID, "032x")
    spans = store.fetch_trace(trace_id)
    assert sorted(s.name for s in spans) == ["execute_tool search", "http GET"]
    trace = reconstruct(trace_id, spans)
    assert trace.roots == []
    assert len(trace.orphans) == 1
    orphan = trace.orphans[0]
    assert orphan.span.name == "execute_tool search"
    assert orphan.span.parent_span_id == format(LOST_PARENT, "016x")
    assert [c.span.name for c in orphan.children] == ["http GET"]
    assert not trace.is_complete
    # The orphan's facts still count.
    assert [t.name for t in trace.tool_calls] == ["search"]
