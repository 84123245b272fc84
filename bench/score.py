"""Scoring benchmark: stored agent traces fetched in batches, rebuilt, priced and scored.

    .venv/bin/python bench/score.py [--traces 10000] [--batch 500] [--workers 2]

Generates ``--traces`` agent traces of 10 spans each (an ``invoke_agent`` root, five
``chat`` spans with GenAI messages and usage, four ``execute_tool`` spans) and inserts
them into embedded chDB in a temporary folder, columns built directly. Then, in
batches of ``--batch`` trace ids, times each stage on its own in one thread (fetching
spans and log records, rebuilding + pricing, scoring with the deterministic
evaluators), the single-threaded path end to end as ``load_traces`` + scoring, and
the headline: ``score_stored`` with ``--workers`` processes, with the CPU time it took
in this process (queries, shipping rows, rebuilding results) and in the workers.

Prints one table; not a test. The figures go into bench/README.md.
"""

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tracescore.collector.spans_decode import SpanColumns
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.scoring.batch import score_stored
from tracescore.scoring.evaluators import Evaluator, build_evaluator
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.reconstruct import reconstruct
from tracescore.scoring.traces import batched, load_batch, paused_gc

SPANS_PER_TRACE = 10
BASE_NS = 1_700_000_000 * 10**9
TOOLS = ("search_flights", "lookup_weather", "book_hotel", "currency_convert")
RESOURCE = [
    ("service.name", "travel-agent"),
    ("service.version", "1.4.2"),
    ("tracescore.variant", "v1"),
    ("deployment.environment.name", "bench"),
    ("telemetry.sdk.language", "python"),
]

EVALUATORS = [
    {"type": "contains_text"},
    {"type": "regex"},
    {"type": "tool_called"},
    {"type": "tool_sequence"},
    {"type": "step_count", "params": {"max": 8}},
    {"type": "no_error_spans"},
    {"type": "span_count", "params": {"min": 10, "max": 10}},
    {"type": "latency_under"},
    {"type": "tokens_under"},
    {"type": "cost_under"},
    {"type": "json_valid"},
]
CASE = Case(
    id="trip",
    input="Plan a trip",
    expected={
        "contains": ["Lisbon", "hotel"],
        "regex": r"\d+ EUR",
        "tools": ["search_flights", "book_hotel"],
        "tool_sequence": ["search_flights", "lookup_weather", "book_hotel"],
        "max_latency_ms": 30_000,
        "max_tokens": 20_000,
        "max_cost_usd": 0.05,
    },
)


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def generate(columns: SpanColumns, n: int) -> None:
    """One agent trace: a root, chat → tool alternating, a final chat with the answer."""
    trace_id = f"{n + 1:032x}"
    root_id = f"{n + 1:08x}{0:08x}"
    start = BASE_NS + n * 700_000_000  # 10k traces over ~2 hours
    question = f"Plan a 3-day trip to Lisbon for traveller {n}: flights, weather and a hotel."
    answer = json.dumps(
        {"city": "Lisbon", "flight": f"TP{n % 900 + 100}", "hotel": "Casa Azul", "total": "812 EUR"}
    )
    history = _messages("user", question * 3)
    offset = 0
    for i in range(SPANS_PER_TRACE):
        span_id = f"{n + 1:08x}{i:08x}"
        tool = TOOLS[(i // 2 - 1) % len(TOOLS)] if i % 2 == 0 and i else ""
        if i == 0:
            name, kind, duration = "invoke_agent travel-agent", "Internal", 9_000_000_000
            attrs = [
                ("gen_ai.operation.name", "invoke_agent"),
                ("gen_ai.agent.name", "travel-agent"),
                ("gen_ai.agent.id", "agent-7"),
                ("gen_ai.input.messages", _messages("user", question)),
                ("gen_ai.output.messages", _messages("assistant", answer)),
            ]
        elif tool:
            name, kind, duration = f"execute_tool {tool}", "Internal", 150_000_000
            attrs = [
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.tool.name", tool),
                ("gen_ai.tool.type", "function"),
                ("gen_ai.tool.call.id", f"call_{n}_{i}"),
                ("gen_ai.tool.call.arguments", json.dumps({"city": "Lisbon", "days": 3, "n": n})),
                ("gen_ai.tool.call.result", json.dumps({"ok": True, "items": list(range(12))})),
            ]
        else:
            final = i == SPANS_PER_TRACE - 1
            reply = answer if final else f"Calling the next tool for step {i}."
            name, kind, duration = "chat gpt-4o-mini", "Client", 800_000_000
            attrs = [
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.provider.name", "openai"),
                ("gen_ai.request.model", "gpt-4o-mini"),
                ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                ("gen_ai.response.id", f"chatcmpl-{n}-{i}"),
                ("gen_ai.request.temperature", "0.2"),
                ("gen_ai.usage.input_tokens", str(900 + 150 * i)),
                ("gen_ai.usage.output_tokens", str(60 + i)),
                ("gen_ai.usage.cache_read.input_tokens", "512"),
                ("gen_ai.response.finish_reasons", '["stop"]' if final else '["tool_calls"]'),
                ("gen_ai.input.messages", history),
                ("gen_ai.output.messages", _messages("assistant", reply)),
            ]
        columns.add_span(
            timestamp=start + offset,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id="" if i == 0 else root_id,
            name=name,
            kind=kind,
            service_name="travel-agent",
            resource_attributes=RESOURCE,
            scope_name="opentelemetry.instrumentation.openai_v2",
            scope_version="2.1b0",
            attributes=attrs,
            duration=duration,
        )
        offset += 1_000_000 if i == 0 else duration


def populate(store: ChdbStore, traces: int) -> float:
    started = time.perf_counter()
    chunk = 2_000
    for first in range(0, traces, chunk):
        columns = SpanColumns()
        for n in range(first, min(first + chunk, traces)):
            generate(columns, n)
        store.insert_spans(columns)
    # Merged parts, as a store that has been running a while has them.
    store.command(f"OPTIMIZE TABLE {store.db}.otel_traces FINAL")
    return time.perf_counter() - started


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start the peak over (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mib()


def cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def score_all(traces: list[Trace], evaluators: list[Evaluator]) -> list[Score]:
    return [e.safe_score(t, CASE) for t in traces for e in evaluators]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="score_stored's processes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tracescore-bench-score-"))
    store = ChdbStore(folder / "data", database="otel")
    store.migrate()
    try:
        insert_s = populate(store, args.traces)
        ids = [f"{n + 1:032x}" for n in range(args.traces)]
        prices = PriceTable.with_overrides()
        specs = [EvaluatorSpec.model_validate(e) for e in EVALUATORS]
        evaluators = [build_evaluator(spec) for spec in specs]
        store.fetch_traces(ids[:10])  # warm the engine and its caches once

        # Each stage on its own.
        fetch_s = rebuild_s = score_s = 0.0
        failed = errors = 0
        for batch in batched(ids, args.batch):
            started = time.perf_counter()
            spans, logs = store.fetch_traces(batch), store.fetch_logs(batch)
            fetch_s += time.perf_counter() - started
            started = time.perf_counter()
            with paused_gc():  # as load_batch does
                traces = [reconstruct(t, spans[t], logs[t], prices) for t in batch]
            rebuild_s += time.perf_counter() - started
            started = time.perf_counter()
            scores = score_all(traces, evaluators)
            score_s += time.perf_counter() - started
            failed += sum(1 for s in scores if s.passed is False)
            errors += sum(1 for s in scores if s.error)
        del spans, logs, traces, scores
        gc.collect()

        # End to end in one thread: load_traces' batch step, then scoring.
        reset = reset_peak_rss()
        started = time.perf_counter()
        scored = 0
        for batch in batched(ids, args.batch):
            loaded = load_batch(store, batch, prices)
            scored += len(score_all(list(loaded.values()), evaluators))
        total_s = time.perf_counter() - started
        peak = vm_hwm_mib() if reset else peak_rss_mib()
        gc.collect()

        # The headline: score_stored, the parent querying while worker processes score.
        # Workers are reaped when the pool shuts down, so RUSAGE_CHILDREN has them after.
        def run_stored(workers: int) -> tuple[float, float, float, int]:
            parent, children = cpu_s(resource.RUSAGE_SELF), cpu_s(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            results = score_stored(
                store, ids, specs, CASE, prices, batch_size=args.batch, workers=workers
            )
            count = sum(len(r.scores) for r in results)
            return (
                time.perf_counter() - started,
                cpu_s(resource.RUSAGE_SELF) - parent,
                cpu_s(resource.RUSAGE_CHILDREN) - children,
                count,
            )

        inline_s, inline_cpu, _, _ = run_stored(1)
        pooled_s, parent_cpu, workers_cpu, pooled_scores = run_stored(args.workers)
        if pooled_scores != scored:
            sys.exit(f"score_stored gave {pooled_scores} scores, the one-thread path {scored}")
    finally:
        store.close()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    n = args.traces
    rows = [
        ("workload", f"{n:,} traces × {SPANS_PER_TRACE} spans, batches of {args.batch}"),
        ("machine", f"{os.cpu_count()} cores"),
        ("insert (generate + store + merge)", f"{n * SPANS_PER_TRACE / insert_s:,.0f} spans/s"),
        ("fetch (spans + logs)", f"{n / fetch_s:,.0f} traces/s"),
        ("reconstruct + price", f"{n / rebuild_s:,.0f} traces/s"),
        (f"score ({len(evaluators)} evaluators)", f"{n / score_s:,.0f} traces/s"),
        ("end to end, one thread (load_traces + score)", f"{n / total_s:,.0f} traces/s"),
        ("score_stored, workers=1 (inline)", f"{n / inline_s:,.0f} traces/s"),
        (
            f"score_stored, workers={args.workers}",
            f"{n / pooled_s:,.0f} traces/s ({pooled_s:.2f} s)",
        ),
        (
            "  CPU per trace: inline; pooled parent + workers",
            f"{inline_cpu / n * 1e6:,.0f} µs; "
            f"{parent_cpu / n * 1e6:,.0f} + {workers_cpu / n * 1e6:,.0f} µs",
        ),
        ("scores", f"{scored:,} ({failed} failed, {errors} errors)"),
        ("peak RSS during one-thread end to end" if reset else "peak RSS", f"{peak:,.0f} MiB"),
        (
            "peak RSS of a worker (forked: shares the parent's pages)",
            f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:,.0f} MiB",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
