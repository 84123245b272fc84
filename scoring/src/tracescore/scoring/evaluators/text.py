"""Text evaluators on the trace's final output."""

from typing import Literal

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    register,
)

_NO_OUTPUT = (
    "looked for gen_ai.output.messages on invoke_agent and chat spans, "
    "then the SUT's own output on the harness span"
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

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ExactMatchParams)
        expected = self.expected_values(p.expected, case, p.case_key)
        if not expected:
            return self.nothing_to_check(p.case_key)
        if trace.final_output is None:
            return self.missing("final output", _NO_OUTPUT)
        got, want = trace.final_output, expected[0]
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

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, ContainsTextParams)
        needles = self.expected_values(p.text, case, p.case_key)
        if not needles:
            return self.nothing_to_check(p.case_key)
        if trace.final_output is None:
            return self.missing("final output", _NO_OUTPUT)
        haystack = trace.final_output if p.case_sensitive else trace.final_output.casefold()
        found = [n for n in needles if (n if p.case_sensitive else n.casefold()) in haystack]
        missing = [n for n in needles if n not in found]
        passed = bool(found) if p.mode == "any" else not missing
        if passed:
            return self.verdict(True, f"output contains {', '.join(repr(n) for n in found)}")
        lacking = needles if p.mode == "any" else missing
        return self.verdict(
            False,
            f"output lacks {', '.join(repr(n) for n in lacking)}; "
            f"got {_shorten(trace.final_output)!r}",
        )
