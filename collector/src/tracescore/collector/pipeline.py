"""Accepted OTLP requests → durable spool → store, in batches, with backpressure.

``IngestPipeline.export`` validates a request, appends it to the signal's spool
and returns once it is durable; that is when receivers acknowledge. A loader
thread seals the spool every ``flush_interval_s`` (a segment is also sealed
once it reaches half of ``batch_bytes``) and writes sealed segments to the store:

- large trace batches through the engine's own protobuf reader
  (``engine_decode``), which is about twice as fast as decoding in Python;
- small batches, logs, and stores that can't read the spool's files (a remote
  ClickHouse server) through the Python decoders and an Arrow insert, which has
  a much smaller fixed cost per batch.

Both paths write identical rows. When the spool's backlog reaches its bound,
``export`` raises :class:`OverloadedError` and receivers answer with backpressure
(HTTP 503 + Retry-After, gRPC UNAVAILABLE) so exporters retry later.
"""

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tracescore.collector.engine_decode import traces_insert_sql
from tracescore.collector.logs_decode import decode_logs
from tracescore.collector.metrics import CollectorMetrics
from tracescore.collector.otlp_checks import Checked, Limits, check_logs, check_traces
from tracescore.collector.spans_decode import decode_spans
from tracescore.collector.spool import Segment, Spool, frames
from tracescore.collector.store import Store
from tracescore.schemas.ddl import LOGS_TABLE, TRACES_TABLE
from tracescore.schemas.errors import TracescoreError

log = logging.getLogger(__name__)

TraceListener = Callable[[set[bytes]], None]
AcceptedListener = Callable[[ExportTraceServiceRequest, set[bytes]], None]
"""Called with each traces request once it is durably spooled (so it will be stored),
already parsed and checked, with the trace ids in it: in-process consumers need not
parse or scan it again."""


class Signal(StrEnum):
    TRACES = "traces"
    LOGS = "logs"


def export_response(signal: Signal, checked: Checked) -> bytes:
    """The protobuf ``Export*ServiceResponse``; ``partial_success`` only when something was cut."""
    if signal is Signal.TRACES:
        traces = ExportTraceServiceResponse()
        if checked.rejected or checked.message:
            traces.partial_success.rejected_spans = checked.rejected
            traces.partial_success.error_message = checked.message
        return traces.SerializeToString()
    logs = ExportLogsServiceResponse()
    if checked.rejected or checked.message:
        logs.partial_success.rejected_log_records = checked.rejected
        logs.partial_success.error_message = checked.message
    return logs.SerializeToString()


class OverloadedError(TracescoreError):
    """The spool is full: the sender should retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class PipelineSettings:
    spool_dir: Path
    max_spool_bytes: int = 512 * 1024 * 1024
    fsync: bool = True
    flush_interval_s: float = 0.2
    # Bounds the engine's memory per batch (~20x the protobuf size at peak).
    batch_bytes: int = 16 * 1024 * 1024
    # Below this many spans a batch goes through the Python path: the engine's
    # statement costs ~0.1 s to analyse, which only pays off on large batches.
    engine_min_spans: int = 5_000
    max_load_attempts: int = 5
    limits: Limits = field(default_factory=Limits)


def default_spool_dir(store: Store) -> Path:
    """Next to the embedded engine's data when there is one, so one directory holds it all."""
    path = getattr(store, "path", None)
    if store.reads_local_files and isinstance(path, Path):
        return path / "spool" / store.database
    # One spool per remote store, so data accepted for one is never loaded into another.
    digest = hashlib.sha256(store.location.encode()).hexdigest()[:16]
    return Path(".tracescore-spool") / digest


class IngestPipeline:
    def __init__(
        self,
        store: Store,
        settings: PipelineSettings,
        *,
        metrics: CollectorMetrics | None = None,
        on_traces: TraceListener | None = None,
        on_accepted: AcceptedListener | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or CollectorMetrics()
        self._on_traces = on_traces
        self._on_accepted = on_accepted
        self.log_records_accepted = 0
        self._spools = {
            signal: Spool(
                settings.spool_dir / signal.value,
                max_bytes=settings.max_spool_bytes,
                fsync=settings.fsync,
                max_segment_bytes=max(1, settings.batch_bytes // 2),
            )
            for signal in Signal
        }
        self._wake = threading.Condition()
        # Requests appended, across signals; recovered segments count, so a first
        # flush() waits for what an earlier run acknowledged but never loaded.
        self._appended = sum(len(spool.ready()) for spool in self._spools.values())
        self._loaded_through = 0  # every request appended before this count is loaded
        self._flush_wanted = False
        self._stopping = False
        self._failures: dict[Path, int] = {}
        self._load_failures = 0
        self.last_load_error: str | None = None
        self._isolate: set[Signal] = set()  # signals to load one segment at a time
        self._outage = False
        self._thread = threading.Thread(target=self._run, name="tracescore-loader", daemon=True)
        self._thread.start()
        self._update_gauges()

    # -- receiving ---------------------------------------------------------------------
    def export(self, signal: Signal, body: bytes, protocol: str, *, notify: bool = True) -> Checked:
        """Validate and durably spool one request; raises OtlpDecodeError or OverloadedError.

        ``notify=False`` keeps the request from the ``on_traces`` listener (an in-process
        producer whose spans are not what the listener waits for)."""
        check = check_traces if signal is Signal.TRACES else check_logs
        listening = self._on_accepted is not None or (self._on_traces is not None and notify)
        want_ids = signal is Signal.TRACES and listening
        try:
            checked = check(body, self.settings.limits, collect_trace_ids=want_ids)
        except Exception:
            self.metrics.requests.labels(signal.value, protocol, "invalid").inc()
            raise
        self.metrics.received.labels(signal.value, protocol).inc(
            checked.accepted + checked.rejected
        )
        if checked.rejected:
            self.metrics.rejected.labels(signal.value, "invalid").inc(checked.rejected)
        if checked.truncated:
            self.metrics.truncated.labels(signal.value).inc(checked.truncated)
        if checked.accepted:
            spool = self._spools[signal]
            if not spool.append(checked.payload, checked.accepted):
                self.metrics.rejected.labels(signal.value, "backpressure").inc(checked.accepted)
                self.metrics.requests.labels(signal.value, protocol, "backpressure").inc()
                with self._wake:
                    self._wake.notify()
                raise OverloadedError(
                    f"the {signal.value} spool is full ({spool.backlog_bytes} bytes waiting "
                    "to be written); retry later",
                    retry_after_s=max(1, round(self.settings.flush_interval_s * 5)),
                )
            with self._wake:
                self._appended += 1
                if signal is Signal.LOGS:
                    self.log_records_accepted += checked.accepted
                if spool.ready_count:
                    self._wake.notify()
            self.metrics.accepted.labels(signal.value, protocol).inc(checked.accepted)
        self.metrics.requests.labels(
            signal.value, protocol, "partial" if checked.rejected else "ok"
        ).inc()
        if signal is Signal.TRACES and checked.accepted and self._on_accepted is not None:
            self._on_accepted(checked.request, checked.trace_ids)
        if notify and want_ids and checked.trace_ids and self._on_traces is not None:
            self._on_traces(checked.trace_ids)
        return checked

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every request accepted before this call is in the store.

        False on timeout, or as soon as a load fails meanwhile (``last_load_error``
        says why; the data stays in the spool and is retried).
        """
        deadline = time.monotonic() + timeout_s
        with self._wake:
            target = self._appended
            failures = self._load_failures
            self._flush_wanted = True
            self._wake.notify()
            while self._loaded_through < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                if self._load_failures != failures:
                    return False
                self._wake.wait(min(remaining, 0.5))
        return True

    def problem(self) -> str | None:
        """Why the pipeline is not healthy (None when it is): for the health endpoint."""
        if not self._thread.is_alive():
            return "the loader thread has stopped"
        if self.last_load_error is not None:
            return (
                "the store refuses writes (retrying; data kept in the spool): "
                f"{self.last_load_error}"
            )
        return None

    def backlog_bytes(self, signal: Signal) -> int:
        return self._spools[signal].backlog_bytes

    def __enter__(self) -> "IngestPipeline":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self, timeout_s: float = 60.0) -> None:
        """Load everything accepted, then stop the loader."""
        if not self.flush(timeout_s):
            log.error(
                "shutdown: not everything accepted could be loaded in %.0f s; it stays in the "
                "spool at %s and loads on the next start",
                timeout_s,
                self.settings.spool_dir,
            )
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=timeout_s)
        for spool in self._spools.values():
            spool.close()

    # -- loading -----------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.settings.flush_interval_s
        backoff = interval
        while True:
            with self._wake:
                if not self._stopping and not self._flush_wanted:
                    self._wake.wait(interval)
                if self._stopping:
                    return
                target = self._appended
                self._flush_wanted = False
            for spool in self._spools.values():
                spool.seal()
            all_loaded = True
            for signal, spool in self._spools.items():
                all_loaded &= self._load(signal, spool)
            self._update_gauges()
            with self._wake:
                if all_loaded:
                    self._loaded_through = max(self._loaded_through, target)
                self._wake.notify_all()
            if all_loaded:
                backoff = interval
            else:
                # The store is refusing writes: back off, up to 30 s during an outage
                # (a flush or a stop still wakes the loader at once).
                with self._wake:
                    if not self._stopping and not self._flush_wanted:
                        self._wake.wait(backoff)
                backoff = min(30.0 if self._outage else 5.0, backoff * 2)

    def _load(self, signal: Signal, spool: Spool) -> bool:
        isolate = signal in self._isolate
        self._isolate.discard(signal)
        for batch in self._batches(spool.ready(), isolate):
            started = time.perf_counter()
            items = sum(s.items for s in batch)
            try:
                self._write(signal, batch, items)
            except Exception as exc:  # the loader thread must outlive any one bad batch
                self._failed(signal, spool, batch, exc)
                return False
            for segment in batch:
                spool.done(segment)
                self._failures.pop(segment.path, None)
            self.last_load_error = None
            elapsed = time.perf_counter() - started
            self.metrics.written.labels(signal.value).inc(items)
            self.metrics.load_seconds.labels(signal.value).observe(elapsed)
            log.info(
                "loaded signal=%s items=%d segments=%d seconds=%.3f",
                signal.value,
                items,
                len(batch),
                elapsed,
            )
        return True

    def _batches(self, segments: list[Segment], isolate: bool) -> Iterator[list[Segment]]:
        batch: list[Segment] = []
        size = 0
        for segment in segments:
            if batch and (isolate or size + segment.size > self.settings.batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append(segment)
            size += segment.size
        if batch:
            yield batch

    def _write(self, signal: Signal, batch: list[Segment], items: int) -> None:
        if signal is Signal.LOGS:
            records = decode_logs(_parse_logs(data) for data in _requests_in(batch))
            if any(s.recovered for s in batch):
                records = self._logs_not_yet_stored(records)
            self.store.insert_arrow(LOGS_TABLE, records)
            return
        retried = any(self._failures.get(s.path) for s in batch)
        recovered = any(s.recovered for s in batch)
        # A batch the engine failed on is retried through the Python path, as is one
        # recovered after a crash (it may need rows skipped).
        if (
            self.store.reads_local_files
            and items >= self.settings.engine_min_spans
            and not retried
            and not recovered
        ):
            self.store.command(traces_insert_sql(self.store.db, [s.path for s in batch]))
            return
        tables = [decode_spans(_parse_traces(data)).to_arrow() for data in _requests_in(batch)]
        if not tables:
            return
        spans = pa.concat_tables(tables)
        if recovered:
            spans = self._not_yet_stored(spans)
        self.store.insert_arrow(TRACES_TABLE, spans)

    def _logs_not_yet_stored(self, records: pa.Table) -> pa.Table:
        """Drop log records a crash mid-load already wrote.

        Log records have no id, so they are matched on time, ids, event name and
        body, as a multiset: two identical records sent twice on purpose both stay
        unless both were already written.
        """
        if records.num_rows == 0:
            return records
        times = [int(t.value) for t in records.column("Timestamp")]
        rows = self.store.query(
            f"SELECT toUnixTimestamp64Nano(Timestamp) AS ns, TraceId, SpanId, EventName, Body "
            f"FROM {self.store.db}.{LOGS_TABLE} "
            "WHERE Timestamp BETWEEN fromUnixTimestamp64Nano({lo:Int64}) "
            "AND fromUnixTimestamp64Nano({hi:Int64})",
            {"lo": min(times), "hi": max(times)},
        )
        stored = Counter(
            (int(r["ns"]), r["TraceId"], r["SpanId"], r["EventName"], r["Body"]) for r in rows
        )
        keep: list[bool] = []
        columns = [
            records.column(n).to_pylist() for n in ("TraceId", "SpanId", "EventName", "Body")
        ]
        for ns, *rest in zip(times, *columns, strict=True):
            key = (ns, *rest)
            if stored[key] > 0:
                stored[key] -= 1
                keep.append(False)
            else:
                keep.append(True)
        if not all(keep):
            log.warning(
                "recovered segment: %d of %d log records were stored before the restart; "
                "skipped them",
                keep.count(False),
                len(keep),
            )
        return records.filter(pa.array(keep))

    def _not_yet_stored(self, spans: pa.Table) -> pa.Table:
        """Drop spans the store already has: a crash mid-load left part of a batch written."""
        trace_ids = sorted({str(t) for t in spans.column("TraceId").to_pylist()})
        stored: set[tuple[str, str]] = set()
        for start in range(0, len(trace_ids), 1000):
            rows = self.store.query(
                f"SELECT TraceId, SpanId FROM {self.store.db}.{TRACES_TABLE} "
                "WHERE TraceId IN {ids:Array(String)}",
                {"ids": trace_ids[start : start + 1000]},
            )
            stored.update((r["TraceId"], r["SpanId"]) for r in rows)
        if not stored:
            return spans
        keep = [
            (trace_id, span_id) not in stored
            for trace_id, span_id in zip(
                spans.column("TraceId").to_pylist(),
                spans.column("SpanId").to_pylist(),
                strict=True,
            )
        ]
        log.warning(
            "recovered segment: %d of %d spans were stored before the restart; skipped them",
            keep.count(False),
            len(keep),
        )
        return spans.filter(pa.array(keep))

    def _failed(self, signal: Signal, spool: Spool, batch: list[Segment], exc: Exception) -> None:
        self.metrics.load_failures.inc()
        with self._wake:
            self._load_failures += 1
            self.last_load_error = str(exc)
            self._wake.notify_all()
        store_down = not self._store_takes_writes(signal)
        self._outage = store_down
        for segment in batch:
            # Only a batch the store refuses while it takes other writes counts
            # towards quarantine: an outage must not set good data aside.
            attempts = self._failures.get(segment.path, 0) + (0 if store_down else 1)
            self._failures[segment.path] = attempts
            if attempts >= self.settings.max_load_attempts and len(batch) == 1:
                spool.quarantine(segment, str(exc))
                self.metrics.quarantined.inc()
                self._failures.pop(segment.path, None)
        log.error(
            "load failed segments=%d store_takes_writes=%s error=%s",
            len(batch),
            not store_down,
            exc,
        )
        # Retry one segment at a time so a single bad one can be set aside.
        self._isolate.add(signal)

    def _store_takes_writes(self, signal: Signal) -> bool:
        table = TRACES_TABLE if signal is Signal.TRACES else LOGS_TABLE
        target = f"{self.store.db}.{table}"
        try:
            # A write of no rows: checks the table exists and this client may write it.
            self.store.command(f"INSERT INTO {target} SELECT * FROM {target} WHERE 0")
        except Exception:
            return False
        return True

    def _update_gauges(self) -> None:
        for signal, spool in self._spools.items():
            self.metrics.queue_bytes.labels(signal.value).set(spool.backlog_bytes)
            self.metrics.queue_items.labels(signal.value).set(spool.pending_items)


def _requests_in(batch: list[Segment]) -> Iterator[bytes]:
    for segment in batch:
        data = segment.path.read_bytes()
        for start, end in frames(data):
            yield data[start:end]


def _parse_traces(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def _parse_logs(data: bytes) -> ExportLogsServiceRequest:
    message = ExportLogsServiceRequest()
    message.ParseFromString(data)
    return message
