"""``tracescore compare`` and ``tracescore ci``: runs written straight into the store."""

import random
import secrets
from pathlib import Path

import pytest

from tracescore.collector.store import Store
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.scoring.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tracescore.scoring.compare import compare_runs, gate_comparison
from tracescore.scoring.results import RunRecord, ScoredCase, write_case, write_run
from tracescore.scoring.runs import load_run

T0 = 1_760_000_000_000_000_000


def _record(run_id: str, started_ns: int, dataset_hash: str, variants: list[str]) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        suite="demo",
        config_path="/suites/demo/eval.yaml",
        variant_key="tracescore.variant",
        variants=variants,
        config_hash="cfg",
        dataset_hash=dataset_hash,
        git_sha="0" * 40,
        git_dirty=False,
        version="1.0.0",
        started_ns=started_ns,
        finished_ns=started_ns + 1_000_000_000,
        status="finished",
    )


def _case(case_id: str, variant: str, passed: bool, duration_ms: int, tokens: int) -> ScoredCase:
    return ScoredCase(
        case_id=case_id,
        variant=variant,
        repeat=0,
        trace_id=secrets.token_hex(16),  # unique: scores are stored by trace id
        status="passed" if passed else "failed",
        input="q",
        output="a",
        scores=[
            Score(evaluator="answer", value=1.0 if passed else 0.0, passed=passed),
            Score.skip("exact", "no expected output"),
        ],
        duration_ns=duration_ms * 1_000_000,
        input_tokens=tokens,
        output_tokens=tokens // 2,
    )


def _write(
    store: Store,
    run_id: str,
    verdicts: dict[str, bool],
    *,
    started_ns: int = T0,
    dataset_hash: str = "data1",
    variant: str = "main",
    duration_ms: int = 100,
    tokens: int = 50,
) -> None:
    run = _record(run_id, started_ns, dataset_hash, [variant])
    run.cases = [_case(c, variant, p, duration_ms, tokens) for c, p in sorted(verdicts.items())]
    for case in run.cases:
        write_case(store, run, case)
    write_run(store, run)


def _baseline(n: int, seed: int = 1, rate: float = 0.7) -> dict[str, bool]:
    rng = random.Random(seed)
    return {f"case-{i:03d}": rng.random() < rate for i in range(n)}


def _flip(verdicts: dict[str, bool], ids: list[str]) -> dict[str, bool]:
    return {c: (not p if c in ids else p) for c, p in verdicts.items()}


@pytest.fixture
def url(store: Store, chdb_path: Path) -> str:
    """The fixture's store as a URL the CLI opens in this process (chDB shares the path)."""
    return f"chdb:{chdb_path}?database={store.database}"


def test_unchanged_but_noisy_runs_pass_the_gate(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _baseline(120)
    rng = random.Random(2)
    # Run-to-run noise: ~6 % of the cases change their verdict, in both directions.
    noisy = _flip(base, [c for c in sorted(base) if rng.random() < 0.06])
    _write(store, "r-base", base)
    _write(store, "r-cand", noisy, started_ns=T0 + 10**9)

    assert main(["ci", "--baseline", "r-base", "--store", url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "CI gate: passed" in out and "FAIL" not in out


def test_a_drop_beyond_the_threshold_within_noise_is_a_note_not_a_failure(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {f"c{i}": i % 2 == 0 for i in range(10)}
    # One case of ten flips: a 0.1 drop, far too few cases for the CI to exclude zero.
    _write(store, "r-base", base)
    _write(store, "r-cand", _flip(base, ["c0"]), started_ns=T0 + 10**9)

    code = main(["ci", "--baseline", "r-base", "--candidate", "r-cand", "--store", url])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "CI gate: passed" in out
    assert "note answer: dropped 0.100" in out and "within run-to-run noise" in out


def test_a_real_regression_fails_naming_the_evaluator(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _baseline(150)
    rng = random.Random(3)
    passing = [c for c in sorted(base) if base[c]]
    # 0.1 of all cases go from pass to fail: beyond the 0.05 threshold.
    regressed = _flip(base, rng.sample(passing, 15))
    _write(store, "r-base", base)
    _write(store, "r-cand", regressed, started_ns=T0 + 10**9)

    code = main(["ci", "--baseline", "r-base", "--candidate", "latest", "--store", url])
    out = capsys.readouterr().out
    assert code == EXIT_FAILED, out
    assert "CI gate: REGRESSED" in out
    assert "FAIL answer: dropped 0.100" in out and "excludes 0" in out

    # A threshold above the drop lets it through.
    assert main(["ci", "--baseline", "r-base", "--threshold", "0.15", "--store", url]) == EXIT_OK


def test_max_flips(store: Store, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = {f"c{i:02d}": True for i in range(50)}
    _write(store, "r-base", base)
    _write(store, "r-cand", _flip(base, ["c01", "c02", "c03"]), started_ns=T0 + 10**9)

    assert main(["ci", "--baseline", "r-base", "--store", url]) == EXIT_OK
    capsys.readouterr()
    assert main(["ci", "--baseline", "r-base", "--max-flips", "2", "--store", url]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "3 case(s) flipped from pass to fail, more than the allowed 2" in out
    assert "c01 [main], c02 [main], c03 [main]" in out
    assert main(["ci", "--baseline", "r-base", "--max-flips", "3", "--store", url]) == EXIT_OK


def test_different_datasets_are_refused_unless_forced(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _baseline(20)
    _write(store, "r-base", base)
    _write(store, "r-other", base, started_ns=T0 + 10**9, dataset_hash="data2")

    assert main(["compare", "r-base", "r-other", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "different datasets (data1 vs data2)" in err and "--force" in err
    assert main(["ci", "--baseline", "r-base", "--store", url]) == EXIT_USAGE
    capsys.readouterr()

    assert main(["compare", "r-base", "r-other", "--force", "--store", url]) == EXIT_OK
    assert "dataset hashes differ (data1 vs data2); compared anyway" in capsys.readouterr().out
    assert main(["ci", "--baseline", "r-base", "--force", "--store", url]) == EXIT_OK
    with pytest.raises(ConfigError, match="different datasets"):
        compare_runs(load_run(store, "r-base"), load_run(store, "r-other"))


def test_compare_prints_the_table_usage_and_flips(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"a": True, "b": True, "c": False, "d": False}
    _write(store, "r-base", base, duration_ms=100, tokens=50)
    cand = {"a": True, "b": False, "c": True, "d": False, "e": True}
    _write(store, "r-cand", cand, started_ns=T0 + 10**9, duration_ms=150, tokens=80)

    assert main(["compare", "r-base", "r-cand", "--store", url, "--seed", "7"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "A r-base (baseline) vs B r-cand (candidate): 4 paired cases" in out
    answer = next(line for line in out.splitlines() if "│ answer" in line)
    # mean A, mean B, delta; pass rates; flips -/+; nothing excluded.
    for cell in ("0.500", "+0.000", "50.0%", "+0.0 pp", "1/1", "0/0"):
        assert cell in answer, answer
    exact = next(line for line in out.splitlines() if "│ exact" in line)
    assert "4/5" in exact  # every score skipped: excluded on both sides
    latency = next(line for line in out.splitlines() if "latency (ms)" in line)
    assert "100.000" in latency and "150.000" in latency and "+50.000" in latency
    assert "+30.000" in next(line for line in out.splitlines() if "input tokens" in line)
    assert "Cases flipped pass -> fail: 1\n  - b [main]" in out
    assert "Cases flipped fail -> pass: 1\n  + c [main]" in out
    assert "1 only in B r-cand (e [main])" in out
    assert "Errored and skipped scores are excluded" in out


def test_compare_two_variants_of_one_run(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _record("r-1", T0, "data1", ["strong", "weak"])
    run.cases = [_case(c, "strong", True, 100, 10) for c in ("x", "y")]
    run.cases += [_case("x", "weak", True, 100, 10), _case("y", "weak", False, 100, 10)]
    for case in run.cases:
        write_case(store, run, case)
    write_run(store, run)

    args = ["compare", "latest", "--variant", "strong", "--variant", "weak", "--store", url]
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "A strong (baseline) vs B weak (candidate): 2 paired cases" in out
    assert "Cases flipped pass -> fail: 1\n  - y" in out

    assert main(["compare", "r-1", "--variant", "strong", "--store", url]) == EXIT_USAGE
    assert "exactly two --variant" in capsys.readouterr().err
    assert main(["compare", "r-1", "--variant", "strong", "--variant", "mid", "--store", url]) == 2
    assert "--variant mid: not in run r-1" in capsys.readouterr().err


def test_gate_on_verdict_only_evaluators_uses_the_pass_rate(store: Store) -> None:
    def run(run_id: str, passes: int, started_ns: int) -> RunRecord:
        record = _record(run_id, started_ns, "d", ["v"])
        for i in range(100):
            case = _case(f"c{i:03d}", "v", i < passes, 1, 1)
            case.scores = [Score(evaluator="judge", passed=i < passes)]  # no value
            record.cases.append(case)
        return record

    comparison = compare_runs(run("a", 90, T0), run("b", 60, T0 + 1))
    (judge,) = comparison.evaluators
    assert judge.values is None and judge.pass_rate is not None
    result = gate_comparison(comparison, 0.05)
    assert result.regressed and result.reasons[0].startswith("judge pass rate: dropped 0.300")


def test_cost_is_compared_over_cases_priced_on_both_sides(store: Store) -> None:
    base, cand = _record("r-cost-a", T0, "ds", ["v"]), _record("r-cost-b", T0 + 1, "ds", ["v"])
    runs: list[tuple[RunRecord, list[float | None]]] = [
        (base, [0.002, 0.004, None]),
        (cand, [0.003, 0.006, 0.5]),
    ]
    for run, costs in runs:
        for i, cost in enumerate(costs):
            case = _case(f"c{i}", "v", True, 100, 10)
            case.cost_usd = cost
            run.cases.append(case)
            write_case(store, run, case)
        write_run(store, run)

    loaded = load_run(store, "r-cost-b")
    assert sorted((c.cost_usd or 0.0) for c in loaded.cases) == [0.003, 0.006, 0.5]
    comparison = compare_runs(load_run(store, "r-cost-a"), loaded)
    priced = comparison.metrics["cost (USD)"]
    # c2 is unpriced in the baseline: left out, not counted as free.
    assert priced.mean_a == pytest.approx(0.003) and priced.mean_b == pytest.approx(0.0045)
    assert any("cost compared over the 2 of 3 paired cases" in n for n in comparison.notes)
