"""``tracescore db init --retention-days N``: TTLs on the span, log and score tables."""

import re
from pathlib import Path

import pytest

from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.ddl import retention_statements
from tracescore.scoring.cli import EXIT_OK, EXIT_USAGE, main

# Other tables may carry their own fixed TTLs; these are the ones retention governs.
_GOVERNED = ["otel_traces", "otel_traces_trace_id_ts", "otel_logs", "tracescore_scores"]


def _ttls(chdb_path: Path, database: str) -> dict[str, str]:
    store = ChdbStore(chdb_path, database=database)
    try:
        rows = store.query(
            "SELECT name, engine_full FROM system.tables "
            "WHERE database = {d:String} AND has({t:Array(String)}, name)",
            {"d": database, "t": _GOVERNED},
        )
    finally:
        store.close()
    found = {}
    for row in rows:
        match = re.search(r" TTL (.*?) SETTINGS", str(row["engine_full"]))
        if match:
            found[str(row["name"])] = match.group(1)
    return found


def test_db_init_sets_and_changes_the_retention(
    chdb_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"chdb:{chdb_path}?database={database}"
    assert main(["db", "init", "--store", store, "--retention-days", "7"]) == EXIT_OK
    assert "; retention: spans and logs 7 days" in capsys.readouterr().out
    assert _ttls(chdb_path, database) == {
        "otel_traces": "toDateTime(Timestamp) + toIntervalDay(7)",
        "otel_traces_trace_id_ts": "toDateTime(Start) + toIntervalDay(7)",
        "otel_logs": "toDateTime(Timestamp) + toIntervalDay(7)",
    }
    args = ["--retention-days", "30", "--scores-retention-days", "365"]
    assert main(["db", "init", "--store", store, *args]) == EXIT_OK
    out = capsys.readouterr().out
    assert "applied migrations none (already up to date)" in out
    assert "retention: spans and logs 30 days, scores 365 days" in out
    ttls = _ttls(chdb_path, database)
    assert ttls["otel_traces"] == "toDateTime(Timestamp) + toIntervalDay(30)"
    assert ttls["tracescore_scores"] == "toDateTime(Timestamp) + toIntervalDay(365)"
    # Without the flags the TTLs stay as they were.
    assert main(["db", "init", "--store", store]) == EXIT_OK
    assert "retention" not in capsys.readouterr().out
    assert _ttls(chdb_path, database) == ttls


def test_expired_spans_are_dropped_and_recent_ones_kept(chdb_path: Path, database: str) -> None:
    store_url = f"chdb:{chdb_path}?database={database}"
    assert main(["db", "init", "--store", store_url, "--retention-days", "7"]) == EXIT_OK
    store = ChdbStore(chdb_path, database=database)
    try:
        # Two inserts, two days apart: two partitions, so the old one expires whole
        # (the tables drop only whole expired parts: ttl_only_drop_parts).
        for age_days, trace in ((30, "old"), (0, "new")):
            store.command(
                f"INSERT INTO {store.db}.otel_traces (Timestamp, TraceId, SpanId, SpanName) "
                f"VALUES (now64(9) - toIntervalDay({age_days}), '{trace}', 's', 'x')"
            )
        for table in ("otel_traces", "otel_traces_trace_id_ts"):
            store.command(f"OPTIMIZE TABLE {store.db}.{table} FINAL")
        rows = store.query(f"SELECT TraceId FROM {store.db}.otel_traces ORDER BY TraceId")
        lookup = store.query(
            f"SELECT TraceId FROM {store.db}.otel_traces_trace_id_ts ORDER BY TraceId"
        )
    finally:
        store.close()
    assert [r["TraceId"] for r in rows] == ["new"]
    assert [r["TraceId"] for r in lookup] == ["new"]


def test_print_appends_the_retention_statements(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["db", "init", "--print", "--store", "chdb:unused", "--cluster", "c1"]
    assert main([*args, "--retention-days", "14", "--scores-retention-days", "90"]) == EXIT_OK
    out = capsys.readouterr().out
    _, _, tail = out.partition("\n-- retention\n")
    expected = retention_statements("otel", span_days=14, score_days=90, cluster="c1")
    assert tail == "\n".join(f"{s};\n" for s in expected)
    assert "otel_traces_local ON CLUSTER `c1` MODIFY TTL" in tail


@pytest.mark.parametrize("flag", ["--retention-days", "--scores-retention-days"])
def test_a_retention_below_one_day_is_a_usage_error(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "never-created"
    assert main(["db", "init", "--store", f"chdb:{path}", flag, "0"]) == EXIT_USAGE
    assert "whole number of days >= 1" in capsys.readouterr().err
    assert not path.exists()
