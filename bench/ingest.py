"""Ingest benchmark: a running ``tracescore collector serve`` under concurrent OTLP senders.

    .venv/bin/python bench/ingest.py [--seconds 20] [--senders 8] [--per-request 500]

1. The in-process ceiling: the same requests validated, spooled and loaded into
   embedded chDB by the pipeline directly, with no network (engine-decoded
   batches, and the Python decoder for comparison).
2. Sustained load: ``--senders`` threads, half OTLP/HTTP protobuf, half OTLP/gRPC,
   each sending pre-encoded requests of realistic agent spans (GenAI attributes,
   ~1 KB each) back to back. Throughput counts acknowledged spans over the time
   until the collector has *written* all of them; latency is per request, from
   send to acknowledgement (which follows the durable spool write).
3. Overload: four times the senders; counts backpressure answers (HTTP 503,
   gRPC UNAVAILABLE/RESOURCE_EXHAUSTED) and reads the collector's peak RSS.

Prints one table; not a test. The figures go into the README and closing notes.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.pipeline import IngestPipeline, PipelineSettings, Signal
from tracescore.collector.store.chdb_store import ChdbStore

_TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def build_request(spans: int, seed: int = 0) -> bytes:
    """An agent-like batch: chat and tool spans with GenAI attributes, ~1 KB per span."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (
        ("service.name", "bench-agent"),
        ("tracescore.variant", "v1"),
        ("service.version", "1.4.2"),
        ("deployment.environment.name", "bench"),
    ):
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope.scope.version = "2.1b0"
    question = "What is the capital of France, and how many people live there today? " * 4
    messages = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "You are a helpful agent."}]},
            {"role": "user", "parts": [{"type": "text", "content": question}]},
        ]
    )
    for i in range(spans):
        n = seed * spans + i
        start = 1_700_000_000_000_000_000 + n * 1_000_000
        chat = i % 3 != 0
        span = scope.spans.add(
            trace_id=(n // 10 + 1).to_bytes(16, "big"),
            span_id=(n + 1).to_bytes(8, "big"),
            parent_span_id=(n if i % 10 else 0).to_bytes(8, "big"),
            name="chat gpt-4o-mini" if chat else "execute_tool lookup_capital",
            kind=3 if chat else 1,
            start_time_unix_nano=start,
            end_time_unix_nano=start + 250_000_000,
        )
        attributes = span.attributes
        if chat:
            attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
            attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
            attributes.add(key="gen_ai.request.model").value.string_value = "gpt-4o-mini"
            attributes.add(key="gen_ai.response.model").value.string_value = "gpt-4o-mini-2024"
            attributes.add(key="gen_ai.response.id").value.string_value = f"chatcmpl-{n:020d}"
            attributes.add(key="gen_ai.request.temperature").value.double_value = 0.2
            attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 120 + i % 50
            attributes.add(key="gen_ai.usage.output_tokens").value.int_value = 40
            attributes.add(key="gen_ai.input.messages").value.string_value = messages
            finish = attributes.add(key="gen_ai.response.finish_reasons").value.array_value
            finish.values.add().string_value = "stop"
        else:
            attributes.add(key="gen_ai.operation.name").value.string_value = "execute_tool"
            attributes.add(key="gen_ai.tool.name").value.string_value = "lookup_capital"
            attributes.add(key="gen_ai.tool.call.id").value.string_value = f"call_{n:016d}"
            attributes.add(key="gen_ai.tool.call.arguments").value.string_value = (
                '{"country": "France", "include_population": true, "source": "atlas"}' * 4
            )
            attributes.add(key="gen_ai.tool.call.result").value.string_value = (
                '{"capital": "Paris", "population": 2102650}' * 4
            )
        event = span.events.add(time_unix_nano=start + 10, name="gen_ai.choice")
        event.attributes.add(key="index").value.int_value = 0
        if i % 10 == 0:
            span.links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8)
    return request.SerializeToString()


# -- 1. in-process ceiling -------------------------------------------------------------
def ceiling(bodies: list[bytes], per_request: int, engine: bool) -> float:
    folder = Path(tempfile.mkdtemp(prefix="tracescore-bench-"))
    store = ChdbStore(folder / "data", database="otel")
    store.migrate()
    settings = PipelineSettings(
        spool_dir=folder / "spool",
        flush_interval_s=0.2,
        engine_min_spans=0 if engine else 10**9,
    )
    started = time.perf_counter()
    with IngestPipeline(store, settings) as pipeline:
        for body in bodies:
            pipeline.export(Signal.TRACES, body, "bench")
        pipeline.flush(600)
    elapsed = time.perf_counter() - started
    store.close()
    return len(bodies) * per_request / elapsed


# -- 2./3. against a running collector ------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Tally:
    acked_spans: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def http_sender(
    port: int, bodies: list[bytes], spans: int, stop: threading.Event, tally: Tally
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    index = 0
    while not stop.is_set():
        body = bodies[index % len(bodies)]
        index += 1
        started = time.perf_counter()
        try:
            connection.request(
                "POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"}
            )
            response = connection.getresponse()
            response.read()
        except OSError as exc:
            with tally.lock:
                tally.errors.append(str(exc))
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        elapsed = time.perf_counter() - started
        with tally.lock:
            if response.status == 200:
                tally.acked_spans += spans
                tally.latencies.append(elapsed)
            elif response.status in (429, 503):
                tally.refused += 1
            else:
                tally.errors.append(f"HTTP {response.status}")
        if response.status in (429, 503):
            time.sleep(float(response.getheader("Retry-After") or 1) / 10)


def grpc_sender(
    port: int, bodies: list[bytes], spans: int, stop: threading.Event, tally: Tally
) -> None:
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    )
    export: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(_TRACE_EXPORT)
    index = 0
    while not stop.is_set():
        body = bodies[index % len(bodies)]
        index += 1
        started = time.perf_counter()
        try:
            export(body, timeout=60)
        except grpc.RpcError as exc:
            code = exc.code()
            with tally.lock:
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    tally.refused += 1
                else:
                    tally.errors.append(str(code))
            time.sleep(0.1)
            continue
        elapsed = time.perf_counter() - started
        with tally.lock:
            tally.acked_spans += spans
            tally.latencies.append(elapsed)
    channel.close()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and 'signal="traces"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def memory_mib(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM) and the current anonymous and file-backed parts, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmHWM", "RssAnon", "RssFile"):
            found[key] = int(line.split()[1]) / 1024
    return found


def memory_text(pid: int) -> str:
    m = memory_mib(pid)
    return (
        f"{m['VmHWM']:,.0f} MiB (now {m['RssAnon']:,.0f} anonymous + "
        f"{m['RssFile']:,.0f} file-backed)"
    )


def drive(
    ports: tuple[int, int],
    bodies: list[bytes],
    spans: int,
    senders: int,
    seconds: float,
    protocols: tuple[str, ...] = ("http", "grpc"),
) -> tuple[Tally, float]:
    http_port, grpc_port = ports
    tally = Tally()
    stop = threading.Event()
    written_before = metric(http_port, "tracescore_collector_written_items_total")
    kinds = [protocols[i % len(protocols)] for i in range(senders)]
    threads = [
        threading.Thread(
            target=http_sender if kinds[i] == "http" else grpc_sender,
            args=(
                http_port if kinds[i] == "http" else grpc_port,
                bodies[i:] + bodies[:i],
                spans,
                stop,
                tally,
            ),
            daemon=True,
        )
        for i in range(senders)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    # Sustained means written to the store, not just acknowledged.
    while (
        metric(http_port, "tracescore_collector_written_items_total") - written_before
        < tally.acked_spans
    ):
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    return tally, elapsed


def bench_env() -> dict[str, str]:
    """The environment for tracescore subprocesses: never a store from the caller's."""
    return {k: v for k, v in os.environ.items() if k != "TRACESCORE_STORE"}


def wait_http(url: str, process: "subprocess.Popen[bytes]", log: Path) -> None:
    """Returns once ``url`` answers; exits with the process's log if it never does."""
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up:\n{log.read_text()}") from None
            time.sleep(0.2)


def start_collector(
    folder: Path, http_port: int, grpc_port: int, query_port: int
) -> "subprocess.Popen[bytes]":
    """``tracescore collector serve`` on embedded chDB in ``folder``, once it is healthy."""
    log_path = folder / "collector.log"
    with log_path.open("w") as log:
        collector = subprocess.Popen(
            [
                sys.executable, "-m", "tracescore.scoring", "collector", "serve",
                "--store", f"chdb:{folder / 'data'}",
                "--http-port", str(http_port), "--grpc-port", str(grpc_port),
                "--query-port", str(query_port), "--host", "127.0.0.1",
                "--log-level", "WARNING",
            ],
            cwd=folder, env=bench_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_http(f"http://127.0.0.1:{http_port}/health", collector, log_path)
    return collector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--per-request", type=int, default=500)
    parser.add_argument("--skip-ceiling", action="store_true")
    args = parser.parse_args()
    spans = args.per_request
    bodies = [build_request(spans, seed=i) for i in range(64)]
    print(
        f"workload: requests of {spans} spans, {len(bodies[0]) / spans:,.0f} bytes/span on the "
        f"wire; {os.cpu_count()} cores"
    )
    rows: list[tuple[str, str]] = []
    engine_ceiling = float("nan")
    if not args.skip_ceiling:
        engine_ceiling = ceiling(bodies, spans, engine=True)
        python_ceiling = ceiling(bodies, spans, engine=False)
        rows.append(
            ("in-process ceiling, engine decode (no network)", f"{engine_ceiling:,.0f} spans/s")
        )
        rows.append(("in-process, Python decode (reference)", f"{python_ceiling:,.0f} spans/s"))

    folder = Path(tempfile.mkdtemp(prefix="tracescore-bench-"))
    http_port, grpc_port, query_port = free_port(), free_port(), free_port()
    collector = start_collector(folder, http_port, grpc_port, query_port)
    try:
        tally, elapsed = drive((http_port, grpc_port), bodies, spans, args.senders, args.seconds)
        rate = tally.acked_spans / elapsed
        latencies = sorted(tally.latencies)
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        rows.append(
            (f"sustained, {args.senders} senders (HTTP + gRPC), written", f"{rate:,.0f} spans/s")
        )
        if engine_ceiling == engine_ceiling:
            rows.append(("  ratio to the in-process ceiling", f"{rate / engine_ceiling:.2f}"))
        rows.append(("  request latency p50 / p99", f"{p50:,.0f} ms / {p99:,.0f} ms"))
        rows.append(("  refused (backpressure) / errors", f"{tally.refused} / {len(tally.errors)}"))
        rows.append(("  collector peak RSS", memory_text(collector.pid)))
        overload, _ = drive(
            (http_port, grpc_port), bodies, spans, args.senders * 4, args.seconds / 2
        )
        rows.append(
            (
                f"overload, {args.senders * 4} senders: refused / errors",
                f"{overload.refused} / {len(overload.errors)}",
            )
        )
        rows.append(("  collector peak RSS after overload", memory_text(collector.pid)))
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(timeout=120)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
