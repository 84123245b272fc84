"""``tracescore watch`` on a table the official OTel Collector clickhouseexporter fills, in a
database of its own: the arrival view it adds, exactly-once scoring with the configured
variant key, no crossing with the store's own ``otel_traces``, restarts, late spans and
the names that may reach the view's DDL.

The quiet period is 0.2 s; tests wait it out and call ``poll`` themselves."""

import logging
import re
import time
from typing import Any

import pytest

from tests.scoring.test_rescore import MINUTE, Exporter, exporter, tables_in, tid
from tests.scoring.test_watch import _counts, _score_rows
from tracescore.collector.store import Store
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.scoring_config import LoadedScoringConfig, scoring_config_from
from tracescore.scoring.source import SourceTable
from tracescore.scoring.watch import (
    Watcher,
    arrival_view_name,
    arrival_view_statement,
    ensure_arrival_view,
)

__all__ = ["exporter"]  # the fixture, imported so pytest finds it here

QUIET_S = 0.2
EVALUATORS = {"span_count", "no_error_spans", "errors_only"}


def _config(name: str, database: str | None, **overrides: Any) -> LoadedScoringConfig:
    config: dict[str, Any] = {
        "name": name,
        "variant_key": "service.version",
        "evaluators": [
            {"type": "span_count", "params": {"min": 1}},
            {"type": "no_error_spans"},
            {
                "name": "errors_only",
                "type": "span_count",
                "params": {"min": 1},
                "when": "status = Error",
            },
        ],
        "watch": {"quiet_period_s": QUIET_S, "poll_interval_s": 0.05},
    }
    if database is not None:
        config["source"] = {"database": database}
    config.update(overrides)
    return scoring_config_from(config)


def _land(*exporters: Exporter) -> None:
    """Every row written, and the quiet period over."""
    for writer in exporters:
        writer.flush()
    time.sleep(QUIET_S * 1.5)


def _arrival_views(store: Store) -> list[str]:
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} "
        "AND name LIKE 'tracescore_trace_arrivals_from_%' ORDER BY name",
        {"db": store.database},
    )
    return [str(r["name"]) for r in rows]


def test_watches_an_exporter_table_exactly_once_apart_from_the_stores_own(
    store: Store, exporter: Exporter, caplog: pytest.LogCaptureFixture
) -> None:
    database = exporter.writer.database
    source = SourceTable(database, "otel_traces")
    # Spans already in the source when the view is made are not arrivals: rescore's part.
    before = exporter.trace(90, age_ns=MINUTE)
    exporter.flush()
    with caplog.at_level(logging.INFO, logger="tracescore.watch"):
        external = Watcher(store, _config("ext", database))
    assert _arrival_views(store) == [arrival_view_name(source)]
    assert re.fullmatch(r"tracescore_trace_arrivals_from_[0-9a-f]{12}", arrival_view_name(source))
    assert f"recording arrivals in {database}.otel_traces" in caplog.text
    assert "rescore" in caplog.text
    own = Watcher(store, _config("own", None))
    # Nothing of ours was created next to the exporter's tables.
    assert tables_in(store, database) == [
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_traces_trace_id_ts_mv",
    ]

    errors = {1: "Error", 4: "STATUS_CODE_ERROR"}
    ext_ids = [
        exporter.trace(n, age_ns=(n + 1) * MINUTE, version=f"{n % 2 + 1}.0.0", error=errors.get(n))
        for n in range(6)
    ]
    # The same shape in the store's own otel_traces, landing at the same time.
    mine = Exporter(store)
    own_ids = [mine.trace(n, age_ns=MINUTE, version="9.0.0") for n in range(100, 103)]
    _land(exporter, mine)

    result = external.poll()
    assert (result.due, result.scored, result.rescored) == (6, 6, 0)
    assert sorted(result.scored_ids) == sorted(ext_ids)
    result = own.poll()
    assert (result.due, result.scored) == (3, 3)
    assert sorted(result.scored_ids) == sorted(own_ids)
    assert before not in ext_ids + own_ids

    rows = _score_rows(store, "watch:ext")
    errored = {tid(n) for n in errors}
    expected = {
        (t, e) for t in ext_ids for e in EVALUATORS if e != "errors_only" or t in errored
    }  # fmt: skip
    assert _counts(rows) == dict.fromkeys(expected, 1)
    for row in rows:
        n = ext_ids.index(row["TraceId"])
        assert row["Variant"] == f"{n % 2 + 1}.0.0"
        if row["Evaluator"] == "no_error_spans":
            assert row["Passed"] is (row["TraceId"] not in errored)
        if row["Evaluator"] == "span_count":
            assert row["Value"] == (3.0 if row["TraceId"] in errored else 2.0)
    own_rows = _score_rows(store, "watch:own")
    assert {r["TraceId"] for r in own_rows} == set(own_ids)
    assert {r["Variant"] for r in own_rows} == {"9.0.0"}
    external.close()

    # A restart: the same view, nothing due, nothing repeated.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tracescore.watch"):
        restarted = Watcher(store, _config("ext", database))
    assert "recording arrivals" not in caplog.text
    assert _arrival_views(store) == [arrival_view_name(source)]
    assert restarted.poll().due == 0

    # A late span into the external table: one re-score by its watcher, none by the other.
    late = ext_ids[0]
    exporter.trace(0, age_ns=MINUTE, error="Error")
    exporter.rows = [r for r in exporter.rows if r["SpanName"] == "db.query"]
    _land(exporter)
    result = restarted.poll()
    assert (result.due, result.scored, result.rescored) == (1, 0, 1)
    assert result.scored_ids == [late]
    assert own.poll().due == 0
    with Watcher(store, _config("ext", database)) as again:
        assert again.poll().due == 0
    restarted.close()
    own.close()
    counts = _counts(_score_rows(store, "watch:ext"))
    # The re-score saw the late error span: its `when` now matches too.
    assert counts[(late, "span_count")] == 2 and counts[(late, "no_error_spans")] == 2
    assert counts[(late, "errors_only")] == 1
    assert all(n == 1 for key, n in counts.items() if key[0] != late)
    latest = store.query(
        f"SELECT Evaluator, Value, Passed FROM {store.db}.tracescore_scores FINAL "
        "WHERE RunId = 'watch:ext' AND TraceId = {t:String} ORDER BY Evaluator",
        {"t": late},
    )
    assert [(r["Evaluator"], r["Value"], r["Passed"]) for r in latest] == [
        ("errors_only", 3.0, True),
        ("no_error_spans", 1.0, False),  # one error span
        ("span_count", 3.0, True),
    ]


def test_a_missing_source_table_is_a_config_error_naming_it(
    store: Store, exporter: Exporter
) -> None:
    database = exporter.writer.database
    with pytest.raises(ConfigError, match=re.escape(f"{database}.nope does not exist")):
        Watcher(store, _config("ext", database, source={"database": database, "table": "nope"}))
    with pytest.raises(ConfigError, match=re.escape("no_such_db.otel_traces does not exist")):
        Watcher(store, _config("ext", "no_such_db"))
    assert _arrival_views(store) == []


@pytest.mark.parametrize(
    ("database", "table"),
    [
        ("otel' AS Source FROM system.one --", "otel_traces"),
        ("otel", "otel_traces`; DROP TABLE x; --"),
        ("otel", "t\\' OR 1"),
    ],
)
def test_hostile_names_never_reach_the_view_ddl(store: Store, database: str, table: str) -> None:
    # The config schema refuses them...
    with pytest.raises(ConfigError, match="source"):
        _config("ext", None, source={"database": database, "table": table})
    # ...and a SourceTable built in code with one cannot render or create the view.
    hostile = SourceTable(database, table)
    with pytest.raises(ConfigError, match="invalid ClickHouse identifier"):
        arrival_view_statement(store.database, hostile)
    with pytest.raises(ConfigError, match="invalid ClickHouse identifier"):
        ensure_arrival_view(store, hostile)
    assert _arrival_views(store) == []
    # The view's name is a plain identifier whatever the source's name.
    assert re.fullmatch(r"tracescore_trace_arrivals_from_[0-9a-f]{12}", arrival_view_name(hostile))


def test_the_view_ddl_quotes_names_and_renders_for_a_cluster() -> None:
    source = SourceTable("otel", "otel_traces")
    single = arrival_view_statement("tracescore", source)
    assert single.startswith(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `tracescore`.{arrival_view_name(source)}\n"
        "TO `tracescore`.tracescore_trace_arrivals\n"
    )
    assert "'otel.otel_traces' AS Source\nFROM `otel`.`otel_traces`\n" in single
    clustered = arrival_view_statement("tracescore", source, "prod")
    assert f"{arrival_view_name(source)} ON CLUSTER `prod`\n" in clustered
    assert "TO `tracescore`.tracescore_trace_arrivals_local\n" in clustered
    with pytest.raises(ConfigError, match="invalid ClickHouse identifier"):
        arrival_view_statement("tracescore", source, "prod'; --")
