"""Run-comparison statistics: pass@k / pass^k, the paired bootstrap, flips and the CI gate."""

import itertools
import math
import random
from fractions import Fraction

import pytest

from tracescore.scoring.stats import (
    Comparison,
    Flips,
    case_means,
    flips,
    gate,
    mean_pass_at_k,
    mean_pass_hat_k,
    paired_bootstrap,
    pass_at_k,
    pass_hat_k,
)

# ---------------------------------------------------------------------------- pass@k


def brute_force(n: int, c: int, k: int) -> tuple[Fraction, Fraction]:
    """(pass@k, pass^k) by enumerating every k-subset of n samples, c of which pass."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    any_pass = sum(1 for subset in subsets if any(subset))
    all_pass = sum(1 for subset in subsets if all(subset))
    return Fraction(any_pass, len(subsets)), Fraction(all_pass, len(subsets))


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_and_pass_hat_k_match_subset_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected_at, expected_hat = brute_force(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(float(expected_at), abs=1e-12)
            assert pass_hat_k(n, c, k) == pytest.approx(float(expected_hat), abs=1e-12)


def test_pass_at_1_and_pass_hat_1_are_the_pass_rate() -> None:
    assert pass_at_k(10, 7, 1) == pytest.approx(0.7)
    assert pass_hat_k(10, 7, 1) == pytest.approx(0.7)


def test_known_values() -> None:
    # 3 of 5 pass: C(2,2)/C(5,2) = 1/10 of pairs have no pass; C(3,2)/C(5,2) = 3/10 all pass.
    assert pass_at_k(5, 3, 2) == pytest.approx(0.9)
    assert pass_hat_k(5, 3, 2) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 3, 3) == 1.0  # only 2 failures: every 3-subset holds a pass
    assert pass_hat_k(5, 2, 3) == 0.0
    assert pass_hat_k(5, 5, 5) == 1.0


def test_large_n_is_stable_where_binomials_overflow_floats() -> None:
    # C(2000, 1000) is far beyond float range; the product form never builds it.
    n, c, k = 2000, 3, 1000
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9)
    exact_hat = Fraction(math.comb(1500, 10), math.comb(n, 10))
    assert pass_hat_k(n, 1500, 10) == pytest.approx(float(exact_hat), rel=1e-9)


@pytest.mark.parametrize(
    ("n", "c", "k", "error"),
    [
        (3, 1, 4, ValueError),  # k > n
        (3, 1, 0, ValueError),
        (0, 0, 1, ValueError),
        (3, 4, 1, ValueError),  # c > n
        (3, -1, 1, ValueError),
        (3, True, 1, TypeError),
        (3.0, 1, 1, TypeError),
    ],
)
def test_invalid_arguments(n: int, c: int, k: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        pass_at_k(n, c, k)
    with pytest.raises(error):
        pass_hat_k(n, c, k)


def test_suite_means_average_per_case_estimates() -> None:
    results = {
        "a": [True, True, False, True],  # n=4, c=3
        "b": [False, False, False],  # n=3, c=0
        "c": [True, True],  # n=2, c=2
    }
    assert mean_pass_at_k(results, 2) == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert mean_pass_hat_k(results, 2) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert mean_pass_at_k(results, 1) == pytest.approx((0.75 + 0.0 + 1.0) / 3)


def test_suite_means_name_the_case_with_too_few_samples() -> None:
    with pytest.raises(ValueError, match="'short'"):
        mean_pass_at_k({"long": [True] * 5, "short": [True, False]}, 3)
    with pytest.raises(ValueError, match="no cases"):
        mean_pass_hat_k({}, 1)


# ------------------------------------------------------------------------- bootstrap


def noisy_pair(n: int, true_delta: float, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Two runs whose per-case scores share a case difficulty, candidate shifted."""
    rng = random.Random(seed)
    baseline: dict[str, float] = {}
    candidate: dict[str, float] = {}
    for i in range(n):
        difficulty = rng.gauss(0.5, 0.2)
        baseline[f"case-{i}"] = difficulty + rng.gauss(0.0, 0.1)
        candidate[f"case-{i}"] = difficulty + true_delta + rng.gauss(0.0, 0.1)
    return baseline, candidate


def test_means_and_delta_are_over_paired_cases() -> None:
    result = paired_bootstrap({"x": 1.0, "y": 0.0, "z": 0.5}, {"x": 1.0, "y": 1.0, "w": 0.0})
    assert result.n_paired == 2
    assert result.mean_a == pytest.approx(0.5)
    assert result.mean_b == pytest.approx(1.0)
    assert result.delta == pytest.approx(0.5)
    assert result.only_in_a == ["z"]
    assert result.only_in_b == ["w"]
    assert result.unpaired
    assert result.ci_low <= result.delta <= result.ci_high


def test_no_common_case_is_an_error_that_counts_both_sides() -> None:
    with pytest.raises(ValueError, match="1 only in the baseline, 2 only in the candidate"):
        paired_bootstrap({"a": 1.0}, {"b": 1.0, "c": 0.0})


def test_repeats_are_averaged_per_case_first() -> None:
    # Case "a" has 4 repeats and "b" one: each case weighs the same in the mean.
    baseline = {"a": [1.0, 1.0, 1.0, 1.0], "b": [0.0]}
    candidate = {"a": [True, False, True, False], "b": [True]}
    result = paired_bootstrap(baseline, candidate)
    assert result.mean_a == pytest.approx(0.5)
    assert result.mean_b == pytest.approx(0.75)
    assert result.delta == pytest.approx(0.25)
    assert case_means(candidate) == {"a": 0.5, "b": 1.0}


def test_case_means_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="'a' has no values"):
        case_means({"a": []})
    with pytest.raises(ValueError, match="NaN"):
        case_means({"a": [1.0, math.nan]})


def test_identical_runs_give_a_zero_width_interval_at_zero() -> None:
    scores = {f"c{i}": i % 3 / 2 for i in range(50)}
    result = paired_bootstrap(scores, dict(scores))
    assert (result.delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert not result.significant


def test_bootstrap_is_reproducible_and_independent_of_dict_order() -> None:
    baseline, candidate = noisy_pair(300, 0.02, seed=1)
    first = paired_bootstrap(baseline, candidate, seed=7)
    again = paired_bootstrap(
        dict(reversed(baseline.items())), dict(reversed(candidate.items())), seed=7
    )
    assert first == again
    other_seed = paired_bootstrap(baseline, candidate, seed=8)
    assert other_seed.delta == first.delta
    assert (other_seed.ci_low, other_seed.ci_high) != (first.ci_low, first.ci_high)


def test_interval_contains_the_true_delta_on_a_large_sample() -> None:
    baseline, candidate = noisy_pair(2000, 0.03, seed=3)
    result = paired_bootstrap(baseline, candidate, seed=0)
    assert result.ci_low < 0.03 < result.ci_high
    assert result.significant  # sd of the mean difference is ~0.003
    # Paired noise is N(0, 0.1 * sqrt 2): the 95 % interval is about ±0.0062 wide.
    assert result.ci_high - result.ci_low == pytest.approx(
        2 * 1.96 * 0.1 * math.sqrt(2 / 2000), rel=0.15
    )


def test_interval_coverage_is_near_nominal() -> None:
    # Over many independent datasets a 90 % interval should hold the true delta ~90 % of
    # the time; with 150 trials anything in [80 %, 97 %] is consistent with that.
    covered = 0
    trials = 150
    for trial in range(trials):
        baseline, candidate = noisy_pair(60, 0.1, seed=1000 + trial)
        result = paired_bootstrap(baseline, candidate, resamples=400, confidence=0.9, seed=trial)
        covered += result.ci_low <= 0.1 <= result.ci_high
    assert 0.80 * trials <= covered <= 0.97 * trials


def test_wider_confidence_gives_a_wider_interval() -> None:
    baseline, candidate = noisy_pair(200, 0.0, seed=5)
    narrow = paired_bootstrap(baseline, candidate, confidence=0.8)
    wide = paired_bootstrap(baseline, candidate, confidence=0.99)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


@pytest.mark.parametrize(("resamples", "confidence"), [(0, 0.95), (100, 0.0), (100, 1.0)])
def test_bootstrap_rejects_bad_parameters(resamples: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        paired_bootstrap({"a": 1.0}, {"a": 1.0}, resamples=resamples, confidence=confidence)


# ----------------------------------------------------------------------------- flips


def test_flips_lists_changed_verdicts_of_common_cases() -> None:
    baseline = {"a": True, "b": True, "c": False, "d": False, "gone": True}
    candidate = {"d": True, "c": False, "b": False, "a": True, "new": False}
    assert flips(baseline, candidate) == Flips(pass_to_fail=["b"], fail_to_pass=["d"])
    assert flips({}, {}) == Flips([], [])


# ------------------------------------------------------------------------------ gate


def comparison(delta: float, ci_low: float, ci_high: float, name: str = "") -> Comparison:
    return Comparison(
        mean_a=0.7,
        mean_b=0.7 + delta,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        n_paired=200,
        only_in_a=[],
        only_in_b=[],
        name=name,
    )


def test_gate_fails_on_a_significant_drop_beyond_the_threshold() -> None:
    result = gate(comparison(-0.10, -0.15, -0.05, name="correctness"), threshold=0.05)
    assert result.regressed
    [reason] = result.reasons
    assert reason.startswith("correctness: dropped 0.100 (0.700 -> 0.600 over 200 paired")
    assert "95% CI of the change [-0.150, -0.050] excludes 0" in reason
    assert "threshold 0.050" in reason


def test_gate_passes_a_large_but_noisy_drop_and_notes_it() -> None:
    result = gate(comparison(-0.10, -0.22, 0.02), threshold=0.05)
    assert not result.regressed
    assert result.reasons == []
    [note] = result.notes
    assert "dropped 0.100" in note and "[-0.220, +0.020] includes 0" in note


def test_gate_passes_a_significant_drop_within_the_threshold() -> None:
    result = gate(comparison(-0.03, -0.04, -0.02), threshold=0.05)
    assert result == gate(comparison(-0.03, -0.04, -0.02), threshold=0.05)
    assert not result.regressed and result.notes == []


def test_gate_ignores_improvements() -> None:
    assert not gate(comparison(0.2, 0.1, 0.3), threshold=0.0).regressed


def test_gate_checks_every_evaluator_of_a_mapping() -> None:
    result = gate(
        {
            "tool_match": comparison(-0.2, -0.3, -0.1),
            "exact": comparison(0.0, -0.02, 0.02),
            "judge": comparison(-0.1, -0.12, -0.08),
        },
        threshold=0.05,
    )
    assert result.regressed
    assert [reason.split(":")[0] for reason in result.reasons] == ["judge", "tool_match"]


def test_gate_notes_unpaired_cases() -> None:
    item = Comparison(0.5, 0.5, 0.0, 0.0, 0.0, 3, ["x"], ["y", "z"], name="e")
    result = gate(item, threshold=0.05)
    assert not result.regressed
    assert result.notes == [
        "e: 1 case(s) only in the baseline and 2 only in the candidate were not compared"
    ]


def test_gate_max_flips() -> None:
    unchanged = comparison(0.0, -0.01, 0.01)
    two = Flips(pass_to_fail=["a", "b"], fail_to_pass=["c"])
    assert not gate(unchanged, 0.05, max_flips=2, flips=two).regressed
    result = gate(unchanged, 0.05, max_flips=1, flips=two)
    assert result.regressed
    assert result.reasons == ["2 case(s) flipped from pass to fail, more than the allowed 1: a, b"]
    # Flips without a limit are not a gate.
    assert not gate(unchanged, 0.05, flips=two).regressed


def test_gate_flip_reason_truncates_long_lists() -> None:
    many = Flips(pass_to_fail=[f"c{i:02}" for i in range(25)], fail_to_pass=[])
    [reason] = gate(comparison(0.0, 0.0, 0.0), 0.05, max_flips=0, flips=many).reasons
    assert reason.endswith("c08, c09 and 15 more")


@pytest.mark.parametrize(
    ("threshold", "max_flips", "flip_lists"),
    [(-0.01, None, None), (math.nan, None, None), (0.05, -1, Flips([], [])), (0.05, 1, None)],
)
def test_gate_rejects_bad_parameters(
    threshold: float, max_flips: int | None, flip_lists: Flips | None
) -> None:
    with pytest.raises(ValueError):
        gate(comparison(0.0, 0.0, 0.0), threshold, max_flips=max_flips, flips=flip_lists)


# --------------------------------------------------- the gate against a simulated agent

CASES = 200
REPEATS = 3
THRESHOLD = 0.05


def simulated_run(pass_probability: float, seed: int) -> dict[str, list[bool]]:
    """A non-deterministic agent: each case passes each repeat with the given chance."""
    rng = random.Random(seed)
    return {
        f"case-{i:03}": [rng.random() < pass_probability for _ in range(REPEATS)]
        for i in range(CASES)
    }


def gate_runs(baseline_p: float, candidate_p: float, seed: int) -> bool:
    baseline = simulated_run(baseline_p, seed=2 * seed)
    candidate = simulated_run(candidate_p, seed=2 * seed + 1)
    result = paired_bootstrap(baseline, candidate, resamples=1000, seed=seed)
    return gate(result, THRESHOLD).regressed


def test_gate_does_not_fail_a_noisy_but_unchanged_agent() -> None:
    # Two runs of the same 70 % agent differ by noise alone: the sd of the difference of
    # means is sqrt(2 * 0.7 * 0.3 / 3 / 200) ~ 0.026, so the difference passes -0.05 (and
    # the interval clears 0) about 3 % of the time. A gate without the threshold, or
    # without the interval, would fail far more often.
    assert not gate_runs(0.7, 0.7, seed=0)
    failures = sum(gate_runs(0.7, 0.7, seed=seed) for seed in range(20))
    assert failures <= 2


def test_gate_fails_a_real_regression() -> None:
    # 70 % -> 55 %: the expected drop (0.15) is three times the threshold, so that
    # detection is robust (~3.4 sd beyond the point where both conditions hold). A drop
    # of exactly the threshold is, by design, flagged only about half the time at best.
    assert gate_runs(0.7, 0.55, seed=0)
    assert all(gate_runs(0.7, 0.55, seed=seed) for seed in range(20))
