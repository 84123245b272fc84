"""The whole path: harness span → SUT subprocess → OTLP/HTTP → chDB → reconstruct → scores."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tracescore.collector.store import Store
from tracescore.scoring.config import load_suite
from tracescore.scoring.runner import SuiteRunner

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo" / "eval.yaml"


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracescore.scoring", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _query(store_url: str, sql: str) -> list[dict[str, object]]:
    """Read a store that another process wrote (chDB locks a path to one process)."""
    script = textwrap.dedent(
        """
        import json, sys
        from tracescore.collector.store import open_store
        store = open_store(sys.argv[1])
        print(json.dumps(store.query(sys.argv[2]), default=str))
        store.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, store_url, sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


def test_demo_cli_prints_summary_stores_everything_and_exits_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRACESCORE_STORE"}
    done = subprocess.run(
        [sys.executable, "-m", "tracescore.scoring", "run", str(DEMO)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "Pass rate per evaluator" in out
    assert "capital-atlantis" in out and "output lacks 'Poseidonia'" in out
    assert "14 cases: 8 passed, 6 failed, 0 errors" in out
    # The default store is ./.tracescore in the working directory.
    assert (tmp_path / ".tracescore").is_dir()
    url = f"chdb:{tmp_path / '.tracescore'}"
    counts = _query(
        url,
        "SELECT (SELECT count() FROM otel.otel_traces) AS spans, "
        "(SELECT count() FROM otel.tracescore_scores FINAL) AS scores, "
        "(SELECT count() FROM otel.tracescore_case_results FINAL) AS cases, "
        "(SELECT count() FROM otel.tracescore_runs FINAL) AS runs",
    )[0]
    assert counts["cases"] == 14 and counts["runs"] == 1
    assert counts["scores"] == 14 * 3
    assert isinstance(counts["spans"], int) and counts["spans"] >= 14 * 3


def test_runner_scores_both_variants_from_real_spans(store: Store) -> None:
    suite = load_suite(DEMO)
    run = SuiteRunner(suite, store).run()
    by_variant: dict[str, dict[str, str]] = {}
    for case in run.cases:
        by_variant.setdefault(case.variant, {})[case.case_id] = case.status
    assert by_variant["strong"] == {
        "greet": "passed",
        "capital-france": "passed",
        "capital-japan": "passed",
        "multiply": "passed",
        "divide": "passed",
        "weather-lisbon": "passed",
        "capital-atlantis": "failed",
    }
    assert sum(s == "passed" for s in by_variant["weak"].values()) == 2
    assert by_variant["weak"]["multiply"] == "failed"

    multiply = next(c for c in run.cases if c.case_id == "multiply" and c.variant == "strong")
    spans = store.fetch_trace(multiply.trace_id)
    names = sorted(s.name for s in spans)
    assert names == [
        "chat scripted-llm-1",
        "chat scripted-llm-1",
        "execute_tool calculator",
        "invoke_agent demo-agent",
        "tracescore.case multiply",
    ]
    # One trace: every SUT span hangs under the harness root, tagged with the variant.
    root = next(s for s in spans if s.name.startswith("tracescore.case"))
    assert root.attributes["tracescore.run_id"] == run.run_id
    assert root.attributes["tracescore.case_id"] == "multiply"
    agent = next(s for s in spans if s.name.startswith("invoke_agent"))
    assert agent.parent_span_id == root.span_id
    # Baggage crossed the process boundary with the trace context.
    assert agent.attributes["tracescore.case_id"] == "multiply"
    assert agent.attributes["tracescore.run_id"] == run.run_id
    assert {s.resource_attributes["tracescore.variant"] for s in spans} == {"strong"}
    assert {s.service_name for s in spans} == {"demo-agent", "tracescore-harness"}
    assert multiply.output == "17 * 23 = 391"
    assert multiply.input_tokens > 0 and multiply.output_tokens > 0

    scores = store.query(
        f"SELECT Evaluator, Passed, Explanation FROM {store.db}.tracescore_scores FINAL "
        f"WHERE TraceId = {{tid:String}} ORDER BY Evaluator",
        {"tid": multiply.trace_id},
    )
    assert [(r["Evaluator"], r["Passed"]) for r in scores] == [
        ("answer", True),
        ("exact", None),
        ("used_tools", True),
    ]
    runs = store.query(
        f"SELECT RunId, Status, CaseCount, PassedCount FROM {store.db}.tracescore_runs"
    )
    assert runs == [{"RunId": run.run_id, "Status": "finished", "CaseCount": 14, "PassedCount": 8}]


def _suite(tmp_path: Path, command: list[str], timeout_s: float = 30) -> Path:
    (tmp_path / "cases.yaml").write_text("- id: only\n  input: hi\n  expected: {contains: hi}\n")
    eval_yaml = tmp_path / "eval.yaml"
    eval_yaml.write_text(
        "suite: edge\n"
        f"system: {{type: command, command: {json.dumps(command)}, timeout_s: {timeout_s}}}\n"
        "variants: [{name: only}]\n"
        "evaluators: [{type: contains_text}]\n"
        "seal_timeout_s: 2\n"
    )
    return eval_yaml


def test_sut_that_emits_no_spans_gets_an_error_naming_the_endpoint(
    store: Store, tmp_path: Path
) -> None:
    suite = load_suite(_suite(tmp_path, ["{python}", "-c", "print('hi there')"]))
    run = SuiteRunner(suite, store).run()
    (case,) = run.cases
    assert case.status == "error"
    assert case.error is not None
    assert "the SUT emitted no spans" in case.error
    assert "http://127.0.0.1:" in case.error and "/v1/traces" in case.error
    assert case.scores == []


def test_sut_timeout_and_crash_are_errors_not_failures(store: Store, tmp_path: Path) -> None:
    slow = load_suite(_suite(tmp_path, ["{python}", "-c", "import time; time.sleep(30)"], 0.5))
    (case,) = SuiteRunner(slow, store).run().cases
    assert case.status == "error" and case.error == "SUT timed out after 0.5s"

    crash = load_suite(
        _suite(tmp_path, ["{python}", "-c", "import sys; sys.exit('agent fell over')"])
    )
    (case,) = SuiteRunner(crash, store).run().cases
    assert case.status == "error"
    assert case.error == "SUT exited with code 1: agent fell over"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("suite: demo\nsytem: {}\n", "eval.yaml:2: sytem: unknown field"),
        (
            "suite: demo\nsystem: {type: command, command: [x]}\nvariants: [{name: a}]\n"
            "evaluators:\n  - type: no_such_evaluator\n",
            "eval.yaml:5: evaluators[0].type: unknown evaluator type 'no_such_evaluator'",
        ),
    ],
)
def test_malformed_eval_yaml_is_one_line_and_exit_2(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    (tmp_path / "eval.yaml").write_text(yaml_text)
    done = _cli("run", "eval.yaml", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: eval.yaml:")
    assert expected in lines[0]
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = _cli("run", cwd=tmp_path)
    assert done.returncode == 2
    assert "required: eval_yaml" in done.stderr
    missing = _cli("run", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: nope.yaml: file not found"


def test_variant_and_case_selection(tmp_path: Path) -> None:
    store_env = {"TRACESCORE_STORE": f"chdb:{tmp_path / 'store'}"}
    unknown = _cli("run", str(DEMO), "--variant", "nope", cwd=tmp_path, env=store_env)
    assert unknown.returncode == 2
    assert unknown.stdout == ""  # rejected before anything runs
    assert "--variant nope: not in" in unknown.stderr and "strong, weak" in unknown.stderr

    one = _cli(
        "run", str(DEMO), "--variant", "strong", "--case", "greet", cwd=tmp_path, env=store_env
    )
    assert one.returncode == 0, one.stderr
    assert "1 cases × 1 variants" in one.stdout
    assert "1 cases: 1 passed, 0 failed, 0 errors" in one.stdout
