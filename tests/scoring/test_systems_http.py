"""The ``http`` adapter against real HTTP servers on ephemeral ports, and ``server:`` mode
with real subprocesses."""

import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tracescore.collector.store import Store
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, HttpSystem, Variant
from tracescore.scoring.systems import adapter_for
from tracescore.scoring.systems.base import CallContext, SystemStartError, VariantContext
from tracescore.scoring.systems.http import HttpAdapter

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VARIANT = Variant(name="v1", env={"SUT_MOOD": "cheerful"})
CASE = Case(
    id="c1",
    input="what is 2 + 2?",
    expected={"contains": "4"},
    metadata={"limit": 3, "filters": {"lang": "en", "tags": ["a", "b"]}, "user": "ana"},
)


class Recorder:
    """What the test SUT received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: str, content_type: str = "application/json") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            seen = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(raw) if raw else None,
            }
            with recorder.lock:
                recorder.requests.append(seen)
            if self.path.startswith("/status/"):
                status = int(self.path.split("/")[2])
                self._reply(status, "overloaded, try later" if status >= 500 else "missing 'q'")
            elif self.path == "/text":
                self._reply(200, "  plain answer\n", "text/plain")
            elif self.path == "/slow":
                time.sleep(3)
                self._reply(200, "{}")
            elif self.path == "/nested":
                self._reply(200, json.dumps({"result": {"answer": 4, "parts": ["x", "y"]}}))
            elif self.path == "/html":
                self._reply(200, "<html>oops</html>", "text/html")
            else:
                sent = seen["body"] if isinstance(seen["body"], dict) else {}
                echo = sent.get("q", sent.get("input"))
                self._reply(200, json.dumps({"output": f"echo: {echo}", "seen": seen}))

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

    return Handler


@pytest.fixture
def sut() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _system(**fields: Any) -> HttpSystem:
    return HttpSystem.model_validate({"type": "http", **fields})


def _call(trace_env: dict[str, str] | None = None) -> CallContext:
    return CallContext(
        otlp_endpoint="http://127.0.0.1:9",
        trace_env={"TRACEPARENT": TRACEPARENT} if trace_env is None else trace_env,
        resource_attributes={"tracescore.variant": "v1"},
    )


@pytest.fixture
def adapters(tmp_path: Path) -> Iterator[list[HttpAdapter]]:
    """Adapters made by the test, all stopped afterwards (so no server outlives it)."""
    made: list[HttpAdapter] = []
    try:
        yield made
    finally:
        for adapter in made:
            adapter.stop()


def _adapter(made: list[HttpAdapter], folder: Path, **fields: Any) -> HttpAdapter:
    adapter = HttpAdapter(_system(**fields), folder)
    made.append(adapter)
    return adapter


def test_trace_headers_arrive_exactly_as_given(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, recorder = sut
    adapter = _adapter(
        adapters, tmp_path, url=f"{url}/run", headers={"TraceParent": "stale", "X-Key": "k"}
    )
    trace_env = {
        "TRACEPARENT": TRACEPARENT,
        "TRACESTATE": "vendor=abc,other=x:y",
        "BAGGAGE": "tracescore.case_id=c1,tracescore.run_id=r%201",
    }
    result = adapter.invoke(CASE, VARIANT, _call(trace_env))
    assert result.error is None
    headers = recorder.requests[-1]["headers"]
    assert headers["traceparent"] == TRACEPARENT
    assert headers["tracestate"] == "vendor=abc,other=x:y"
    assert headers["baggage"] == "tracescore.case_id=c1,tracescore.run_id=r%201"
    assert headers["x-key"] == "k"

    adapter.invoke(CASE, VARIANT, _call({"TRACEPARENT": TRACEPARENT}))
    only = recorder.requests[-1]["headers"]
    assert only["traceparent"] == TRACEPARENT
    assert "tracestate" not in only and "baggage" not in only


def test_templates_render_into_url_headers_and_body(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, recorder = sut
    adapter = _adapter(
        adapters,
        tmp_path,
        url=f"{url}/cases/{{{{case_id}}}}?user={{{{metadata.user}}}}",
        method="PUT",
        headers={"X-Case": "case {{case_id}}", "X-Filters": "{{metadata.filters}}"},
        body={
            "q": "{{input}}",
            "limit": "{{ metadata.limit }}",
            "filters": "{{metadata.filters}}",
            "note": "limit={{metadata.limit}} for {{case_id}}",
            "list": ["{{expected.contains}}", 7, None],
        },
        output="$.output",
    )
    result = adapter.invoke(CASE, VARIANT, _call())
    assert result.error is None
    assert result.output == "echo: what is 2 + 2?"
    seen = recorder.requests[-1]
    assert seen["method"] == "PUT"
    assert seen["path"] == "/cases/c1?user=ana"
    assert seen["headers"]["x-case"] == "case c1"
    assert json.loads(seen["headers"]["x-filters"]) == CASE.metadata["filters"]
    assert seen["body"] == {
        "q": "what is 2 + 2?",
        "limit": 3,
        "filters": {"lang": "en", "tags": ["a", "b"]},
        "note": "limit=3 for c1",
        "list": ["4", 7, None],
    }


def test_get_sends_no_body_and_default_body_is_the_input(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, recorder = sut
    _adapter(adapters, tmp_path, url=f"{url}/q", method="GET").invoke(CASE, VARIANT, _call())
    assert recorder.requests[-1]["method"] == "GET" and recorder.requests[-1]["body"] is None
    _adapter(adapters, tmp_path, url=f"{url}/q").invoke(CASE, VARIANT, _call())
    assert recorder.requests[-1]["body"] == {"input": "what is 2 + 2?"}


def test_missing_placeholder_is_an_error_naming_it(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, recorder = sut
    adapter = _adapter(adapters, tmp_path, url=url, body={"x": "{{metadata.nope}}"})
    result = adapter.invoke(CASE, VARIANT, _call())
    assert result.error is not None and "metadata.nope" in result.error
    assert not result.transient
    assert recorder.requests == []


def test_output_jsonpath_and_whole_body(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, _ = sut
    nested = f"{url}/nested"
    for path, expected in [
        ("$.result.parts[1]", "y"),
        ("$.result.answer", "4"),
        ("$.result.parts", '["x", "y"]'),
        ("$.result.parts[*]", '["x", "y"]'),
        ("$.result", '{"answer": 4, "parts": ["x", "y"]}'),
    ]:
        result = _adapter(adapters, tmp_path, url=nested, output=path).invoke(
            CASE, VARIANT, _call()
        )
        assert (result.error, result.output) == (None, expected), path
    text = _adapter(adapters, tmp_path, url=f"{url}/text").invoke(CASE, VARIANT, _call())
    assert (text.error, text.output) == (None, "  plain answer\n")


def test_output_errors(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, _ = sut
    missing = _adapter(adapters, tmp_path, url=f"{url}/nested", output="$.answer").invoke(
        CASE, VARIANT, _call()
    )
    assert missing.error is not None and not missing.transient
    assert "$.answer matched nothing" in missing.error and '"result"' in missing.error
    html = _adapter(adapters, tmp_path, url=f"{url}/html", output="$.output").invoke(
        CASE, VARIANT, _call()
    )
    assert html.error is not None and "not JSON" in html.error and "<html>oops" in html.error
    with pytest.raises(ConfigError, match=r"system.output: bad JSONPath '\$\['"):
        _adapter(adapters, tmp_path, url=url, output="$[")


def test_retryable_status_is_transient_and_others_are_not(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, _ = sut
    busy = _adapter(adapters, tmp_path, url=f"{url}/status/503").invoke(CASE, VARIANT, _call())
    assert busy.transient
    assert busy.error == f"HTTP 503 from {url}/status/503: overloaded, try later"
    bad = _adapter(adapters, tmp_path, url=f"{url}/status/400").invoke(CASE, VARIANT, _call())
    assert not bad.transient
    assert bad.error == f"HTTP 400 from {url}/status/400: missing 'q'"
    custom = _adapter(adapters, tmp_path, url=f"{url}/status/400", retry_statuses=[400])
    assert custom.invoke(CASE, VARIANT, _call()).transient


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_refused_connection_and_timeout_are_transient(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{_unused_port()}/run"
    refused = _adapter(adapters, tmp_path, url=closed).invoke(CASE, VARIANT, _call())
    assert refused.transient and refused.error is not None
    assert refused.error.startswith(f"cannot connect to {closed}")

    url, _ = sut
    slow = _adapter(adapters, tmp_path, url=f"{url}/slow", timeout_s=0.3)
    result = slow.invoke(CASE, VARIANT, _call())
    assert result.transient
    assert result.error == f"no response from {url}/slow within 0.3s"


def test_one_adapter_serves_many_threads(
    sut: tuple[str, Recorder], adapters: list[HttpAdapter], tmp_path: Path
) -> None:
    url, recorder = sut
    adapter = _adapter(adapters, tmp_path, url=url, body={"q": "{{input}}"}, output="$.output")
    cases = [Case(id=f"c{i}", input=f"question {i}") for i in range(24)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda c: adapter.invoke(c, VARIANT, _call()), cases))
    assert [r.output for r in results] == [f"echo: question {i}" for i in range(24)]
    assert len(recorder.requests) == 24


def test_port_placeholder_without_server_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\{port\} needs a `server:` section"):
        HttpAdapter(_system(url="http://127.0.0.1:{port}/run"), tmp_path)


# --- server: mode -------------------------------------------------------------------------

SERVER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    time.sleep(float(os.environ.get("DELAY_S", "0")))  # not ready at once
    hits = {"ready": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits["ready"] += 1
            # Unhealthy for the first polls: tracescore must keep asking.
            status = 503 if hits["ready"] < 3 else 200
            self.send_response(status)
            self.end_headers()

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            names = ["SUT_MOOD", "GREETING", "OTEL_EXPORTER_OTLP_ENDPOINT",
                     "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_EXPORTER",
                     "OTEL_RESOURCE_ATTRIBUTES", "OTEL_BSP_SCHEDULE_DELAY"]
            reply = {
                "output": f"{os.environ['GREETING']} {body['input']}",
                "env": {n: os.environ.get(n) for n in names},
                "cwd": os.getcwd(),
                "ready_polls": hits["ready"],
                "pid": os.getpid(),
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)


def _context(variant: Variant = VARIANT) -> VariantContext:
    return VariantContext(
        variant=variant,
        otlp_endpoint="http://127.0.0.1:4999",
        resource_attributes={"tracescore.variant": variant.name, "tracescore.suite": "s"},
        tracer_provider=TracerProvider(),
    )


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_dead(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


@pytest.fixture
def server_folder(tmp_path: Path) -> Path:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "server.py").write_text(SERVER_SCRIPT)
    return tmp_path


def test_server_ready_by_port_gets_the_otel_environment(
    server_folder: Path, adapters: list[HttpAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")
    adapter = _adapter(
        adapters,
        server_folder,
        url="http://127.0.0.1:{port}/answer",
        output="$",
        server={
            "command": ["{python}", "server.py", "{port}"],
            "cwd": "srv",
            "env": {"GREETING": "hi from {port}", "DELAY_S": "0.3", "JSON": '{"a": 1}'},
        },
    )
    adapter.start(_context())
    try:
        result = adapter.invoke(CASE, VARIANT, _call())
    finally:
        adapter.stop()
    assert result.error is None
    reply = json.loads(result.output)
    port = adapter.url.split(":")[2].split("/")[0]
    assert reply["output"] == f"hi from {port} what is 2 + 2?"
    assert reply["cwd"] == str(server_folder / "srv")
    assert reply["env"] == {
        "SUT_MOOD": "cheerful",
        "GREETING": f"hi from {port}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4999",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_RESOURCE_ATTRIBUTES": (
            "deployment.environment=ci,tracescore.variant=v1,tracescore.suite=s"
        ),
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    # Ready by port: no health checks were sent.
    assert reply["ready_polls"] == 0
    assert _wait_dead(reply["pid"])


def test_server_ready_by_url_polls_until_below_500(
    server_folder: Path, adapters: list[HttpAdapter]
) -> None:
    adapter = _adapter(
        adapters,
        server_folder,
        url="http://127.0.0.1:{port}/answer",
        output="$.ready_polls",
        server={
            "command": ["{python}", "srv/server.py", "{port}"],
            "env": {"GREETING": "hi"},
            "ready_url": "http://127.0.0.1:{port}/health",
        },
    )
    adapter.start(_context())
    try:
        result = adapter.invoke(CASE, VARIANT, _call())
    finally:
        adapter.stop()
    assert (result.error, result.output) == (None, "3")


def test_two_variants_get_their_own_servers(
    server_folder: Path, adapters: list[HttpAdapter]
) -> None:
    system = {
        "url": "http://127.0.0.1:{port}/",
        "output": "$.output",
        "server": {"command": ["{python}", "srv/server.py", "{port}"], "env": {"GREETING": "hi"}},
    }
    first = _adapter(adapters, server_folder, **system)
    second = _adapter(adapters, server_folder, **system)
    first.start(_context(Variant(name="a")))
    second.start(_context(Variant(name="b")))
    assert first.url != second.url
    assert first.invoke(CASE, VARIANT, _call()).output == "hi what is 2 + 2?"
    assert second.invoke(CASE, VARIANT, _call()).output == "hi what is 2 + 2?"


def test_server_that_exits_early_reports_code_and_stderr(
    tmp_path: Path, adapters: list[HttpAdapter]
) -> None:
    adapter = _adapter(
        adapters,
        tmp_path,
        url="http://127.0.0.1:{port}/",
        server={
            "command": [
                "{python}",
                "-c",
                "import sys; print('starting on', sys.argv[1]); "
                "sys.stderr.write('boom: no config file\\n'); sys.exit(3)",
                "{port}",
            ]
        },
    )
    with pytest.raises(SystemStartError) as raised:
        adapter.start(_context())
    message = str(raised.value)
    assert "exited with code 3" in message
    assert "boom: no config file" in message and "starting on" in message
    adapter.stop()  # safe after a failed start
    result = adapter.invoke(CASE, VARIANT, _call())
    assert result.error is not None and "not running" in result.error


def test_server_never_ready_is_killed(tmp_path: Path, adapters: list[HttpAdapter]) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    adapter = _adapter(
        adapters,
        tmp_path,
        url="http://127.0.0.1:{port}/",
        server={"command": ["{python}", "-c", script], "ready_timeout_s": 1.0},
    )
    with pytest.raises(SystemStartError, match=r"was not ready at 127\.0\.0\.1:\d+ within 1s"):
        adapter.start(_context())
    assert _wait_dead(int(pid_file.read_text()))


def test_stop_ends_the_server_and_its_children(tmp_path: Path, adapters: list[HttpAdapter]) -> None:
    child_file = tmp_path / "child"
    # The child ignores SIGTERM and outlives its parent's clean exit: only the
    # process-group SIGKILL reaches it.
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    parent = textwrap.dedent(
        f"""
        import socket, subprocess, sys
        proc = subprocess.Popen([sys.executable, "-c", {child!r}])
        open({str(child_file)!r}, "w").write(str(proc.pid))
        sock = socket.socket()
        sock.bind(("127.0.0.1", int(sys.argv[1])))
        sock.listen()
        while True:
            sock.accept()[0].close()
        """
    )
    adapter = _adapter(
        adapters,
        tmp_path,
        url="http://127.0.0.1:{port}/",
        server={"command": ["{python}", "-c", parent, "{port}"], "stop_timeout_s": 2},
    )
    adapter.start(_context())
    assert adapter.server is not None and adapter.server.process is not None
    pid = adapter.server.process.pid
    child_pid = int(child_file.read_text())
    assert _alive(pid) and _alive(child_pid)
    adapter.stop()
    assert not _alive(pid)
    assert _wait_dead(child_pid)
    adapter.stop()  # twice is fine


def test_unknown_server_placeholder_is_a_config_error(
    tmp_path: Path, adapters: list[HttpAdapter]
) -> None:
    with pytest.raises(ConfigError, match=r"server.command: unknown placeholder \{prot\}"):
        _adapter(
            adapters,
            tmp_path,
            url="http://127.0.0.1:{port}/",
            server={"command": ["{python}", "-c", "pass", "{prot}"]},
        )
    with pytest.raises(ConfigError, match=r"server.cwd: .*nowhere is not a directory"):
        _adapter(
            adapters,
            tmp_path,
            url="http://127.0.0.1:{port}/",
            server={"command": ["{python}"], "cwd": "nowhere"},
        )


def test_factory_makes_the_adapter_and_stop_without_start_is_safe(
    tmp_path: Path, store: Store
) -> None:
    adapter = adapter_for(_system(url="http://127.0.0.1:1/"), tmp_path, store)
    assert isinstance(adapter, HttpAdapter)
    adapter.stop()
    assert adapter.server is None
