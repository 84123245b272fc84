"""Comparing two runs (``tracescore compare``) and gating CI on it (``tracescore ci``).

A thin layer over :mod:`tracescore.scoring.stats`: this module only turns stored runs
into the per-case mappings those functions take, and prints what they return.

Pairing:

* Two runs: a case of one run is paired with the case of the other that has the same
  ``(case_id, variant)``; cases are labelled ``case_id [variant]``.
* One run, two variants: the first variant is the baseline (A), the second the
  candidate (B), and cases are paired by ``case_id``.

Repeats of a case are averaged into one number per case (the bootstrap resamples
cases). Per evaluator, the compared value is ``Score.value`` and the pass rate comes
from ``Score.passed`` (1.0 / 0.0). Errored and skipped scores are excluded from that
evaluator's pairing (a missing value is not a zero), and so is a value or verdict the
evaluator did not produce; how many scores were excluded is shown. A case's verdict
for flips is its status: it passes when every repeat passed (``failed`` and ``error``
count as not passing).
"""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from tracescore.schemas.errors import ConfigError
from tracescore.scoring.results import RunRecord, ScoredCase
from tracescore.scoring.stats import Comparison, Flips, GateResult, flips, gate, paired_bootstrap

__all__ = [
    "EvaluatorComparison",
    "RunComparison",
    "compare_runs",
    "compare_variants",
    "gate_comparison",
    "print_comparison",
    "print_gate",
]

DEFAULT_RESAMPLES = 2000
DEFAULT_THRESHOLD = 0.05

_Key = str
_Side = dict[_Key, list[ScoredCase]]


@dataclass(frozen=True)
class EvaluatorComparison:
    """One evaluator across the two sides.

    ``values`` compares ``Score.value`` and ``pass_rate`` compares ``Score.passed`` as
    1.0/0.0; either is None when no case has it on both sides. ``excluded_a`` /
    ``excluded_b`` count the errored and skipped scores left out of the pairing.
    """

    name: str
    values: Comparison | None
    pass_rate: Comparison | None
    excluded_a: int
    excluded_b: int
    pass_to_fail: list[str] = field(default_factory=list)
    fail_to_pass: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunComparison:
    """Everything ``compare`` prints and ``ci`` gates on."""

    label_a: str
    label_b: str
    evaluators: list[EvaluatorComparison]
    case_flips: Flips
    metrics: dict[str, Comparison]
    """Latency and token means over the paired cases, by display name."""
    n_paired: int
    only_in_a: list[str]
    only_in_b: list[str]
    notes: list[str]
    seed: int
    resamples: int

    def gated(self) -> dict[str, Comparison]:
        """The comparisons the gate judges, by the name its messages use.

        An evaluator's values; its pass rate too when the pass rate differs from its
        values in some case (otherwise the two are the same comparison), and instead of
        them when it produced verdicts only.
        """
        gated: dict[str, Comparison] = {}
        for evaluator in self.evaluators:
            if evaluator.values is not None:
                gated[evaluator.name] = evaluator.values
            if evaluator.pass_rate is not None and (
                evaluator.values is None or not _same(evaluator.values, evaluator.pass_rate)
            ):
                gated[f"{evaluator.name} pass rate"] = evaluator.pass_rate
        return gated


def _same(a: Comparison, b: Comparison) -> bool:
    return (a.mean_a, a.mean_b, a.n_paired, a.only_in_a, a.only_in_b) == (
        b.mean_a,
        b.mean_b,
        b.n_paired,
        b.only_in_a,
        b.only_in_b,
    )


# ------------------------------------------------------------------------ building


def _group(cases: Iterable[ScoredCase], key: Callable[[ScoredCase], _Key]) -> _Side:
    side: _Side = {}
    for case in cases:
        side.setdefault(key(case), []).append(case)
    return side


def _scores(
    side: _Side, evaluator: str
) -> tuple[dict[_Key, list[float]], dict[_Key, list[float]], int]:
    """Per case key: the evaluator's values, its verdicts as 1.0/0.0, and the count of
    errored or skipped scores left out."""
    values: dict[_Key, list[float]] = {}
    verdicts: dict[_Key, list[float]] = {}
    excluded = 0
    for key, repeats in side.items():
        for case in repeats:
            for score in case.scores:
                if score.evaluator != evaluator:
                    continue
                if score.error is not None or score.skipped:
                    excluded += 1
                    continue
                if score.value is not None and not math.isnan(score.value):
                    values.setdefault(key, []).append(score.value)
                if score.passed is not None:
                    verdicts.setdefault(key, []).append(1.0 if score.passed else 0.0)
    return values, verdicts, excluded


def _bootstrap(
    a: dict[_Key, list[float]], b: dict[_Key, list[float]], seed: int, resamples: int, name: str
) -> Comparison | None:
    if not a.keys() & b.keys():
        return None
    return paired_bootstrap(a, b, resamples=resamples, seed=seed, name=name)


def _all_passed(verdicts: Sequence[float]) -> bool:
    return all(v == 1.0 for v in verdicts)


def _compare(
    side_a: _Side,
    side_b: _Side,
    *,
    label_a: str,
    label_b: str,
    seed: int,
    resamples: int,
    notes: list[str],
) -> RunComparison:
    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    paired = sorted(side_a.keys() & side_b.keys())
    if not paired:
        raise ConfigError(
            f"no case is in both {label_a} ({len(side_a)} cases) and {label_b} "
            f"({len(side_b)} cases); nothing to compare"
        )
    names = sorted(
        {
            s.evaluator
            for side in (side_a, side_b)
            for cs in side.values()
            for c in cs
            for s in c.scores
        }
    )
    evaluators: list[EvaluatorComparison] = []
    for name in names:
        values_a, verdicts_a, excluded_a = _scores(side_a, name)
        values_b, verdicts_b, excluded_b = _scores(side_b, name)
        verdict_a = {k: _all_passed(v) for k, v in verdicts_a.items()}
        verdict_b = {k: _all_passed(v) for k, v in verdicts_b.items()}
        flipped = flips(verdict_a, verdict_b)
        evaluators.append(
            EvaluatorComparison(
                name=name,
                values=_bootstrap(values_a, values_b, seed, resamples, name),
                pass_rate=_bootstrap(verdicts_a, verdicts_b, seed, resamples, f"{name} pass rate"),
                excluded_a=excluded_a,
                excluded_b=excluded_b,
                pass_to_fail=flipped.pass_to_fail,
                fail_to_pass=flipped.fail_to_pass,
            )
        )
        if not (values_a.keys() | verdicts_a.keys()) & (values_b.keys() | verdicts_b.keys()):
            notes.append(f"{name}: no case has a usable score on both sides; not compared")

    case_a = {k: all(c.status == "passed" for c in side_a[k]) for k in paired}
    case_b = {k: all(c.status == "passed" for c in side_b[k]) for k in paired}

    def metric(read: Callable[[ScoredCase], float]) -> tuple[dict[_Key, list[float]], ...]:
        return tuple({k: [read(c) for c in side[k]] for k in paired} for side in (side_a, side_b))

    metrics: dict[str, Comparison] = {}
    for label, read in (
        ("latency (ms)", lambda c: c.duration_ns / 1e6),
        ("input tokens", lambda c: float(c.input_tokens)),
        ("output tokens", lambda c: float(c.output_tokens)),
    ):
        ma, mb = metric(read)
        metrics[label] = paired_bootstrap(ma, mb, resamples=resamples, seed=seed, name=label)
    # Cost only where both sides were priced: an unpriced model is not free.
    priced = [
        k
        for k in paired
        if all(c.cost_usd is not None for side in (side_a, side_b) for c in side[k])
    ]
    if priced:
        ca, cb = (
            {k: [c.cost_usd or 0.0 for c in side[k]] for k in priced} for side in (side_a, side_b)
        )
        label = "cost (USD)"
        metrics[label] = paired_bootstrap(ca, cb, resamples=resamples, seed=seed, name=label)
        if len(priced) < len(paired):
            notes.append(
                f"cost compared over the {len(priced)} of {len(paired)} paired cases "
                "priced on both sides (add the others' models under prices:)"
            )

    return RunComparison(
        label_a=label_a,
        label_b=label_b,
        evaluators=evaluators,
        case_flips=flips(case_a, case_b),
        metrics=metrics,
        n_paired=len(paired),
        only_in_a=sorted(side_a.keys() - side_b.keys()),
        only_in_b=sorted(side_b.keys() - side_a.keys()),
        notes=notes,
        seed=seed,
        resamples=resamples,
    )


def compare_runs(
    run_a: RunRecord,
    run_b: RunRecord,
    *,
    variants: Sequence[str] = (),
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    force: bool = False,
) -> RunComparison:
    """Compare run A (baseline) with run B (candidate), pairing by (case_id, variant).

    ``variants`` restricts both runs to those variants. Runs over different datasets
    (``dataset_hash`` differs) are refused with ``ConfigError`` unless ``force``.
    """
    notes: list[str] = []
    if run_a.run_id == run_b.run_id:
        raise ConfigError(f"both sides are run {run_a.run_id}; compare two different runs")
    if run_a.dataset_hash != run_b.dataset_hash:
        hashes = f"{run_a.dataset_hash or 'unknown'} vs {run_b.dataset_hash or 'unknown'}"
        if not force:
            raise ConfigError(
                f"runs {run_a.run_id} and {run_b.run_id} were over different datasets "
                f"({hashes}); their cases may not be comparable (--force to compare anyway)"
            )
        notes.append(f"dataset hashes differ ({hashes}); compared anyway (--force)")
    if run_a.suite != run_b.suite:
        notes.append(f"different suites: {run_a.suite!r} vs {run_b.suite!r}")
    wanted = set(variants)
    for variant in variants:
        if not any(c.variant == variant for c in run_a.cases + run_b.cases):
            raise ConfigError(f"--variant {variant}: in neither run")

    def keep(run: RunRecord) -> list[ScoredCase]:
        return [c for c in run.cases if not wanted or c.variant in wanted]

    def key(case: ScoredCase) -> _Key:
        return f"{case.case_id} [{case.variant}]"

    return _compare(
        _group(keep(run_a), key),
        _group(keep(run_b), key),
        label_a=f"A {run_a.run_id}",
        label_b=f"B {run_b.run_id}",
        seed=seed,
        resamples=resamples,
        notes=notes,
    )


def compare_variants(
    run: RunRecord,
    variant_a: str,
    variant_b: str,
    *,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> RunComparison:
    """Compare two variants of one run (A = ``variant_a``), pairing cases by case_id."""
    if variant_a == variant_b:
        raise ConfigError(f"--variant {variant_a} given twice; name two different variants")
    present = sorted({c.variant for c in run.cases})
    for variant in (variant_a, variant_b):
        if variant not in present:
            raise ConfigError(
                f"--variant {variant}: not in run {run.run_id} (it has: {', '.join(present)})"
            )

    def side(variant: str) -> _Side:
        return _group((c for c in run.cases if c.variant == variant), lambda c: c.case_id)

    return _compare(
        side(variant_a),
        side(variant_b),
        label_a=f"A {variant_a}",
        label_b=f"B {variant_b}",
        seed=seed,
        resamples=resamples,
        notes=[f"run {run.run_id}: variant {variant_a} (A) against {variant_b} (B)"],
    )


def gate_comparison(
    comparison: RunComparison, threshold: float, max_flips: int | None = None
) -> GateResult:
    """:func:`stats.gate` over the comparison; flips are the cases' pass->fail flips."""
    if not threshold >= 0.0:
        raise ConfigError(f"--threshold must be a non-negative number, got {threshold}")
    if max_flips is not None and max_flips < 0:
        raise ConfigError(f"--max-flips must be non-negative, got {max_flips}")
    return gate(comparison.gated(), threshold, max_flips, comparison.case_flips)


# ------------------------------------------------------------------------ printing


def _num(value: float) -> str:
    # Cents of a dollar matter for a case's cost: small values keep 3 significant digits.
    if 0 < abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"


def _signed(value: float) -> str:
    if 0 < abs(value) < 0.01:
        return f"{value:+.3g}"
    return f"{value:+.3f}" if abs(value) < 1000 else f"{value:+,.0f}"


def _ci(c: Comparison) -> str:
    text = f"[{_signed(c.ci_low)}, {_signed(c.ci_high)}]"
    return f"{text} *" if c.significant else text


def _shown(ids: Sequence[str], limit: int = 20) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def print_comparison(console: Console, comparison: RunComparison) -> None:
    """The comparison as tables: evaluators, then latency, tokens and cost, then flips."""
    a, b = comparison.label_a, comparison.label_b
    console.print(
        f"{a} (baseline) vs {b} (candidate): {comparison.n_paired} paired cases, "
        f"{comparison.resamples} bootstrap resamples, seed {comparison.seed}",
        markup=False,
        highlight=False,
    )
    table = Table(title="Scores (delta = B - A; * = 95% CI excludes 0)", title_justify="left")
    table.add_column("evaluator", no_wrap=True)
    for column in ("n", "mean A", "mean B", "delta", "95% CI", "pass A", "pass B", "pass delta"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("flips -/+", justify="right", no_wrap=True)
    table.add_column("excluded A/B", justify="right", no_wrap=True)
    for ev in comparison.evaluators:
        v, p = ev.values, ev.pass_rate
        first = v if v is not None else p
        row = [ev.name, str(first.n_paired) if first is not None else "0"]
        row += [_num(v.mean_a), _num(v.mean_b), _signed(v.delta), _ci(v)] if v else ["-"] * 4
        row += (
            [f"{p.mean_a:.1%}", f"{p.mean_b:.1%}", f"{p.delta * 100:+.1f} pp"] if p else ["-"] * 3
        )
        row += [
            f"{len(ev.pass_to_fail)}/{len(ev.fail_to_pass)}",
            f"{ev.excluded_a}/{ev.excluded_b}",
        ]
        table.add_row(*row)
    console.print(table)

    usage = Table(title="Latency, tokens and cost (means over paired cases)", title_justify="left")
    for column in ("metric", "mean A", "mean B", "delta", "95% CI"):
        usage.add_column(column, justify="left" if column == "metric" else "right")
    for label, m in comparison.metrics.items():
        usage.add_row(label, _num(m.mean_a), _num(m.mean_b), _signed(m.delta), _ci(m))
    console.print(usage)

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    case_flips = comparison.case_flips
    say(f"Cases flipped pass -> fail: {len(case_flips.pass_to_fail)}")
    for case in case_flips.pass_to_fail:
        say(f"  - {case}")
    say(f"Cases flipped fail -> pass: {len(case_flips.fail_to_pass)}")
    for case in case_flips.fail_to_pass:
        say(f"  + {case}")
    if comparison.only_in_a or comparison.only_in_b:
        say(
            f"Not paired: {len(comparison.only_in_a)} case(s) only in {a}"
            + (f" ({_shown(comparison.only_in_a)})" if comparison.only_in_a else "")
            + f", {len(comparison.only_in_b)} only in {b}"
            + (f" ({_shown(comparison.only_in_b)})" if comparison.only_in_b else "")
        )
    say(
        "Errored and skipped scores are excluded from their evaluator's pairing "
        "(column excluded A/B); a case passes when every repeat passed."
    )
    for note in comparison.notes:
        say(f"note: {note}")


def print_gate(console: Console, result: GateResult) -> None:
    """The verdict, then every reason it failed and every note that did not fail it."""

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    say("CI gate: REGRESSED" if result.regressed else "CI gate: passed")
    for reason in result.reasons:
        say(f"  FAIL {reason}")
    for note in result.notes:
        say(f"  note {note}")
    if not result.regressed and not result.notes:
        say("  no evaluator dropped more than the threshold")
