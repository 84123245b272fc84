"""Fetching many traces in one query (Store.fetch_traces) and loading them for scoring."""

import pytest

from tracescore.collector.spans_decode import SpanColumns
from tracescore.collector.store import Store
from tracescore.schemas.suite import ModelPrice
from tracescore.scoring.pricing import PriceTable
from tracescore.scoring.traces import load_traces

DAY_NS = 86_400 * 10**9
BASE_NS = 1_700_000_000 * 10**9


def trace_id(n: int) -> str:
    return f"{n:032x}"


def add_trace(columns: SpanColumns, n: int, start_ns: int, spans: int = 3) -> None:
    """A root, a chat span with usage and an event, and tool spans, one with a link."""
    for i in range(spans):
        chat = i == 1
        attributes = (
            [
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.response.model", "gpt-4o-2024-08-06"),
                ("gen_ai.usage.input_tokens", "1000"),
                ("gen_ai.usage.output_tokens", "100"),
            ]
            if chat
            else [("step", str(i))]
        )
        columns.timestamp.append(start_ns + i * 1_000_000)
        columns.trace_id.append(trace_id(n))
        columns.span_id.append(f"{n:08x}{i:08x}")
        columns.parent_span_id.append("" if i == 0 else f"{n:08x}{0:08x}")
        columns.trace_state.append("")
        columns.span_name.append("chat gpt-4o" if chat else f"step {i}")
        columns.span_kind.append("Client" if chat else "Internal")
        columns.service_name.append("agent")
        columns.resource_attributes.append([("service.name", "agent"), ("tracescore.variant", "a")])
        columns.scope_name.append("test")
        columns.scope_version.append("1")
        columns.span_attributes.append(attributes)
        columns.duration.append(5_000_000 - i)
        columns.status_code.append("Error" if i == spans - 1 else "Unset")
        columns.status_message.append("boom" if i == spans - 1 else "")
        columns.events_timestamp.append([start_ns + 10] if chat else [])
        columns.events_name.append(["gen_ai.choice"] if chat else [])
        columns.events_attributes.append([[("index", "0")]] if chat else [])
        linked = i == 2
        columns.links_trace_id.append([trace_id(999)] if linked else [])
        columns.links_span_id.append(["00000000000003e7"] if linked else [])
        columns.links_trace_state.append(["k=v"] if linked else [])
        columns.links_attributes.append([[("why", "retry")]] if linked else [])


@pytest.fixture
def stored(store: Store) -> list[str]:
    """Five traces on three different days, inserted out of order."""
    columns = SpanColumns()
    for n, day, spans in [(3, 2, 4), (1, 0, 3), (2, 0, 5), (4, 1, 3), (5, 2, 3)]:
        add_trace(columns, n, BASE_NS + day * DAY_NS + n * 1_000, spans)
    store.insert_spans(columns)
    return [trace_id(n) for n in (1, 2, 3, 4, 5)]


def test_fetch_traces_returns_what_fetch_trace_returns_for_each(
    store: Store, stored: list[str]
) -> None:
    wanted = [stored[2], stored[0], stored[3]]  # days 2, 0, 1: the bound spans all of them
    found = store.fetch_traces(wanted)
    assert list(found) == wanted
    for tid in wanted:
        assert found[tid] == store.fetch_trace(tid)
    assert [len(found[t]) for t in wanted] == [4, 3, 3]
    spans = found[stored[0]]
    assert [s.span_id for s in spans] == sorted(s.span_id for s in spans)  # start order
    chat = spans[1]
    assert chat.attributes["gen_ai.usage.input_tokens"] == "1000"
    assert chat.resource_attributes == {"service.name": "agent", "tracescore.variant": "a"}
    assert [(e.name, e.attributes) for e in chat.events] == [("gen_ai.choice", {"index": "0"})]
    [link] = spans[2].links
    assert (link.trace_id, link.trace_state, link.attributes) == (
        trace_id(999),
        "k=v",
        {"why": "retry"},
    )
    assert spans[2].is_error and spans[2].status_message == "boom"


def test_fetch_traces_gives_unknown_ids_an_empty_list(store: Store, stored: list[str]) -> None:
    unknown = trace_id(777)
    found = store.fetch_traces([unknown, stored[1]])
    assert found[unknown] == []
    assert len(found[stored[1]]) == 5
    assert store.fetch_traces([unknown]) == {unknown: []}
    assert store.fetch_traces([]) == {}


def test_load_traces_rebuilds_prices_and_batches(store: Store, stored: list[str]) -> None:
    unknown = trace_id(777)
    loaded = load_traces(store, [*stored, unknown, stored[0]], batch_size=2)
    assert list(loaded) == [*stored, unknown]  # duplicates loaded once
    first = loaded[stored[0]]
    assert len(first.spans) == 3 and len(first.roots) == 1
    [call] = first.llm_calls
    assert (call.input_tokens, call.output_tokens) == (1000, 100)
    assert first.cost_usd == pytest.approx((1000 * 2.50 + 100 * 10.0) / 1e6)
    assert first.error_spans == [f"{1:08x}{2:08x}"]
    assert loaded[unknown].spans == [] and loaded[unknown].cost_usd is None


def test_load_traces_uses_the_given_prices(store: Store, stored: list[str]) -> None:
    table = PriceTable.with_overrides({"gpt-4o": ModelPrice(input=1000.0, output=0.0)})
    loaded = load_traces(store, stored[:1], table)
    assert loaded[stored[0]].cost_usd == pytest.approx(1.0)
    nothing = PriceTable({})
    assert load_traces(store, stored[:1], nothing)[stored[0]].unpriced_models == [
        "gpt-4o-2024-08-06"
    ]
