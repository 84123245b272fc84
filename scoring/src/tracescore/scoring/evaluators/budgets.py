"""Budget evaluators: latency, tokens, cost."""

import math
from typing import Any, Literal

from pydantic import Field

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import LlmCall, Trace
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    as_list,
    register,
)


def _limit(
    evaluator: Evaluator, explicit: float | None, case: Case, case_key: str
) -> float | Score:
    """The budget from ``params`` or the case; a skip or error Score when there is none."""
    if explicit is not None:
        return explicit
    values = as_list(case.expected.get(case_key))
    if not values:
        return evaluator.nothing_to_check(case_key)
    value: Any = values[0]
    # bool is an int subclass; `max_tokens: true` in a case is a typo, not a budget of 1.
    if len(values) > 1 or isinstance(value, bool) or not isinstance(value, int | float):
        return Score.failure(
            evaluator.name, f"case expected.{case_key} must be one number, got {values!r}"
        )
    if not math.isfinite(value) or value < 0:
        return Score.failure(evaluator.name, f"case expected.{case_key} must be ≥ 0, got {value!r}")
    return float(value)


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


# --- latency_under ----------------------------------------------------------------------------


class LatencyUnderParams(EvaluatorParams):
    max_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Latency budget; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "max_latency_ms"


@register
class LatencyUnder(Evaluator):
    type_name = "latency_under"
    summary = "the trace's duration is within a latency budget (ms)"
    Params = LatencyUnderParams
    requires = ("duration",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, LatencyUnderParams)
        limit = _limit(self, p.max_ms, case, p.case_key)
        if isinstance(limit, Score):
            return limit
        if (missing := self.require(trace)) is not None:
            return missing
        latency_ms = trace.duration_ns / 1_000_000
        passed = latency_ms <= limit
        sign = "≤" if passed else ">"
        explanation = f"latency {latency_ms:.1f} ms {sign} {_number(limit)} ms"
        return self.verdict(passed, explanation, value=latency_ms)


# --- tokens_under -----------------------------------------------------------------------------


class TokensUnderParams(EvaluatorParams):
    max_tokens: int | None = Field(default=None, ge=0)
    """Token budget; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "max_tokens"
    which: Literal["total", "input", "output"] = "total"


def _counts(call: LlmCall, which: str) -> list[int | None]:
    if which == "input":
        return [call.input_tokens]
    if which == "output":
        return [call.output_tokens]
    return [call.input_tokens, call.output_tokens]


@register
class TokensUnder(Evaluator):
    type_name = "tokens_under"
    summary = "the LLM calls' token usage (total, input or output) is within a budget"
    Params = TokensUnderParams
    requires = ("llm_calls",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, TokensUnderParams)
        limit = _limit(self, p.max_tokens, case, p.case_key)
        if isinstance(limit, Score):
            return limit
        if (missing := self.require(trace)) is not None:
            return missing
        usage = "token usage" if p.which == "total" else f"{p.which} token usage"
        unreported = [c.span_id for c in trace.llm_calls if None in _counts(c, p.which)]
        if all(n is None for c in trace.llm_calls for n in _counts(c, p.which)):
            return self.missing(
                usage, f"no gen_ai.usage.* on LLM call spans {', '.join(unreported)}"
            )
        tokens = sum(n or 0 for c in trace.llm_calls for n in _counts(c, p.which))
        what = "tokens" if p.which == "total" else f"{p.which} tokens"
        if tokens > limit:
            # Unreported calls could only add tokens, so over budget is certain.
            return self.verdict(False, f"{tokens} {what} > {_number(limit)}", value=float(tokens))
        if unreported:
            # Under budget with gaps is not a pass: the true total is unknown.
            return self.missing(
                usage,
                f"on {len(unreported)} of {len(trace.llm_calls)} LLM calls "
                f"({', '.join(unreported)}); the {tokens} reported {what} are within "
                f"{_number(limit)} but the real count is unknown",
            )
        return self.verdict(True, f"{tokens} {what} ≤ {_number(limit)}", value=float(tokens))


# --- cost_under -------------------------------------------------------------------------------


class CostUnderParams(EvaluatorParams):
    max_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Cost budget in USD; when absent, the case's ``expected.<case_key>``."""
    case_key: str = "max_cost_usd"


@register
class CostUnder(Evaluator):
    type_name = "cost_under"
    summary = "the LLM calls' cost (from the price table) is within a budget (USD)"
    Params = CostUnderParams
    requires = ("llm_calls",)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, CostUnderParams)
        limit = _limit(self, p.max_usd, case, p.case_key)
        if isinstance(limit, Score):
            return limit
        if (missing := self.require(trace)) is not None:
            return missing
        unreported = [
            c.span_id for c in trace.llm_calls if c.input_tokens is None and c.output_tokens is None
        ]
        if len(unreported) == len(trace.llm_calls):
            return self.missing(
                "token usage", f"no gen_ai.usage.* on LLM call spans {', '.join(unreported)}"
            )
        if trace.unpriced_models:
            # A partial sum would understate the cost: never pass on it.
            names = ", ".join(trace.unpriced_models)
            return self.missing(
                "price",
                f"no price for model {names}; add it under prices: in eval.yaml",
            )
        if trace.cost_usd is None:
            return self.missing("cost", "the trace was not priced (apply_prices)")
        cost = trace.cost_usd
        if cost > limit:
            return self.verdict(False, f"${cost:.6g} > ${_number(limit)}", value=cost)
        if unreported:
            return self.missing(
                "token usage",
                f"on {len(unreported)} of {len(trace.llm_calls)} LLM calls "
                f"({', '.join(unreported)}); the ${cost:.6g} priced are within "
                f"${_number(limit)} but the real cost is unknown",
            )
        return self.verdict(True, f"${cost:.6g} ≤ ${_number(limit)}", value=cost)
