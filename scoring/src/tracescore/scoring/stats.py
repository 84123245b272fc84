"""Statistics for comparing two runs and gating CI on the comparison.

Everything here is pure: plain mappings in, frozen dataclasses out, no I/O and no
global random state. The ``compare`` and ``ci`` commands are meant to be thin layers
over these functions:

* :func:`pass_at_k`, :func:`pass_hat_k` and their per-suite averages
  :func:`mean_pass_at_k`, :func:`mean_pass_hat_k` summarise repeated runs of a case.
* :func:`paired_bootstrap` compares one evaluator's scores between a baseline and a
  candidate run over the same cases and returns a :class:`Comparison` (the difference
  of means and a bootstrap confidence interval for it).
* :func:`flips` lists the cases whose pass/fail verdict changed between the runs.
* :func:`gate` turns comparisons (and optionally flips) into a :class:`GateResult`:
  whether CI should fail, and why, in lines fit to print.

Conventions:

* A case is identified by its case id (a ``str``); runs are paired by it.
* ``delta`` is always ``candidate - baseline``, and higher scores are assumed better.
  For metrics where lower is better (cost, latency, step count) negate the values
  before comparing.
* A boolean verdict counts as 1.0 (pass) or 0.0 (fail), so a pass rate is a mean score.
* Scores an evaluator could not produce (``Score.value is None``, errors, skips) are
  the caller's to drop or map beforehand: a missing value is not a zero.

Pure Python on purpose: numpy is not a dependency of tracescore-scoring, and the
bootstrap below is fast enough without it (1,000 cases x 2,000 resamples in a fraction
of a second on a laptop).
"""

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Comparison",
    "Flips",
    "GateResult",
    "case_means",
    "flips",
    "gate",
    "mean_pass_at_k",
    "mean_pass_hat_k",
    "paired_bootstrap",
    "pass_at_k",
    "pass_hat_k",
]

CaseValues = Mapping[str, float | Sequence[float]]
"""Per-case scores: one value per case, or several (repeats) which are averaged."""


# --------------------------------------------------------------------------- pass@k


def _check_nck(n: int, c: int, k: int) -> None:
    for name, value in (("n", n), ("c", c), ("k", k)):
        # bool is an int subclass; a bool here is almost certainly a mixed-up argument.
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if n < 1:
        raise ValueError(f"n (samples) must be at least 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c (passing samples) must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n} (samples drawn), got {k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k: the chance that at least one of k samples passes.

    Given ``n`` samples of a case of which ``c`` passed, this is
    ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021, "Evaluating Large Language Models
    Trained on Code"): the fraction of k-subsets of the n samples containing a pass.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the binomial
    coefficients (they overflow a float for n in the low thousands).

    Raises ``ValueError`` unless ``1 <= k <= n`` and ``0 <= c <= n``.
    """
    _check_nck(n, c, k)
    if n - c < k:
        # Every k-subset must include a passing sample.
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass^k: the chance that all k of k samples pass.

    pass^k ("pass hat k", Yao et al., 2024, tau-bench) measures reliability rather than
    capability: an agent that passes a case 70 % of the time has pass@3 near 0.97 but
    pass^3 near 0.34. Estimated as ``C(c, k) / C(n, k)``, the fraction of k-subsets of
    the n samples in which every sample passed, computed as
    ``prod_{i=0}^{k-1} (c-i) / (n-i)``.

    Raises ``ValueError`` unless ``1 <= k <= n`` and ``0 <= c <= n``.
    """
    _check_nck(n, c, k)
    if c < k:
        return 0.0
    product = 1.0
    for i in range(k):
        product *= (c - i) / (n - i)
    return product


def _mean_over_cases(
    results: Mapping[str, Sequence[bool]],
    k: int,
    estimator_name: str,
    estimator: Callable[[int, int, int], float],
) -> float:
    if not results:
        raise ValueError(f"{estimator_name}: no cases")
    total = 0.0
    for case_id, outcomes in results.items():
        n = len(outcomes)
        if k > n:
            raise ValueError(
                f"{estimator_name}: case {case_id!r} has {n} sample(s), fewer than k={k}"
            )
        total += estimator(n, sum(1 for passed in outcomes if passed), k)
    return total / len(results)


def mean_pass_at_k(results: Mapping[str, Sequence[bool]], k: int) -> float:
    """pass@k of a suite: :func:`pass_at_k` per case, averaged over cases.

    ``results`` maps a case id to the verdicts of its repeats. Cases may have different
    numbers of repeats, but every case needs at least ``k`` (``ValueError`` otherwise,
    naming the case) because the estimator is undefined for ``k > n``.
    """
    return _mean_over_cases(results, k, "pass@k", pass_at_k)


def mean_pass_hat_k(results: Mapping[str, Sequence[bool]], k: int) -> float:
    """pass^k of a suite: :func:`pass_hat_k` per case, averaged over cases.

    Same input and validation as :func:`mean_pass_at_k`.
    """
    return _mean_over_cases(results, k, "pass^k", pass_hat_k)


# ------------------------------------------------------------------------ bootstrap


@dataclass(frozen=True)
class Comparison:
    """One evaluator's scores in a baseline run (a) against a candidate run (b).

    ``mean_a`` and ``mean_b`` are over the paired cases only, so that ``delta`` is
    exactly ``mean_b - mean_a``; ``[ci_low, ci_high]`` is the ``confidence`` percentile
    bootstrap interval of ``delta``. Cases found in only one run are listed (sorted) in
    ``only_in_a`` / ``only_in_b`` and take no part in the numbers.
    """

    mean_a: float
    mean_b: float
    delta: float
    ci_low: float
    ci_high: float
    n_paired: int
    only_in_a: list[str]
    only_in_b: list[str]
    confidence: float = 0.95
    resamples: int = 2000
    name: str = ""
    """What was compared (an evaluator name); used in :func:`gate`'s messages."""

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (in either direction)."""
        return self.ci_high < 0.0 or self.ci_low > 0.0

    @property
    def unpaired(self) -> bool:
        """Whether either run has cases the other lacks."""
        return bool(self.only_in_a or self.only_in_b)


def case_means(values: CaseValues) -> dict[str, float]:
    """Reduce per-case values to one number per case: repeats are averaged.

    A case maps either to a single number (or bool) or to a sequence of them (one per
    repeat). An empty sequence or a NaN is a ``ValueError``: there is no sensible score
    to give such a case, and silently dropping it would change which cases are paired.
    """
    means: dict[str, float] = {}
    for case_id, value in values.items():
        if isinstance(value, int | float):
            mean = float(value)
        else:
            if len(value) == 0:
                raise ValueError(f"case {case_id!r} has no values")
            mean = math.fsum(value) / len(value)
        if math.isnan(mean):
            raise ValueError(f"case {case_id!r} has a NaN value")
        means[case_id] = mean
    return means


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted data."""
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def paired_bootstrap(
    baseline: CaseValues,
    candidate: CaseValues,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "",
) -> Comparison:
    """Compare two runs over the same cases: difference of means with a bootstrap CI.

    ``baseline`` and ``candidate`` map case ids to scores: one number per case, or a
    sequence per case when cases were repeated, in which case each case's repeats are
    averaged first (see :func:`case_means`) so that every case weighs the same however
    many repeats it had, and the resampling unit is the case. That is what makes the
    comparison paired: case difficulty, the largest source of variance in an eval
    suite, cancels out of each case's difference.

    Cases are paired by id. Cases in only one run are reported in ``only_in_a`` /
    ``only_in_b`` and excluded from every number; if no case is in both runs there is
    nothing to compare and ``ValueError`` is raised.

    The interval is the percentile bootstrap: ``resamples`` times, draw ``n_paired``
    per-case differences with replacement and take their mean; the interval is the
    ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles of those means. Resampling
    uses ``random.Random(seed)`` over the differences in case-id order, so the result
    depends only on the data and the seed, not on dict order or global random state.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    a = case_means(baseline)
    b = case_means(candidate)
    paired = sorted(a.keys() & b.keys())
    only_in_a = sorted(a.keys() - b.keys())
    only_in_b = sorted(b.keys() - a.keys())
    if not paired:
        raise ValueError(
            f"no case is in both runs ({len(only_in_a)} only in the baseline, "
            f"{len(only_in_b)} only in the candidate)"
        )
    n = len(paired)
    mean_a = math.fsum(a[case] for case in paired) / n
    mean_b = math.fsum(b[case] for case in paired) / n
    differences = [b[case] - a[case] for case in paired]
    delta = math.fsum(differences) / n

    # random.choices with k=n draws a whole resample in C; summing it with the builtin
    # sum keeps the inner loop out of Python bytecode. That is ~10x faster than indexing
    # per draw and is what keeps 1,000 cases x 2,000 resamples well under a second.
    rng = random.Random(seed)
    choices = rng.choices
    means = sorted(sum(choices(differences, k=n)) / n for _ in range(resamples))
    alpha = (1.0 - confidence) / 2.0
    return Comparison(
        mean_a=mean_a,
        mean_b=mean_b,
        delta=delta,
        ci_low=_percentile(means, alpha),
        ci_high=_percentile(means, 1.0 - alpha),
        n_paired=n,
        only_in_a=only_in_a,
        only_in_b=only_in_b,
        confidence=confidence,
        resamples=resamples,
        name=name,
    )


# ---------------------------------------------------------------------------- flips


@dataclass(frozen=True)
class Flips:
    """Cases whose verdict changed between the baseline and the candidate (sorted ids)."""

    pass_to_fail: list[str]
    fail_to_pass: list[str]


def flips(baseline: Mapping[str, bool], candidate: Mapping[str, bool]) -> Flips:
    """Cases that passed in the baseline and fail in the candidate, and the reverse.

    Only cases in both runs can flip; cases in one run only are what
    :func:`paired_bootstrap` reports in ``only_in_a`` / ``only_in_b``. With repeats,
    reduce each case to one verdict first (for instance "passed in every repeat"),
    since a single repeat changing its verdict is usually noise.
    """
    common = sorted(baseline.keys() & candidate.keys())
    return Flips(
        pass_to_fail=[case for case in common if baseline[case] and not candidate[case]],
        fail_to_pass=[case for case in common if not baseline[case] and candidate[case]],
    )


# ----------------------------------------------------------------------------- gate


@dataclass(frozen=True)
class GateResult:
    """The CI decision: ``regressed`` means fail the build.

    ``reasons`` holds one human-readable line per condition that failed the gate (empty
    when it passed). ``notes`` holds lines worth showing that did not fail it: drops
    beyond the threshold whose interval still includes zero, and unpaired cases.
    """

    regressed: bool
    reasons: list[str]
    notes: list[str] = field(default_factory=list)


def _describe(label: str, comparison: Comparison) -> str:
    drop = -comparison.delta
    return (
        f"{label}: dropped {drop:.3f} ({comparison.mean_a:.3f} -> {comparison.mean_b:.3f} "
        f"over {comparison.n_paired} paired cases), "
        f"{comparison.confidence:.0%} CI of the change "
        f"[{comparison.ci_low:+.3f}, {comparison.ci_high:+.3f}]"
    )


def _named(
    comparison: Comparison | Mapping[str, Comparison],
) -> Iterable[tuple[str, Comparison]]:
    if isinstance(comparison, Comparison):
        return [(comparison.name or "score", comparison)]
    return sorted(comparison.items())


# Means of pass/fail over n cases differ from the exact fraction by a few ulps.
_ROUNDING = 1e-9


def gate(
    comparison: Comparison | Mapping[str, Comparison],
    threshold: float,
    max_flips: int | None = None,
    flips: Flips | None = None,
) -> GateResult:
    """Decide whether a candidate run regressed against its baseline.

    ``comparison`` is one :class:`Comparison` or a mapping of evaluator name to
    comparison (names label the messages; a single comparison uses its ``name``).
    An evaluator regresses only when both hold:

    * its drop ``-delta`` is at least ``threshold`` (a practical-size test: smaller
      drops are tolerated however certain; "at least", up to float rounding, so a
      regression exactly the size of the threshold is caught), and
    * its interval lies entirely below zero (``ci_high < 0``: a significance test, so
      that run-to-run noise in a non-deterministic agent does not fail the build).

    When ``max_flips`` is given, the gate also fails if more than ``max_flips`` cases
    went from pass to fail; ``flips`` must then be given too (``ValueError``
    otherwise). ``flips`` without ``max_flips`` sets no limit.

    Raises ``ValueError`` for a negative ``threshold`` or ``max_flips``.
    """
    if not threshold >= 0.0:  # also rejects NaN
        raise ValueError(f"threshold must be a non-negative number, got {threshold}")
    if max_flips is not None:
        if max_flips < 0:
            raise ValueError(f"max_flips must be non-negative, got {max_flips}")
        if flips is None:
            raise ValueError("max_flips was given without the flips to check it against")
    reasons: list[str] = []
    notes: list[str] = []
    for label, item in _named(comparison):
        large = -item.delta >= threshold - _ROUNDING
        if large and item.ci_high < 0.0:
            reasons.append(
                f"{_describe(label, item)} excludes 0; the drop reaches the threshold "
                f"{threshold:.3f}"
            )
        elif large:
            notes.append(
                f"{_describe(label, item)} includes 0; not a regression: the drop "
                f"reaches the threshold {threshold:.3f} but is within run-to-run noise"
            )
        if item.unpaired:
            notes.append(
                f"{label}: {len(item.only_in_a)} case(s) only in the baseline and "
                f"{len(item.only_in_b)} only in the candidate were not compared"
            )
    if max_flips is not None and flips is not None and len(flips.pass_to_fail) > max_flips:
        shown = ", ".join(flips.pass_to_fail[:10])
        more = f" and {len(flips.pass_to_fail) - 10} more" if len(flips.pass_to_fail) > 10 else ""
        reasons.append(
            f"{len(flips.pass_to_fail)} case(s) flipped from pass to fail, more than the "
            f"allowed {max_flips}: {shown}{more}"
        )
    return GateResult(regressed=bool(reasons), reasons=reasons, notes=notes)
