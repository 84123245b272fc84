"""Scores as OTel ``gen_ai.evaluation.result`` events: the real OTLP/HTTP log exporter into
tracescore's own receiver, stored in otel_logs beside the scored trace."""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store import Store
from tracescore.schemas.scores import Score
from tracescore.scoring.config import load_suite
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.runner import RunOptions, SuiteRunner
from tracescore.scoring.score_events import (
    ScoredTrace,
    ScoreEventEmitter,
    error_type,
    event_attributes,
    logs_url,
)
from tracescore.scoring.traces import load_traces

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


@pytest.fixture
def http_receiver(pipeline: IngestPipeline) -> Iterator[HttpReceiver]:
    with HttpReceiver(pipeline) as running:
        yield running


def _log_rows(store: Store, trace_id: str) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT TraceId, SpanId, TraceFlags, EventName, SeverityText, ServiceName, ScopeName, "
        f"LogAttributes, ResourceAttributes FROM {store.db}.otel_logs "
        f"WHERE TraceId = {{tid:String}} ORDER BY LogAttributes['gen_ai.evaluation.name']",
        {"tid": trace_id},
    )


def test_logs_url_appends_the_path_once() -> None:
    assert logs_url("http://h:4318") == "http://h:4318/v1/logs"
    assert logs_url("http://h:4318/") == "http://h:4318/v1/logs"
    assert logs_url("http://h:4318/v1/logs") == "http://h:4318/v1/logs"


def test_error_type_is_a_low_cardinality_class() -> None:
    assert error_type(Score.failure("e", "trace has no final output: looked")) == "missing_field"
    crashed = Score.failure("e", "evaluator crashed: KeyError: 'x'")
    assert error_type(crashed) == "KeyError"
    assert error_type(Score.failure("e", "judge timed out")) == "_OTHER"


def test_attributes_leave_out_what_the_score_lacks() -> None:
    where = ScoredTrace(TRACE_ID, SPAN_ID)
    skipped = event_attributes(Score.skip("exact", "case has no expected.output"), where)
    assert skipped == {
        "gen_ai.evaluation.name": "exact",
        "gen_ai.evaluation.score.label": "skipped",
        "gen_ai.evaluation.explanation": "case has no expected.output",
        "tracescore.score.skipped": True,
    }


def test_scores_are_stored_as_evaluation_events_on_the_scored_trace(
    store: Store, pipeline: IngestPipeline, http_receiver: HttpReceiver
) -> None:
    where = ScoredTrace(TRACE_ID, SPAN_ID, run_id="run-1", case_id="c1", variant="v2")
    passed = Score(evaluator="answer", value=0.75, passed=True, label="pass", explanation="ok")
    crashed = Score.failure("judge", "evaluator crashed: ValueError: bad rubric")
    with ScoreEventEmitter(http_receiver.endpoint, version="9.9") as emitter:
        emitter.emit(passed, where, "contains_text")
        emitter.emit(crashed, where, "llm_judge")
        assert emitter.flush()
    assert pipeline.flush()

    answer, judge = _log_rows(store, TRACE_ID)
    for row in (answer, judge):
        assert (row["TraceId"], row["SpanId"], row["TraceFlags"]) == (TRACE_ID, SPAN_ID, 1)
        assert row["EventName"] == "gen_ai.evaluation.result"
        assert row["ServiceName"] == "tracescore-harness"
        assert row["ScopeName"] == "tracescore.scoring"
    assert answer["SeverityText"] == "INFO"
    assert dict(answer["LogAttributes"]) == {
        "gen_ai.evaluation.name": "answer",
        "gen_ai.evaluation.score.value": "0.75",
        "gen_ai.evaluation.score.label": "pass",
        "gen_ai.evaluation.explanation": "ok",
        "tracescore.score.passed": "true",
        "tracescore.evaluator.type": "contains_text",
        "tracescore.run_id": "run-1",
        "tracescore.case_id": "c1",
        "tracescore.variant": "v2",
    }
    assert judge["SeverityText"] == "WARN"
    attributes = dict(judge["LogAttributes"])
    assert attributes["error.type"] == "ValueError"
    assert attributes["tracescore.score.error"] == "evaluator crashed: ValueError: bad rubric"
    assert attributes["gen_ai.evaluation.score.label"] == "error"
    assert "gen_ai.evaluation.score.value" not in attributes

    # Loading the trace for scoring reads them back as its log records.
    logs = load_traces(store, [TRACE_ID])[TRACE_ID].logs
    assert sorted(r.attributes["gen_ai.evaluation.name"] for r in logs) == ["answer", "judge"]
    assert {(r.event_name, r.span_id) for r in logs} == {("gen_ai.evaluation.result", SPAN_ID)}


def test_runner_sends_each_score_to_its_own_receiver_on_the_harness_span(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "cases.yaml").write_text(
        yaml.safe_dump(
            [{"id": "multiply", "input": "What is 17 * 23?", "expected": {"contains": "391"}}]
        )
    )
    (tmp_path / "eval.yaml").write_text(
        yaml.safe_dump(
            {
                "suite": "events",
                "system": {
                    "type": "command",
                    "command": [sys.executable, str(REPO / "configs/demo/agent.py"), "{input}"],
                },
                "variants": [{"name": "strong", "env": {"DEMO_AGENT_SKILL": "strong"}}],
                "evaluators": [
                    {"name": "answer", "type": "contains_text"},
                    {"name": "cost", "type": "cost_under", "params": {"max_usd": 1.0}},
                ],
                "prices": {"scripted-llm-1": {"input": 1000.0, "output": 2000.0}},
                "score_events": {"enabled": True},
            }
        )
    )
    suite = load_suite(tmp_path / "eval.yaml")
    run = SuiteRunner(suite, store).run(RunOptions())
    [case] = run.cases
    assert case.status == "passed", (case.error, case.scores)
    prices = PriceTable.with_overrides(suite.config.prices)
    trace = load_traces(store, [case.trace_id], prices)[case.trace_id]
    [harness] = [s for s in trace.spans if s.name == "tracescore.case multiply"]
    cost = next(s for s in case.scores if s.evaluator == "cost")
    assert cost.value == pytest.approx(trace.cost_usd)
    assert trace.cost_usd is not None and trace.cost_usd > 0

    answer_row, cost_row = _log_rows(store, case.trace_id)
    assert {answer_row["SpanId"], cost_row["SpanId"]} == {harness.span_id}
    assert dict(cost_row["ResourceAttributes"])["tracescore.suite"] == "events"
    attributes = dict(cost_row["LogAttributes"])
    assert attributes["gen_ai.evaluation.name"] == "cost"
    assert float(attributes["gen_ai.evaluation.score.value"]) == pytest.approx(trace.cost_usd)
    assert attributes["tracescore.run_id"] == run.run_id
    assert attributes["tracescore.case_id"] == "multiply"
    assert attributes["tracescore.variant"] == "strong"
    assert dict(answer_row["LogAttributes"])["gen_ai.evaluation.score.label"] == "pass"
