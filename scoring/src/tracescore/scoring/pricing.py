"""What an LLM call cost: a price table per model, and pricing a reconstructed ``Trace``.

Token convention (what the normalizer guarantees, see reconstruct.py): an LLM call's
``input_tokens`` is the *total* input including tokens read from the prompt cache, and
``cached_input_tokens`` is the cache-read part of it. That is OpenAI's and OTel GenAI's
definition; Anthropic reports cache reads apart, and the normalizer adds them back in.
So a call costs ``(input - cached) * input + cached * cached_input + output * output``,
each rate per million tokens. Anthropic's cache *writes* are billed above the input
rate; they are not reported separately, so they are priced as plain input.
"""

import re
from collections.abc import Iterable, Mapping

from tracescore.schemas.suite import ModelPrice
from tracescore.schemas.trace import LlmCall, Trace

__all__ = ["BUILT_IN_PRICES", "ModelPrice", "PriceTable", "apply_prices", "call_cost"]

# List prices in USD per million tokens (input, output, cached input) as published by
# the providers when this table was written (2025). Prices change and deals differ:
# override or extend them with `prices:` in eval.yaml rather than trusting these.
_BUILT_IN: dict[str, tuple[float, float, float | None]] = {
    # Anthropic (cached = cache read, 10 % of input)
    "claude-opus-4-5": (5.0, 25.0, 0.50),
    "claude-opus-4-1": (15.0, 75.0, 1.50),
    "claude-opus-4": (15.0, 75.0, 1.50),
    "claude-sonnet-4-5": (3.0, 15.0, 0.30),
    "claude-sonnet-4": (3.0, 15.0, 0.30),
    "claude-haiku-4-5": (1.0, 5.0, 0.10),
    "claude-3-7-sonnet": (3.0, 15.0, 0.30),
    "claude-3-5-sonnet": (3.0, 15.0, 0.30),
    "claude-3-5-haiku": (0.80, 4.0, 0.08),
    "claude-3-opus": (15.0, 75.0, 1.50),
    "claude-3-haiku": (0.25, 1.25, 0.03),
    # OpenAI
    "gpt-5": (1.25, 10.0, 0.125),
    "gpt-5-mini": (0.25, 2.0, 0.025),
    "gpt-5-nano": (0.05, 0.40, 0.005),
    "gpt-4.1": (2.0, 8.0, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-4o": (2.50, 10.0, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4-turbo": (10.0, 30.0, None),
    "gpt-4": (30.0, 60.0, None),
    "gpt-3.5-turbo": (0.50, 1.50, None),
    "o1": (15.0, 60.0, 7.50),
    "o1-mini": (1.10, 4.40, 0.55),
    "o3": (2.0, 8.0, 0.50),
    "o3-mini": (1.10, 4.40, 0.55),
    "o4-mini": (1.10, 4.40, 0.275),
    # Google
    "gemini-2.5-pro": (1.25, 10.0, 0.31),
    "gemini-2.5-flash": (0.30, 2.50, 0.075),
    "gemini-2.0-flash": (0.10, 0.40, 0.025),
}

BUILT_IN_PRICES: dict[str, ModelPrice] = {
    name: ModelPrice(input=i, output=o, cached_input=c) for name, (i, o, c) in _BUILT_IN.items()
}

# Version suffixes providers append to a model family's name: dates in either form
# (-20250929, -2024-08-06), "-latest", and Bedrock/Vertex revisions ("-v1:0", "@20240620").
_SUFFIX = re.compile(r"(?:[-@](?:\d{8}|\d{4}-\d{2}-\d{2}|latest|v\d+(?::\d+)?))+$")
# Cloud routes put a provider or region in front: "anthropic.claude-…", "us.anthropic.…",
# "openai/gpt-4o", "models/gemini-…".
# Segments are letters only, so the dot in "gpt-4.1" is never taken for one.
_PREFIX = re.compile(r"^(?:[a-z][a-z-]*[./])+")


class PriceTable:
    """Model name → price, matched exactly, then without a route prefix or version suffix,
    then by the longest known name the model starts with (so ``gpt-4o-mini-2024-07-18``
    finds ``gpt-4o-mini``, not ``gpt-4o``). Names are case-insensitive. A key
    ``provider/model`` (provider as in ``gen_ai.provider.name``) prices one provider's
    route apart from the same model elsewhere."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self.prices = {name.lower(): price for name, price in prices.items()}
        # Longest first, so the most specific family wins the prefix match.
        self._by_length = sorted(self.prices, key=len, reverse=True)
        # Traces repeat the same few model names; matching is memoized per (model, provider).
        self._memo: dict[tuple[str, str | None], ModelPrice | None] = {}

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, ModelPrice] | None = None) -> "PriceTable":
        """The built-in table, with the suite's ``prices:`` added or replacing entries."""
        return cls({**BUILT_IN_PRICES, **{k.lower(): v for k, v in (overrides or {}).items()}})

    def lookup(self, model: str | None, provider: str | None = None) -> ModelPrice | None:
        if not model:
            return None
        key = (model, provider)
        if key not in self._memo:
            self._memo[key] = self._find(model.lower().strip(), (provider or "").lower())
        return self._memo[key]

    def _find(self, model: str, provider: str) -> ModelPrice | None:
        bare = _PREFIX.sub("", model)
        candidates = [model, bare, _SUFFIX.sub("", model), _SUFFIX.sub("", bare)]
        if provider:
            candidates = [f"{provider}/{c}" for c in candidates] + candidates
        candidates = list(dict.fromkeys(candidates))
        for name in candidates:
            if name in self.prices:
                return self.prices[name]
        for stem in candidates:
            for name in self._by_length:
                # A family name followed by a separator: never "o1" inside "o1x".
                if stem.startswith(name) and stem[len(name) : len(name) + 1] in ("-", "@", ":"):
                    return self.prices[name]
        return None


def price_of(
    table: PriceTable, provider: str | None, response_model: str | None, request_model: str | None
) -> ModelPrice | None:
    """A call's price: by the model that answered, else the one asked for."""
    return table.lookup(response_model, provider) or table.lookup(request_model, provider)


def tokens_cost(
    price: ModelPrice, input_tokens: int | None, cached: int | None, output_tokens: int | None
) -> float | None:
    """USD for one call's usage, or None when it reported none. ``input_tokens`` includes
    the ``cached`` ones (see reconstruct), which bill at the cached rate when there is one."""
    if input_tokens is None and output_tokens is None:
        return None
    total_in = input_tokens or 0
    cached_in = min(cached or 0, total_in)
    cached_rate = price.cached_input if price.cached_input is not None else price.input
    micro_usd = (total_in - cached_in) * price.input + cached_in * cached_rate
    micro_usd += (output_tokens or 0) * price.output
    return micro_usd / 1_000_000


def call_cost(call: LlmCall, price: ModelPrice) -> float | None:
    """USD for one call, or None when it reported no token usage."""
    return tokens_cost(price, call.input_tokens, call.cached_input_tokens, call.output_tokens)


def unpriced_name(call: LlmCall) -> str:
    return call.model or "(unknown model)"


def apply_prices(trace: Trace, table: PriceTable) -> Trace:
    """A copy of ``trace`` with each call's ``cost_usd``, the total and the unpriced models.

    ``cost_usd`` is the sum over priced calls, None when no call could be priced. A call
    whose model the table lacks names it in ``unpriced_models``; a call with no model
    name is listed as ``"(unknown model)"`` so an evaluator can still say why.
    ``reconstruct(..., prices=table)`` does the same while building the trace.
    """
    calls: list[LlmCall] = []
    unpriced: list[str] = []
    for call in trace.llm_calls:
        price = price_of(table, call.provider, call.response_model, call.request_model)
        if price is None:
            unpriced.append(unpriced_name(call))
            calls.append(call)
            continue
        cost = call_cost(call, price)
        calls.append(call.model_copy(update={"cost_usd": cost}) if cost != call.cost_usd else call)
    return trace.model_copy(
        update={
            "llm_calls": calls,
            "cost_usd": total_cost(calls),
            "unpriced_models": unique(unpriced),
        }
    )


def total_cost(calls: Iterable[LlmCall]) -> float | None:
    costs = [c.cost_usd for c in calls if c.cost_usd is not None]
    return sum(costs) if costs else None


def unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
