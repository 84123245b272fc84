"""Text evaluators on the trace's final output."""

import re
import unicodedata
from collections import Counter
from typing import Literal

from pydantic import Field, field_validator

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    as_list,
    register,
)


def _shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class ExactMatchParams(EvaluatorParams):
    expected: str | None = None
    """The expected output; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "output"
    case_sensitive: bool = True
    strip: bool = True


@register
class ExactMatch(Evaluator):
    type_name = "exact_match"
    summary = "final output equals the expected text"
    Params = ExactMatchParams
    requires = ("final_output",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ExactMatchParams)
        expected = self.expected_values(p.expected, case, p.case_key)
        if not expected:
            return self.nothing_to_check(p.case_key)
        output = self.final_output(trace)
        if isinstance(output, Score):
            return output
        got, want = output, expected[0]
        if p.strip:
            got, want = got.strip(), want.strip()
        if not p.case_sensitive:
            got, want = got.casefold(), want.casefold()
        if got == want:
            return self.verdict(True, f"output equals {_shorten(want)!r}")
        return self.verdict(False, f"expected {_shorten(want)!r}, got {_shorten(got)!r}")


class ContainsTextParams(EvaluatorParams):
    text: str | list[str] | None = None
    """Text(s) to look for; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "contains"
    mode: Literal["all", "any"] = "all"
    case_sensitive: bool = False


@register
class ContainsText(Evaluator):
    type_name = "contains_text"
    summary = "final output contains all (or any) of the given texts"
    Params = ContainsTextParams
    requires = ("final_output",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ContainsTextParams)
        needles = self.expected_values(p.text, case, p.case_key)
        if not needles:
            return self.nothing_to_check(p.case_key)
        output = self.final_output(trace)
        if isinstance(output, Score):
            return output
        haystack = output if p.case_sensitive else output.casefold()
        found = [n for n in needles if (n if p.case_sensitive else n.casefold()) in haystack]
        missing = [n for n in needles if n not in found]
        passed = bool(found) if p.mode == "any" else not missing
        if passed:
            return self.verdict(True, f"output contains {', '.join(repr(n) for n in found)}")
        lacking = needles if p.mode == "any" else missing
        return self.verdict(
            False,
            f"output lacks {', '.join(repr(n) for n in lacking)}; got {_shorten(output)!r}",
        )


# --- regex ------------------------------------------------------------------------------------


class RegexParams(EvaluatorParams):
    pattern: str | list[str] | None = None
    """Pattern(s) to match; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "regex"
    mode: Literal["all", "any"] = "all"
    ignore_case: bool = False
    multiline: bool = False
    """``^`` and ``$`` match at every line, not only at the ends of the output."""
    dotall: bool = False
    """``.`` also matches a newline."""
    full_match: bool = False
    """The pattern must match the whole output, not just somewhere in it."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | list[str] | None) -> str | list[str] | None:
        # A typo in a pattern should stop the run at load time, not turn every case
        # into an error; the flags never change whether a pattern compiles.
        many = isinstance(value, list)
        for index, pattern in enumerate(as_list(value)):
            error = _regex_error(pattern)
            if error:
                where = f"item {index}: " if many else ""
                raise ValueError(f"{where}{pattern!r} is not a valid regex: {error}")
        return value


def _regex_error(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


@register
class Regex(Evaluator):
    type_name = "regex"
    summary = "final output matches all (or any) of the given regular expressions"
    Params = RegexParams
    requires = ("final_output",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, RegexParams)
        patterns = self.expected_values(p.pattern, case, p.case_key)
        if not patterns:
            return self.nothing_to_check(p.case_key)
        if p.pattern is None:
            # Patterns from the case were not checked at load time.
            for pattern in patterns:
                error = _regex_error(pattern)
                if error:
                    return Score.failure(
                        self.name,
                        f"expected.{p.case_key}: {pattern!r} is not a valid regex: {error}",
                    )
        output = self.final_output(trace)
        if isinstance(output, Score):
            return output
        flags = (
            (re.IGNORECASE if p.ignore_case else 0)
            | (re.MULTILINE if p.multiline else 0)
            | (re.DOTALL if p.dotall else 0)
        )
        output = output
        match = re.fullmatch if p.full_match else re.search
        matched = [pat for pat in patterns if match(pat, output, flags)]
        unmatched = [pat for pat in patterns if pat not in matched]
        passed = bool(matched) if p.mode == "any" else not unmatched
        verb = "fully match" if p.full_match else "match"
        if passed:
            return self.verdict(True, f"output {verb}es {', '.join(repr(m) for m in matched)}")
        lacking = patterns if p.mode == "any" else unmatched
        return self.verdict(
            False,
            f"output does not {verb} {', '.join(repr(m) for m in lacking)}; "
            f"got {_shorten(output)!r}",
        )


# --- similarity metrics -----------------------------------------------------------------------


def _metric(ev: Evaluator, value: float, threshold: float, explanation: str) -> Score:
    """Like ``Evaluator.verdict`` but keeps the continuous value, so reports can average it."""
    passed = value >= threshold
    sign = "≥" if passed else "<"
    return Score(
        evaluator=ev.name,
        value=value,
        passed=passed,
        label="pass" if passed else "fail",
        explanation=f"{value:.3f} {sign} threshold {threshold:g}; {explanation}",
    )


def _best(
    scores: list[tuple[float, str]],
) -> tuple[float, str]:
    # max keeps the first reference on ties, so the explanation is deterministic.
    return max(scores, key=lambda item: item[0])


def _f_measure(overlap: int, n_candidate: int, n_reference: int) -> float:
    if n_candidate == 0 or n_reference == 0:
        # Nothing to compare: only two empty texts agree (the SQuAD convention).
        return float(n_candidate == n_reference)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_candidate, overlap / n_reference
    return 2 * precision * recall / (precision + recall)


_WORD = re.compile(r"\w+")


def rouge_l_tokens(text: str) -> list[str]:
    """Lowercased word tokens: whitespace and punctuation both separate tokens."""
    return _WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, keeping only two DP rows over the shorter list."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            current[j] = previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1])
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F-measure (β = 1) of ``candidate`` against one ``reference``."""
    cand, ref = rouge_l_tokens(candidate), rouge_l_tokens(reference)
    return _f_measure(lcs_length(cand, ref), len(cand), len(ref))


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_tokens(text: str) -> list[str]:
    """SQuAD answer normalization: lowercase, drop punctuation and articles, split."""
    # Unicode punctuation too (SQuAD uses ASCII only), so "…" or "—" do not become tokens.
    lowered = "".join(c for c in text.lower() if not unicodedata.category(c).startswith("P"))
    return _ARTICLES.sub(" ", lowered).split()


def token_f1(candidate: str, reference: str) -> float:
    """SQuAD-style token F1: overlap of the two token multisets."""
    cand, ref = squad_tokens(candidate), squad_tokens(reference)
    overlap = sum((Counter(cand) & Counter(ref)).values())
    return _f_measure(overlap, len(cand), len(ref))


class ReferenceMetricParams(EvaluatorParams):
    reference: str | list[str] | None = None
    """Reference text(s); when absent, the case's ``expected.<case_key>``. Best one counts."""
    case_key: str = "output"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class _ReferenceMetric(Evaluator):
    """A similarity metric of the final output against references: the best one counts."""

    Params = ReferenceMetricParams
    requires = ("final_output",)
    label = ""

    @staticmethod
    def metric(candidate: str, reference: str) -> float:
        raise NotImplementedError

    def metrics(self, candidate: str, references: list[str]) -> list[float]:
        """The metric against each reference; a model-backed metric batches them."""
        return [self.metric(candidate, reference) for reference in references]

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ReferenceMetricParams)
        references = self.expected_values(p.reference, case, p.case_key)
        if not references:
            return self.nothing_to_check(p.case_key)
        output = self.final_output(trace)
        if isinstance(output, Score):
            return output
        value, best = _best(list(zip(self.metrics(output, references), references, strict=True)))
        return _metric(
            self, value, p.threshold, f"{self.label} of {_shorten(output)!r} vs {_shorten(best)!r}"
        )


@register
class RougeL(_ReferenceMetric):
    type_name = "rouge_l"
    summary = "ROUGE-L F-measure of the final output against the reference(s) ≥ threshold"
    label = "ROUGE-L F"
    metric = staticmethod(rouge_l)


@register
class TokenF1(_ReferenceMetric):
    type_name = "token_f1"
    summary = "SQuAD-style token F1 of the final output against the reference(s) ≥ threshold"
    label = "token F1"
    metric = staticmethod(token_f1)
