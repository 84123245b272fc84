"""Online scoring: ``tracescore watch`` follows traces as they land and scores each sealed one.

Arrival, not span time. A span's ``Timestamp`` is its start by the sender's clock, and
``otel_traces`` records nothing about when a span reached the store. Migration 0006 adds
a materialized view that runs on every INSERT into the store's ``otel_traces`` (by
tracescore's collector or the OpenTelemetry Collector exporter) and writes one
``tracescore_trace_arrivals`` row per trace and insert block, stamped with the store
server's clock. So:

- a trace is **sealed** when its newest arrival is more than ``quiet_period_s`` old
  (store clock: senders' clocks never matter);
- the **watermark** (``tracescore_watch_checkpoints``) is the arrival time up to which
  every sealed trace has been handled; each poll reads arrivals from
  ``watermark - SAFETY_MARGIN_S`` on, so a slow insert made visible after a poll is
  still seen by the next one;
- **exactly once**: ``tracescore_watch_state`` keeps, per watcher and trace, the newest
  arrival that was scored. The one candidate query of a poll anti-joins it, so what
  the overlap re-reads is skipped, and a trace is due again only when it has a newer
  arrival (a late span): it is then re-scored once per such arrival while within
  ``late_span_window_s`` of its first scoring, and the scores replace the earlier
  ones (the scores table is keyed by trace, evaluator and config hash);
- scores are written before the state row, so a crash in between re-scores (which
  replaces) rather than skips; the watermark only advances after a whole poll.

Another source table (``source`` in the config, e.g. the exporter's ``otel.otel_traces``):
the watcher's first start creates, in the store's database, a materialized view on it
(:func:`arrival_view_statement`) writing the same arrival rows with ``Source`` set to
``database.table`` (migration 0007; ``''`` is the store's own table). Each watcher reads
only its source's arrivals, spans and logs from the source, and keeps its scores, state
and watermark in the store's tables as above. On a ClickHouse cluster the view is not
created: the error prints the ``ON CLUSTER`` statement to run.

Traces that landed before migration 0006 (or, for another source, before its view) have
no arrivals: re-score them with ``tracescore rescore``. A first start looks back
``late_span_window_s``.
"""

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tracescore.collector.store import Store
from tracescore.collector.store.base import distributed_cluster
from tracescore.schemas.ddl import (
    LOCAL_SUFFIX,
    TRACE_ARRIVALS_TABLE,
    TRACE_ID_TS_TABLE,
    WATCH_CHECKPOINTS_TABLE,
    WATCH_STATE_TABLE,
    quote_identifier,
)
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.batch import ScoringPool, TraceScores
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.results import ScoreRow, write_scores
from tracescore.scoring.sampling import sample_condition, sampled
from tracescore.scoring.scoring_config import LoadedScoringConfig
from tracescore.scoring.source import SourcedStore, SourceTable
from tracescore.scoring.traces import batched
from tracescore.scoring.watch_metrics import WatchMetrics

__all__ = [
    "SAFETY_MARGIN_S",
    "PollResult",
    "Watcher",
    "arrival_view_name",
    "arrival_view_statement",
    "ensure_arrival_view",
    "sampled",
]

log = logging.getLogger("tracescore.watch")

SAFETY_MARGIN_S = 60.0
"""How far before the watermark each poll re-reads arrivals: longer than any insert takes
from the view's timestamp to being visible."""

DEFAULT_MAX_PER_POLL = 20_000
"""Due traces handled per poll; a backlog is worked off over several polls (the
watermark then stops at the last trace handled, and the lag shows the backlog)."""

_MS = pa.timestamp("ms", tz="UTC")
_US = pa.timestamp("us", tz="UTC")


@dataclass
class PollResult:
    due: int = 0
    """Sealed traces with arrivals not yet handled."""
    scored: int = 0
    rescored: int = 0
    skipped: int = 0
    late_ignored: int = 0
    scores: int = 0
    watermark_ms: int | None = None
    complete: bool = True
    """False when stopped before the poll's end (the watermark did not advance)."""
    scored_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Due:
    trace_id: str
    last_arrival_ms: int
    first_scored_us: int
    """0 when never scored by this watcher."""


@dataclass(frozen=True)
class _Facts:
    """What one query over a batch's spans says about a trace's filters."""

    spans: int
    selected: bool
    when: tuple[bool, ...]


# -- arrivals from another source table ---------------------------------------------------

_SOURCE_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def arrival_view_name(source: SourceTable) -> str:
    """The view recording ``source``'s arrivals: one per source table, the same name on
    every start (a hash keeps it a plain identifier whatever the names' length)."""
    digest = hashlib.sha1(source.name.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"{TRACE_ARRIVALS_TABLE}_from_{digest[:12]}"


def arrival_view_statement(database: str, source: SourceTable, cluster: str | None = None) -> str:
    """The materialized view writing an arrival row per trace and INSERT into ``source``,
    with ``Source = 'database.table'``, into ``database``'s arrivals table (its local
    table, ``ON CLUSTER``, with ``cluster``).

    DDL takes no query parameters: the names are validated by the config schema and
    again by ``quote_identifier`` here, so the string literal can only hold letters,
    digits, ``_`` and the dot; it is checked and escaped anyway."""
    db = quote_identifier(database)
    source_sql = source.sql
    label = source.name
    if not _SOURCE_LABEL.match(label):
        raise ConfigError(f"invalid source table name {label!r}")
    literal = "'" + label.replace("\\", "\\\\").replace("'", "\\'") + "'"
    on_cluster = f" ON CLUSTER {quote_identifier(cluster)}" if cluster is not None else ""
    target = TRACE_ARRIVALS_TABLE + (LOCAL_SUFFIX if cluster is not None else "")
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{arrival_view_name(source)}{on_cluster}\n"
        f"TO {db}.{target}\n"
        "AS SELECT now64(3, 'UTC') AS InsertedAt, TraceId, toUInt32(count()) AS Spans, "
        f"{literal} AS Source\n"
        f"FROM {source_sql}\n"
        "WHERE TraceId != ''\n"
        "GROUP BY TraceId"
    )


def ensure_arrival_view(store: Store, source: SourceTable) -> bool:
    """Create the arrival view of ``source`` unless it exists; True when created now.

    On a cluster (the arrivals table is Distributed) the view must be created ``ON
    CLUSTER`` on the local tables, which a watcher should not do on its own: the
    ConfigError prints the statement instead."""
    view = arrival_view_name(source)
    rows = store.query(
        "SELECT name, engine, engine_full FROM system.tables WHERE database = {db:String} "
        "AND name IN ({view:String}, {arrivals:String})",
        {"db": store.database, "view": view, "arrivals": TRACE_ARRIVALS_TABLE},
    )
    engines = {str(r["name"]): (str(r["engine"]), str(r["engine_full"])) for r in rows}
    if view in engines:
        return False
    if TRACE_ARRIVALS_TABLE not in engines:
        raise ConfigError(
            f"{store.location} has no {TRACE_ARRIVALS_TABLE} table: run `tracescore db init`"
        )
    engine, engine_full = engines[TRACE_ARRIVALS_TABLE]
    if engine == "Distributed":
        cluster = distributed_cluster(engine_full)
        statement = arrival_view_statement(store.database, source, cluster or "CLUSTER_NAME")
        raise ConfigError(
            f"watching {source.name} on a ClickHouse cluster needs a view on every node; "
            f"create it once (FROM the table the inserts land in on each node), then "
            f"start again:\n{statement};"
        )
    store.command(arrival_view_statement(store.database, source))
    log.info(
        "created the view %s.%s recording arrivals in %s; spans inserted there before it "
        "are not seen by watch (score them with `tracescore rescore`)",
        store.database,
        view,
        source.name,
    )
    return True


def _case_for(trace: Trace) -> Case:
    # Production traces have no expected values: evaluators that need them say so.
    return Case(id=trace.trace_id or "trace", input=trace.input or "")


class Watcher:
    """Scores the sealed traces that landed since its checkpoint, one ``poll`` at a time.

    Everything it remembers is in the store, so a new Watcher with the same config name
    continues where a stopped one left off.
    """

    def __init__(
        self,
        store: Store,
        loaded: LoadedScoringConfig,
        *,
        metrics: WatchMetrics | None = None,
        max_per_poll: int = DEFAULT_MAX_PER_POLL,
    ) -> None:
        config = loaded.config
        self.source = SourceTable.of(store, loaded)
        self._own_source = self.source.is_store_default(store)
        # Arrival rows of the store's own otel_traces (migration 0006's view) have no
        # Source; those of another table are written by a view this watcher adds.
        self._source_label = "" if self._own_source else self.source.name
        if not self._own_source:
            self.source.check(store)
            ensure_arrival_view(store, self.source)
        self.store = store
        # Spans and logs from the source; scores, state and checkpoints in the store.
        self._reader = SourcedStore.over(store, self.source)
        self.loaded = loaded
        self.config = config
        self.name = f"watch:{config.name}"
        self.metrics = metrics or WatchMetrics()
        self.max_per_poll = max_per_poll
        self.prices = PriceTable.with_overrides(config.prices)
        self._stop = threading.Event()
        self._quiet_ms = int(config.watch.quiet_period_s * 1000)
        self._window_us = int(config.watch.late_span_window_s * 1_000_000)
        self._watermark_ms = self._load_watermark()
        self._clock_offset_s = self._server_now_ms() / 1000 - time.time()
        self.metrics.set_lag_source(self.lag_seconds)
        if self._watermark_ms is not None:
            self.metrics.watermark.set(self._watermark_ms / 1000)
        # One pool for the watcher's life: forking workers per batch cost more than the
        # second core gave back.
        self._pool = ScoringPool(
            config.evaluators,
            _case_for,
            self.prices,
            workers=config.workers,
            variant_key=config.variant_key,
        )
        # Without filters every sealed trace is scored by every evaluator: the filter
        # query (a scan of the batch's spans) is skipped.
        self._filtered = (
            config.service is not None
            or loaded.where is not None
            or config.sample is not None
            or any(when is not None for when in loaded.when)
        )

    def close(self) -> None:
        """Stop the scoring worker processes; the store stays open (it is the caller's)."""
        self._pool.close()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the batch being scored, then return from ``poll`` and ``run``."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Poll every ``poll_interval_s`` until ``stop``."""
        interval = self.config.watch.poll_interval_s
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(interval)

    def lag_seconds(self) -> float:
        """now - quiet_period - watermark, by the store's clock; NaN before any checkpoint."""
        if self._watermark_ms is None:
            return math.nan
        now_s = time.time() + self._clock_offset_s
        return max(0.0, now_s - self._quiet_ms / 1000 - self._watermark_ms / 1000)

    @property
    def watermark_ms(self) -> int | None:
        return self._watermark_ms

    # -- one cycle -------------------------------------------------------------------------
    def poll(self) -> PollResult:
        """Score every trace sealed since the last poll (up to ``max_per_poll``)."""
        started = time.monotonic()
        now_ms = self._server_now_ms()
        self._clock_offset_s = now_ms / 1000 - time.time()
        sealed_before_ms = now_ms - self._quiet_ms
        if self._watermark_ms is None:
            lookback_ms = int(self.config.watch.late_span_window_s * 1000) + self._quiet_ms
            since_ms = now_ms - lookback_ms - int(SAFETY_MARGIN_S * 1000)
        else:
            since_ms = self._watermark_ms - int(SAFETY_MARGIN_S * 1000)
        due = self._due(since_ms, sealed_before_ms)
        result = PollResult(due=len(due))
        self._handle(due, now_ms, result)
        if result.complete:
            truncated = len(due) >= self.max_per_poll
            watermark = due[-1].last_arrival_ms if truncated else sealed_before_ms
            if self._watermark_ms is None or watermark > self._watermark_ms:
                self._save_watermark(watermark, now_ms)
            result.watermark_ms = self._watermark_ms
        self.metrics.polls.inc()
        lag = self.lag_seconds()
        log.info(
            "poll: %d due, %d scored, %d re-scored, %d skipped, %d late ignored, %d scores "
            "in %.2fs; lag %.1fs%s",
            result.due,
            result.scored,
            result.rescored,
            result.skipped,
            result.late_ignored,
            result.scores,
            time.monotonic() - started,
            0.0 if math.isnan(lag) else lag,
            "" if result.complete else " (stopped before the end)",
        )
        return result

    def _due(self, since_ms: int, sealed_before_ms: int) -> list[_Due]:
        """The one candidate query: traces with arrivals after ``since_ms``, the newest of
        them no later than ``sealed_before_ms``, and newer than what this watcher scored."""
        db = self.store.db
        sql = f"""
            SELECT a.TraceId AS TraceId,
                   toUnixTimestamp64Milli(a.LastArrival) AS LastArrivalMs,
                   toUnixTimestamp64Micro(s.FirstScoredAt) AS FirstScoredUs,
                   s.TraceId != '' AS Known
            FROM (
                SELECT TraceId, max(InsertedAt) AS LastArrival
                FROM {db}.{TRACE_ARRIVALS_TABLE}
                WHERE InsertedAt > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')
                  AND Source = {{source:String}}
                GROUP BY TraceId
                HAVING LastArrival <= fromUnixTimestamp64Milli({{sealed:Int64}}, 'UTC')
            ) AS a
            LEFT JOIN (
                SELECT TraceId, max(LastArrival) AS Scored, min(FirstScoredAt) AS FirstScoredAt
                FROM {db}.{WATCH_STATE_TABLE}
                WHERE Watcher = {{watcher:String}}
                  AND TraceId IN (
                      SELECT TraceId FROM {db}.{TRACE_ARRIVALS_TABLE}
                      WHERE InsertedAt > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')
                        AND Source = {{source:String}}
                  )
                GROUP BY TraceId
            ) AS s ON s.TraceId = a.TraceId
            WHERE s.TraceId = '' OR a.LastArrival > s.Scored
            ORDER BY a.LastArrival, a.TraceId
            LIMIT {{limit:UInt32}}
        """
        rows = self.store.query(
            sql,
            {
                "since": since_ms,
                "sealed": sealed_before_ms,
                "watcher": self.name,
                "source": self._source_label,
                "limit": self.max_per_poll,
            },
        )
        return [
            _Due(
                trace_id=r["TraceId"],
                last_arrival_ms=int(r["LastArrivalMs"]),
                first_scored_us=int(r["FirstScoredUs"]) if r["Known"] else 0,
            )
            for r in rows
        ]

    def _handle(self, due: Sequence[_Due], now_ms: int, result: PollResult) -> None:
        now_us = now_ms * 1000
        late, fresh = [], []
        for item in due:
            if item.first_scored_us and item.last_arrival_ms * 1000 - item.first_scored_us > (
                self._window_us
            ):
                late.append(item)
            else:
                fresh.append(item)
        facts: dict[str, _Facts] = {}
        if self._filtered:
            for chunk in batched([d.trace_id for d in fresh], self.config.batch_size):
                facts.update(self._facts(chunk))
        groups: dict[tuple[int, ...], list[_Due]] = {}
        skipped: list[_Due] = []
        for item in fresh:
            fact = facts.get(item.trace_id)
            chosen = self._evaluators_for(item.trace_id, fact)
            if chosen:
                groups.setdefault(chosen, []).append(item)
            else:
                skipped.append(item)
        self._skip(skipped, facts, now_us, result)
        self._write_state(late, _span_counts(late, facts), 0, now_us)
        result.late_ignored += len(late)
        self.metrics.traces.labels(outcome="late_ignored").inc(len(late))
        for indexes, items in groups.items():
            if self._stop.is_set() or not self._score(indexes, items, facts, now_us, result):
                result.complete = False
                return

    def _evaluators_for(self, trace_id: str, fact: _Facts | None) -> tuple[int, ...]:
        if self._filtered and (fact is None or not fact.selected):
            return ()
        return tuple(
            i
            for i, spec in enumerate(self.config.evaluators)
            if (fact is None or fact.when[i]) and sampled(spec.display_name, trace_id, spec.sample)
        )

    def _facts(self, trace_ids: Sequence[str]) -> dict[str, _Facts]:
        """Per trace, in one query: span count, and which filters match (``service``/
        ``where`` for the trace, ``when`` for each evaluator)."""
        if not trace_ids:
            return {}
        db = self.store.db
        params: dict[str, Any] = {"tids": list(trace_ids)}
        conditions: list[str] = []
        if self.config.service is not None:
            conditions.append("ServiceName = {svc:String}")
            params["svc"] = self.config.service
        if self.loaded.where is not None:
            conditions.append(f"({self.loaded.where.sql})")
            params.update(self.loaded.where.params)
        selected = " AND ".join(conditions) or "1"
        sample = self.config.sample
        sampled_sql = "1"
        if sample is not None:
            sampled_sql, share = sample_condition(sample)
            params.update(share)
        whens: list[str] = []
        for i, when in enumerate(self.loaded.when):
            if when is None:
                whens.append(f"1 AS When{i}")
            else:
                whens.append(f"toUInt8(max({when.sql})) AS When{i}")
                params.update(when.params)
        if self._own_source:
            bound_with = f"""WITH (SELECT (min(Start), max(End)) FROM {db}.{TRACE_ID_TS_TABLE}
                  WHERE TraceId IN {{tids:Array(String)}}) AS bounds"""
            bound = """AND (bounds.2 = toDateTime(0)
                   OR Timestamp BETWEEN bounds.1 AND bounds.2 + INTERVAL 1 SECOND)"""
        else:
            # Another writer's table may have no lookup table: no time bound, as in
            # SourceTable.fetch_spans_arrow (the exporter's bloom index on TraceId prunes).
            bound_with = bound = ""
        sql = f"""
            {bound_with}
            SELECT TraceId,
                   toUInt32(count()) AS Spans,
                   toUInt8(max({selected}) AND any({sampled_sql})) AS Selected,
                   {", ".join(whens)}
            FROM {self.source.sql}
            WHERE TraceId IN {{tids:Array(String)}}
              {bound}
            GROUP BY TraceId
        """
        n = len(self.loaded.when)
        return {
            r["TraceId"]: _Facts(
                spans=int(r["Spans"]),
                selected=bool(r["Selected"]),
                when=tuple(bool(r[f"When{i}"]) for i in range(n)),
            )
            for r in self.store.query(sql, params)
        }

    def _score(
        self,
        indexes: tuple[int, ...],
        items: list[_Due],
        facts: dict[str, _Facts],
        now_us: int,
        result: PollResult,
    ) -> bool:
        """Scores ``items`` with the evaluators at ``indexes``, storing every
        ``batch_size`` results as they come; False when stopped before the end."""
        evaluators = [self.loaded.evaluators[i] for i in indexes]
        by_id = {d.trace_id: d for d in items}
        size = self.config.batch_size
        results = self._pool.score(self._reader, list(by_id), only=indexes, batch_size=size)
        done: list[TraceScores] = []
        try:
            for trace_scores in results:
                done.append(trace_scores)
                if len(done) >= size:
                    self._store_scored(done, evaluators, by_id, facts, now_us, result)
                    done = []
                    if self._stop.is_set():
                        return False
            self._store_scored(done, evaluators, by_id, facts, now_us, result)
        finally:
            results.close()
        return True

    def _skip(
        self, items: Sequence[_Due], facts: dict[str, _Facts], now_us: int, result: PollResult
    ) -> None:
        """Not scored, but handled: recorded so the overlap does not pick them up again."""
        self._write_state(items, _span_counts(items, facts), 0, now_us)
        result.skipped += len(items)
        self.metrics.traces.labels(outcome="skipped").inc(len(items))

    def _store_scored(
        self,
        done: list[TraceScores],
        evaluators: Sequence[Any],
        by_id: dict[str, _Due],
        facts: dict[str, _Facts],
        now_us: int,
        result: PollResult,
    ) -> None:
        # A trace with no spans left (expired between the arrival and the fetch) has
        # nothing to score.
        gone = [by_id[t.trace_id] for t in done if not t.found]
        if gone:
            self._skip(gone, facts, now_us, result)
            done = [t for t in done if t.found]
        if not done:
            return
        self._write_scores(done, evaluators, now_us)
        handled = [by_id[t.trace_id] for t in done]
        self._write_state(handled, [t.span_count for t in done], len(evaluators), now_us)
        rescored = sum(1 for d in handled if d.first_scored_us)
        scores = sum(len(t.scores) for t in done)
        result.rescored += rescored
        result.scored += len(handled) - rescored
        result.scores += scores
        result.scored_ids += [d.trace_id for d in handled]
        self.metrics.traces.labels(outcome="scored").inc(len(handled) - rescored)
        self.metrics.traces.labels(outcome="rescored").inc(rescored)
        self.metrics.scores.inc(scores)

    # -- writing ---------------------------------------------------------------------------
    def _write_scores(
        self,
        done: Sequence[TraceScores],
        evaluators: Sequence[Any],
        now_us: int,
    ) -> None:
        rows = [
            ScoreRow(
                t.trace_id,
                "",
                t.variant,
                score,
                evaluators[i].type_name,
                evaluators[i].config_hash,
            )
            for t in done
            for i, score in enumerate(t.scores)
        ]
        write_scores(self.store, self.name, rows, now_us)

    def _write_state(
        self, items: Sequence[_Due], span_counts: Sequence[int], scores: int, now_us: int
    ) -> None:
        if not items:
            return
        n = len(items)
        self.store.insert_arrow(
            WATCH_STATE_TABLE,
            pa.table(
                {
                    "Watcher": [self.name] * n,
                    "TraceId": [d.trace_id for d in items],
                    "LastArrival": pa.array([d.last_arrival_ms for d in items], _MS),
                    "SpanCount": pa.array(span_counts, pa.uint32()),
                    "Scores": pa.array([scores] * n, pa.uint32()),
                    "ConfigHash": [self.loaded.config_hash] * n,
                    "FirstScoredAt": pa.array([d.first_scored_us or now_us for d in items], _US),
                    "ScoredAt": pa.array([now_us] * n, _US),
                }
            ),
        )

    # -- checkpoint ------------------------------------------------------------------------
    def _load_watermark(self) -> int | None:
        rows = self.store.query(
            f"""
            SELECT toUnixTimestamp64Milli(max(Watermark)) AS Ms, count() AS N
            FROM {self.store.db}.{WATCH_CHECKPOINTS_TABLE}
            WHERE Watcher = {{watcher:String}}
            """,
            {"watcher": self.name},
        )
        return int(rows[0]["Ms"]) if rows and int(rows[0]["N"]) else None

    def _save_watermark(self, watermark_ms: int, now_ms: int) -> None:
        # Appended, not updated: the watermark only moves forward, so the newest is the
        # largest (ReplacingMergeTree keeps one row per watcher once parts merge).
        self.store.insert_arrow(
            WATCH_CHECKPOINTS_TABLE,
            pa.table(
                {
                    "Watcher": [self.name],
                    "Watermark": pa.array([watermark_ms], _MS),
                    "ConfigHash": [self.loaded.config_hash],
                    "UpdatedAt": pa.array([max(now_ms * 1000, time.time_ns() // 1000)], _US),
                }
            ),
        )
        self._watermark_ms = watermark_ms
        self.metrics.watermark.set(watermark_ms / 1000)

    def _server_now_ms(self) -> int:
        rows = self.store.query("SELECT toUnixTimestamp64Milli(now64(3, 'UTC')) AS Ms")
        return int(rows[0]["Ms"])


def _span_counts(items: Sequence[_Due], facts: dict[str, _Facts]) -> list[int]:
    """Known only for traces the filter query saw; 0 otherwise."""
    return [facts[d.trace_id].spans if d.trace_id in facts else 0 for d in items]
