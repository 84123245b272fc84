"""``tracescore rescore``: score stored traces again with the evaluators of ``scoring.yaml``.

The traces may be in any table of the OTel Collector clickhouseexporter's shape, in
another database than tracescore's own tables: selection and span reads go to the
configured source, scores to the store's ``tracescore_scores``, with RunId
``rescore:<name>``. Writing a score again replaces it (the table is keyed by trace,
evaluator and config hash), and a trace whose scores already exist is skipped unless
forced, so an interrupted re-score resumes where it stopped.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from tracescore.collector.store import Store
from tracescore.schemas.ddl import SCORES_TABLE
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.batch import ScoringPool, TraceScores
from tracescore.scoring.filters import SpanFilter, compile_filter
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.progress import CountProgress
from tracescore.scoring.results import ScoreRow, write_scores
from tracescore.scoring.sampling import sample_condition, sampled
from tracescore.scoring.scoring_config import LoadedScoringConfig
from tracescore.scoring.source import SourcedStore, SourceTable
from tracescore.scoring.traces import batched

__all__ = [
    "RescoreOptions",
    "RescoreProgress",
    "RescoreSummary",
    "SelectedTrace",
    "SourceTable",
    "parse_time",
    "print_rescore_summary",
    "rescore",
    "select_traces",
]


# -- options -----------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``24h``/``30m``/``7d``/``2w``/``90s`` ago, or an ISO 8601 time (UTC unless it says)."""
    current = now or datetime.now(UTC)
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * _UNITS[relative.group(2)]
        return current - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"invalid time {text!r}: write a duration ago (90s, 30m, 24h, 7d, 2w) "
            "or an ISO 8601 time (2026-01-31 or 2026-01-31T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RescoreOptions:
    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    """Combined (AND) with the config's ``service``."""
    where: str | None = None
    """A filter expression, combined (AND) with the config's ``where``."""
    sample: float | None = None
    """Replaces the config's ``sample`` when given."""
    limit: int | None = None
    variant_key: str | None = None
    """Replaces the config's ``variant_key`` when given."""
    workers: int | None = None
    """Replaces the config's ``workers`` when given."""
    force: bool = False
    """Score traces again even when their scores for this config already exist."""
    dry_run: bool = False


# -- selection ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectedTrace:
    trace_id: str
    variant: str
    """The variant attribute of the trace's spans: a root span's when it has one."""


def _conditions(
    loaded: LoadedScoringConfig, options: RescoreOptions
) -> tuple[list[str], dict[str, Any]]:
    """The span conditions of the selection, SQL and parameters (user values only in these)."""
    config = loaded.config
    conditions: list[str] = ["TraceId != ''"]
    params: dict[str, Any] = {}
    if options.since is not None:
        conditions.append("Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64})")
        params["since_ns"] = _ns(options.since)
    if options.until is not None:
        conditions.append("Timestamp < fromUnixTimestamp64Nano({until_ns:Int64})")
        params["until_ns"] = _ns(options.until)
    for name, service in (("config_service", config.service), ("cli_service", options.service)):
        if service:
            conditions.append(f"ServiceName = {{{name}:String}}")
            params[name] = service
    filters: list[SpanFilter] = []
    if loaded.where is not None:
        filters.append(loaded.where)
    if options.where:
        try:
            filters.append(compile_filter(options.where, prefix="w"))
        except ConfigError as exc:
            raise ConfigError(f"--where: {exc}") from None
    for span_filter in filters:
        conditions.append(f"({span_filter.sql})")
        params.update(span_filter.params)
    sample = options.sample if options.sample is not None else config.sample
    if sample is not None:
        if not 0 < sample <= 1:
            raise ConfigError(f"--sample must be in (0, 1], not {sample}")
        # By a hash of the trace id: the same share is picked on every run.
        condition, share = sample_condition(sample)
        conditions.append(condition)
        params.update(share)
    return conditions, params


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def select_traces(
    store: Store, loaded: LoadedScoringConfig, options: RescoreOptions
) -> list[SelectedTrace]:
    """The traces with at least one span matching the selection, newest first."""
    source = SourceTable.of(store, loaded)
    conditions, params = _conditions(loaded, options)
    params["variant_key"] = options.variant_key or loaded.config.variant_key
    limit = ""
    if options.limit is not None:
        if options.limit < 1:
            raise ConfigError(f"--limit must be at least 1, not {options.limit}")
        limit = "LIMIT {limit:UInt64}"
        params["limit"] = options.limit
    # The variant from every span of the trace, not only the matching ones: spans with
    # the attribute first, then root spans, then the earliest.
    sql = f"""
        SELECT TraceId,
               argMin(ResourceAttributes[{{variant_key:String}}],
                      (ResourceAttributes[{{variant_key:String}}] = '', ParentSpanId != '',
                       Timestamp)) AS Variant,
               max(Timestamp) AS Last
        FROM {source.sql}
        WHERE TraceId IN (SELECT TraceId FROM {source.sql} WHERE {" AND ".join(conditions)})
        GROUP BY TraceId
        ORDER BY Last DESC, TraceId
        {limit}
    """
    rows = store.query(sql, params)
    return [SelectedTrace(str(r["TraceId"]), str(r["Variant"])) for r in rows]


# -- scoring -----------------------------------------------------------------------------------


@dataclass
class EvaluatorTally:
    scored: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def pass_rate(self) -> float | None:
        judged = self.passed + self.failed
        return self.passed / judged if judged else None


@dataclass
class RescoreSummary:
    run_id: str
    source: str
    selected: int = 0
    scored: int = 0
    already_scored: int = 0
    """Skipped: their scores for this config exist (re-run with force to score them)."""
    not_applicable: int = 0
    """No evaluator applies (``when`` matched no span, or left out by ``sample``)."""
    errors: int = 0
    """Traces that could not be rebuilt, or have no spans left in the source."""
    evaluators: dict[str, EvaluatorTally] = field(default_factory=dict)
    dry_run: bool = False


def _case_for(trace: Trace) -> Case:
    # Stored traces have no case: evaluators that need expected values skip.
    return Case(id=trace.trace_id or "-", input=trace.input or "")


class _Planner:
    """Which evaluators each selected trace still needs, one batch of ids at a time."""

    def __init__(
        self, store: Store, source: SourceTable, loaded: LoadedScoringConfig, force: bool
    ) -> None:
        self.store = store
        self.source = source
        self.loaded = loaded
        self.force = force
        self.keys = [(e.name, e.config_hash) for e in loaded.evaluators]

    def matching_when(self, ids: Sequence[str]) -> dict[str, list[bool]]:
        """Per trace, per evaluator with a ``when``: whether a span of it matches; one
        query for the batch and all evaluators."""
        columns: list[str] = []
        params: dict[str, Any] = {"tids": list(ids)}
        for index, span_filter in enumerate(self.loaded.when):
            if span_filter is not None:
                columns.append(f"countIf({span_filter.sql}) > 0 AS w{index}")
                params.update(span_filter.params)
        if not columns:
            return {}
        rows = self.store.query(
            f"SELECT TraceId, {', '.join(columns)} FROM {self.source.sql} "
            "WHERE TraceId IN {tids:Array(String)} GROUP BY TraceId",
            params,
        )
        return {
            str(row["TraceId"]): [
                bool(row.get(f"w{i}")) if f is not None else True
                for i, f in enumerate(self.loaded.when)
            ]
            for row in rows
        }

    def done(self, ids: Sequence[str]) -> dict[str, set[tuple[str, str]]]:
        if self.force:
            return {}
        rows = self.store.query(
            f"SELECT DISTINCT TraceId, Evaluator, ConfigHash FROM {self.store.db}.{SCORES_TABLE} "
            "WHERE RunId = {run:String} AND TraceId IN {tids:Array(String)}",
            {"run": self.loaded.run_id_rescore, "tids": list(ids)},
        )
        found: dict[str, set[tuple[str, str]]] = {}
        for row in rows:
            found.setdefault(str(row["TraceId"]), set()).add(
                (str(row["Evaluator"]), str(row["ConfigHash"]))
            )
        return found

    def plan(
        self, selected: Sequence[SelectedTrace], batch_size: int, summary: RescoreSummary
    ) -> dict[tuple[int, ...], list[str]]:
        """Trace ids grouped by the evaluators (indices) still to run on them."""
        groups: dict[tuple[int, ...], list[str]] = {}
        has_when = any(f is not None for f in self.loaded.when)
        specs = self.loaded.config.evaluators
        for batch in batched([s.trace_id for s in selected], batch_size):
            when = self.matching_when(batch) if has_when else {}
            done = self.done(batch)
            for trace_id in batch:
                matches = when.get(trace_id, [f is None for f in self.loaded.when])
                needed = [
                    i
                    for i, spec in enumerate(specs)
                    if matches[i] and sampled(spec.display_name, trace_id, spec.sample)
                ]
                todo = tuple(i for i in needed if self.keys[i] not in done.get(trace_id, set()))
                if not needed:
                    summary.not_applicable += 1
                elif not todo:
                    summary.already_scored += 1
                else:
                    groups.setdefault(todo, []).append(trace_id)
        return groups


class _ScoreWriter:
    """Scores buffered and written a batch at a time (and whatever is left on the way out,
    so an interrupted re-score keeps what it finished)."""

    def __init__(self, store: Store, run_id: str, batch_size: int) -> None:
        self.store = store
        self.run_id = run_id
        self.batch_size = batch_size
        self.rows: list[ScoreRow] = []

    def add(self, row: ScoreRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        write_scores(self.store, self.run_id, rows)


def rescore(
    store: Store,
    loaded: LoadedScoringConfig,
    options: RescoreOptions | None = None,
    *,
    on_start: Callable[[int], None] | None = None,
    on_trace: Callable[[TraceScores], None] | None = None,
) -> RescoreSummary:
    """Select, plan and score; returns what happened. ``on_start(n)`` gets the number of
    traces about to be scored, ``on_trace`` each result after its scores are queued for
    writing (an exception there stops the re-score; what was scored is kept)."""
    opts = options or RescoreOptions()
    config = loaded.config
    source = SourceTable.of(store, loaded)
    source.check(store)
    summary = RescoreSummary(
        run_id=loaded.run_id_rescore,
        source=f"{source.database}.{source.table}",
        evaluators={e.name: EvaluatorTally() for e in loaded.evaluators},
        dry_run=opts.dry_run,
    )
    selected = select_traces(store, loaded, opts)
    summary.selected = len(selected)
    planner = _Planner(store, source, loaded, opts.force)
    groups = planner.plan(selected, config.batch_size, summary)
    if on_start is not None:
        on_start(sum(len(ids) for ids in groups.values()))
    if opts.dry_run:
        return summary
    variants = {s.trace_id: s.variant for s in selected}
    reader = SourcedStore.over(store, source)
    prices = PriceTable.with_overrides(config.prices)
    writer = _ScoreWriter(store, loaded.run_id_rescore, config.batch_size)
    workers = opts.workers if opts.workers is not None else config.workers
    # One pool for every group (each scores with its subset of the evaluators): the
    # workers start once, not once per group.
    pool = ScoringPool(config.evaluators, _case_for, prices, workers=workers)
    try:
        for todo, ids in groups.items():
            evaluators = [loaded.evaluators[i] for i in todo]
            results = pool.score(reader, ids, only=todo, batch_size=config.batch_size)
            for result in results:
                if result.error is not None or not result.found:
                    summary.errors += 1
                for evaluator, score in zip(evaluators, result.scores, strict=True):
                    writer.add(
                        ScoreRow(
                            result.trace_id,
                            "",
                            variants.get(result.trace_id, ""),
                            score,
                            evaluator.type_name,
                            evaluator.config_hash,
                        )
                    )
                    _tally(summary.evaluators[evaluator.name], score)
                summary.scored += 1
                if on_trace is not None:
                    on_trace(result)
    finally:
        pool.close()
        writer.flush()
    return summary


def _tally(tally: EvaluatorTally, score: Score) -> None:
    tally.scored += 1
    if score.error:
        tally.errors += 1
    elif score.skipped or score.passed is None:
        tally.skipped += 1
    elif score.passed:
        tally.passed += 1
    else:
        tally.failed += 1


# -- output ------------------------------------------------------------------------------------


class RescoreProgress(CountProgress):
    """A bar of traces scored out of those to score, with the ETA."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        super().__init__(console, "traces", enabled=enabled)

    def trace_done(self, _: TraceScores) -> None:
        self.advance()


def print_rescore_summary(console: Console, summary: RescoreSummary) -> None:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    verb = "would score" if summary.dry_run else "scored"
    to_score = summary.selected - summary.already_scored - summary.not_applicable
    say(
        f"{summary.run_id} from {summary.source}: {summary.selected} traces selected, "
        f"{verb} {to_score if summary.dry_run else summary.scored}, "
        f"skipped {summary.already_scored} already scored, "
        f"{summary.not_applicable} with no applicable evaluator, {summary.errors} errors"
    )
    if summary.dry_run:
        return
    for name, tally in summary.evaluators.items():
        rate = "–" if tally.pass_rate is None else f"{tally.pass_rate:.1%}"
        say(
            f"  {name}: pass rate {rate} ({tally.passed}/{tally.passed + tally.failed}), "
            f"{tally.scored} scored, {tally.errors} errors, {tally.skipped} skipped"
        )
