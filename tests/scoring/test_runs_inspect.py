"""Reading runs back from the store (`load_run`, `list_runs`, `latest_run`) and showing them
(`tracescore runs`, `tracescore inspect`)."""

import copy
import dataclasses
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from tracescore.collector.store import Store
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.spans import Span
from tracescore.schemas.trace import LlmCall, SpanNode, ToolCall, Trace
from tracescore.scoring.config import load_suite
from tracescore.scoring.inspection import print_inspection, select_cases, shorten, trace_tree
from tracescore.scoring.results import RunRecord, ScoredCase, write_case, write_run
from tracescore.scoring.runner import RunOptions, SuiteRunner
from tracescore.scoring.runs import latest_run, list_runs, load_run, resolve_run

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo" / "eval.yaml"
# Times are stored in microseconds; these survive the round trip exactly.
T0 = 1_760_000_000_000_000_000


def _run(run_id: str, suite: str = "demo", started_ns: int = T0, **changes: object) -> RunRecord:
    run = RunRecord(
        run_id=run_id,
        suite=suite,
        config_path="/suites/demo/eval.yaml",
        variant_key="tracescore.variant",
        variants=["strong", "weak"],
        config_hash="cfg123",
        dataset_hash="data456",
        git_sha="0123456789abcdef0123456789abcdef01234567",
        git_dirty=True,
        version="1.2.3",
        started_ns=started_ns,
        finished_ns=started_ns + 5_000_000_000,
        status="finished",
    )
    return dataclasses.replace(run, **changes)  # type: ignore[arg-type]


def _cases() -> list[ScoredCase]:
    # In load_run's order: variants as listed in the run, then case id; scores by name.
    return [
        ScoredCase(
            case_id="multiply",
            variant="strong",
            repeat=0,
            trace_id="a" * 32,
            status="error",
            input="What is 17 * 23?",
            output="17 * 23 = 391",
            scores=[
                Score(evaluator="answer", value=1.0, passed=True, label="pass", explanation="ok"),
                Score.skip("exact", "case has no expected.output"),
                Score.failure("judge", "no API key"),
                Score(evaluator="used_tools", value=0.0, passed=False, explanation="not called"),
            ],
            score_configs={
                "answer": ("contains_text", "h1"),
                "exact": ("exact_match", "h2"),
                "judge": ("llm_judge", "h3"),
                "used_tools": ("tool_called", "h4"),
            },
            duration_ns=2_500_000_000,
            span_count=5,
            input_tokens=106,
            output_tokens=68,
        ),
        ScoredCase(
            case_id="greet",
            variant="weak",
            repeat=1,
            trace_id="b" * 32,
            status="error",
            input="Hello",
            output="",
            error="the SUT emitted no spans",
        ),
    ]


def test_load_run_round_trips_every_field_and_keeps_the_newest_rewrite(store: Store) -> None:
    run = _run("r-1")
    run.cases = _cases()
    # Rewrites stay as duplicate rows until a merge: the older versions must not show.
    write_run(store, _run("r-1", status="running", finished_ns=T0 + 1_000))
    stale = copy.deepcopy(run.cases[0])
    stale.output, stale.scores[0] = "stale", Score(evaluator="answer", passed=False)
    write_case(store, run, stale)
    time.sleep(0.002)
    for case in run.cases:
        write_case(store, run, case)
    write_run(store, run)

    assert load_run(store, "r-1") == run


def test_a_run_still_in_progress_is_read_from_its_cases(store: Store) -> None:
    run = _run("r-open")
    run.cases = _cases()
    for case in run.cases:
        write_case(store, run, case)
    loaded = load_run(store, "r-open")
    assert loaded.status == "running" and loaded.suite == "demo"
    assert [c.case_id for c in loaded.cases] == ["multiply", "greet"]


def test_unknown_run_id_names_it_and_points_to_runs(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"no run 'r-missing'.*`tracescore runs`"):
        load_run(store, "r-missing")
    with pytest.raises(ConfigError, match="no runs"):
        resolve_run(store, "latest")


def test_a_store_never_run_against_has_no_runs(chdb_path: Path) -> None:
    fresh = ChdbStore(chdb_path, database=f"test_{secrets.token_hex(4)}")  # not migrated
    try:
        assert list_runs(fresh) == []
        with pytest.raises(ConfigError, match=r"no run 'r-1'.*`tracescore runs`"):
            load_run(fresh, "r-1")
    finally:
        fresh.close()


def test_list_runs_newest_first_filtered_and_latest(store: Store) -> None:
    second = 1_000_000_000
    write_run(store, _run("a-old", suite="a", started_ns=T0))
    write_run(store, _run("b-mid", suite="b", started_ns=T0 + second))
    write_run(store, _run("a-new", suite="a", started_ns=T0 + 2 * second, variants=["only"]))
    # A rewrite of a-old must not list it twice.
    write_run(store, _run("a-old", suite="a", started_ns=T0, finished_ns=T0 + 9 * second))

    assert [s.run.run_id for s in list_runs(store)] == ["a-new", "b-mid", "a-old"]
    assert [s.run.run_id for s in list_runs(store, suite="a")] == ["a-new", "a-old"]
    assert [s.run.run_id for s in list_runs(store, limit=1)] == ["a-new"]
    assert list_runs(store, suite="a")[1].run.finished_ns == T0 + 9 * second
    assert latest_run(store, "b").run_id == "b-mid"
    assert latest_run(store).run_id == "a-new"
    assert resolve_run(store, "latest", "a").variants == ["only"]
    with pytest.raises(ConfigError, match="no runs of suite 'zzz'"):
        latest_run(store, "zzz")


def test_demo_run_reads_back_and_inspects(store: Store) -> None:
    suite = load_suite(DEMO)
    record = SuiteRunner(suite, store).run(RunOptions(case_ids=["multiply", "capital-atlantis"]))
    loaded = latest_run(store, "demo")
    assert loaded.run_id == record.run_id
    # Stored in microseconds; everything else exactly as the runner held it.
    record.started_ns -= record.started_ns % 1000
    record.finished_ns -= record.finished_ns % 1000
    assert loaded == dataclasses.replace(record, cases=loaded.cases)
    assert sorted(loaded.cases, key=lambda c: (c.variant, c.case_id)) == sorted(
        record.cases, key=lambda c: (c.variant, c.case_id)
    )

    console = Console(record=True, width=200)
    print_inspection(console, store, loaded, select_cases(loaded, ["multiply"], ["strong"]))
    out = console.export_text()
    assert f"run {record.run_id}" in out
    assert "multiply [strong] passed" in out and "[weak]" not in out
    # The tree: harness root, agent span, LLM and tool spans nested under it.
    assert "└── tracescore.case multiply" in out
    assert "    └── invoke_agent demo-agent" in out
    assert "├── execute_tool calculator" in out
    assert 'tool calculator  args {"expression": "17 * 23"}' in out
    assert "→ 391" in out
    assert "llm scripted-llm-1  tokens in 19/out 42" in out
    assert "pass  answer (1): output contains '391'" in out
    assert "skip  exact: case has no expected.output" in out

    console = Console(record=True, width=200)
    print_inspection(console, store, loaded, select_cases(loaded, ["capital-atlantis"]))
    out = console.export_text()
    assert "FAIL  answer (0): output lacks 'Poseidonia'" in out

    with pytest.raises(ConfigError, match=r"--case nope: not in run .*\(it has: capital-atlantis"):
        select_cases(loaded, ["nope"])
    with pytest.raises(ConfigError, match="--variant medium"):
        select_cases(loaded, variants=["medium"])


def _span(span_id: str, parent: str, name: str, start_ms: int, **changes: object) -> Span:
    span = Span(
        trace_id="c" * 32,
        span_id=span_id,
        parent_span_id=parent,
        trace_state="",
        name=name,
        kind="Internal",
        service_name="agent",
        start_ns=start_ms * 1_000_000,
        duration_ns=2_000_000,
        status_code="Unset",
        status_message="",
        resource_attributes={},
        scope_name="",
        scope_version="",
        attributes={},
    )
    return span.model_copy(update=changes)


def test_tree_marks_errors_cached_tokens_cost_and_orphans() -> None:
    root = _span("r", "", "invoke_agent [bot]", 0)
    chat = _span("c", "r", "chat big-model", 1)
    tool = _span("t", "r", "execute_tool search", 3, status_code="Error", status_message="boom")
    orphan = _span("o", "missing", "late span", 10)
    trace = Trace(
        trace_id="c" * 32,
        spans=[root, chat, tool, orphan],
        roots=[SpanNode(span=root, children=[SpanNode(span=chat), SpanNode(span=tool)])],
        orphans=[SpanNode(span=orphan)],
        llm_calls=[
            LlmCall(
                span_id="c",
                operation="chat",
                request_model="big-model",
                input_tokens=1000,
                output_tokens=20,
                cached_input_tokens=800,
                cost_usd=0.0123,
            )
        ],
        tool_calls=[ToolCall(span_id="t", name="search", arguments={"q": "x" * 500}, error="boom")],
    )
    console = Console(record=True, width=200)
    console.print(trace_tree(trace, "spans"))
    out = console.export_text()
    assert "invoke_agent [bot]  2.0 ms  @+0.0 ms" in out
    assert "llm big-model  tokens in 1000/out 20, cached 800  $0.012300" in out
    assert "✗ execute_tool search  2.0 ms  @+3.0 ms  error: boom" in out
    assert "→ error: boom" in out
    assert "orphans (parent span never arrived)" in out and "late span" in out
    assert len(shorten({"q": "x" * 500})) == 120


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRACESCORE_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "tracescore.scoring", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_runs_and_inspect_latest(tmp_path: Path) -> None:
    url = f"chdb:{tmp_path / 'store'}"
    done = _cli("run", str(DEMO), "--store", url, "--case", "multiply", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the weak variant fails multiply

    listed = _cli("runs", "--store", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "demo-" in listed.stdout and "git sha" in listed.stdout

    shown = _cli("inspect", "latest", "--store", url, "--variant", "strong", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "multiply [strong] passed" in out
    assert "execute_tool calculator" in out and '{"expression": "17 * 23"}' in out
    assert "tokens in 19/out 42" in out
    assert "used_tools (1): called calculator" in out

    missing = _cli("inspect", "no-such-run", "--store", url, cwd=tmp_path)
    assert missing.returncode == 2
    assert "no run 'no-such-run'" in missing.stderr and "tracescore runs" in missing.stderr
