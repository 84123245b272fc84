"""Online-scoring benchmark: how fast ``tracescore watch`` scores traces that landed.

    .venv/bin/python bench/watch.py [--traces 10000] [--workers 2]

Inserts ``--traces`` agent traces of 10 spans each (``bench/score.py``'s generator) into
embedded chDB in a temporary folder, the way the collector's loader does, then lets a
``Watcher`` with four deterministic evaluators catch up: polls until no sealed trace is
left, and prints traces/s and the equivalent spans/s. Against the collector's sustained
ingest (bench/README.md: ~25–36k spans/s on this machine), watch keeps up when its
spans/s is at least that. Not a test.
"""

import argparse
import gc
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from anywhere: the repository root makes bench.score importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.score import SPANS_PER_TRACE, populate
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.scoring.scoring_config import scoring_config_from
from tracescore.scoring.watch import Watcher

EVALUATORS = [
    {"type": "no_error_spans"},
    {"type": "span_count", "params": {"min": 10, "max": 10}},
    {"type": "step_count", "params": {"max": 8}},
    {"type": "tool_called", "params": {"tool": "search_flights"}},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500, help="the config's batch_size")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tracescore-bench-watch-"))
    store = ChdbStore(folder / "chdb", database="bench")
    try:
        store.migrate()
        inserted_s = populate(store, args.traces)
        loaded = scoring_config_from(
            {
                "name": "bench",
                "evaluators": EVALUATORS,
                "workers": args.workers,
                "batch_size": args.batch,
                "watch": {"quiet_period_s": 0.05},
            }
        )
        watcher = Watcher(store, loaded)
        gc.freeze()  # as `tracescore watch` does once started
        time.sleep(0.1)  # every trace sealed
        started = time.perf_counter()
        cpu_started = resource.getrusage(resource.RUSAGE_SELF)
        scored = polls = 0
        while True:
            result = watcher.poll()
            polls += 1
            scored += result.scored
            if result.due == 0 or scored >= args.traces:
                break
        elapsed = time.perf_counter() - started
        cpu_ended = resource.getrusage(resource.RUSAGE_SELF)
        watcher.close()  # workers exit: their CPU time is counted as children's from here
        workers_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    if scored != args.traces:
        print(f"scored {scored} of {args.traces} traces", file=sys.stderr)
        return 1
    print(f"traces inserted        {args.traces} x {SPANS_PER_TRACE} spans in {inserted_s:.1f} s")
    print(f"watch, {args.workers} worker(s)     {scored} traces in {elapsed:.2f} s, {polls} polls")
    main_cpu = (cpu_ended.ru_utime - cpu_started.ru_utime) + (
        cpu_ended.ru_stime - cpu_started.ru_stime
    )
    worker_cpu = workers_cpu.ru_utime + workers_cpu.ru_stime
    print(
        f"CPU per trace          {main_cpu / scored * 1e6:,.0f} µs in this process (queries, "
        f"writes{', shipping rows' if args.workers > 1 else ', scoring'}), "
        f"{worker_cpu / scored * 1e6:,.0f} µs in workers"
    )
    print(
        f"throughput             {scored / elapsed:,.0f} traces/s = "
        f"{scored * SPANS_PER_TRACE / elapsed:,.0f} spans/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
