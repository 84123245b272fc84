"""``watch`` and ``rescore`` against a ClickHouse server, as in production: the store is
``ClickhouseStore`` (clickhouse-connect over HTTP) talking to the query server, which
runs the SQL on chDB. So every query's parameters (arrays of trace ids, Int64 arrival
times, filter values) are bound by the real client and server code, and scores, state
and checkpoints are inserted over HTTP.

Spans arrive as in test_watch: sent with the OTel SDK to the collector's receiver, which
writes them to the same chDB engine (its arrival view fires there)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector.test_clickhouse_store import _owner_url, server
from tests.scoring.test_watch import Sender, _config, _counts, _score_rows, sender
from tracescore.collector.query_server import QueryServer
from tracescore.collector.store import Store
from tracescore.collector.store.clickhouse_store import ClickhouseStore
from tracescore.scoring.cli import main
from tracescore.scoring.scoring_config import scoring_config_from
from tracescore.scoring.watch import Watcher

__all__ = ["sender", "server"]  # fixtures, imported for pytest


@pytest.fixture
def owner(server: QueryServer, store: Store) -> Iterator[ClickhouseStore]:
    opened = ClickhouseStore.from_url(_owner_url(server, store.database))
    yield opened
    opened.close()


def test_watch_over_a_clickhouse_server_scores_once_with_filters_and_a_restart(
    store: Store, owner: ClickhouseStore, sender: Sender
) -> None:
    ok = [sender.trace("a", children=2) for _ in range(3)]
    failing = [sender.trace("b", children=1, error=True) for _ in range(2)]
    other = sender.trace("a", service="billing")
    sender.land()
    config = _config(
        where="resource.tracescore.variant in ('a', 'b')",
        service="agent",
        evaluators=[
            {"type": "span_count", "params": {"min": 1}},
            # Only where a span failed: a filter evaluated by the server per trace.
            {"type": "no_error_spans", "when": "status = Error"},
        ],
        batch_size=2,
    )
    watcher = Watcher(owner, scoring_config_from(config))
    try:
        result = watcher.poll()
    finally:
        watcher.close()
    assert (result.due, result.scored, result.skipped) == (6, 5, 1)
    assert other not in result.scored_ids

    restarted = Watcher(owner, scoring_config_from(config))
    try:
        assert restarted.poll().due == 0
    finally:
        restarted.close()

    rows = _score_rows(store)
    expected = {(t, "span_count") for t in ok + failing}
    expected |= {(t, "no_error_spans") for t in failing}
    assert _counts(rows) == dict.fromkeys(expected, 1)
    variants = {r["TraceId"]: r["Variant"] for r in rows}
    assert {variants[t] for t in ok} == {"a"} and {variants[t] for t in failing} == {"b"}
    assert {r["Value"] for r in rows if r["TraceId"] in ok and r["Evaluator"] == "span_count"} == {
        3.0
    }


def test_rescore_over_a_clickhouse_server(
    server: QueryServer, store: Store, sender: Sender, tmp_path: Path
) -> None:
    traces = [sender.trace("a", children=1, error=n == 0) for n in range(4)]
    sender.land()
    config = tmp_path / "scoring.yaml"
    config.write_text("name: remote\nevaluators:\n  - type: no_error_spans\n", encoding="utf-8")
    url = _owner_url(server, store.database)
    args = ["rescore", "--config", str(config), "--store", url, "--since", "1h"]
    assert main(args) == 0
    assert main(args) == 0  # everything already scored: skipped, not duplicated
    rows = _score_rows(store, "rescore:remote")
    assert _counts(rows) == {(t, "no_error_spans"): 1 for t in traces}
    passed = {r["TraceId"]: r["Passed"] for r in rows}
    assert [passed[t] for t in traces] == [False, True, True, True]
