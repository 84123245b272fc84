"""The CI gate on real runs of a noisy agent: ``tracescore ci`` passes a candidate that
is unchanged but fails at random (at the baseline's rate, with other draws), and fails a
candidate that regressed by exactly the threshold."""

from pathlib import Path
from typing import Any

import pytest

from tests.support import flaky_agent
from tracescore.collector.store import Store
from tracescore.scoring.cli import EXIT_FAILED, EXIT_OK, main
from tracescore.scoring.config import suite_from
from tracescore.scoring.results import RunRecord
from tracescore.scoring.runner import SuiteRunner

REPO = Path(__file__).resolve().parents[2]
N_CASES = 200
REPEATS = 2
CASES = [
    {"id": f"q-{i:03d}", "input": f"q{i}", "expected": {"answer": f"a{i}"}} for i in range(N_CASES)
]


def _run(store: Store, function: str) -> RunRecord:
    config: dict[str, Any] = {
        "suite": "noisy",
        "system": {
            "type": "python",
            "function": f"tests.support.flaky_agent:{function}",
            "path": [str(REPO)],
        },
        "variants": [{"name": "agent"}],
        "evaluators": [{"type": "contains_text", "params": {"case_key": "answer"}}],
        "repeats": REPEATS,
        "concurrency": 16,
        "quiet_period_s": 0.05,
    }
    run = SuiteRunner(suite_from(config, CASES, REPO), store).run()
    assert not [c.error for c in run.cases if c.error]
    return run


def test_gate_passes_noise_and_fails_a_threshold_sized_regression(
    store: Store, chdb_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"chdb:{chdb_path}?database={store.database}"
    baseline = _run(store, "agent_a")
    rate = sum(c.status == "passed" for c in baseline.cases) / len(baseline.cases)
    assert 0.6 < rate < 0.8  # the agent is noisy: ~30 % of its runs fail
    unchanged = _run(store, "agent_b")

    # The regression: 5 % of all cells (10 cases whose runs all passed) now always fail.
    passing: dict[str, int] = {}
    for case in baseline.cases:
        passing[case.case_id] = passing.get(case.case_id, 0) + (case.status == "passed")
    broken = sorted(c for c, n in passing.items() if n == REPEATS)[: N_CASES // 20]
    flaky_agent.BROKEN.update(broken)
    regressed = _run(store, "agent_a_regressed")
    flipped = {c.case_id for c in regressed.cases if c.status != "passed"} - {
        c.case_id for c in baseline.cases if c.status != "passed"
    }
    assert flipped == set(broken)

    gate = ["ci", "--baseline", baseline.run_id, "--threshold", "0.05", "--store", url]
    assert main([*gate, "--candidate", unchanged.run_id]) == EXIT_OK
    assert "CI gate: passed" in capsys.readouterr().out

    assert main([*gate, "--candidate", regressed.run_id]) == EXIT_FAILED
    verdict = capsys.readouterr().out
    assert "dropped 0.050" in verdict, verdict
    assert "excludes 0; the drop reaches the threshold 0.050" in verdict, verdict
