"""score_stored: stored traces scored in batches, in this process or in worker processes."""

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tracescore.collector.spans_decode import SpanColumns
from tracescore.collector.store import QueryParams, Store
from tracescore.schemas.ddl import LOGS_TABLE
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import LogRecord
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import Trace
from tracescore.scoring.batch import BatchScoringError, ScoringPool, TraceScores, score_stored
from tracescore.scoring.evaluators import Evaluator, build_evaluator, isolated_registry, register
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.traces import load_traces

BASE_NS = 1_700_000_000 * 10**9
RESOURCE = [("service.name", "agent"), ("tracescore.variant", "a")]

SPECS = [
    EvaluatorSpec(type="contains_text"),
    EvaluatorSpec(type="tool_called"),
    EvaluatorSpec(type="no_error_spans"),
    EvaluatorSpec(type="span_count", params={"min": 4}),
    EvaluatorSpec(type="tokens_under"),
    EvaluatorSpec(type="cost_under"),
]
CASE = Case(
    id="c1",
    input="weather?",
    expected={
        "contains": ["sunny"],
        "tools": ["get_weather"],
        "max_tokens": 5_000,
        "max_cost_usd": 0.01,
    },
)
PARENT = os.getpid()


def trace_id(n: int) -> str:
    return f"{n:032x}"


def add_trace(columns: SpanColumns, n: int) -> None:
    """An agent root, a chat span with usage and messages, a tool span; n % 3 == 0 adds a
    failing tool span, so traces differ in their scores."""
    spans = 4 if n % 3 == 0 else 3
    for i in range(spans):
        start = BASE_NS + n * 10**9 + i * 1_000_000
        if i == 0:
            name, kind = "invoke_agent helper", "Internal"
            attributes = [
                ("gen_ai.operation.name", "invoke_agent"),
                ("gen_ai.agent.name", "helper"),
                ("gen_ai.output.messages", _reply(f"It is sunny in city {n}.")),
            ]
        elif i == 1:
            name, kind = "chat gpt-4o", "Client"
            attributes = [
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.provider.name", "openai"),
                ("gen_ai.response.model", "gpt-4o-2024-08-06"),
                ("gen_ai.usage.input_tokens", str(1000 * n)),
                ("gen_ai.usage.output_tokens", "100"),
            ]
        else:
            name, kind = "execute_tool get_weather", "Internal"
            attributes = [
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.tool.name", "get_weather"),
                ("gen_ai.tool.call.id", f"call_{n}_{i}"),
            ]
        failing = i == 3
        columns.add_span(
            timestamp=start,
            trace_id=trace_id(n),
            span_id=f"{n:08x}{i:08x}",
            parent_span_id="" if i == 0 else f"{n:08x}{0:08x}",
            name=name,
            kind=kind,
            service_name="agent",
            resource_attributes=RESOURCE if n % 2 else [*RESOURCE, ("odd", "no")],
            scope_name="test",
            scope_version="1",
            attributes=attributes,
            duration=5_000_000 - i,
            status_code="Error" if failing else "Unset",
            status_message="boom" if failing else "",
        )


def _reply(text: str) -> str:
    return f'[{{"role": "assistant", "parts": [{{"type": "text", "content": "{text}"}}]}}]'


def add_logs(store: Store, n: int) -> None:
    """Two log records of trace n (GenAI events sent as logs)."""
    tid = trace_id(n)
    store.insert_arrow(
        LOGS_TABLE,
        pa.table(
            {
                "Timestamp": pa.array(
                    [BASE_NS + n * 10**9 + 5, BASE_NS + n * 10**9 + 6],
                    pa.timestamp("ns", tz="UTC"),
                ),
                "TraceId": [tid, tid],
                "SpanId": [f"{n:08x}{1:08x}"] * 2,
                "EventName": ["gen_ai.user.message", "gen_ai.choice"],
                "Body": ['{"content": "weather?"}', '{"message": {"content": "sunny"}}'],
                "LogAttributes": pa.array(
                    [[("gen_ai.system", "openai")], []], pa.map_(pa.string(), pa.string())
                ),
                "ServiceName": ["agent", "agent"],
                "ScopeName": ["test", "test"],
            }
        ),
    )


@pytest.fixture
def stored(store: Store) -> list[str]:
    """Seven traces, inserted out of order; traces 2 and 5 have log records too."""
    columns = SpanColumns()
    for n in (4, 1, 7, 2, 6, 3, 5):
        add_trace(columns, n)
    store.insert_spans(columns)
    add_logs(store, 2)
    add_logs(store, 5)
    return [trace_id(n) for n in range(1, 8)]


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    with isolated_registry():
        yield


def one_by_one(store: Store, ids: list[str], case: Case = CASE) -> dict[str, list[Score]]:
    evaluators = [build_evaluator(spec) for spec in SPECS]
    traces = load_traces(store, ids, PriceTable.with_overrides())
    return {tid: [e.safe_score(t, case) for e in evaluators] for tid, t in traces.items()}


@pytest.mark.parametrize("workers", [1, 2])
def test_scores_are_those_of_load_traces_scored_one_by_one(
    store: Store, stored: list[str], workers: int
) -> None:
    unknown = "f" * 32
    # Reversed, with an unknown id and a duplicate; batches of 3 split across 2 workers.
    ids = [*reversed(stored), unknown, stored[0]]
    results = list(score_stored(store, ids, SPECS, CASE, None, batch_size=3, workers=workers))

    assert [r.trace_id for r in results] == [*reversed(stored), unknown]
    expected = one_by_one(store, [*stored, unknown])
    assert {r.trace_id: r.scores for r in results} == expected
    assert any(s.passed is False for r in results for s in r.scores)  # traces differ

    traces = load_traces(store, stored)
    for result in results[:-1]:
        trace = traces[result.trace_id]
        assert result.found
        assert result.span_count == len(trace.spans)
        assert result.root_span_id == trace.roots[0].span.span_id
        assert result.duration_ns == trace.duration_ns > 0
        assert (result.input_tokens, result.output_tokens) == (
            trace.input_tokens,
            trace.output_tokens,
        )
        assert result.cost_usd == trace.cost_usd is not None
        assert result.error_span_count == len(trace.error_spans)
        assert result.error is None
    missing = results[-1]
    assert not missing.found and missing.root_span_id == "" and missing.cost_usd is None


def test_log_records_reach_the_rebuilt_traces(store: Store, stored: list[str]) -> None:
    logs = store.fetch_logs([stored[1], stored[0]])
    assert [len(logs[stored[1]]), len(logs[stored[0]])] == [2, 0]
    first = logs[stored[1]][0]
    assert first == LogRecord(
        trace_id=stored[1],
        span_id=f"{2:08x}{1:08x}",
        timestamp_ns=BASE_NS + 2 * 10**9 + 5,
        event_name="gen_ai.user.message",
        body='{"content": "weather?"}',
        attributes={"gen_ai.system": "openai"},
        service_name="agent",
        scope_name="test",
    )
    traces = load_traces(store, [stored[1]])
    assert len(traces[stored[1]].logs) == 2


def test_spans_of_a_batch_share_equal_resource_maps(store: Store, stored: list[str]) -> None:
    spans = store.fetch_traces(stored[:2])
    first, second = spans[stored[0]], spans[stored[1]]
    assert first[0].resource_attributes is first[1].resource_attributes
    assert first[0].resource_attributes is not second[0].resource_attributes  # they differ
    assert second[0].resource_attributes == {**dict(RESOURCE), "odd": "no"}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_case_can_be_chosen_per_trace(store: Store, stored: list[str], workers: int) -> None:
    cases = {
        tid: CASE.model_copy(update={"id": tid, "expected": {"contains": [f"city {n + 1}."]}})
        for n, tid in enumerate(stored)
    }

    def case_for(trace: Trace) -> Case:
        return cases[trace.trace_id]

    results = list(score_stored(store, stored, SPECS[:1], case_for, workers=workers))
    assert [r.scores[0].passed for r in results] == [True] * len(stored)


class _Raises(Evaluator):
    type_name = "test_raises"

    def score(self, trace: Trace, case: Case) -> Score:
        raise RuntimeError(f"no luck with {trace.trace_id[-1]}")


class _ExitsInWorker(Evaluator):
    type_name = "test_exits_in_worker"

    def score(self, trace: Trace, case: Case) -> Score:
        if os.getpid() != PARENT:
            os._exit(3)  # a worker dying as if killed
        return self.verdict(True, "in the parent")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_evaluator_that_raises_gives_an_error_score(
    store: Store, stored: list[str], workers: int
) -> None:
    register(_Raises)  # a forked worker inherits the registration
    specs = [EvaluatorSpec(type="test_raises"), EvaluatorSpec(type="no_error_spans")]
    results = list(score_stored(store, stored[:3], specs, CASE, workers=workers))
    assert [r.scores[0].error for r in results] == [
        f"evaluator crashed: RuntimeError: no luck with {n}" for n in (1, 2, 3)
    ]
    assert [r.scores[1].passed for r in results] == [True, True, False]


def test_a_worker_that_dies_raises_instead_of_hanging(store: Store, stored: list[str]) -> None:
    register(_ExitsInWorker)
    specs = [EvaluatorSpec(type="test_exits_in_worker")]
    with pytest.raises(BatchScoringError, match="worker process died"):
        list(score_stored(store, stored, specs, CASE, batch_size=2, workers=2))
    assert multiprocessing.active_children() == []
    # Inline, the same evaluator runs in this process and passes.
    inline = list(score_stored(store, stored, specs, CASE, workers=1))
    assert all(r.scores[0].passed for r in inline)


def test_bad_specs_fail_before_anything_is_fetched(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries: list[str] = []
    original = store.query_arrow

    def recording(sql: str, params: QueryParams | None = None) -> pa.Table:
        queries.append(sql)
        return original(sql, params)

    monkeypatch.setattr(store, "query_arrow", recording)
    with pytest.raises(ConfigError, match="unknown evaluator type 'nope'"):
        score_stored(store, ["a" * 32], [EvaluatorSpec(type="nope")], CASE, workers=2)
    assert queries == []


def test_results_arrive_in_order_batch_by_batch_and_an_early_stop_ends_the_pool(
    store: Store, stored: list[str]
) -> None:
    results = score_stored(store, stored, SPECS, CASE, batch_size=2, workers=2)
    first: TraceScores = next(results)
    assert first.trace_id == stored[0]
    assert multiprocessing.active_children() != []
    results.close()
    assert multiprocessing.active_children() == []


def test_nothing_to_score(store: Store) -> None:
    assert list(score_stored(store, [], SPECS, CASE, workers=2)) == []


class _WhereAmI(Evaluator):
    """Passes, and says which process scored: the pool's workers must be the same ones
    from call to call."""

    type_name = "test_where_am_i"

    def score(self, trace: Trace, case: Case) -> Score:
        return self.verdict(True, str(os.getpid()))


class _DiesOnce(Evaluator):
    """Kills the worker the first time (a marker file remembers), then passes."""

    type_name = "test_dies_once"
    marker = ""

    def score(self, trace: Trace, case: Case) -> Score:
        marker = Path(self.marker)
        if os.getpid() != PARENT and not marker.exists():
            marker.touch()
            os._exit(3)
        return self.verdict(True, "scored")


def test_a_pool_keeps_its_workers_across_calls_each_with_its_own_evaluators(
    store: Store, stored: list[str]
) -> None:
    register(_WhereAmI)
    specs = [*SPECS, EvaluatorSpec(type="test_where_am_i")]
    where = len(specs) - 1
    inline = {r.trace_id: r for r in score_stored(store, stored, SPECS, CASE, workers=1)}
    with ScoringPool(specs, CASE, workers=2) as pool:
        first = list(pool.score(store, stored, only=(where, 0), batch_size=2))
        second = list(pool.score(store, stored[:4], only=(2, where), batch_size=2))
        workers = {str(child.pid) for child in multiprocessing.active_children()}
        assert len(workers) == 2
    assert multiprocessing.active_children() == []

    assert [r.trace_id for r in first] == stored
    assert [[s.evaluator for s in r.scores] for r in first] == [
        ["test_where_am_i", "contains_text"]
    ] * len(stored)
    assert [r.scores[1] for r in first] == [inline[t].scores[0] for t in stored]
    assert [r.scores[0] for r in second] == [inline[t].scores[2] for t in stored[:4]]
    # Both calls ran in the pool's two processes (which takes which batch is the
    # executor's choice): none was started for the second call.
    assert {r.scores[0].explanation for r in first} <= workers
    assert {r.scores[1].explanation for r in second} <= workers
    assert str(PARENT) not in workers


def test_a_pool_whose_worker_died_starts_new_ones_on_the_next_call(
    store: Store, stored: list[str], tmp_path: Path
) -> None:
    _DiesOnce.marker = str(tmp_path / "died")
    register(_DiesOnce)
    with ScoringPool([EvaluatorSpec(type="test_dies_once")], CASE, workers=2) as pool:
        with pytest.raises(BatchScoringError, match="worker process died"):
            list(pool.score(store, stored, batch_size=2))
        again = list(pool.score(store, stored, batch_size=2))
    assert [r.trace_id for r in again] == stored
    assert all(r.scores[0].passed for r in again)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_variant_is_read_from_the_spans_a_root_span_first(store: Store, workers: int) -> None:
    columns = SpanColumns()
    for i, (parent, variant) in enumerate([("", "root-v"), ("r", "child-v"), ("r", "")]):
        columns.add_span(
            timestamp=BASE_NS + (3 - i) * 1_000,  # the root starts last: still preferred
            trace_id=trace_id(90),
            span_id="r" if not parent else f"c{i}",
            parent_span_id=parent,
            name="step",
            kind="Internal",
            service_name="agent",
            resource_attributes=[("tracescore.variant", variant)] if variant else [],
            scope_name="test",
            scope_version="1",
            attributes=[],
            duration=1,
        )
    columns.add_span(
        timestamp=BASE_NS,
        trace_id=trace_id(91),
        span_id="x",
        parent_span_id="gone",  # an orphan: no root, so any span's variant
        name="step",
        kind="Internal",
        service_name="agent",
        resource_attributes=[("tracescore.variant", "orphan-v")],
        scope_name="test",
        scope_version="1",
        attributes=[],
        duration=1,
    )
    store.insert_spans(columns)
    ids = [trace_id(90), trace_id(91), trace_id(92)]
    spec = [EvaluatorSpec(type="no_error_spans")]
    with ScoringPool(spec, CASE, workers=workers, variant_key="tracescore.variant") as pool:
        assert [r.variant for r in pool.score(store, ids)] == ["root-v", "orphan-v", ""]
    with ScoringPool(spec, CASE, workers=workers) as pool:
        assert [r.variant for r in pool.score(store, ids)] == ["", "", ""]
