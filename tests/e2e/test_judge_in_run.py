"""An LLM judge in a suite run: scored through the anthropic SDK against a stand-in
Messages API, its own call stored as a span beside the run's traces."""

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.standin_llm import StandinLLM, anthropic_message
from tracescore.collector.store import Store
from tracescore.schemas import attributes as attr
from tracescore.scoring.config import load_suite
from tracescore.scoring.runner import SuiteRunner

REPO = Path(__file__).resolve().parents[2]


def judge_reply(path: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    verdict = {"reasoning": "The answer is the product.", "score": 1.0}
    return 200, anthropic_message(
        [{"type": "tool_use", "id": "toolu_9", "name": "record_score", "input": verdict}],
        model=request["model"],
        input_tokens=120,
        output_tokens=30,
        stop_reason="tool_use",
    )


def test_judge_scores_a_case_and_its_call_is_stored_as_a_span(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    (tmp_path / "cases.yaml").write_text(
        yaml.safe_dump([{"id": "multiply", "input": "What is 17 * 23?"}])
    )
    with StandinLLM(judge_reply) as llm:
        (tmp_path / "eval.yaml").write_text(
            yaml.safe_dump(
                {
                    "suite": "judged",
                    "system": {
                        "type": "command",
                        "command": [sys.executable, str(REPO / "configs/demo/agent.py"), "{input}"],
                    },
                    "variants": [{"name": "strong", "env": {"DEMO_AGENT_SKILL": "strong"}}],
                    "evaluators": [
                        {
                            "type": "llm_judge",
                            "params": {
                                "rubric": "Gives the correct product.",
                                "base_url": llm.base_url,
                                "cache_dir": str(tmp_path / "cache"),
                            },
                        }
                    ],
                }
            )
        )
        runner = SuiteRunner(load_suite(tmp_path / "eval.yaml"), store)
        run = runner.run()
        assert len(llm.requests) == 1
    # The judge's own trace arrived too, but only the case's was tracked, then forgotten.
    assert len(runner.tracker) == 0
    [case] = run.cases
    [score] = case.scores
    assert (score.passed, score.value, score.error) == (True, 1.0, None)
    assert "17 * 23" in str(llm.requests[0][1]["messages"])

    rows = store.query(
        f"SELECT SpanName, SpanAttributes, Links.TraceId AS LinkTraces FROM {store.db}.otel_traces"
        " WHERE ServiceName = {service:String}",
        {"service": attr.EVALUATOR_SERVICE_NAME},
    )
    [row] = rows
    assert row["SpanName"] == "chat claude-sonnet-5-5"
    attributes = dict(row["SpanAttributes"])
    assert attributes["gen_ai.usage.input_tokens"] == "120"
    assert attributes["tracescore.scored.trace_id"] == case.trace_id
    assert list(row["LinkTraces"]) == [case.trace_id]
