"""Suite benchmark: ``tracescore run`` end to end against a fast instrumented HTTP SUT.

    .venv/bin/python bench/suite.py [--cases 1000] [--concurrency 16]

Runs a suite of ``--cases`` cases (one variant) whose SUT is ``bench/fast_sut.py``,
started by tracescore as a ``server:`` and called over HTTP with trace headers. Each
case: a harness span, one HTTP request, three SUT spans exported over OTLP/HTTP to
the run's receiver, sealing, storing in embedded chDB, rebuilding the trace, three
deterministic evaluators, and the case and score rows written.

Prints cases/s, the SUT's own time per request, and the harness's overhead per case:
the wall time a case holds a worker slot minus its SUT request, and the CPU time of
the tracescore process per case (the SUT runs in another process). Not a test.
"""

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.suite import Case, Variant
from tracescore.scoring.config import suite_from
from tracescore.scoring.runner import SuiteRunner
from tracescore.scoring.systems.base import CallContext, Invocation

HERE = Path(__file__).resolve().parent


def _config(concurrency: int) -> dict[str, Any]:
    return {
        "suite": "bench",
        "system": {
            "type": "http",
            "url": "http://127.0.0.1:{port}/run",
            "output": "$.output",
            "server": {"command": ["{python}", "fast_sut.py", "{port}"]},
        },
        "variants": [{"name": "v1"}],
        "evaluators": [
            {"type": "contains_text"},
            {"type": "tool_called", "params": {"tool": "lookup"}},
            {"type": "span_count", "params": {"min": 3}},
        ],
        "concurrency": concurrency,
        "quiet_period_s": 0.05,
    }


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    cases = [
        {"id": f"case-{i:05d}", "input": f"question {i}", "expected": {"contains": ["42"]}}
        for i in range(args.cases)
    ]
    suite = suite_from(_config(args.concurrency), cases, HERE)
    folder = Path(tempfile.mkdtemp(prefix="tracescore-bench-suite-"))
    store = ChdbStore(folder / "chdb", database="bench")
    try:
        runner = SuiteRunner(suite, store)
        # Time the SUT's requests by wrapping the adapter's call: what remains of a
        # case's time in its worker slot is the harness's.
        adapter = runner.adapters["v1"]
        call_ns: list[int] = []
        lock = threading.Lock()
        invoke = adapter.invoke

        def timed(case: Case, variant: Variant, call: CallContext) -> Invocation:
            start = time.perf_counter_ns()
            try:
                return invoke(case, variant, call)
            finally:
                with lock:
                    call_ns.append(time.perf_counter_ns() - start)

        adapter.invoke = timed  # type: ignore[method-assign]
        started_cpu, started = _cpu_s(), time.perf_counter()
        run = runner.run()
        elapsed, cpu = time.perf_counter() - started, _cpu_s() - started_cpu
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)

    counts = run.counts()
    n = len(run.cases)
    if counts["passed"] != n:
        errors = [c.error for c in run.cases if c.error][:3]
        print(f"not every case passed: {counts}; first errors: {errors}", file=sys.stderr)
        return 1
    slot_ms = elapsed * args.concurrency / n * 1000
    sut_ms = statistics.fmean(call_ns) / 1e6
    print(f"cases                  {n} ({counts['passed']} passed), concurrency {args.concurrency}")
    print(f"wall time              {elapsed:.2f} s")
    print(f"throughput             {n / elapsed:.0f} cases/s (target >= 200)")
    median_ms = statistics.median(call_ns) / 1e6
    print(f"SUT request            {sut_ms:.1f} ms mean, {median_ms:.1f} ms median")
    print(f"harness per case       {slot_ms - sut_ms:.1f} ms of a slot (slot {slot_ms:.1f} ms)")
    print(f"harness CPU per case   {cpu / n * 1000:.2f} ms (this process; the SUT is another)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
