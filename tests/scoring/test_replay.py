"""The ``replay`` system: stored traces chosen by id or query, scored as a suite's cases.

Traces reach the store the real way: the OTel SDK exports them over OTLP/HTTP to an
in-process receiver.
"""

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store import Store
from tracescore.schemas.attributes import EVALUATOR_SERVICE_NAME, HARNESS_SERVICE_NAME
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, ReplaySystem, Variant
from tracescore.scoring.config import load_suite, suite_from
from tracescore.scoring.runner import RunOptions, Shard, SuiteRunner
from tracescore.scoring.runs import load_run
from tracescore.scoring.systems import adapter_for
from tracescore.scoring.systems.base import CallContext
from tracescore.scoring.systems.replay import ReplayAdapter, since_cutoff_ns

HOUR_NS = 3600 * 10**9
VKEY = "tracescore.variant"
CALL = CallContext(otlp_endpoint="http://127.0.0.1:9", trace_env={}, resource_attributes={})


@dataclass(frozen=True)
class Sent:
    trace_id: str
    service: str
    variant: str
    age_h: float


@pytest.fixture
def receiver(pipeline: IngestPipeline) -> Iterator[HttpReceiver]:
    with HttpReceiver(pipeline) as running:
        yield running


def _send(
    receiver: HttpReceiver,
    pipeline: IngestPipeline,
    service: str,
    variant: str,
    age_h: float = 0.0,
    *,
    text: str = "",
    error: bool = False,
) -> Sent:
    """One agent trace (root + child) from ``service``/``variant``, started ``age_h`` ago."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, VKEY: variant}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer("replay-test")
    start = time.time_ns() - int(age_h * HOUR_NS)
    attributes = {"openinference.span.kind": "AGENT"}
    if text:
        attributes |= {"input.value": f"question {text}", "output.value": f"answer {text}"}
    root = tracer.start_span("agent", start_time=start, attributes=attributes)
    child = tracer.start_span(
        "step",
        context=set_span_in_context(root),
        start_time=start + 1000,
    )
    if error:
        child.set_status(Status(StatusCode.ERROR, "tool failed"))
    child.end(end_time=start + 2000)
    root.end(end_time=start + 3000)
    provider.shutdown()
    assert pipeline.flush()
    return Sent(format(root.get_span_context().trace_id, "032x"), service, variant, age_h)


def _variant(name: str) -> Variant:
    return Variant(name=name)


def _adapter(store: Store, **settings: object) -> ReplayAdapter:
    return ReplayAdapter(ReplaySystem.model_validate({"type": "replay", **settings}), store)


@pytest.fixture
def stored(receiver: HttpReceiver, pipeline: IngestPipeline) -> dict[str, Sent]:
    """Traces of two services and two variants at different ages, plus tracescore's own."""
    sent = {
        "agent-a-old": _send(receiver, pipeline, "agent", "a", age_h=48, text="old"),
        "agent-a-1": _send(receiver, pipeline, "agent", "a", age_h=3, text="one"),
        "agent-a-2": _send(receiver, pipeline, "agent", "a", age_h=1, text="two", error=True),
        "agent-b": _send(receiver, pipeline, "agent", "b", age_h=2, text="bee"),
        "other-a": _send(receiver, pipeline, "other", "a", age_h=0.5),
        "harness": _send(receiver, pipeline, HARNESS_SERVICE_NAME, "a", age_h=0.1),
        "judge": _send(receiver, pipeline, EVALUATOR_SERVICE_NAME, "a", age_h=0.1),
    }
    return sent


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


def test_query_picks_the_variants_traces_newest_first_without_tracescores_own(
    store: Store, stored: dict[str, Sent]
) -> None:
    cases = _adapter(store).replay_cases(_variant("a"), [], VKEY)
    assert _ids(cases) == [stored[k].trace_id for k in ("other-a", "agent-a-2", "agent-a-1")] + [
        stored["agent-a-old"].trace_id
    ]
    by_id = {c.id: c for c in cases}
    one = by_id[stored["agent-a-1"].trace_id]
    assert one.input == "question one"  # the root span's input.value
    assert one.metadata == {"trace_id": one.id}
    assert by_id[stored["other-a"].trace_id].input == ""

    b = _adapter(store).replay_cases(_variant("b"), [], VKEY)
    assert _ids(b) == [stored["agent-b"].trace_id]


def test_query_filters_service_since_limit_and_match_variant(
    store: Store, stored: dict[str, Sent]
) -> None:
    ids = {k: s.trace_id for k, s in stored.items()}
    recent = _adapter(store, service="agent", since="24h").replay_cases(_variant("a"), [], VKEY)
    assert _ids(recent) == [ids["agent-a-2"], ids["agent-a-1"]]

    limited = _adapter(store, service="agent", limit=1).replay_cases(_variant("a"), [], VKEY)
    assert _ids(limited) == [ids["agent-a-2"]]

    every_variant = _adapter(store, service="agent", match_variant=False, since="150m")
    assert _ids(every_variant.replay_cases(_variant("zzz"), [], VKEY)) == [
        ids["agent-a-2"],
        ids["agent-b"],
    ]


def test_no_matching_trace_is_a_config_error_naming_the_filters(
    store: Store, stored: dict[str, Sent]
) -> None:
    adapter = _adapter(store, service="agent", since="10m")
    with pytest.raises(ConfigError) as caught:
        adapter.replay_cases(_variant("a"), [], VKEY)
    message = str(caught.value)
    assert "no stored traces match service 'agent', started within 10m" in message
    assert f"{VKEY}=a" in message and store.location in message


def test_explicit_trace_ids_are_kept_in_order_and_not_filtered_by_variant(
    store: Store, stored: dict[str, Sent]
) -> None:
    wanted = [stored["agent-b"].trace_id, stored["agent-a-1"].trace_id.upper()]
    adapter = _adapter(store, trace_ids=wanted)
    cases = adapter.replay_cases(_variant("a"), [], VKEY)
    assert _ids(cases) == [t.lower() for t in wanted]
    assert cases[0].input == "question bee"

    with pytest.raises(ConfigError, match=r"system.trace_ids\[1\]: 'abc' is not a trace id"):
        _adapter(store, trace_ids=[stored["agent-b"].trace_id, "abc"])


def test_cases_naming_a_trace_are_kept_as_they_are(store: Store, stored: dict[str, Sent]) -> None:
    explicit = Case(
        id="refund",
        input="Refund order 7",
        expected={"contains": "bee"},
        metadata={"trace_id": stored["agent-b"].trace_id.upper(), "team": "support"},
    )
    other = Case(id="no-trace", input="x")
    # match_variant does not filter explicit ids: variant a replays variant b's trace.
    cases = _adapter(store).replay_cases(_variant("a"), [explicit, other], VKEY)
    assert len(cases) == 1
    (kept,) = cases
    assert (kept.id, kept.input, kept.expected) == ("refund", "Refund order 7", {"contains": "bee"})
    assert kept.metadata == {"trace_id": stored["agent-b"].trace_id, "team": "support"}

    bad = Case(id="typo", input="", metadata={"trace_id": "not-hex"})
    with pytest.raises(ConfigError, match=r"case 'typo': metadata\.trace_id: 'not-hex' is not"):
        _adapter(store).replay_cases(_variant("a"), [bad], VKEY)


def test_invoke_names_the_trace_and_reports_unknown_ones(
    store: Store, stored: dict[str, Sent]
) -> None:
    adapter = adapter_for(ReplaySystem(type="replay"), Path(), store)
    assert isinstance(adapter, ReplayAdapter) and adapter.replays
    known = Case(id="k", input="", metadata={"trace_id": stored["agent-a-1"].trace_id})
    invocation = adapter.invoke(known, _variant("a"), CALL)
    assert invocation.error is None and invocation.trace_id == stored["agent-a-1"].trace_id

    missing_id = "0123456789abcdef0123456789abcdef"
    missing = adapter.invoke(Case(id=missing_id, input=""), _variant("a"), CALL)
    assert missing.trace_id == missing_id
    assert missing.error == f"trace {missing_id} is not in {store.location}"
    assert not missing.transient


def test_since_cutoff() -> None:
    now = 10_000 * 10**9
    assert since_cutoff_ns("90s", now) == now - 90 * 10**9
    assert since_cutoff_ns("2h", now) == now - 7200 * 10**9
    assert since_cutoff_ns("1d", now) == now - 86_400 * 10**9
    with pytest.raises(ConfigError, match="expected a number and s, m, h or d"):
        since_cutoff_ns("2w", now)


def test_a_replay_suite_scores_stored_traces_through_the_runner(
    store: Store, stored: dict[str, Sent]
) -> None:
    suite = suite_from(
        {
            "suite": "replayed",
            "system": {"type": "replay", "service": "agent", "since": "24h"},
            "variants": [{"name": "a"}, {"name": "b"}],
            "evaluators": [
                {"type": "no_error_spans"},
                {"type": "contains_text", "params": {"text": "answer"}},
            ],
        },
        [],
    )
    record = SuiteRunner(suite, store).run()
    assert record.status == "finished"
    got = {(c.variant, c.case_id): c for c in record.cases}
    ids = {k: s.trace_id for k, s in stored.items()}
    assert set(got) == {("a", ids["agent-a-2"]), ("a", ids["agent-a-1"]), ("b", ids["agent-b"])}
    failing = got[("a", ids["agent-a-2"])]
    assert failing.trace_id == ids["agent-a-2"] and failing.status == "failed"
    assert failing.output == "answer two" and failing.span_count == 2
    assert got[("a", ids["agent-a-1"])].status == "passed"
    assert got[("b", ids["agent-b"])].status == "passed"

    # Stored like any run, scores attached to the replayed traces.
    reloaded = load_run(store, record.run_id)
    passed = {c.case_id: c.status for c in reloaded.cases}
    assert passed[ids["agent-a-1"]] == "passed" and passed[ids["agent-a-2"]] == "failed"
    assert {s.evaluator for s in reloaded.cases[0].scores} == {"no_error_spans", "contains_text"}


def test_a_replay_suite_with_an_unknown_trace_records_an_error_case(
    store: Store, stored: dict[str, Sent]
) -> None:
    missing = "fedcba9876543210fedcba9876543210"
    suite = suite_from(
        {
            "suite": "replayed",
            "system": {"type": "replay"},
            "variants": [{"name": "a"}],
            "evaluators": [{"type": "no_error_spans"}],
        },
        [
            {"id": "known", "input": "q", "metadata": {"trace_id": stored["agent-a-1"].trace_id}},
            {"id": "gone", "input": "q", "metadata": {"trace_id": missing}},
        ],
    )
    record = SuiteRunner(suite, store).run()
    by_id = {c.case_id: c for c in record.cases}
    assert by_id["known"].status == "passed"
    assert by_id["gone"].status == "error"
    assert by_id["gone"].error == f"trace {missing} is not in {store.location}"


def test_the_readme_example_loads_without_a_cases_file(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### Replaying stored traces.*?```yaml\n(.*?)```", readme, re.S)
    assert block is not None
    (tmp_path / "eval.yaml").write_text(block.group(1))
    suite = load_suite(tmp_path / "eval.yaml")
    assert suite.cases == []
    assert isinstance(suite.config.system, ReplaySystem)
    assert (suite.config.system.service, suite.config.system.since) == ("support-agent", "24h")


def test_shards_and_case_filters_apply_to_the_traces_a_query_chose(
    store: Store, stored: dict[str, Sent]
) -> None:
    suite = suite_from(
        {
            "suite": "replayed",
            "system": {"type": "replay", "service": "agent", "since": "72h"},
            "variants": [{"name": "a"}],
            "evaluators": [{"type": "no_error_spans"}],
        },
        [],
    )
    newest_first = [stored[k].trace_id for k in ("agent-a-2", "agent-a-1", "agent-a-old")]
    shards = [
        SuiteRunner(suite, store).run(RunOptions(shard=Shard(i, 2), run_id="replay-shards"))
        for i in (1, 2)
    ]
    assert [c.case_id for c in shards[0].cases] == newest_first[0::2]
    assert [c.case_id for c in shards[1].cases] == newest_first[1::2]

    [only] = SuiteRunner(suite, store).run(RunOptions(case_ids=[newest_first[1]])).cases
    assert only.case_id == newest_first[1]
    with pytest.raises(ConfigError, match="no such case"):
        SuiteRunner(suite, store).run(RunOptions(case_ids=["0" * 32]))
