"""Collector and watch on one machine: at which ingest rate does online scoring keep up?

    .venv/bin/python bench/watch_live.py [--rates 5000,10000,15000] [--seconds 30]

For each rate: a fresh ``tracescore collector serve`` (embedded chDB) and a
``tracescore watch`` reading and writing through the collector's query port (the way
the README runs both on a laptop), both subprocesses; senders post OTLP/HTTP requests
of 500 new spans (50 traces of 10, ``bench/ingest.py``'s agent-like spans, every trace
id new) paced to the rate for ``--seconds``. Every second it reads the watcher's
/metrics: the lag gauge and the traces scored. It prints the ingest rate reached, the
lag while sending (median and max), and how long after the last span every trace was
scored. Keeping up means the lag stays near quiet period + poll interval while sending
and the backlog drains right after; a lag that grows through the run means it does
not. Both processes share the machine's cores, as they would on one box. Not a test.
"""

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

# Run as a script from anywhere: the repository root makes bench.ingest importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import bench_env, build_request, free_port, start_collector, wait_http

SPANS_PER_REQUEST = 500
TRACES_PER_REQUEST = SPANS_PER_REQUEST // 10
QUIET_S = 2.0
POLL_S = 1.0
SCORING_YAML = f"""\
name: live
evaluators:
  - type: no_error_spans
  - type: span_count
    params: {{min: 10, max: 10}}
  - type: step_count
    params: {{max: 8}}
  - type: tool_called
    params: {{tool: lookup_capital}}
workers: 2
watch:
  quiet_period_s: {QUIET_S}
  poll_interval_s: {POLL_S}
"""


def _watch_metrics(port: int) -> tuple[float, float]:
    """(lag seconds, traces scored so far) from the watcher's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    lag, scored = float("nan"), 0.0
    for line in text.splitlines():
        if line.startswith("tracescore_watch_lag_seconds "):
            lag = float(line.split()[1])
        elif line.startswith('tracescore_watch_traces_total{outcome="scored"}'):
            scored = float(line.split()[1])
    return lag, scored


def _send(port: int, bodies: list[bytes], interval_s: float, sent: list[int]) -> None:
    """Posts ``bodies`` in order, one every ``interval_s`` (catching up if late)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    for index, body in enumerate(bodies):
        delay = started + index * interval_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        while True:
            connection.request(
                "POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"}
            )
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                sent[0] += 1
                break
            time.sleep(0.05)  # refused under backpressure: retried, nothing lost


def run_rate(rate: float, seconds: float, senders: int) -> list[tuple[str, str]]:
    requests = max(senders, round(rate * seconds / SPANS_PER_REQUEST))
    # Every request carries new trace ids: a repeated id would be a late span.
    bodies = [build_request(SPANS_PER_REQUEST, seed=i) for i in range(requests)]
    folder = Path(tempfile.mkdtemp(prefix="tracescore-bench-live-"))
    http_port, grpc_port, query_port, metrics_port = (free_port() for _ in range(4))
    (folder / "scoring.yaml").write_text(SCORING_YAML, encoding="utf-8")
    watch_log = folder / "watch.log"
    collector = start_collector(folder, http_port, grpc_port, query_port)
    watch: subprocess.Popen[bytes] | None = None
    try:
        with watch_log.open("w") as log:
            watch = subprocess.Popen(
                [
                    sys.executable, "-m", "tracescore.scoring", "watch",
                    "--config", str(folder / "scoring.yaml"),
                    "--store", f"clickhouse://127.0.0.1:{query_port}/otel",
                    "--metrics-port", str(metrics_port), "--log-level", "WARNING",
                ],
                cwd=folder, env=bench_env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_http(f"http://127.0.0.1:{metrics_port}/metrics", watch, watch_log)

        sent = [0]
        interval = SPANS_PER_REQUEST / rate * senders
        threads = [
            threading.Thread(
                target=_send, args=(http_port, bodies[i::senders], interval, sent), daemon=True
            )
            for i in range(senders)
        ]
        lags: list[float] = []
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(1)
            lag, _ = _watch_metrics(metrics_port)
            if lag == lag:
                lags.append(lag)
        sent_s = time.perf_counter() - started
        traces = sent[0] * TRACES_PER_REQUEST
        deadline = time.perf_counter() + 300
        scored = 0.0
        while scored < traces and time.perf_counter() < deadline:
            time.sleep(0.5)
            _, scored = _watch_metrics(metrics_port)
        drained_s = time.perf_counter() - started - sent_s
    finally:
        for process in (watch, collector):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=120)
    label = f"{rate:,.0f} spans/s asked"
    if scored < traces:
        return [(label, f"NOT drained: {scored:,.0f} of {traces:,} traces scored 300 s after")]
    return [
        (
            label,
            f"sent {sent[0] * SPANS_PER_REQUEST / sent_s:,.0f} spans/s for {sent_s:.0f} s; "
            f"lag median {statistics.median(lags) if lags else float('nan'):.1f} s, "
            f"max {max(lags, default=float('nan')):.1f} s; "
            f"all {traces:,} traces scored {drained_s:.1f} s after the last span",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5000,10000,15000", help="spans/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} cores; watch: quiet {QUIET_S:g} s, poll {POLL_S:g} s, 2 workers, "
        "4 deterministic evaluators, through the collector's query port"
    )
    for rate in (float(r) for r in args.rates.split(",")):
        for label, value in run_rate(rate, args.seconds, args.senders):
            print(f"{label:>24}  {value}", flush=True)


if __name__ == "__main__":
    main()
