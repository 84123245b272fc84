"""The runner's controls, through real subprocess SUTs exporting real OTLP: repeats,
retries of transient failures, the cost ceiling, Ctrl-C then --retry-failed, shards,
and a variant whose SUT cannot start."""

from pathlib import Path
from typing import Any

import pytest

from tracescore.collector.store import Store
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.config import Suite, suite_from
from tracescore.scoring.reports.summary import repeat_stats
from tracescore.scoring.results import ScoredCase
from tracescore.scoring.runner import RunOptions, Shard, SuiteRunner
from tracescore.scoring.runs import load_run

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def _attempts(state: Path, case_id: str) -> int:
    return (state / f"{case_id}.attempts").stat().st_size


def _suite(tmp_path: Path, _cases: int = 3, **overrides: Any) -> Suite:
    config: dict[str, Any] = {
        "suite": "controls",
        "system": {
            "type": "command",
            "command": ["{python}", "runner_sut.py", "{case_id}", "{input}"],
            "env": {"SUT_STATE": str(tmp_path)},
            "timeout_s": 20,
        },
        "variants": [{"name": "a"}, {"name": "b"}],
        "evaluators": [{"type": "contains_text"}],
        "concurrency": 4,
        "quiet_period_s": 0.1,
    }
    config.update(overrides)
    cases = [
        {"id": f"c{i}", "input": f"question {i}", "expected": {"contains": [f"question {i}"]}}
        for i in range(_cases)
    ]
    return suite_from(config, cases, SUPPORT)


def test_repeats_give_each_cell_its_own_trace_and_pass_k_statistics(
    store: Store, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, repeats=2)
    run = SuiteRunner(suite, store).run()

    cells = {(c.case_id, c.variant, c.repeat) for c in run.cases}
    assert cells == {(f"c{i}", v, r) for i in range(3) for v in "ab" for r in (0, 1)}
    assert len({c.trace_id for c in run.cases}) == 12
    assert all(c.status == "passed" for c in run.cases), [c.error for c in run.cases]
    stored = load_run(store, run.run_id)
    assert sorted((c.case_id, c.variant, c.repeat) for c in stored.cases) == sorted(cells)
    stats = repeat_stats(stored, "a")
    assert stats is not None and (stats.k, stats.cases, stats.pass_at_k) == (2, 3, 1.0)


def _hanging_suite(tmp_path: Path, hang_first: int, timeout_s: float) -> Suite:
    """One variant whose SUT hangs past ``timeout_s`` on its first ``hang_first`` tries
    of each case; two tries per case."""
    return _suite(
        tmp_path,
        variants=[{"name": "a"}],
        system={
            "type": "command",
            "command": ["{python}", "runner_sut.py", "{case_id}", "{input}"],
            "env": {"SUT_STATE": str(tmp_path), "SUT_HANG_FIRST": str(hang_first)},
            "timeout_s": timeout_s,
        },
        retries={"attempts": 2, "backoff_s": 0.01},
    )


def test_a_transient_failure_is_retried_on_a_fresh_trace(store: Store, tmp_path: Path) -> None:
    # The first attempt of every case hangs past the timeout; the retry answers.
    suite = _hanging_suite(tmp_path, hang_first=1, timeout_s=3)
    run = SuiteRunner(suite, store).run(RunOptions(case_ids=["c0"]))

    [case] = run.cases
    assert case.status == "passed", case.error
    assert _attempts(tmp_path, "c0") == 2
    attempts = store.query(
        f"SELECT SpanAttributes['tracescore.case.attempt'] AS attempt FROM {store.db}.otel_traces "
        "WHERE TraceId = {t:String} AND ServiceName = 'tracescore-harness'",
        {"t": case.trace_id},
    )
    assert [row["attempt"] for row in attempts] == ["2"]


def test_retries_give_up_after_the_last_attempt_with_the_error(
    store: Store, tmp_path: Path
) -> None:
    suite = _hanging_suite(tmp_path, hang_first=5, timeout_s=1)
    [case] = SuiteRunner(suite, store).run(RunOptions(case_ids=["c1"])).cases
    assert case.status == "error"
    assert case.error == "SUT timed out after 1s"
    assert _attempts(tmp_path, "c1") == 2


def test_the_cost_ceiling_stops_the_run_and_keeps_what_finished(
    store: Store, tmp_path: Path
) -> None:
    # 1000 input + 500 output tokens at $1/M each: $0.0015 per case; the ceiling is hit
    # by the second case, and with one case at a time nothing else starts.
    suite = _suite(
        tmp_path,
        concurrency=1,
        prices={"sut-model": {"input": 1.0, "output": 1.0}},
        max_cost_usd=0.002,
        _cases=6,
    )
    run = SuiteRunner(suite, store).run()

    assert len(run.cases) == 2
    assert run.status.startswith("stopped: cost ceiling reached ($0.0030 of $0.002)")
    stored = load_run(store, run.run_id)
    assert stored.status == run.status
    assert [c.cost_usd for c in stored.cases] == [pytest.approx(0.0015)] * 2


def test_ctrl_c_keeps_finished_cases_and_retry_failed_completes_the_run(
    store: Store, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, concurrency=1)
    seen: list[ScoredCase] = []

    def interrupt_after_two(case: ScoredCase) -> None:
        seen.append(case)
        if len(seen) == 2:
            raise KeyboardInterrupt

    runner = SuiteRunner(suite, store, on_case=interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    interrupted = load_run(store, _run_id_of(store, seen[0]))
    assert interrupted.status == "interrupted"
    assert len(interrupted.cases) == 2

    again = SuiteRunner(suite, store).run(RunOptions(retry_of=interrupted))
    assert again.run_id == interrupted.run_id
    assert again.status == "finished"
    final = load_run(store, interrupted.run_id)
    assert len(final.cases) == 6
    assert {c.trace_id for c in interrupted.cases} <= {c.trace_id for c in final.cases}


def _run_id_of(store: Store, case: ScoredCase) -> str:
    rows = store.query(
        f"SELECT RunId FROM {store.db}.tracescore_case_results WHERE TraceId = {{t:String}}",
        {"t": case.trace_id},
    )
    run_id: str = rows[0]["RunId"]
    return run_id


def test_retry_failed_reruns_only_errored_cells(store: Store, tmp_path: Path) -> None:
    suite = _suite(tmp_path, variants=[{"name": "a"}])
    first = SuiteRunner(suite, store).run()
    assert [c.status for c in first.cases] == ["passed"] * 3
    # Mark one cell errored in the store, as a SUT crash would have left it.
    broken = first.cases[1]
    broken.status, broken.error = "error", "SUT exited with code 1: boom"
    from tracescore.scoring.results import write_case

    write_case(store, first, broken)
    before = _attempts(tmp_path, "c1")

    retried = SuiteRunner(suite, store).run(RunOptions(retry_of=load_run(store, first.run_id)))
    assert _attempts(tmp_path, "c1") == before + 1
    assert _attempts(tmp_path, "c0") == 1
    final = load_run(store, first.run_id)
    assert [c.status for c in final.cases] == ["passed"] * 3
    assert retried.counts()["passed"] == 3


def test_shards_share_one_run(store: Store, tmp_path: Path) -> None:
    suite = _suite(tmp_path, variants=[{"name": "a"}], _cases=5)
    runs = [
        SuiteRunner(suite, store).run(RunOptions(shard=Shard(i, 2), run_id="pr-7-shards"))
        for i in (1, 2)
    ]
    assert sorted(c.case_id for c in runs[0].cases) == ["c0", "c2", "c4"]
    assert sorted(c.case_id for c in runs[1].cases) == ["c1", "c3"]
    whole = load_run(store, "pr-7-shards")
    assert sorted(c.case_id for c in whole.cases) == [f"c{i}" for i in range(5)]
    row = store.query(
        f"SELECT CaseCount, PassedCount FROM {store.db}.tracescore_runs "
        "WHERE RunId = 'pr-7-shards' ORDER BY FinishedAt DESC LIMIT 1"
    )[0]
    assert (row["CaseCount"], row["PassedCount"]) == (5, 5)


def test_shard_needs_a_shared_run_id_and_a_valid_spec(store: Store, tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    with pytest.raises(ConfigError, match="--shard needs --run-id"):
        SuiteRunner(suite, store).run(RunOptions(shard=Shard(1, 2)))
    for bad in ("0/2", "3/2", "1-2", "a/b"):
        with pytest.raises(ConfigError, match="--shard"):
            Shard.parse(bad)


def test_a_sut_server_that_cannot_start_fails_only_its_variant(
    store: Store, tmp_path: Path
) -> None:
    suite = suite_from(
        {
            "suite": "nostart",
            "system": {
                "type": "http",
                "url": "http://127.0.0.1:{port}/run",
                "server": {
                    "command": ["{python}", "-c", "import sys; sys.exit('no model weights')"],
                    "ready_timeout_s": 5,
                },
            },
            "variants": [{"name": "broken"}],
            "evaluators": [{"type": "contains_text"}],
        },
        [{"id": "only", "input": "hi"}],
        SUPPORT,
    )
    [case] = SuiteRunner(suite, store).run().cases
    assert case.status == "error"
    assert case.error is not None
    assert "the SUT of variant 'broken' did not start" in case.error
    assert "no model weights" in case.error
