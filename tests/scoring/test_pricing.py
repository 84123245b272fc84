"""The price table: model-name matching, suite overrides, cached-input billing, pricing a trace."""

import pytest
from pydantic import ValidationError

from tracescore.schemas.suite import ModelPrice, SuiteConfig
from tracescore.schemas.trace import LlmCall, Trace
from tracescore.scoring.pricing import BUILT_IN_PRICES, PriceTable, apply_prices, call_cost

TABLE = PriceTable.with_overrides()


def call(
    model: str | None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cached: int | None = None,
    *,
    span_id: str = "l1",
    provider: str | None = None,
    request_model: str | None = None,
) -> LlmCall:
    return LlmCall(
        span_id=span_id,
        operation="chat",
        provider=provider,
        request_model=request_model,
        response_model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
    )


def trace(*calls: LlmCall) -> Trace:
    return Trace(trace_id="0" * 32, spans=[], roots=[], llm_calls=list(calls))


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longer family, not gpt-4o
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o1-preview", "o1"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),  # Bedrock
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),  # Vertex
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ],
)
def test_model_names_match_their_family(model: str, family: str) -> None:
    assert TABLE.lookup(model) == BUILT_IN_PRICES[family]


@pytest.mark.parametrize("model", ["o1x", "gpt-4o1", "my-model", "llama-3-70b", "", None])
def test_unknown_models_have_no_price(model: str | None) -> None:
    assert TABLE.lookup(model) is None


def test_overrides_replace_built_ins_and_add_models() -> None:
    mine = ModelPrice(input=1.0, output=2.0, cached_input=0.1)
    cheap = ModelPrice(input=0.0, output=0.0)
    table = PriceTable.with_overrides({"My-Model": mine, "gpt-4o": cheap})
    assert table.lookup("my-model-2025-01-01") == mine
    assert table.lookup("gpt-4o-2024-08-06") == cheap
    assert table.lookup("gpt-4o-mini") == BUILT_IN_PRICES["gpt-4o-mini"]  # untouched


def test_a_provider_keyed_override_prices_that_route_only() -> None:
    azure = ModelPrice(input=5.0, output=15.0)
    table = PriceTable.with_overrides({"azure.ai.openai/gpt-4o": azure})
    assert table.lookup("gpt-4o-2024-08-06", "azure.ai.openai") == azure
    assert table.lookup("gpt-4o-2024-08-06", "openai") == BUILT_IN_PRICES["gpt-4o"]


def test_cached_input_is_billed_at_the_cached_rate() -> None:
    price = ModelPrice(input=2.0, output=10.0, cached_input=0.5)
    # input_tokens includes the cached ones: 600 fresh, 400 cached.
    cost = call_cost(call("m", 1000, 100, cached=400), price)
    assert cost == pytest.approx((600 * 2.0 + 400 * 0.5 + 100 * 10.0) / 1e6)


def test_cached_input_without_a_cached_rate_is_billed_as_input() -> None:
    price = ModelPrice(input=2.0, output=10.0)
    assert call_cost(call("m", 1000, 0, cached=400), price) == pytest.approx(1000 * 2.0 / 1e6)


def test_more_cached_than_input_tokens_never_bills_negative_input() -> None:
    price = ModelPrice(input=2.0, output=10.0, cached_input=0.5)
    assert call_cost(call("m", 100, 0, cached=400), price) == pytest.approx(100 * 0.5 / 1e6)


def test_apply_prices_fills_call_and_trace_costs() -> None:
    priced = apply_prices(
        trace(
            call("gpt-4o-2024-08-06", 1_000_000, 100_000, cached=500_000, span_id="a"),
            call("claude-sonnet-4-5-20250929", 10_000, 2_000, span_id="b"),
        ),
        TABLE,
    )
    first, second = priced.llm_calls
    assert first.cost_usd == pytest.approx(0.5 * 2.50 + 0.5 * 1.25 + 0.1 * 10.0)
    assert second.cost_usd == pytest.approx(0.01 * 3.0 + 0.002 * 15.0)
    assert first.cost_usd is not None and second.cost_usd is not None
    assert priced.cost_usd == pytest.approx(first.cost_usd + second.cost_usd)
    assert priced.unpriced_models == []


def test_apply_prices_returns_a_copy() -> None:
    original = trace(call("gpt-4o", 10, 10))
    priced = apply_prices(original, TABLE)
    assert original.cost_usd is None
    assert original.llm_calls[0].cost_usd is None
    assert priced.cost_usd is not None


def test_unpriced_models_are_listed_once_and_priced_calls_still_sum() -> None:
    priced = apply_prices(
        trace(
            call("my-model", 10, 10, span_id="a"),
            call("gpt-4o", 1_000_000, 0, span_id="b"),
            call("my-model", 10, 10, span_id="c"),
            call(None, 10, 10, span_id="d"),
        ),
        TABLE,
    )
    assert priced.unpriced_models == ["my-model", "(unknown model)"]
    assert priced.cost_usd == pytest.approx(2.50)
    assert [c.cost_usd for c in priced.llm_calls] == [None, pytest.approx(2.50), None, None]


def test_the_request_model_prices_a_call_without_a_response_model() -> None:
    priced = apply_prices(trace(call(None, 1_000_000, 0, request_model="gpt-4o")), TABLE)
    assert priced.cost_usd == pytest.approx(2.50)


def test_a_trace_without_priced_usage_has_no_cost() -> None:
    assert apply_prices(trace(), TABLE).cost_usd is None
    no_usage = apply_prices(trace(call("gpt-4o")), TABLE)
    assert no_usage.cost_usd is None
    assert no_usage.unpriced_models == []


def test_suite_prices_are_validated() -> None:
    base = {
        "suite": "s",
        "system": {"type": "command", "command": ["x"]},
        "variants": [{"name": "v"}],
        "evaluators": [{"type": "cost_under"}],
    }
    config = SuiteConfig.model_validate(
        {**base, "prices": {"my-model": {"input": 1, "output": 2, "cached_input": 0.1}}}
    )
    assert config.prices["my-model"] == ModelPrice(input=1.0, output=2.0, cached_input=0.1)
    with pytest.raises(ValidationError, match="extra"):
        SuiteConfig.model_validate({**base, "prices": {"m": {"input": 1, "output": 2, "x": 1}}})
    with pytest.raises(ValidationError):
        SuiteConfig.model_validate({**base, "prices": {"m": {"input": -1, "output": 2}}})
    with pytest.raises(ValidationError):
        SuiteConfig.model_validate({**base, "prices": {"m": {"input": 1}}})


def test_reconstruct_with_prices_matches_apply_prices() -> None:
    from tracescore.schemas.spans import Span
    from tracescore.scoring.reconstruct import reconstruct

    def chat(span_id: str, model: str, tokens: str) -> Span:
        return Span(
            trace_id="f" * 32,
            span_id=span_id,
            parent_span_id="",
            trace_state="",
            name=f"chat {model}",
            kind="Client",
            service_name="a",
            start_ns=int(span_id, 16),
            duration_ns=5,
            status_code="Unset",
            status_message="",
            resource_attributes={},
            scope_name="s",
            scope_version="",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": tokens,
                "gen_ai.usage.output_tokens": tokens,
                "gen_ai.usage.cache_read.input_tokens": "100",
            },
        )

    spans = [chat("01", "gpt-4o-mini-2024-07-18", "1000"), chat("02", "no-such-model", "5")]
    built = reconstruct("f" * 32, spans, prices=TABLE)
    assert built == apply_prices(reconstruct("f" * 32, spans), TABLE)
    assert built.cost_usd is not None and built.cost_usd > 0
    assert built.unpriced_models == ["no-such-model"]
