"""Runs a suite: one harness root span per case × variant, the SUT called inside it,
its trace waited for, rebuilt, scored and stored."""

import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
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
from tracescore.schemas.suite import Case, Variant
from tracescore.scoring.config import Suite
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.results import CaseStatus, RunRecord, ScoredCase, write_case, write_run
from tracescore.scoring.score_events import ScoredTrace, ScoreEventEmitter
from tracescore.scoring.systems.base import CallContext, SystemAdapter
from tracescore.scoring.systems.command import CommandAdapter
from tracescore.scoring.traces import load_traces

# The SUT's output is kept on the harness span as a fallback final output; cap its size.
_MAX_OUTPUT_ATTRIBUTE = 64 * 1024

CaseListener = Callable[[ScoredCase], None]


def tracescore_version() -> str:
    try:
        return version("tracescore")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class RunOptions:
    variants: Sequence[str] = ()
    case_ids: Sequence[str] = ()


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


class SuiteRunner:
    def __init__(self, suite: Suite, store: Store, *, on_case: CaseListener | None = None) -> None:
        self.suite = suite
        self.store = store
        self.on_case = on_case
        self.tracker = ArrivalTracker()
        self._open_traces: set[str] = set()
        self._cases_lock = threading.Lock()
        self.adapter: SystemAdapter = CommandAdapter(suite.config.system, suite.folder)
        self.prices = PriceTable.with_overrides(suite.config.prices)
        self.score_events: ScoreEventEmitter | None = None

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
        cases = self.suite.cases
        if options.case_ids:
            unknown = sorted(set(options.case_ids) - {c.id for c in cases})
            if unknown:
                raise ConfigError(f"--case {', '.join(unknown)}: no such case in the suite")
            cases = [c for c in cases if c.id in options.case_ids]
        return variants, cases

    def run(self, options: RunOptions | None = None) -> RunRecord:
        variants, cases = self.select(options or RunOptions())
        config = self.suite.config
        sha, dirty = _git_identity(self.suite.folder)
        run = RunRecord(
            run_id=new_run_id(config.suite),
            suite=config.suite,
            config_path=str(self.suite.path),
            variant_key=config.variant_key,
            variants=[v.name for v in variants],
            config_hash=self.suite.config_hash,
            dataset_hash=self.suite.dataset_hash,
            git_sha=sha,
            git_dirty=dirty,
            version=tracescore_version(),
            started_ns=time.time_ns(),
        )
        self.store.migrate()
        # The in-process receiver spools without fsync: a suite's traces are re-created
        # by re-running it, and each case waits for its own spans to load.
        self.pipeline = IngestPipeline(
            self.store,
            PipelineSettings(
                spool_dir=default_spool_dir(self.store), fsync=False, flush_interval_s=0.05
            ),
            on_traces=self._observe,
        )
        with self.pipeline, HttpReceiver(self.pipeline) as receiver:
            providers = {v.name: self._harness_provider(v, receiver.endpoint) for v in variants}
            evaluator_provider = self._evaluator_provider(receiver.endpoint, run.version)
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
            tasks = [(v, c) for v in variants for c in cases]
            order = {(v.name, c.id): i for i, (v, c) in enumerate(tasks)}
            pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="case")
            try:
                futures = [
                    pool.submit(self._run_case, run, providers[v.name], c, v, receiver)
                    for v, c in tasks
                ]
                for future in as_completed(futures):
                    scored = future.result()
                    run.cases.append(scored)
                    write_case(self.store, run, scored)
                    if self.on_case is not None:
                        self.on_case(scored)
                run.status = "finished"
            except KeyboardInterrupt:
                run.status = "interrupted"
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                for provider in (*providers.values(), evaluator_provider):
                    provider.shutdown()
                if self.score_events is not None:
                    # Before the receiver stops: the events may be addressed to it.
                    self.score_events.shutdown()
                    self.score_events = None
                run.cases.sort(key=lambda c: order[(c.variant, c.case_id)])
                run.finished_ns = time.time_ns()
                write_run(self.store, run)
        return run

    def _observe(self, trace_ids: set[bytes]) -> None:
        # Only cases still waiting: the evaluators' own traces, and spans that arrive
        # after their case was sealed, would otherwise stay in the tracker for good.
        with self._cases_lock:
            waiting = [t for t in (tid.hex() for tid in trace_ids) if t in self._open_traces]
        self.tracker.observe(waiting)

    def _evaluator_provider(self, endpoint: str, version: str) -> TracerProvider:
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
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        return provider

    def _harness_provider(self, variant: Variant, endpoint: str) -> TracerProvider:
        resource = Resource.create(
            {
                attr.SERVICE_NAME: attr.HARNESS_SERVICE_NAME,
                self.suite.config.variant_key: variant.name,
            }
        )
        provider = TracerProvider(resource=resource)
        # Synchronous export: the root span is stored before the case is sealed.
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        return provider

    def _run_case(
        self,
        run: RunRecord,
        provider: TracerProvider,
        case: Case,
        variant: Variant,
        receiver: HttpReceiver,
    ) -> ScoredCase:
        config = self.suite.config
        tracer = provider.get_tracer("tracescore.runner", run.version)
        context = with_case_baggage(run.run_id, case.id, Context())
        root_attributes: dict[str, AttributeValue] = {
            attr.RUN_ID: run.run_id,
            attr.CASE_ID: case.id,
            attr.SUITE: config.suite,
            attr.VARIANT: variant.name,
            attr.REPEAT: 0,
            attr.CASE_INPUT: case.input,
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
            call = CallContext(
                otlp_endpoint=receiver.endpoint,
                trace_env=env_from_context(),
                resource_attributes={config.variant_key: variant.name},
            )
            invocation = self.adapter.invoke(case, variant, call)
            root.set_attribute(attr.SUT_OUTPUT, invocation.output[:_MAX_OUTPUT_ATTRIBUTE])
            if invocation.exit_code is not None:
                root.set_attribute(attr.SUT_EXIT_CODE, invocation.exit_code)
            if invocation.error:
                root.set_status(Status(StatusCode.ERROR, invocation.error))
        provider.force_flush()

        sealed = self.tracker.wait_sealed(trace_id, config.quiet_period_s, config.seal_timeout_s)
        with self._cases_lock:
            self._open_traces.discard(trace_id)
        self.tracker.forget(trace_id)
        stored = self.pipeline.flush(timeout_s=config.seal_timeout_s)
        trace = load_traces(self.store, [trace_id], self.prices)[trace_id]
        spans = trace.spans
        result = ScoredCase(
            case_id=case.id,
            variant=variant.name,
            repeat=0,
            trace_id=trace_id,
            status="error",
            input=case.input,
            output=trace.final_output or invocation.output,
            duration_ns=trace.duration_ns,
            span_count=len(spans),
            input_tokens=trace.input_tokens,
            output_tokens=trace.output_tokens,
            orphan_spans=len(trace.orphans),
        )
        sut_spans = [s for s in spans if s.service_name != attr.HARNESS_SERVICE_NAME]
        if invocation.error:
            result.error = invocation.error
        elif not sealed:
            result.error = (
                f"trace {trace_id} did not seal within {config.seal_timeout_s:g}s "
                f"(spans kept arriving or the harness span was not stored)"
            )
        elif not stored:
            result.error = (
                f"the trace's spans were received but could not be written to "
                f"{self.store.location}: {self.pipeline.last_load_error or 'timed out'}"
            )
        elif not sut_spans:
            result.error = (
                f"the SUT emitted no spans: it must export OTLP/HTTP to "
                f"{traces_url(receiver.endpoint)} (OTEL_EXPORTER_OTLP_ENDPOINT={receiver.endpoint} "
                f"is set in its environment) and join the trace in TRACEPARENT"
            )
        if result.error:
            return result
        where = ScoredTrace(trace_id, root_span_id, run.run_id, case.id, variant.name)
        for evaluator in self.suite.evaluators:
            score = evaluator.safe_score(trace, case)
            result.scores.append(score)
            result.score_configs[evaluator.name] = (evaluator.type_name, evaluator.config_hash)
            if self.score_events is not None:
                self.score_events.emit(score, where, evaluator.type_name)
        result.status = _case_status(result.scores)
        return result


def _case_status(scores: list[Score]) -> CaseStatus:
    if any(s.error for s in scores):
        return "error"
    if any(s.passed is False for s in scores):
        return "failed"
    return "passed"
