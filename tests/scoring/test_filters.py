"""The filter language: parsing, error messages, and the compiled SQL run against a real
chDB table of seeded spans (so the semantics, and the injection safety, are checked by
the engine rather than by reading SQL text)."""

from collections.abc import Mapping

import pyarrow as pa
import pytest

from tracescore.collector.spans_decode import SPAN_SCHEMA
from tracescore.collector.store import Store
from tracescore.schemas.ddl import TRACES_TABLE
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.filters import SpanFilter, compile_filter

BASE_NS = 1_700_000_000 * 10**9

# name -> (service, span name, kind, status, duration ms, resource attrs, span attrs)
SPANS: dict[str, tuple[str, str, str, str, int, dict[str, str], dict[str, str]]] = {
    "a": ("checkout", "chat gpt-4o", "Client", "Ok", 120,
          {"deployment.environment": "prod", "service.version": "1.2"},
          {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "900"}),
    "b": ("checkout", "execute_tool search", "Internal", "Error", 2500,
          {"deployment.environment": "staging"},
          {"tool.name": "search", "user.id": "u1"}),
    "c": ("billing", "invoke_agent", "Server", "STATUS_CODE_ERROR", 40,
          {"deployment.environment": "prod"},
          {"gen_ai.usage.input_tokens": "80", "note": "x' OR '1'='1"}),
    "d": ("billing", "chat claude", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET", 9,
          {}, {"gen_ai.request.model": "claude-sonnet-4", "weird key": "yes"}),
}  # fmt: skip


def _map(items: Mapping[str, str]) -> list[tuple[str, str]]:
    return list(items.items())


@pytest.fixture
def seeded(store: Store) -> Store:
    names = list(SPANS)
    rows = [SPANS[n] for n in names]
    n = len(rows)
    table = pa.table(
        {
            "Timestamp": [BASE_NS + i * 10**6 for i in range(n)],
            "TraceId": [f"{i + 1:032x}" for i in range(n)],
            "SpanId": names,
            "ParentSpanId": [""] * n,
            "TraceState": [""] * n,
            "SpanName": [r[1] for r in rows],
            "SpanKind": [r[2] for r in rows],
            "ServiceName": [r[0] for r in rows],
            "ResourceAttributes": [_map({"service.name": r[0], **r[5]}) for r in rows],
            "ScopeName": ["scope.one"] * (n - 1) + ["scope.two"],
            "ScopeVersion": ["1"] * n,
            "SpanAttributes": [_map(r[6]) for r in rows],
            "Duration": pa.array([r[4] * 10**6 for r in rows], pa.uint64()),
            "StatusCode": [r[3] for r in rows],
            "StatusMessage": [""] * n,
            "Events.Timestamp": [[]] * n,
            "Events.Name": [[]] * n,
            "Events.Attributes": [[]] * n,
            "Links.TraceId": [[]] * n,
            "Links.SpanId": [[]] * n,
            "Links.TraceState": [[]] * n,
            "Links.Attributes": [[]] * n,
        },
        schema=SPAN_SCHEMA,
    )
    store.insert_arrow(TRACES_TABLE, table)
    return store


def matching(store: Store, text: str) -> set[str]:
    compiled = compile_filter(text)
    rows = store.query(
        f"SELECT SpanId FROM {store.db}.{TRACES_TABLE} WHERE {compiled.sql}", compiled.params
    )
    return {str(r["SpanId"]) for r in rows}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("service = checkout", {"a", "b"}),
        ("service != checkout", {"c", "d"}),
        ("name = 'chat gpt-4o'", {"a"}),
        ('span.name = "invoke_agent"', {"c"}),
        ("name ~ '^chat '", {"a", "d"}),
        ("name !~ '^chat '", {"b", "c"}),
        # Both the current and the older (STATUS_CODE_*) forms, whatever is typed.
        ("status = Error", {"b", "c"}),
        ("span.status = 'STATUS_CODE_ERROR'", {"b", "c"}),
        ("status = error", {"b", "c"}),
        ("status != Error", {"a", "d"}),
        ("status in (Unset, Ok)", {"a", "d"}),
        ("kind = client", {"a", "d"}),
        ("span.kind not in (Client, Internal)", {"c"}),
        ("duration_ms > 100", {"a", "b"}),
        ("duration_ms <= 40", {"c", "d"}),
        ("duration_ms in (9, 40)", {"c", "d"}),
        ("trace_id = 00000000000000000000000000000002", {"b"}),
        ("resource.deployment.environment = prod", {"a", "c"}),
        ("resource.deployment.environment in (prod, staging)", {"a", "b", "c"}),
        ("resource.service.version exists", {"a"}),
        ("resource.deployment.environment not exists", {"d"}),
        # Numbers compare numerically on attribute values (900 > 100 but '900' < '100' is false
        # too; 80 < 100 while '80' > '100' as text).
        ("attr.gen_ai.usage.input_tokens > 100", {"a"}),
        ("span.attributes.gen_ai.usage.input_tokens < 100", {"c"}),
        ("attr.gen_ai.usage.input_tokens = 80", {"c"}),
        ("attr.gen_ai.request.model ~ 'claude'", {"d"}),
        ('attr."weird key" = yes', {"d"}),
        ("attr.user.id exists", {"b"}),
        ("scope.name = scope.two", {"d"}),
        ("service = checkout and (status = Error or duration_ms < 200)", {"a", "b"}),
        ("not service = checkout and status = Error", {"c"}),
        ("not (service = checkout or status = Error)", {"d"}),
        ("SERVICE = billing AND NOT kind = server", {"d"}),
        ("service = billing or service = checkout and duration_ms > 1000", {"b", "c", "d"}),
    ],
)
def test_filter_semantics_on_real_spans(seeded: Store, text: str, expected: set[str]) -> None:
    assert matching(seeded, text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "x' OR '1'='1",
        "checkout' OR 1=1 --",
        "checkout'; DROP TABLE otel_traces; --",
        "checkout /* comment */",
        "sleep(1)",
        "\\' OR 1=1",
        "checkout\\",
    ],
)
def test_injection_in_quoted_values_is_a_literal(seeded: Store, value: str) -> None:
    for quote in ("'", '"'):
        escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
        text = f"service = {quote}{escaped}{quote}"
        compiled = compile_filter(text)
        assert value in compiled.params.values()
        assert value not in compiled.sql
        assert matching(seeded, text) == set()
    # The table is still there and whole.
    assert seeded.count_spans() == len(SPANS)


def test_a_value_with_quotes_matches_exactly_that_text(seeded: Store) -> None:
    assert matching(seeded, "attr.note = \"x' OR '1'='1\"") == {"c"}
    assert matching(seeded, "attr.note = 'x\\' OR \\'1\\'=\\'1'") == {"c"}
    assert matching(seeded, "attr.note = 'x'") == set()


def test_map_keys_are_parameters(seeded: Store) -> None:
    key = "a'] OR 1=1 OR SpanAttributes['b"
    compiled = compile_filter(f'attr."{key}" exists')
    assert key in compiled.params.values()
    assert "OR 1=1" not in compiled.sql
    assert matching(seeded, f'attr."{key}" = x') == set()
    assert matching(seeded, f'attr."{key}" != x') == set(SPANS)


@pytest.mark.parametrize(
    "text",
    [
        "service = checkout; DROP TABLE otel_traces",
        "service = sleep(1)",
        "service = x' OR '1'='1",
        "service = 'x') OR 1=1 --",
        "service = x -- comment",
        "service = x /* c */",
        "sleep(1) = 1",
        "service = x or 1=1",
    ],
)
def test_injection_in_bare_text_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError):
        compile_filter(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = red", "unknown field 'colour' (known: service, name, span.name"),
        ("service like x", "unknown operator 'like' (known: =, !=, <, <=, >, >=, ~, !~, in"),
        ("service =~ x", "unknown operator '=~'"),
        ("service <> x", "unknown operator '<>'"),
        ("service =", "position 10: expected a value"),
        ("service = a and", "position 16: expected a field"),
        ("(service = a", "expected ')'"),
        ("service = a)", "position 12: expected 'and', 'or' or the end"),
        ("service in a, b", "expected '(' starting a list"),
        ("service in (a b)", "expected ',' or ')'"),
        ("service = 'open", "unterminated ' string"),
        ("duration_ms > slow", "duration_ms compares with a number"),
        ("duration_ms ~ 1", "~ matches text"),
        ("status = broken", "unknown span status 'broken' (known: Unset, Ok, Error)"),
        ("kind = weird", "unknown span kind 'weird'"),
        ("status > Error", "span status takes"),
        ("service exists", "'exists' applies to attribute keys"),
        ("service not like x", "expected 'in' or 'exists' after 'not'"),
        ("", "empty filter"),
        ("   ", "empty filter"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_filter(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_parameters_are_prefixed_and_unique() -> None:
    compiled = compile_filter(
        "service = a and resource.k in (x, y) and attr.n > 3 and name ~ z", prefix="w0"
    )
    assert isinstance(compiled, SpanFilter)
    assert list(compiled.params) == ["w0_0", "w0_1", "w0_2", "w0_3", "w0_4", "w0_5"]
    for name in compiled.params:
        assert f"{{{name}:" in compiled.sql
    assert compile_filter("service = a").params == {"f_0": "a"}
    with pytest.raises(ValueError):
        compile_filter("service = a", prefix="bad prefix")


def test_two_filters_combine_in_one_query(seeded: Store) -> None:
    first = compile_filter("service = checkout", prefix="p")
    second = compile_filter("status = Error", prefix="q")
    rows = seeded.query(
        f"SELECT SpanId FROM {seeded.db}.{TRACES_TABLE} WHERE ({first.sql}) AND ({second.sql})",
        {**first.params, **second.params},
    )
    assert {r["SpanId"] for r in rows} == {"b"}
