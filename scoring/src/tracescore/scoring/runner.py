"""Runs a suite: one harness root span per case × variant × repeat, the SUT called inside
it, its trace waited for, rebuilt, scored and stored."""

import random
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tracescore.collector.arrivals import ArrivalTracker
from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline, PipelineSettings, default_spool_dir
from tracescore.collector.store import Store
from tracescore.instrumentation import attached, env_from_context, traces_url, with_case_baggage
from tracescore.schemas import attributes as attr
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import LogRecord
from tracescore.schemas.suite import Case, Variant, system_for
from tracescore.schemas.trace import Trace
from tracescore.scoring.config import Suite
from tracescore.scoring.evaluators.workspace import use_workspace
from tracescore.scoring.inprocess_export import PipelineSpanExporter
from tracescore.scoring.live_spans import LiveSpans
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.reconstruct import reconstruct
from tracescore.scoring.results import CaseStatus, RunRecord, ScoredCase, write_cases, write_run
from tracescore.scoring.score_events import ScoredTrace, ScoreEventEmitter
from tracescore.scoring.systems import (
    CallContext,
    Invocation,
    SystemAdapter,
    SystemStartError,
    VariantContext,
    adapter_for,
)
from tracescore.scoring.traces import SharedLoader
from tracescore.scoring.workspaces import Workspaces

# The SUT's output is kept on the harness span as a fallback final output; cap its size.
_MAX_OUTPUT_ATTRIBUTE = 64 * 1024
ATTEMPT_ATTRIBUTE = "tracescore.case.attempt"
_WRITE_BATCH = 200

CaseListener = Callable[[ScoredCase], None]
StartListener = Callable[[int], None]


def tracescore_version() -> str:
    try:
        return version("tracescore")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Shard:
    """``--shard INDEX/COUNT``: this machine runs every COUNT-th case, from the INDEX-th."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        index, slash, count = text.partition("/")
        if not (slash and index.isdigit() and count.isdigit()):
            raise ConfigError(f"--shard {text!r}: expected INDEX/COUNT, e.g. 1/4")
        shard = cls(int(index), int(count))
        if not 1 <= shard.index <= shard.count:
            raise ConfigError(f"--shard {text!r}: INDEX must be between 1 and COUNT")
        return shard

    def keeps(self, position: int) -> bool:
        return position % self.count == self.index - 1


@dataclass(frozen=True)
class RunOptions:
    variants: Sequence[str] = ()
    case_ids: Sequence[str] = ()
    shard: Shard | None = None
    run_id: str | None = None
    """Given: the run's id (shards of one run share it). Default: a new id."""
    retry_of: RunRecord | None = None
    """Rerun only the cells of this run that errored or never ran, into the same run."""


@dataclass(frozen=True)
class Cell:
    variant: Variant
    case: Case
    repeat: int


@dataclass(frozen=True)
class _Transient:
    """An attempt that failed in a way a retry may fix."""

    error: str
    trace_id: str


@dataclass
class _Budget:
    """The run's priced model cost so far, against ``max_cost_usd``."""

    limit: float | None
    spent: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, cost: float | None) -> bool:
        """Adds ``cost``; True when the ceiling is reached."""
        with self.lock:
            self.spent += cost or 0.0
            return self.limit is not None and self.spent >= self.limit


def _git_identity(folder: Path) -> tuple[str, bool]:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "", False
    return sha, bool(dirty)


def new_run_id(suite: str) -> str:
    return f"{suite}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter before retry number ``attempt`` (1-based)."""
    return random.uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))


class SuiteRunner:
    def __init__(
        self,
        suite: Suite,
        store: Store,
        *,
        on_case: CaseListener | None = None,
        on_start: StartListener | None = None,
    ) -> None:
        self.suite = suite
        self.store = store
        self.on_case = on_case
        self.on_start = on_start
        self.tracker = ArrivalTracker()
        self._open_traces: set[str] = set()
        self._cases_lock = threading.Lock()
        self._stop = threading.Event()
        self.stop_reason = ""
        self.storage_problem = ""
        self._run_traces: set[str] = set()
        """Traces this runner created (a --retry-failed run also holds earlier cases)."""
        self.prices = PriceTable.with_overrides(suite.config.prices)
        self.score_events: ScoreEventEmitter | None = None
        self.workspaces: Workspaces | None = None
        self._sut_providers: dict[str, TracerProvider] = {}
        self._loader = SharedLoader(store, self.prices)
        self._live = LiveSpans()
        self._unwritten: list[ScoredCase] = []
        self._last_write = time.monotonic()
        # Built now, so a bad system config fails before anything runs.
        self.adapters: dict[str, SystemAdapter] = {
            v.name: adapter_for(system_for(suite.config, v), suite.folder, store)
            for v in suite.config.variants
        }

    def select(self, options: RunOptions) -> tuple[list[Variant], list[Case]]:
        config = self.suite.config
        variants = config.variants
        if options.variants:
            unknown = sorted(set(options.variants) - {v.name for v in variants})
            if unknown:
                raise ConfigError(
                    f"--variant {', '.join(unknown)}: not in {self.suite.path} "
                    f"(variants: {', '.join(v.name for v in variants)})"
                )
            variants = [v for v in variants if v.name in options.variants]
        if config.system.type == "replay":
            # Its cases are known once the store is asked (plan); filtered there.
            return variants, self.suite.cases
        return variants, _filter_cases(self.suite.cases, options)

    def plan(self, options: RunOptions) -> list[Cell]:
        """Every cell the run will execute, in report order."""
        variants, cases = self.select(options)
        cells: list[Cell] = []
        for variant in variants:
            adapter = self.adapters[variant.name]
            mine = (
                _filter_cases(
                    adapter.replay_cases(variant, cases, self.suite.config.variant_key), options
                )
                if adapter.replays
                else cases
            )
            cells.extend(
                Cell(variant, case, repeat)
                for case in mine
                for repeat in range(self.suite.config.repeats)
            )
        if options.retry_of is not None:
            done = {
                (c.variant, c.case_id, c.repeat)
                for c in options.retry_of.cases
                if c.status != "error"
            }
            cells = [c for c in cells if (c.variant.name, c.case.id, c.repeat) not in done]
        return cells

    def _new_record(self, options: RunOptions, variants: list[str]) -> RunRecord:
        config = self.suite.config
        previous = options.retry_of
        if previous is not None:
            if previous.suite != config.suite:
                raise ConfigError(
                    f"--retry-failed {previous.run_id}: that run is of suite "
                    f"{previous.suite!r}, not {config.suite!r}"
                )
            if previous.dataset_hash and previous.dataset_hash != self.suite.dataset_hash:
                raise ConfigError(
                    f"--retry-failed {previous.run_id}: the cases changed since that run "
                    "(dataset hash differs); start a new run instead"
                )
        sha, dirty = _git_identity(self.suite.folder)
        return RunRecord(
            run_id=previous.run_id if previous else options.run_id or new_run_id(config.suite),
            suite=config.suite,
            config_path=str(self.suite.path),
            variant_key=config.variant_key,
            variants=list(dict.fromkeys([*(previous.variants if previous else []), *variants])),
            config_hash=self.suite.config_hash,
            dataset_hash=self.suite.dataset_hash,
            git_sha=sha,
            git_dirty=dirty,
            version=tracescore_version(),
            started_ns=previous.started_ns if previous and previous.started_ns else time.time_ns(),
        )

    def stop(self, reason: str) -> None:
        """Start no more cases; those in flight finish and are kept."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def run(self, options: RunOptions | None = None) -> RunRecord:
        options = options or RunOptions()
        if options.shard is not None and options.run_id is None:
            raise ConfigError(
                "--shard needs --run-id: every shard must write into the same run "
                "(e.g. --run-id pr-123-$GITHUB_RUN_ID)"
            )
        variants, _ = self.select(options)
        run = self._new_record(options, [v.name for v in variants])
        config = self.suite.config
        self.store.migrate()
        if options.retry_of is not None:
            kept = [c for c in options.retry_of.cases if c.status != "error"]
            run.cases.extend(kept)
        # The in-process receiver spools without fsync: a suite's traces are re-created
        # by re-running it, and each case waits for its own spans to load.
        self.pipeline = IngestPipeline(
            self.store,
            PipelineSettings(
                spool_dir=default_spool_dir(self.store), fsync=False, flush_interval_s=0.5
            ),
            on_traces=self._observe,
            on_accepted=self._live.on_accepted,
        )
        budget = _Budget(config.max_cost_usd)
        with ExitStack() as stack:
            stack.enter_context(self.pipeline)
            receiver = stack.enter_context(HttpReceiver(self.pipeline))
            cells = self.plan(options)
            if self.on_start is not None:
                self.on_start(len(cells))
            harness = {v.name: self._harness_provider(v) for v in variants}
            evaluator_provider = self._evaluator_provider(run.version)
            providers = [*harness.values(), evaluator_provider]
            stack.callback(_shutdown_all, providers)
            for evaluator in self.suite.evaluators:
                evaluator.use_tracer_provider(evaluator_provider)
            events = config.score_events
            if events.enabled:
                # With no endpoint of their own, the events go to this run's receiver and
                # land in otel_logs beside the traces they score.
                self.score_events = ScoreEventEmitter(
                    events.endpoint or receiver.endpoint,
                    headers=events.headers,
                    resource={attr.SUITE: config.suite},
                    version=run.version,
                )
                # Registered after the providers, so it runs before them and before the
                # receiver stops: the events may be addressed to it.
                stack.callback(self._close_score_events)
            self.workspaces = self._open_workspaces()
            if self.workspaces is not None:
                stack.callback(self.workspaces.close)
            started = self._start_variants(variants, receiver.endpoint, providers, stack)
            try:
                self._execute(run, cells, harness, started, receiver, budget)
                run.status = "stopped" if self._stop.is_set() else "finished"
            except KeyboardInterrupt:
                run.status = "interrupted"
                raise
            finally:
                order = {(c.variant.name, c.case.id, c.repeat): i for i, c in enumerate(cells)}
                run.cases.sort(key=lambda c: order.get((c.variant, c.case_id, c.repeat), -1))
                if self.stop_reason and run.status != "interrupted":
                    run.status = f"stopped: {self.stop_reason}"
                # The evaluators' spans too, before the run is reported finished.
                self.pipeline.flush(timeout_s=max(30.0, config.seal_timeout_s))
                run.finished_ns = time.time_ns()
                self._write_run(run, options)
        return run

    def _spans_not_stored(self, cases: list[ScoredCase]) -> None:
        """The store refused the cases' spans: a score without its stored trace cannot be
        inspected or compared, so the cases become errors that say why."""
        reason = self.pipeline.last_load_error or "timed out"
        self.storage_problem = (
            f"spans could not be written to {self.store.location}: {reason}; they stay in "
            f"the spool at {default_spool_dir(self.store)} and are loaded by the next run "
            "or collector on this store"
        )
        for case in cases:
            case.status = "error"
            case.error = (
                f"the trace's spans were received but could not be written to "
                f"{self.store.location}: {reason}"
            )

    def _write_run(self, run: RunRecord, options: RunOptions) -> None:
        if options.shard is None:
            write_run(self.store, run)
            return
        # Shards share a run id and the run row is one per id: each shard writes the
        # row with the counts of every case stored for the run so far, so the last
        # shard to finish leaves the totals of all of them.
        from tracescore.scoring.runs import load_run

        stored = load_run(self.store, run.run_id)
        merged = RunRecord(**{**run.__dict__, "cases": stored.cases})
        merged.variants = list(dict.fromkeys([*run.variants, *stored.variants]))
        write_run(self.store, merged)

    def _close_score_events(self) -> None:
        if self.score_events is not None:
            self.score_events.shutdown()
            self.score_events = None

    def _open_workspaces(self) -> Workspaces | None:
        spec = self.suite.config.workspace
        if spec is None:
            return None
        return Workspaces(spec, self.suite.folder)

    def _start_variants(
        self,
        variants: list[Variant],
        endpoint: str,
        providers: list[TracerProvider],
        stack: ExitStack,
    ) -> dict[str, str | None]:
        """Start each variant's adapter; a variant that cannot start gets its error,
        recorded on each of its cases, and the others still run."""
        failures: dict[str, str | None] = {}
        for variant in variants:
            adapter = self.adapters[variant.name]
            sut_provider = self._sut_provider(variant)
            providers.append(sut_provider)
            self._sut_providers[variant.name] = sut_provider
            context = VariantContext(
                variant=variant,
                otlp_endpoint=endpoint,
                resource_attributes=self._resource_attributes(variant),
                tracer_provider=sut_provider,
            )
            stack.callback(adapter.stop)
            try:
                adapter.start(context)
                failures[variant.name] = None
            except SystemStartError as exc:
                failures[variant.name] = f"the SUT of variant {variant.name!r} did not start: {exc}"
        return failures

    def _execute(
        self,
        run: RunRecord,
        cells: list[Cell],
        harness: dict[str, TracerProvider],
        start_errors: dict[str, str | None],
        receiver: HttpReceiver,
        budget: _Budget,
    ) -> None:
        config = self.suite.config
        pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="case")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results")
        self._writes: list[Future[None]] = []
        pending = iter(cells)
        in_flight: set[Future[ScoredCase | None]] = set()

        def submit_next() -> bool:
            if self._stop.is_set():
                return False
            cell = next(pending, None)
            if cell is None:
                return False
            in_flight.add(
                pool.submit(
                    self._run_cell,
                    run,
                    harness[cell.variant.name],
                    cell,
                    start_errors.get(cell.variant.name),
                    receiver,
                )
            )
            return True

        try:
            # Submitted as slots free up, not all at once: a stop (cost ceiling, Ctrl-C)
            # then leaves nothing queued to cancel.
            while len(in_flight) < config.concurrency and submit_next():
                pass
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    in_flight.discard(future)
                    scored = future.result()
                    if scored is None:
                        continue
                    self._record(run, scored)
                    if budget.add(scored.cost_usd):
                        self.stop(
                            f"cost ceiling reached (${budget.spent:.4f} of "
                            f"${config.max_cost_usd:g})"
                        )
                while len(in_flight) < config.concurrency and submit_next():
                    pass
        except KeyboardInterrupt:
            self.stop("interrupted")
            # Cases in flight finish (a subprocess SUT got the same SIGINT and ends
            # quickly); the finished ones are kept, the rest stay for --retry-failed.
            for future in in_flight:
                try:
                    scored = future.result()
                except (Exception, KeyboardInterrupt):
                    continue
                if scored is not None and scored.status != "error":
                    self._record(run, scored)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._write_pending(run)
            self._writer.shutdown(wait=True)
            for write in self._writes:
                write.result()  # a store error surfaces here, after every case was tried

    def _record(self, run: RunRecord, scored: ScoredCase) -> None:
        run.cases.append(scored)
        self._unwritten.append(scored)
        # Written in batches (an insert costs the same for one row or a hundred), at
        # least every half second so a crash loses little and watchers see progress.
        if len(self._unwritten) >= _WRITE_BATCH or time.monotonic() - self._last_write > 0.5:
            self._write_pending(run)
        if self.on_case is not None:
            self.on_case(scored)

    def _write_pending(self, run: RunRecord) -> None:
        pending, self._unwritten = self._unwritten, []
        self._last_write = time.monotonic()
        if pending:
            # On one writer thread, in order: the main thread goes on starting cases
            # while a batch waits for its spans to be stored.
            self._writes.append(self._writer.submit(self._write_batch, run, pending))

    def _write_batch(self, run: RunRecord, pending: list[ScoredCase]) -> None:
        # Cases were scored from their spans as received: a case row is written once
        # its spans are in the store, so a stored result always has its trace.
        if not self.pipeline.flush(timeout_s=max(30.0, self.suite.config.seal_timeout_s)):
            self._spans_not_stored([c for c in pending if c.trace_id in self._run_traces])
        write_cases(self.store, run, pending)

    def _observe(self, trace_ids: set[bytes]) -> None:
        # Only cases still waiting: the evaluators' own traces, and spans that arrive
        # after their case was sealed, would otherwise stay in the tracker for good.
        with self._cases_lock:
            waiting = [t for t in (tid.hex() for tid in trace_ids) if t in self._open_traces]
        self.tracker.observe(waiting)

    def _resource_attributes(self, variant: Variant) -> dict[str, str]:
        return {self.suite.config.variant_key: variant.name}

    def _evaluator_provider(self, version: str) -> TracerProvider:
        """Spans of the evaluators themselves (the LLM judge's calls), stored with the run's
        traces under their own service; each links to the trace it scored."""
        provider = TracerProvider(
            resource=Resource.create(
                {
                    attr.SERVICE_NAME: attr.EVALUATOR_SERVICE_NAME,
                    "service.version": version,
                    attr.SUITE: self.suite.config.suite,
                }
            )
        )
        provider.add_span_processor(BatchSpanProcessor(PipelineSpanExporter(self.pipeline)))
        return provider

    def _sut_provider(self, variant: Variant) -> TracerProvider:
        """The provider of a SUT that runs in this process (``python``, ``llm``)."""
        system = system_for(self.suite.config, variant)
        service = getattr(system, "service_name", "sut")
        provider = TracerProvider(
            resource=Resource.create(
                {attr.SERVICE_NAME: service, **self._resource_attributes(variant)}
            )
        )
        # Batched (the SUT's spans are many); each case flushes it before sealing.
        provider.add_span_processor(
            BatchSpanProcessor(PipelineSpanExporter(self.pipeline), schedule_delay_millis=50)
        )
        return provider

    def _harness_provider(self, variant: Variant) -> TracerProvider:
        resource = Resource.create(
            {
                attr.SERVICE_NAME: attr.HARNESS_SERVICE_NAME,
                self.suite.config.variant_key: variant.name,
            }
        )
        provider = TracerProvider(resource=resource)
        # Synchronous export: the root span is accepted before the case is sealed. It is
        # not an arrival: a trace seals on the SUT's spans, however late its exporter is.
        provider.add_span_processor(
            SimpleSpanProcessor(PipelineSpanExporter(self.pipeline, notify=False))
        )
        return provider

    def _run_cell(
        self,
        run: RunRecord,
        provider: TracerProvider,
        cell: Cell,
        start_error: str | None,
        receiver: HttpReceiver,
    ) -> ScoredCase | None:
        if self._stop.is_set():
            return None
        if start_error is not None:
            return _error_case(cell, start_error)
        adapter = self.adapters[cell.variant.name]
        retries = self.suite.config.retries
        attempt = 1
        while True:
            with self._workspace(cell) as workspace:
                if adapter.replays:
                    result = self._replay_case(run, adapter, cell, receiver, attempt)
                else:
                    result = self._run_case(
                        run, provider, adapter, cell, receiver, workspace, attempt
                    )
            if isinstance(result, ScoredCase):
                return result
            if self._stop.is_set():
                return _error_case(cell, result.error, result.trace_id)
            time.sleep(backoff_delay(attempt, retries.backoff_s, retries.max_backoff_s))
            attempt += 1

    @contextmanager
    def _workspace(self, cell: Cell) -> Iterator[Path | None]:
        if self.workspaces is None:
            yield None
            return
        label = f"{cell.case.id}-{cell.variant.name}-r{cell.repeat}"
        with self.workspaces.case(label) as workspace:
            yield workspace

    def _replay_case(
        self,
        run: RunRecord,
        adapter: SystemAdapter,
        cell: Cell,
        receiver: HttpReceiver,
        attempt: int,
    ) -> ScoredCase | _Transient:
        call = CallContext(
            otlp_endpoint=receiver.endpoint,
            trace_env={},
            resource_attributes=self._resource_attributes(cell.variant),
            attempt=attempt,
        )
        invocation = adapter.invoke(cell.case, cell.variant, call)
        trace_id = invocation.trace_id or ""
        if invocation.error or not trace_id:
            error = invocation.error or "the replay adapter named no trace"
            if invocation.transient and attempt < self.suite.config.retries.attempts:
                return _Transient(error, trace_id)
            return _error_case(cell, error, trace_id)
        trace = self._loader.load(trace_id)
        if not trace.spans:
            return _error_case(
                cell, f"trace {trace_id} has no spans in {self.store.location}", trace_id
            )
        return self._score(run, cell, trace, trace_id, "", invocation, None)

    def _run_case(
        self,
        run: RunRecord,
        provider: TracerProvider,
        adapter: SystemAdapter,
        cell: Cell,
        receiver: HttpReceiver,
        workspace: Path | None,
        attempt: int,
    ) -> ScoredCase | _Transient:
        """One attempt; a _Transient when it failed in a way a retry may fix."""
        config = self.suite.config
        case, variant = cell.case, cell.variant
        tracer = provider.get_tracer("tracescore.runner", run.version)
        context = with_case_baggage(run.run_id, case.id, Context())
        root_attributes: dict[str, AttributeValue] = {
            attr.RUN_ID: run.run_id,
            attr.CASE_ID: case.id,
            attr.SUITE: config.suite,
            attr.VARIANT: variant.name,
            attr.REPEAT: cell.repeat,
            attr.CASE_INPUT: case.input,
            ATTEMPT_ATTRIBUTE: attempt,
        }
        # Attach first: start_as_current_span(context=...) would keep the parent but
        # drop the baggage from the context the SUT inherits.
        with (
            attached(context),
            tracer.start_as_current_span(
                f"{attr.HARNESS_SPAN_PREFIX} {case.id}",
                kind=SpanKind.CLIENT,
                attributes=root_attributes,
            ) as root,
        ):
            trace_id = format(root.get_span_context().trace_id, "032x")
            root_span_id = format(root.get_span_context().span_id, "016x")
            with self._cases_lock:
                self._open_traces.add(trace_id)
                self._run_traces.add(trace_id)
            self._live.open(trace_id)
            call = CallContext(
                otlp_endpoint=receiver.endpoint,
                trace_env=env_from_context(),
                resource_attributes=self._resource_attributes(variant),
                workspace=workspace,
                attempt=attempt,
            )
            invocation = adapter.invoke(case, variant, call)
            root.set_attribute(attr.SUT_OUTPUT, invocation.output[:_MAX_OUTPUT_ATTRIBUTE])
            if invocation.exit_code is not None:
                root.set_attribute(attr.SUT_EXIT_CODE, invocation.exit_code)
            if invocation.error:
                root.set_status(Status(StatusCode.ERROR, invocation.error))
        provider.force_flush()
        if invocation.error and invocation.transient and attempt < config.retries.attempts:
            with self._cases_lock:
                self._open_traces.discard(trace_id)
            self._live.close(trace_id)
            return _Transient(invocation.error, trace_id)
        if adapter.in_process:
            # Its spans are batched: push them out before waiting for the seal.
            self._sut_providers[variant.name].force_flush()

        sealed = self.tracker.wait_sealed(trace_id, config.quiet_period_s, config.seal_timeout_s)
        with self._cases_lock:
            self._open_traces.discard(trace_id)
        self.tracker.forget(trace_id)
        trace = self._rebuild(trace_id)
        sut_spans = [s for s in trace.spans if s.service_name != attr.HARNESS_SERVICE_NAME]
        error = ""
        if invocation.error:
            error = invocation.error
        elif not sut_spans:
            error = self._no_spans_error(variant, receiver.endpoint, config.seal_timeout_s)
        elif not sealed:
            error = (
                f"trace {trace_id} did not seal within {config.seal_timeout_s:g}s "
                "(its spans kept arriving)"
            )
        if error:
            result = _case_from_trace(cell, trace, trace_id, invocation)
            result.error = error
            return result
        return self._score(run, cell, trace, trace_id, root_span_id, invocation, workspace)

    def _no_spans_error(self, variant: Variant, endpoint: str, waited_s: float) -> str:
        system = system_for(self.suite.config, variant)
        if system.type == "python":
            return (
                f"the SUT emitted no spans within {waited_s:g}s: {system.function} must "
                "create spans through the "
                "OpenTelemetry API (opentelemetry.trace.get_tracer(...)) or an instrumented "
                "library; tracescore routes them to the variant's provider"
            )
        return (
            f"the SUT emitted no spans within {waited_s:g}s (seal_timeout_s): it must export "
            f"OTLP/HTTP to {traces_url(endpoint)} "
            f"(OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} is set in its environment) and join "
            "the trace in TRACEPARENT"
        )

    def _rebuild(self, trace_id: str) -> Trace:
        """The case's trace from the spans accepted for it (see LiveSpans), with its log
        records read back from the store only if the run received any."""
        spans = self._live.close(trace_id)
        logs: list[LogRecord] = []
        if self.pipeline.log_records_accepted:
            # Log records are rare (GenAI events sent as logs); they are stored first.
            self.pipeline.flush(timeout_s=self.suite.config.seal_timeout_s)
            logs = self.store.fetch_logs([trace_id]).get(trace_id, [])
        return reconstruct(trace_id, spans, logs, self.prices)

    def _score(
        self,
        run: RunRecord,
        cell: Cell,
        trace: Trace,
        trace_id: str,
        root_span_id: str,
        invocation: Invocation,
        workspace: Path | None,
    ) -> ScoredCase:
        result = _case_from_trace(cell, trace, trace_id, invocation)
        where = ScoredTrace(trace_id, root_span_id, run.run_id, cell.case.id, cell.variant.name)
        # Evaluators that inspect files (``git_diff``, ``command``) read the case's
        # workspace from a context variable, so ``score(trace, case)`` stays as it is.
        with use_workspace(workspace):
            for evaluator in self.suite.evaluators:
                score = evaluator.safe_score(trace, cell.case)
                result.scores.append(score)
                result.score_configs[evaluator.name] = (evaluator.type_name, evaluator.config_hash)
                if self.score_events is not None:
                    self.score_events.emit(score, where, evaluator.type_name)
        result.status = _case_status(result.scores)
        return result


def _filter_cases(cases: list[Case], options: RunOptions) -> list[Case]:
    """``--case`` and ``--shard`` applied: every COUNT-th case from the INDEX-th."""
    if options.case_ids:
        unknown = sorted(set(options.case_ids) - {c.id for c in cases})
        if unknown:
            raise ConfigError(f"--case {', '.join(unknown)}: no such case in the suite")
        cases = [c for c in cases if c.id in options.case_ids]
    if options.shard is not None:
        cases = [c for i, c in enumerate(cases) if options.shard.keeps(i)]
    return cases


def _shutdown_all(providers: list[TracerProvider]) -> None:
    for provider in providers:
        provider.shutdown()


def _case_from_trace(cell: Cell, trace: Trace, trace_id: str, invocation: Invocation) -> ScoredCase:
    """The case's facts from its trace; status ``error`` until its scores say otherwise."""
    case = _error_case(cell, None, trace_id)
    case.output = trace.final_output or invocation.output
    case.duration_ns = trace.duration_ns
    case.span_count = len(trace.spans)
    case.input_tokens = trace.input_tokens
    case.output_tokens = trace.output_tokens
    case.orphan_spans = len(trace.orphans)
    case.cost_usd = trace.cost_usd
    return case


def _error_case(cell: Cell, error: str | None, trace_id: str = "") -> ScoredCase:
    return ScoredCase(
        case_id=cell.case.id,
        variant=cell.variant.name,
        repeat=cell.repeat,
        trace_id=trace_id,
        status="error",
        input=cell.case.input,
        output="",
        error=error,
    )


def _case_status(scores: list[Score]) -> CaseStatus:
    if any(s.error for s in scores):
        return "error"
    if any(s.passed is False for s in scores):
        return "failed"
    return "passed"
