"""Scoring many stored traces on every core: the engine of re-scoring.

The calling process runs the store queries, a batch of ids at a time, and ships each
batch's rows, as Arrow IPC bytes, to a pool of worker processes; the workers turn the
rows into spans, rebuild and price each trace, score it and send back a compact result.
Rebuilding and scoring are pure Python and hold the GIL, so threads would not help;
the queries release it (and chDB must stay in the one process that opened its data
path), so the parent keeps fetching while the workers work.

    for result in score_stored(store, ids, specs, case, prices):
        ...  # a TraceScores per id, in the order of ``ids``
"""

import gc
import math
import multiprocessing
import operator
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from tracescore.collector.store import Store
from tracescore.collector.store.base import logs_from_arrow, spans_from_arrow
from tracescore.schemas.errors import TracescoreError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import LogRecord, Span
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.schemas.trusted import SLOT_SETTERS, new_model
from tracescore.scoring.evaluators import Evaluator, build_evaluator
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.reconstruct import reconstruct
from tracescore.scoring.traces import DEFAULT_BATCH, batched, paused_gc

__all__ = [
    "BatchScoringError",
    "CaseFor",
    "ScoringPool",
    "StartMethod",
    "TraceScores",
    "score_stored",
]

CaseFor = Callable[[Trace], Case] | Case
StartMethod = Literal["fork", "forkserver", "spawn"]

# Batches fetched ahead of the one being scored. One keeps the workers busy while the
# next query runs; more only holds more rows in memory.
_BATCHES_AHEAD = 1


class BatchScoringError(TracescoreError):
    """Scoring stored traces failed outside the evaluators: a worker process died or
    could not start. (An evaluator that raises gives a Score with ``error`` instead.)"""


@dataclass(frozen=True, slots=True)
class TraceScores:
    """One stored trace's scores, with what a report or a score event needs about it."""

    trace_id: str
    scores: list[Score]
    """One per evaluator spec, in the specs' order."""
    span_count: int
    """0 when the store has no span of this trace."""
    root_span_id: str
    """The first root span (by start time), where a score event attaches; "" if none."""
    duration_ns: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    error_span_count: int
    error: str | None = None
    """Set when the trace could not be rebuilt or given a case; every score then
    carries this error too."""
    variant: str = ""
    """The ``variant_key`` resource attribute, a root span's first (as rescore selects
    it); "" without a variant key or a span that has it."""

    @property
    def found(self) -> bool:
        return self.span_count > 0


def score_stored(
    store: Store,
    trace_ids: Sequence[str],
    evaluator_specs: Sequence[EvaluatorSpec],
    case_for: CaseFor,
    prices: PriceTable | None = None,
    *,
    batch_size: int = DEFAULT_BATCH,
    workers: int | None = None,
    start_method: StartMethod | None = None,
) -> Generator[TraceScores, None, None]:
    """Each trace in ``trace_ids`` (duplicates once) rebuilt from the store, priced with
    ``prices`` (the built-in table when None) and scored by ``evaluator_specs``, yielded
    in the order of ``trace_ids`` as soon as its batch is done. An id with no stored
    spans is scored as an empty trace (``found`` is False), as ``load_traces`` does.

    ``case_for`` is the case every trace is scored against, or a function choosing it
    from the rebuilt trace. ``workers`` processes score (default: one per CPU); with 1,
    or a single trace, everything runs in this process, with no pool to start.

    Specs are checked here (ConfigError) before anything is fetched. A worker that dies
    raises BatchScoringError; stopping the iteration early shuts the pool down. For many
    calls with the same evaluators, keep one ``ScoringPool`` instead.
    """
    pool = ScoringPool(
        evaluator_specs, case_for, prices, workers=workers, start_method=start_method
    )
    return pool.score_once(store, trace_ids, batch_size=batch_size)


class ScoringPool:
    """Worker processes that rebuild and score stored traces, kept across calls.

    Workers are forked by default on Linux, so they inherit evaluators that user code
    registered and a ``case_for`` closure; they never touch the store (only this process
    may use an embedded chDB path), only the rows sent to them. ``forkserver`` and
    ``spawn`` need ``case_for`` and every evaluator type importable by name. The
    processes start on the first call that needs them and stay until ``close``; a
    pool whose worker died is replaced on the next call.

    Every call may score with a subset of the evaluators (``only``: their indexes in
    ``evaluator_specs``), so one pool serves evaluators that apply to different traces.
    """

    def __init__(
        self,
        evaluator_specs: Sequence[EvaluatorSpec],
        case_for: CaseFor,
        prices: PriceTable | None = None,
        *,
        workers: int | None = None,
        start_method: StartMethod | None = None,
        variant_key: str | None = None,
    ) -> None:
        self._specs = list(evaluator_specs)
        table = prices if prices is not None else PriceTable.with_overrides()
        # Built here, so a bad spec is a ConfigError before anything runs.
        evaluators = [build_evaluator(spec) for spec in self._specs]
        self._scorer = _Scorer(evaluators, case_for, table, variant_key)
        self._worker_args: _WorkerArgs = (self._specs, case_for, table, variant_key)
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._method = start_method or _default_start_method()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "ScoringPool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (a chunk being scored finishes first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def score(
        self,
        store: Store,
        trace_ids: Sequence[str],
        *,
        only: Sequence[int] | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> Generator[TraceScores, None, None]:
        """``trace_ids`` (duplicates once) scored, in their order, a batch at a time; each
        TraceScores has one score per evaluator in ``only`` (default: all), in that order.
        Closing the generator early drops the chunks not yet started."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        ids = list(dict.fromkeys(trace_ids))
        chosen = tuple(range(len(self._specs))) if only is None else tuple(only)
        if min(self.workers, len(ids)) <= 1:
            return _score_inline(store, ids, self._scorer, chosen, batch_size)
        return self._score_in_pool(store, ids, chosen, batch_size)

    def score_once(
        self, store: Store, trace_ids: Sequence[str], *, batch_size: int = DEFAULT_BATCH
    ) -> Generator[TraceScores, None, None]:
        """``score`` with every evaluator, then ``close``: for a single call."""
        results = self.score(store, trace_ids, batch_size=batch_size)

        def closing() -> Generator[TraceScores, None, None]:
            try:
                yield from results
            finally:
                results.close()
                self.close()

        return closing()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self._method),
                initializer=_init_worker,
                initargs=self._worker_args,
            )
        return self._pool

    def _score_in_pool(
        self, store: Store, ids: list[str], only: tuple[int, ...], batch_size: int
    ) -> Generator[TraceScores, None, None]:
        pool = self._executor()
        workers = self.workers
        # Each worker takes whole batches, several in flight: splitting a fetched batch
        # between workers copied every row once more (Arrow filter) for nothing. Batches
        # shrink so that even a few ids keep every worker busy. Futures are collected
        # in submission order, so results keep the ids' order.
        size = min(batch_size, math.ceil(len(ids) / workers))
        max_pending = workers * (1 + _BATCHES_AHEAD)
        pending: deque[tuple[list[str], Future[list[_Packed]]]] = deque()
        try:
            for batch in batched(ids, size):
                spans = _ipc(store.fetch_spans_arrow(batch))
                logs = _ipc(store.fetch_logs_arrow(batch))
                chunk = list(batch)
                pending.append((chunk, pool.submit(_score_in_worker, chunk, only, spans, logs)))
                while len(pending) > max_pending:
                    yield from _collect(*pending.popleft())
            while pending:
                yield from _collect(*pending.popleft())
        except (BrokenProcessPool, BatchScoringError) as exc:
            # A dead worker breaks the whole pool: the next call starts a new one.
            self.close()
            if isinstance(exc, BatchScoringError):
                raise
            raise BatchScoringError(_died(pending[0][0] if pending else ids, exc)) from exc
        finally:
            # On an early stop, what was queued is dropped; running chunks finish.
            for _, future in pending:
                future.cancel()


# -- in this process -------------------------------------------------------------------------


def _score_inline(
    store: Store, ids: list[str], scorer: "_Scorer", only: tuple[int, ...], batch_size: int
) -> Generator[TraceScores, None, None]:
    for batch in batched(ids, batch_size):
        spans = store.fetch_spans_arrow(batch)
        logs = store.fetch_logs_arrow(batch)
        yield from scorer.score(batch, spans, logs, only)


class _Scorer:
    """Rows → spans → traces → scores, for one chunk of ids (in a worker, or inline)."""

    def __init__(
        self,
        evaluators: list[Evaluator],
        case_for: CaseFor,
        prices: PriceTable,
        variant_key: str | None = None,
    ):
        self.evaluators = evaluators
        self.case_for = case_for
        self.prices = prices
        self.variant_key = variant_key

    def score(
        self, ids: Sequence[str], spans: pa.Table, logs: pa.Table, only: tuple[int, ...]
    ) -> list[TraceScores]:
        evaluators = [self.evaluators[i] for i in only]
        # What a chunk builds is freed by reference counting (see paused_gc); cycles an
        # evaluator leaves wait until the chunk ends. Measured, conversion runs ~40 % and
        # the evaluators ~2× faster without gen-2 collections re-traversing the models.
        with paused_gc():
            spans_of: dict[str, list[Span]] = {tid: [] for tid in ids}
            for span in spans_from_arrow(spans):
                spans_of[span.trace_id].append(span)
            logs_of: dict[str, list[LogRecord]] = {tid: [] for tid in ids}
            for record in logs_from_arrow(logs):
                logs_of[record.trace_id].append(record)
            return [self._one(tid, spans_of[tid], logs_of[tid], evaluators) for tid in ids]

    def _one(
        self,
        trace_id: str,
        spans: list[Span],
        logs: list[LogRecord],
        evaluators: list[Evaluator],
    ) -> TraceScores:
        try:
            trace = reconstruct(trace_id, spans, logs, self.prices)
            case = self.case_for if isinstance(self.case_for, Case) else self.case_for(trace)
        except Exception as exc:
            # One malformed trace must not end a re-score of many: it is reported, with
            # an error score from each evaluator, like an evaluator that crashed.
            error = f"trace could not be scored: {type(exc).__name__}: {exc}"
            return TraceScores(
                trace_id=trace_id,
                scores=[Score.failure(e.name, error) for e in evaluators],
                span_count=len(spans),
                root_span_id="",
                duration_ns=0,
                input_tokens=0,
                output_tokens=0,
                cost_usd=None,
                error_span_count=sum(1 for s in spans if s.is_error),
                error=error,
                variant=self._variant(spans),
            )
        return TraceScores(
            trace_id=trace_id,
            scores=[e.safe_score(trace, case) for e in evaluators],
            span_count=len(trace.spans),
            root_span_id=trace.roots[0].span.span_id if trace.roots else "",
            duration_ns=trace.duration_ns,
            input_tokens=trace.input_tokens,
            output_tokens=trace.output_tokens,
            cost_usd=trace.cost_usd,
            error_span_count=len(trace.error_spans),
            variant=self._variant(spans),
        )

    def _variant(self, spans: list[Span]) -> str:
        key = self.variant_key
        if key is None:
            return ""
        best: tuple[tuple[bool, int], str] | None = None
        for span in spans:
            value = span.resource_attributes.get(key)
            if value:
                rank = (span.parent_span_id != "", span.start_ns)
                if best is None or rank < best[0]:
                    best = (rank, value)
        return best[1] if best is not None else ""


# -- in a pool of processes ------------------------------------------------------------------

_WorkerArgs = tuple[list[EvaluatorSpec], CaseFor, PriceTable, str | None]
_Packed = tuple[Any, ...]


def _default_start_method() -> StartMethod:
    # fork starts in milliseconds with everything already imported and registered;
    # elsewhere (macOS) forking a process with threads is unsafe, so spawn.
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _collect(
    chunk: list[str], future: "Future[list[_Packed]]"
) -> Generator[TraceScores, None, None]:
    try:
        packed = future.result()
    except BrokenProcessPool as exc:
        raise BatchScoringError(_died(chunk, exc)) from exc
    except Exception as exc:
        raise BatchScoringError(
            f"scoring traces {chunk[0]}…{chunk[-1]} failed in a worker: {type(exc).__name__}: {exc}"
        ) from exc
    for row in packed:
        yield _unpack(row)


def _died(chunk: Sequence[str], exc: BaseException) -> str:
    return (
        f"a scoring worker process died while scoring traces {chunk[0]}…{chunk[-1]} "
        f"(killed, out of memory or crashed), or one could not start (an evaluator "
        f"that cannot be built in a new process): {exc}"
    )


_scorer: _Scorer | None = None


def _init_worker(
    specs: list[EvaluatorSpec], case_for: CaseFor, prices: PriceTable, variant_key: str | None
) -> None:
    global _scorer
    # Ctrl-C reaches the whole process group: the parent decides what stops, and a
    # worker killed by it mid-chunk would break the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A forked worker inherits the parent's heap: keep collections from traversing
    # (and copying the pages of) objects it will never free.
    gc.freeze()
    _scorer = _Scorer([build_evaluator(spec) for spec in specs], case_for, prices, variant_key)


def _score_in_worker(
    ids: list[str], only: tuple[int, ...], spans: bytes, logs: bytes
) -> list[_Packed]:
    if _scorer is None:
        raise BatchScoringError("scoring worker was not initialized")
    results = _scorer.score(ids, _read_ipc(spans), _read_ipc(logs), only)
    return [_pack(result) for result in results]


def _read_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


# Results go back as plain tuples: pickling a Score model costs ~5 µs in the worker and
# ~3 µs to load, a tuple of its fields ~0.2 µs each, and rebuilding the model ~1 µs.
_SCORE_FIELDS = tuple(Score.model_fields)
_SCORE_FIELD_SET = set(_SCORE_FIELDS)
_score_values = operator.attrgetter(*_SCORE_FIELDS)
_set_dict, _set_fields, _set_extra, _set_private = SLOT_SETTERS


def _pack(result: TraceScores) -> _Packed:
    return (
        result.trace_id,
        [_score_values(score) for score in result.scores],
        result.span_count,
        result.root_span_id,
        result.duration_ns,
        result.input_tokens,
        result.output_tokens,
        result.cost_usd,
        result.error_span_count,
        result.error,
        result.variant,
    )


def _unpack(row: _Packed) -> TraceScores:
    """The result a worker packed, its Scores rebuilt from their field values without
    validating them again (the worker built them as validated models). Their fields-set
    is shared: Score is frozen, and pydantic copies it on model_copy."""
    trace_id, packed_scores, *summary = row
    fields, field_set, new = _SCORE_FIELDS, _SCORE_FIELD_SET, new_model
    scores: list[Score] = []
    for values in packed_scores:
        score = new(Score)
        _set_dict(score, dict(zip(fields, values, strict=True)))
        _set_fields(score, field_set)
        _set_extra(score, None)
        _set_private(score, None)
        scores.append(score)
    return TraceScores(trace_id, scores, *summary)
