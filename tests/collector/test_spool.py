"""The spool: durable appends, bounded backlog, recovery after a crash, exactly-once reloads."""

import time
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.logs_decode import decode_logs
from tracescore.collector.pipeline import IngestPipeline, PipelineSettings, Signal
from tracescore.collector.spans_decode import decode_spans
from tracescore.collector.spool import Spool, frames, varint
from tracescore.collector.store import Store
from tracescore.schemas.ddl import TRACES_TABLE


def _request(first_span: int, count: int) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n in range(first_span, first_span + count):
        spans.add(trace_id=b"\x07" * 16, span_id=(n + 1).to_bytes(8, "big"), name=f"s{n}")
    return request.SerializeToString()


def test_varint_frames_round_trip_and_stop_at_a_torn_tail() -> None:
    payloads = [b"", b"x", b"y" * 300, b"z" * 70_000]
    data = b"".join(varint(len(p)) + p for p in payloads)
    assert [data[s:e] for s, e in frames(data)] == payloads
    torn = data + varint(10) + b"short"
    assert [data[s:e] for s, e in frames(torn)] == payloads


def test_append_refuses_past_the_bound_and_writes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100, fsync=True)
    assert spool.append(b"a" * 60, 1)
    assert not spool.append(b"b" * 60, 1)
    assert spool.backlog_bytes == 61
    spool.seal()
    (segment,) = spool.ready()
    assert segment.path.read_bytes() == varint(60) + b"a" * 60
    spool.done(segment)
    assert spool.backlog_bytes == 0
    assert spool.append(b"b" * 60, 1)
    spool.close()


def test_reopening_recovers_open_and_sealed_segments_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000, fsync=False)
    spool.append(b"first", 1)
    spool.seal()
    spool.append(b"second", 1)
    # A crash mid-write: half a frame after the last acknowledged request.
    active = next(tmp_path.glob("*.open"))
    with active.open("ab") as fh:
        fh.write(varint(100) + b"never acknowledged")
    reopened = Spool(tmp_path, max_bytes=10_000, fsync=False)
    ready = reopened.ready()
    assert [s.path.read_bytes() for s in ready] == [varint(5) + b"first", varint(6) + b"second"]
    # Only a segment that was already sealed can have been half loaded.
    assert [s.recovered for s in ready] == [True, False]
    assert reopened.backlog_bytes == sum(s.size for s in ready)
    reopened.close()


def test_a_segment_half_loaded_before_a_crash_loads_exactly_once(
    store: Store, tmp_path: Path
) -> None:
    body = _request(0, 10)
    # The state a kill between the store's insert and the segment's deletion leaves:
    # a sealed segment whose first six spans are already in the table.
    segment_dir = tmp_path / "spool" / "traces"
    segment_dir.mkdir(parents=True)
    (segment_dir / "000000000001.ready").write_bytes(varint(len(body)) + body)
    partial = ExportTraceServiceRequest.FromString(_request(0, 6))
    store.insert_arrow(TRACES_TABLE, decode_spans(partial).to_arrow())

    settings = PipelineSettings(spool_dir=tmp_path / "spool", fsync=False, engine_min_spans=0)
    with IngestPipeline(store, settings) as pipeline:
        assert pipeline.flush()
        assert pipeline.backlog_bytes(Signal.TRACES) == 0
    names = store.query(f"SELECT SpanName FROM {store.db}.otel_traces ORDER BY SpanId")
    assert [r["SpanName"] for r in names] == [f"s{n}" for n in range(10)]


def _logs(count: int, repeat_last: bool = False) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for n in range(count):
        record = records.add(time_unix_nano=1_700_000_000_000_000_000 + n, trace_id=b"\x07" * 16)
        record.body.string_value = f"event {n}"
    if repeat_last:
        records.add().CopyFrom(records[count - 1])
    return request


def test_log_records_half_loaded_before_a_crash_load_exactly_once(
    store: Store, tmp_path: Path
) -> None:
    # Ten records, the last one sent twice on purpose; the first four were written.
    body = _logs(10, repeat_last=True).SerializeToString()
    segment_dir = tmp_path / "spool" / "logs"
    segment_dir.mkdir(parents=True)
    (segment_dir / "000000000001.ready").write_bytes(varint(len(body)) + body)
    store.insert_arrow("otel_logs", decode_logs([_logs(4)]))

    settings = PipelineSettings(spool_dir=tmp_path / "spool", fsync=False)
    with IngestPipeline(store, settings) as pipeline:
        assert pipeline.flush()
    bodies = store.query(f"SELECT Body FROM {store.db}.otel_logs ORDER BY Timestamp, Body")
    assert [r["Body"] for r in bodies] == [f"event {n}" for n in range(10)] + ["event 9"]


def test_a_segment_the_store_keeps_refusing_is_set_aside_and_later_ones_load(
    store: Store, tmp_path: Path
) -> None:
    segment_dir = tmp_path / "spool" / "traces"
    segment_dir.mkdir(parents=True)
    poison = b"\xff\xff not a protobuf request"
    (segment_dir / "000000000001.ready").write_bytes(varint(len(poison)) + poison)
    good = _request(0, 3)
    (segment_dir / "000000000002.ready").write_bytes(varint(len(good)) + good)

    settings = PipelineSettings(spool_dir=tmp_path / "spool", fsync=False, max_load_attempts=2)
    with IngestPipeline(store, settings) as pipeline:
        deadline = time.monotonic() + 30
        while store.count_spans() < 3 and time.monotonic() < deadline:
            pipeline.flush(timeout_s=1)
        assert pipeline.metrics.value("tracescore_collector_quarantined_segments_total") == 1
    assert store.count_spans() == 3
    # Set aside, not deleted: the bytes are kept for a person to look at or replay.
    assert (segment_dir / "failed" / "000000000001.ready").read_bytes().endswith(poison)
