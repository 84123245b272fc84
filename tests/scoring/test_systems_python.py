"""The ``python`` system: calling an in-process function, and routing its spans per variant."""

import importlib
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracescore.instrumentation import env_from_context, with_case_baggage
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, PythonSystem, Variant
from tracescore.scoring.systems.base import CallContext, Invocation, VariantContext
from tracescore.scoring.systems.python_function import PythonAdapter
from tracescore.scoring.systems.routing import (
    RoutingTracerProvider,
    install_routing,
    use_provider,
)

SUPPORT = Path(__file__).parents[1] / "support"
REPO = Path(__file__).parents[2]
VARIANT = Variant(name="v1")


class Sink:
    """A variant's provider, its spans kept in memory."""

    def __init__(self, variant: str) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "sut", "tracescore.variant": variant})
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def names(self) -> list[str]:
        return sorted(s.name for s in self.spans())


@pytest.fixture
def sink() -> Iterator[Sink]:
    made = Sink("v1")
    yield made
    made.provider.shutdown()


class Harness:
    """The runner's part: a harness span per case, whose context the adapter gets."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("harness")

    def call(self, adapter: PythonAdapter, case: Case) -> tuple[Invocation, trace.SpanContext]:
        with self.tracer.start_as_current_span("tracescore.case " + case.id) as span:
            ctx = with_case_baggage("run-1", case.id)
            call = CallContext(
                otlp_endpoint="http://127.0.0.1:9",
                trace_env=env_from_context(ctx),
                resource_attributes={"tracescore.variant": VARIANT.name},
            )
            return adapter.invoke(case, VARIANT, call), span.get_span_context()


def adapter(function: str, sink: Sink, **settings: object) -> PythonAdapter:
    system = PythonSystem.model_validate({"type": "python", "function": function, **settings})
    made = PythonAdapter(system, SUPPORT)
    made.start(
        VariantContext(
            variant=VARIANT,
            otlp_endpoint="http://127.0.0.1:9",
            resource_attributes={"tracescore.variant": "v1"},
            tracer_provider=sink.provider,
        )
    )
    return made


def case(text: str = "hello world", case_id: str = "c1") -> Case:
    return Case(id=case_id, input=text, expected={"answer": "x"})


def test_function_spans_join_the_case_trace_under_the_variant(sink: Sink) -> None:
    harness = Harness()
    sut = adapter("python_sut:answer", sink)
    try:
        result, parent = harness.call(sut, case("hi"))
    finally:
        sut.stop()
    assert result.output == "echo: hi"
    assert result.error is None
    spans = {s.name: s for s in sink.spans()}
    assert sorted(spans) == ["invoke_agent echo", "lookup"]
    agent = spans["invoke_agent echo"]
    assert agent.context is not None and agent.parent is not None
    assert agent.context.trace_id == parent.trace_id
    assert agent.parent.span_id == parent.span_id
    assert spans["lookup"].parent is not None
    assert spans["lookup"].parent.span_id == agent.context.span_id
    assert agent.resource.attributes["tracescore.variant"] == "v1"
    # Nothing leaked into the harness's own provider.
    assert [s.name for s in harness.exporter.get_finished_spans()] == ["tracescore.case c1"]


def test_case_annotated_parameter_gets_the_case_and_dicts_become_json(sink: Sink) -> None:
    sut = adapter("python_sut:answer_case", sink)
    try:
        result, _ = Harness().call(sut, case("q", case_id="case-7"))
    finally:
        sut.stop()
    assert json.loads(result.output) == {
        "id": "case-7",
        "input": "q",
        "expected": {"answer": "x"},
    }


def test_async_function_runs_and_traces(sink: Sink) -> None:
    sut = adapter("python_sut:answer_async", sink)
    try:
        result, parent = Harness().call(sut, case("quiet"))
    finally:
        sut.stop()
    assert result.output == "QUIET"
    [span] = sink.spans()
    assert span.name == "async work"
    assert span.parent is not None and span.parent.span_id == parent.span_id


def test_decorator_applied_at_import_routes_per_call(sink: Sink) -> None:
    sut = adapter("python_sut:decorated", sink)
    try:
        result, parent = Harness().call(sut, case("a b c"))
    finally:
        sut.stop()
    assert json.loads(result.output) == ["a", "b", "c"]
    [span] = sink.spans()
    assert span.name == "decorated"
    assert span.parent is not None and span.parent.span_id == parent.span_id


def test_baggage_reaches_the_function(sink: Sink) -> None:
    sut = adapter("python_sut:case_id_from_baggage", sink)
    try:
        result, _ = Harness().call(sut, case(case_id="bag-1"))
    finally:
        sut.stop()
    assert result.output == "bag-1"


def test_nested_attribute_path(sink: Sink) -> None:
    sut = adapter("python_sut:Agent.run", sink)
    try:
        result, _ = Harness().call(sut, case("abc"))
    finally:
        sut.stop()
    assert result.output == "cba"


def test_exception_is_a_non_transient_error_with_its_location(sink: Sink) -> None:
    sut = adapter("python_sut:fails", sink)
    try:
        result, _ = Harness().call(sut, case("x"))
    finally:
        sut.stop()
    error = result.error
    assert error is not None
    assert error.startswith("ValueError: cannot answer 'x' (at ")
    assert "python_sut.py:" in error and "in fails" in error
    assert result.transient is False
    [span] = sink.spans()
    assert span.status.status_code == trace.StatusCode.ERROR


def test_timeout_is_transient_and_the_thread_finishes_later(sink: Sink) -> None:
    sut = adapter("python_sut:hangs", sink, timeout_s=0.2)
    # The module the adapter imported from system.path.
    python_sut = importlib.import_module("python_sut")
    python_sut.RELEASE.clear()
    try:
        result, _ = Harness().call(sut, case("slow"))
        assert result.error == "SUT timed out after 0.2s"
        assert result.transient is True
        assert sink.spans() == []
    finally:
        python_sut.RELEASE.set()
        sut.stop()
    # The abandoned call still ends, and its span still reaches the variant.
    for thread in threading.enumerate():
        if thread.name == "tracescore-sut-c1":
            thread.join(10)
    assert sink.names() == ["hanging"]


def test_sys_exit_in_the_function_is_an_error_not_a_lost_case(sink: Sink) -> None:
    sut = adapter("python_sut:exits", sink)
    try:
        result, _ = Harness().call(sut, case())
    finally:
        sut.stop()
    assert result.error is not None and result.error.startswith("SystemExit: 3 (at ")
    assert result.transient is False


@pytest.mark.parametrize(
    ("function", "cause"),
    [
        ("no_such_module_xyz:run", "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
        ("python_sut:missing", "'python_sut' has no attribute 'missing'"),
        ("python_sut:Agent.nope", "'python_sut' has no attribute 'Agent.nope'"),
        ("python_sut:not_callable", "int object is not callable"),
    ],
)
def test_bad_function_is_a_config_error_at_start(sink: Sink, function: str, cause: str) -> None:
    system = PythonSystem(type="python", function=function)
    sut = PythonAdapter(system, SUPPORT)  # construction imports nothing
    context = VariantContext(
        variant=VARIANT,
        otlp_endpoint="http://127.0.0.1:9",
        resource_attributes={},
        tracer_provider=sink.provider,
    )
    with pytest.raises(ConfigError) as raised:
        sut.start(context)
    sut.stop()
    assert function in str(raised.value)
    assert cause in str(raised.value)


def test_module_that_fails_on_import_is_a_config_error(sink: Sink, tmp_path: Path) -> None:
    (tmp_path / "broken_sut_mod.py").write_text("raise RuntimeError('no config file')\n")
    system = PythonSystem(type="python", function="broken_sut_mod:run")
    sut = PythonAdapter(system, tmp_path)
    context = VariantContext(VARIANT, "http://127.0.0.1:9", {}, sink.provider)
    with pytest.raises(ConfigError, match="RuntimeError: no config file"):
        sut.start(context)
    sut.stop()
    assert str(tmp_path.resolve()) not in sys.path


def test_path_entries_are_relative_and_removed_at_stop(sink: Sink, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "pathed_sut_mod.py").write_text(
        "from opentelemetry import trace\n"
        "def run(text):\n"
        "    with trace.get_tracer('m').start_as_current_span('pathed'):\n"
        "        return len(text)\n"
    )
    system = PythonSystem(type="python", function="pathed_sut_mod:run", path=["lib"])
    first, second = PythonAdapter(system, tmp_path), PythonAdapter(system, tmp_path)
    context = VariantContext(VARIANT, "http://127.0.0.1:9", {}, sink.provider)
    first.start(context)
    second.start(context)
    assert sys.path.count(str(lib.resolve())) == 1
    result, _ = Harness().call(second, case("four"))
    assert result.output == "4"
    first.stop()
    # Still in use by the second adapter.
    assert str(lib.resolve()) in sys.path
    second.stop()
    assert str(lib.resolve()) not in sys.path


def test_routing_sends_concurrent_spans_to_each_threads_provider() -> None:
    routing = install_routing()
    assert trace.get_tracer_provider() is routing
    assert install_routing() is routing  # idempotent
    tracer = trace.get_tracer("shared")
    sinks = {name: Sink(name) for name in ("a", "b")}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with use_provider(sinks[name].provider):
            barrier.wait(10)
            for i in range(20):
                with tracer.start_as_current_span(f"{name}-{i}"):
                    pass

    threads = [threading.Thread(target=work, args=(n,)) for n in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for name, sink in sinks.items():
        assert sink.names() == sorted(f"{name}-{i}" for i in range(20))
        sink.provider.shutdown()
    # Outside use_provider, spans go nowhere (non-recording).
    with tracer.start_as_current_span("stray") as stray:
        assert not stray.is_recording()


def test_routing_provider_is_an_api_tracer_provider() -> None:
    assert isinstance(RoutingTracerProvider(), trace.TracerProvider)


def _run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_tracer_taken_before_routing_was_installed_still_routes() -> None:
    # A fresh process: the global provider can be set once, and this test needs it unset.
    done = _run_script(
        """
        import json, threading
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        early = trace.get_tracer("early")  # a proxy, before any provider exists
        from tracescore.scoring.systems.routing import install_routing, use_provider
        install_routing()
        exporters = {n: InMemorySpanExporter() for n in ("a", "b")}
        providers = {}
        for name, exporter in exporters.items():
            providers[name] = TracerProvider()
            providers[name].add_span_processor(SimpleSpanProcessor(exporter))

        def work(name):
            with use_provider(providers[name]):
                for i in range(10):
                    with early.start_as_current_span(f"{name}{i}"):
                        pass

        threads = [threading.Thread(target=work, args=(n,)) for n in exporters]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(json.dumps({n: sorted(s.name for s in e.get_finished_spans())
                          for n, e in exporters.items()}))
        """
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found == {n: sorted(f"{n}{i}" for i in range(10)) for n in ("a", "b")}


def test_a_global_provider_set_before_start_is_a_config_error() -> None:
    done = _run_script(
        """
        from pathlib import Path
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from tracescore.schemas.errors import ConfigError
        from tracescore.schemas.suite import PythonSystem, Variant
        from tracescore.scoring.systems.base import VariantContext
        from tracescore.scoring.systems.python_function import PythonAdapter

        trace.set_tracer_provider(TracerProvider())
        system = PythonSystem(type="python", function="python_sut:answer")
        adapter = PythonAdapter(system, Path("tests/support"))
        try:
            adapter.start(VariantContext(Variant(name="v"), "http://x", {}, TracerProvider()))
        except ConfigError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "global OpenTelemetry TracerProvider" in done.stdout
    assert "opentelemetry.sdk.trace.TracerProvider" in done.stdout
