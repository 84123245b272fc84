"""``tracescore collector serve`` as a real process: shutdown, crash recovery, bad config.

chDB serves one data path per process and this test session already holds one, so
the collector's store is only ever read through a collector: the process under test
(or a restarted one) and its ClickHouse-compatible query port.
"""

import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT_S = 180.0  # chDB start-up plus migrations on a busy 2-core machine
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@dataclass
class Served:
    proc: "subprocess.Popen[bytes]"
    grpc_port: int
    http_port: int
    query_port: int
    stderr_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _env() -> dict[str, str]:
    drop = {"TRACESCORE_STORE", "TRACESCORE_COLLECTOR_TOKEN"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _command(store_dir: Path, config: Path, ports: list[int]) -> list[str]:
    grpc_port, http_port, query_port = ports
    return [
        sys.executable,
        "-m",
        "tracescore.scoring",
        "collector",
        "serve",
        "--store",
        f"chdb:{store_dir}",
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
        "--query-port",
        str(query_port),
        "--config",
        str(config),
    ]


def _write_config(path: Path, flush_interval_s: float = 0.2) -> Path:
    path.write_text(
        "spool:\n"
        "  fsync: true\n"
        f"  flush_interval_s: {flush_interval_s}\n"
        "limits:\n"
        "  max_items_per_request: 1000\n"
        "stats_interval_s: 0\n",
        encoding="utf-8",
    )
    return path


def _start(tmp_path: Path, store_dir: Path, config: Path, name: str) -> Served:
    ports = _free_ports(3)
    stderr_path = tmp_path / f"{name}.stderr"
    with (
        (tmp_path / f"{name}.stdout").open("wb") as stdout,
        stderr_path.open("wb") as stderr,
    ):
        proc = subprocess.Popen(
            _command(store_dir, config, ports),
            cwd=tmp_path,
            env=_env(),
            stdout=stdout,
            stderr=stderr,
        )
    served = Served(proc, ports[0], ports[1], ports[2], stderr_path)
    _wait_started(served)
    return served


def _wait_started(served: Served) -> None:
    """Until start-up has finished: the ``started`` line is logged and /health answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            pytest.fail(f"collector exited with {served.proc.returncode}:\n{served.stderr()}")
        if " started grpc=" in served.stderr():
            try:
                with urllib.request.urlopen(f"{served.http}/health", timeout=5) as response:
                    if response.read() == b"ok":
                        return
            except OSError:
                pass
        time.sleep(0.1)
    served.proc.kill()
    pytest.fail(f"collector did not start in {START_TIMEOUT_S:.0f} s:\n{served.stderr()}")


def _stop(served: Served, timeout_s: float = 60.0) -> int:
    served.proc.send_signal(signal.SIGTERM)
    return served.proc.wait(timeout=timeout_s)


@pytest.fixture
def processes() -> Iterator[list[Served]]:
    """Every collector a test starts; any still running at the end is killed."""
    started: list[Served] = []
    yield started
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(timeout=30)


def _shutdown(exporter: Any) -> None:
    """Close an SDK exporter (some of whose ``shutdown`` methods are unannotated)."""
    exporter.shutdown()


def _listening_hosts(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (Linux /proc/net)."""
    hosts: set[str] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, _, port_hex = fields[1].rpartition(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # Stored as 32-bit words in host (little-endian) order.
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(ordered)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            hosts.add(str(ip))
    return hosts


def _query(served: Served, sql: str) -> str:
    url = f"http://127.0.0.1:{served.query_port}/?" + urllib.parse.urlencode({"query": sql})
    with urllib.request.urlopen(url, timeout=60) as response:
        return str(response.read().decode()).strip()


def _metric(served: Served, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{served.http}/metrics", timeout=15) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in /metrics")


def _wait_spool_drained(served: Served, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _metric(served, "tracescore_collector_queue_bytes", signal="traces") > 0:
        assert served.proc.poll() is None, served.stderr()
        assert time.monotonic() < deadline, "the spool was not loaded in time"
        time.sleep(0.1)


def _spool_segments(store_dir: Path) -> list[Path]:
    return [
        p
        for p in (store_dir / "spool").rglob("*")
        if p.suffix in (".open", ".ready") and p.stat().st_size > 0
    ]


def _agent_spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "e2e-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("e2e")
    with tracer.start_as_current_span("invoke_agent", attributes={"gen_ai.agent.name": "a"}):
        for index in range(count - 1):
            with tracer.start_as_current_span(f"chat {index}", attributes={"n": index}):
                pass
    provider.shutdown()
    spans = list(memory.get_finished_spans())
    assert len(spans) == count
    return spans


def _request(spans: int, trace_id: bytes) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "crashy"
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "load"
    for index in range(spans):
        span = scope_spans.spans.add(
            trace_id=trace_id,
            span_id=secrets.token_bytes(8),
            name=f"step {index % 10}",
            start_time_unix_nano=1_700_000_000_000_000_000 + index,
            end_time_unix_nano=1_700_000_000_000_500_000 + index,
        )
        span.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        span.attributes.add(key="i").value.int_value = index
    return request.SerializeToString()


# -- tests -----------------------------------------------------------------------------


def test_sigterm_loads_everything_accepted_and_exits_0(
    tmp_path: Path, processes: list[Served]
) -> None:
    store_dir = tmp_path / "data"
    # A long flush interval: nothing loads until shutdown does it.
    config = _write_config(tmp_path / "collector.yaml", flush_interval_s=60)
    served = _start(tmp_path, store_dir, config, "first")
    processes.append(served)
    started = [line for line in served.stderr().splitlines() if " started grpc=" in line]
    assert len(started) == 1
    assert f"grpc=http://127.0.0.1:{served.grpc_port}" in started[0]
    assert f"http=http://127.0.0.1:{served.http_port}" in started[0]
    assert f"query=http://127.0.0.1:{served.query_port}" in started[0]

    spans = _agent_spans(7)
    grpc_exporter = GrpcSpanExporter(endpoint=f"http://127.0.0.1:{served.grpc_port}", insecure=True)
    http_exporter = HttpSpanExporter(endpoint=f"{served.http}/v1/traces")
    assert grpc_exporter.export(spans[:3]) is SpanExportResult.SUCCESS
    assert http_exporter.export(spans[3:]) is SpanExportResult.SUCCESS
    _shutdown(grpc_exporter)
    _shutdown(http_exporter)
    assert _spool_segments(store_dir), "acknowledged spans should wait in the spool"

    began = time.monotonic()
    assert _stop(served) == 0, served.stderr()
    assert time.monotonic() - began < 30
    log = served.stderr()
    assert "received SIGTERM; shutting down" in log
    assert "traces.received=7 traces.written=7" in log
    assert "Traceback" not in log
    # Shutdown loaded the spool instead of leaving it for the next start.
    assert _spool_segments(store_dir) == []

    again = _start(tmp_path, store_dir, config, "second")
    processes.append(again)
    assert "recovered" not in again.stderr()
    rows = _query(again, "SELECT count(), uniqExact(SpanId) FROM otel.otel_traces")
    assert rows == "7\t7"
    assert _stop(again) == 0


@pytest.mark.parametrize(
    "flush_interval_s",
    [
        pytest.param(0.2, id="loader-running"),
        pytest.param(60.0, id="everything-in-spool"),
    ],
)
def test_sigkill_after_acknowledgement_loses_and_duplicates_nothing(
    tmp_path: Path, processes: list[Served], flush_interval_s: float
) -> None:
    store_dir = tmp_path / "data"
    config = _write_config(tmp_path / "collector.yaml", flush_interval_s=flush_interval_s)
    served = _start(tmp_path, store_dir, config, "doomed")
    processes.append(served)
    requests, per_request = 20, 500
    trace_ids = [secrets.token_bytes(16) for _ in range(requests)]
    for trace_id in trace_ids:
        body = _request(per_request, trace_id)
        post = urllib.request.Request(f"{served.http}/v1/traces", data=body, headers=PROTOBUF)
        with urllib.request.urlopen(post, timeout=60) as response:
            assert response.status == 200
    served.proc.send_signal(signal.SIGKILL)
    assert served.proc.wait(timeout=30) == -signal.SIGKILL
    if flush_interval_s > 1:
        assert _spool_segments(store_dir), "the kill should have left acknowledged requests"

    again = _start(tmp_path, store_dir, _write_config(tmp_path / "restart.yaml"), "restarted")
    processes.append(again)
    if flush_interval_s > 1:
        assert "recovered: 20 requests to load" in again.stderr()
    _wait_spool_drained(again)
    total = requests * per_request
    counts = _query(
        again,
        "SELECT count(), uniqExact(SpanId), uniqExact(TraceId) FROM otel.otel_traces",
    )
    assert counts == f"{total}\t{total}\t{requests}"
    assert _stop(again) == 0
    assert _spool_segments(store_dir) == []


def test_unknown_config_key_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text("spool:\n  flush_interval_s: 1\n  flush_every: 3\n", encoding="utf-8")
    done = subprocess.run(
        _command(tmp_path / "data", config, _free_ports(3)),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "spool.flush_every" in lines[0]
    # Refused before the store was opened.
    assert not (tmp_path / "data").exists()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the start-up failures, so migrations run once."""
    return tmp_path_factory.mktemp("busy") / "data"


@pytest.mark.parametrize("listener", ["grpc", "http", "query"])
def test_port_in_use_exits_2_with_a_clear_message(
    tmp_path: Path, shared_store: Path, listener: str
) -> None:
    ports = _free_ports(3)
    busy = ports[["grpc", "http", "query"].index(listener)]
    config = _write_config(tmp_path / "collector.yaml")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        done = subprocess.run(
            _command(shared_store, config, ports),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert "cannot listen on" in errors[0]
    assert f":{busy}" in errors[0]
    # The cause, not a pointer to debug logging.
    assert "already in use" in errors[0].lower()
    assert " started grpc=" not in done.stderr


def test_setting_only_the_query_port_keeps_the_query_listener_on_loopback(
    tmp_path: Path, processes: list[Served]
) -> None:
    """The query port serves reads without a token, so it must stay on 127.0.0.1 unless
    a host is configured; ``--query-port`` (or ``query: {port: N}``) only moves the port."""
    config = _write_config(tmp_path / "collector.yaml")
    served = _start(tmp_path, tmp_path / "data", config, "loopback")
    processes.append(served)
    # --host 127.0.0.1 applies to the OTLP listeners (and shows the helper reads /proc right).
    assert _listening_hosts(served.http_port) == {"127.0.0.1"}
    assert _listening_hosts(served.grpc_port) == {"127.0.0.1"}
    assert _listening_hosts(served.query_port) == {"127.0.0.1"}
    assert _stop(served) == 0


def test_listener_section_without_a_port_keeps_the_default_port(tmp_path: Path) -> None:
    """``grpc: {enabled: false}`` turns gRPC off; it must not make ``grpc.port`` required."""
    config = tmp_path / "collector.yaml"
    config.write_text(
        "grpc:\n  enabled: false\nquery:\n  enabled: false\nstats_interval_s: 0\n",
        encoding="utf-8",
    )
    [http_port] = _free_ports(1)
    command = [
        sys.executable,
        "-m",
        "tracescore.scoring",
        "collector",
        "serve",
        "--store",
        f"chdb:{tmp_path / 'data'}",
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--config",
        str(config),
    ]
    stderr_path = tmp_path / "partial.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(command, cwd=tmp_path, env=_env(), stderr=stderr)
    served = Served(proc, 0, http_port, 0, stderr_path)
    try:
        _wait_started(served)
        assert " started grpc=off http=http://127.0.0.1:" in served.stderr()
        assert "query=off" in served.stderr()
        assert _stop(served) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo" / "eval.yaml"


def _run_demo_case(tmp_path: Path, store_url: str) -> subprocess.CompletedProcess[str]:
    env = {**_env(), "TRACESCORE_STORE": store_url}
    return subprocess.run(
        [
            *(sys.executable, "-m", "tracescore.scoring", "run", str(DEMO)),
            *("--variant", "strong", "--case", "multiply"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_suite_runs_against_a_running_collector_through_its_query_port(
    tmp_path: Path, processes: list[Served]
) -> None:
    config = tmp_path / "auth.yaml"
    config.write_text("auth:\n  token_env: TRACESCORE_COLLECTOR_TOKEN\n", encoding="utf-8")
    ports = _free_ports(3)
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            _command(tmp_path / "data", config, ports),
            cwd=tmp_path,
            env={**_env(), "TRACESCORE_COLLECTOR_TOKEN": "s3cret"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    served = Served(proc, ports[0], ports[1], ports[2], stderr_path)
    processes.append(served)
    _wait_started(served)

    # Without the token the span tables are read-only: the run says why, per case.
    refused = _run_demo_case(tmp_path, f"clickhouse://127.0.0.1:{served.query_port}/otel")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "could not be written to" in refused.stdout
    assert "auth token" in refused.stdout

    run = _run_demo_case(
        tmp_path, f"clickhouse://default:s3cret@127.0.0.1:{served.query_port}/otel"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 cases: 1 passed" in run.stdout.replace("\n", " ")
    results = _query(
        served,
        "SELECT count() FROM otel.tracescore_case_results WHERE CaseId = 'multiply' "
        "AND Status = 'passed'",
    )
    assert results.strip() == "1"
    assert _stop(served) == 0
