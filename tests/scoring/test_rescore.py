"""``tracescore rescore`` over a table the official OTel Collector clickhouseexporter filled,
in a database of its own with no tracescore table or attribute in it."""

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tracescore.collector.spans_decode import SPAN_SCHEMA
from tracescore.collector.store import Store
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.ddl import SCORES_TABLE, TRACES_TABLE, migrations
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.batch import TraceScores
from tracescore.scoring.cli import main
from tracescore.scoring.rescore import (
    RescoreOptions,
    parse_time,
    rescore,
    select_traces,
)
from tracescore.scoring.scoring_config import LoadedScoringConfig, load_scoring_config

NOW_NS = time.time_ns()
MINUTE = 60 * 10**9
DAY = 24 * 60 * MINUTE


def tables_in(store: Store, database: str) -> list[str]:
    rows = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": database},
    )
    return [str(r["name"]) for r in rows]


def tid(n: int) -> str:
    return f"{0xABC0000 + n:032x}"


class Exporter:
    """Rows as the clickhouseexporter writes them, into its own database."""

    def __init__(self, writer: Store) -> None:
        self.writer = writer
        self.rows: list[dict[str, Any]] = []

    def trace(
        self,
        n: int,
        *,
        age_ns: int,
        service: str = "checkout",
        version: str = "1.0.0",
        env: str = "prod",
        error: str | None = None,
        slow: bool = False,
    ) -> str:
        """A server root span and a client child; ``error`` adds a failing internal span with
        that status form (``Error`` or the older ``STATUS_CODE_ERROR``)."""
        trace_id = tid(n)
        start = NOW_NS - age_ns
        resource = [
            ("service.name", service),
            ("service.version", version),
            ("deployment.environment", env),
            ("telemetry.sdk.language", "go"),
        ]
        duration = (1500 if slow else 200) * 10**6
        spans = [
            ("a1", "", f"POST /api/{service}", "Server", "Unset", duration, []),
            ("b1", "a1", "HTTP GET inventory", "Client", "Unset", duration // 2,
             [("http.method", "GET"), ("http.status_code", "200")]),
        ]  # fmt: skip
        if error is not None:
            kind = "SPAN_KIND_INTERNAL" if error.startswith("STATUS_CODE") else "Internal"
            spans.append(("c1", "a1", "db.query", kind, error, 10**6, [("db.system", "pg")]))
        for index, (span_id, parent, name, kind, status, dur, attrs) in enumerate(spans):
            self.rows.append(
                {
                    "Timestamp": start + index * 10**6,
                    "TraceId": trace_id,
                    "SpanId": f"{n:08x}{span_id:0>8}",
                    "ParentSpanId": f"{n:08x}{parent:0>8}" if parent else "",
                    "TraceState": "",
                    "SpanName": name,
                    "SpanKind": kind,
                    "ServiceName": service,
                    "ResourceAttributes": resource,
                    "ScopeName": "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                    "ScopeVersion": "0.49.0",
                    "SpanAttributes": attrs,
                    "Duration": dur,
                    "StatusCode": status,
                    "StatusMessage": "boom" if status != "Unset" else "",
                    "Events.Timestamp": [],
                    "Events.Name": [],
                    "Events.Attributes": [],
                    "Links.TraceId": [],
                    "Links.SpanId": [],
                    "Links.TraceState": [],
                    "Links.Attributes": [],
                }
            )
        return trace_id

    def flush(self) -> None:
        table = pa.Table.from_pylist(self.rows, schema=SPAN_SCHEMA)
        self.writer.insert_arrow(TRACES_TABLE, table)
        self.rows = []


@pytest.fixture
def exporter(store: Store, chdb_path: Path) -> Iterator[Exporter]:
    database = f"exporter_{secrets.token_hex(4)}"
    store.command(f"CREATE DATABASE {database}")
    # Only the exporter's own DDL (migration 0001 is column-for-column its table).
    first = next(m for m in migrations(database) if m.version == 1)
    for statement in first.statements:
        store.command(statement)
    writer = ChdbStore(chdb_path, database=database)
    yield Exporter(writer)
    store.command(f"DROP DATABASE IF EXISTS {database}")
    writer.close()


CONFIG = """\
name: prod-check
source:
  database: {database}
variant_key: service.version
batch_size: {batch_size}
workers: {workers}
evaluators:
  - type: no_error_spans
  - name: fast
    type: latency_under
    params: {{max_ms: {max_ms}}}
  - name: errors_only
    type: span_count
    params: {{min: 1}}
    when: "status = Error"
"""


def write_config(
    tmp_path: Path,
    database: str,
    *,
    max_ms: int = 1000,
    batch_size: int = 4,
    workers: int = 1,
    extra: str = "",
) -> Path:
    path = tmp_path / "scoring.yaml"
    text = CONFIG.format(database=database, max_ms=max_ms, batch_size=batch_size, workers=workers)
    path.write_text(text + extra)
    return path


def seed(exporter: Exporter) -> dict[str, list[str]]:
    """12 recent traces (minutes old) and 3 old ones (3 days)."""
    groups: dict[str, list[str]] = {"recent": [], "old": [], "error": [], "billing": []}
    for n in range(12):
        error = "STATUS_CODE_ERROR" if n % 4 == 0 else "Error" if n % 4 == 1 else None
        service = "billing" if n % 3 == 2 else "checkout"
        trace_id = exporter.trace(
            n,
            age_ns=(n + 1) * MINUTE,
            service=service,
            version="2.0.0" if n % 2 else "1.0.0",
            env="staging" if n == 5 else "prod",
            error=error,
            slow=n % 5 == 0,
        )
        groups["recent"].append(trace_id)
        if error:
            groups["error"].append(trace_id)
        if service == "billing":
            groups["billing"].append(trace_id)
    for n in range(100, 103):
        groups["old"].append(exporter.trace(n, age_ns=3 * DAY))
    exporter.flush()
    return groups


def scores(store: Store, final: bool = True) -> list[dict[str, Any]]:
    return store.query(
        f"SELECT TraceId, RunId, CaseId, Variant, Evaluator, EvaluatorType, ConfigHash, Passed,"
        f" Error FROM {store.db}.{SCORES_TABLE} {'FINAL' if final else ''}"
        " ORDER BY TraceId, Evaluator, ConfigHash"
    )


def store_url(store: Store, chdb_path: Path) -> str:
    return f"chdb:{chdb_path}?database={store.database}"


def test_rescores_an_exporter_table_in_another_database(
    store: Store, chdb_path: Path, exporter: Exporter, tmp_path: Path, capsys: Any
) -> None:
    groups = seed(exporter)
    database = exporter.writer.database
    config = write_config(tmp_path, database)
    code = main(
        [
            "rescore",
            "--config",
            str(config),
            "--since",
            "24h",
            "--store",
            store_url(store, chdb_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "rescore:prod-check from " + database + ".otel_traces: 12 traces selected" in out
    assert "scored 12" in out

    rows = scores(store)
    by_trace: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_trace.setdefault(row["TraceId"], {})[row["Evaluator"]] = row
    assert set(by_trace) == set(groups["recent"])
    for n, trace_id in enumerate(groups["recent"]):
        got = by_trace[trace_id]
        errored = trace_id in groups["error"]
        # `when: status = Error` matches the older STATUS_CODE_ERROR form too.
        assert set(got) == ({"no_error_spans", "fast", "errors_only"} if errored else
                            {"no_error_spans", "fast"})  # fmt: skip
        assert got["no_error_spans"]["Passed"] is (not errored)
        assert got["fast"]["Passed"] is (n % 5 != 0)
        for row in got.values():
            assert row["RunId"] == "rescore:prod-check"
            assert row["CaseId"] == ""
            assert row["Variant"] == ("2.0.0" if n % 2 else "1.0.0")
            assert row["Error"] == ""
            assert len(row["ConfigHash"]) == 16
        assert got["fast"]["EvaluatorType"] == "latency_under"
    # Nothing of ours was created next to the exporter's tables.
    assert tables_in(store, database) == [
        "otel_traces",
        "otel_traces_trace_id_ts",
        "otel_traces_trace_id_ts_mv",
    ]
    # The per-evaluator pass rates: 6 of 12 traces have an error span.
    assert "no_error_spans: pass rate 50.0% (6/12)" in out
    assert "errors_only: pass rate 100.0% (6/6)" in out


def load(tmp_path: Path, database: str, **kwargs: Any) -> LoadedScoringConfig:
    return load_scoring_config(write_config(tmp_path, database, **kwargs))


def test_rescoring_again_replaces_and_new_params_add_a_series(
    store: Store, exporter: Exporter, tmp_path: Path
) -> None:
    seed(exporter)
    database = exporter.writer.database
    loaded = load(tmp_path, database)
    since = RescoreOptions(since=parse_time("24h"))
    first = rescore(store, loaded, since)
    assert (first.selected, first.scored, first.already_scored) == (12, 12, 0)

    # Without --force, everything is already scored.
    again = rescore(store, loaded, since)
    assert (again.selected, again.scored, again.already_scored) == (12, 0, 12)

    forced = rescore(store, loaded, RescoreOptions(since=parse_time("24h"), force=True))
    assert forced.scored == 12
    latest = store.query(
        f"SELECT TraceId, Evaluator, count() AS n FROM (SELECT * FROM {store.db}.{SCORES_TABLE}"
        " ORDER BY Timestamp DESC LIMIT 1 BY TraceId, Evaluator, ConfigHash)"
        " GROUP BY TraceId, Evaluator"
    )
    assert len(latest) == 12 * 2 + 6
    assert {row["n"] for row in latest} == {1}
    assert len(scores(store, final=True)) == 30

    # Other params of one evaluator: a new config hash, scored next to the old one.
    changed = rescore(store, load(tmp_path, database, max_ms=100), since)
    assert changed.scored == 12
    assert changed.evaluators["fast"].scored == 12
    assert changed.evaluators["no_error_spans"].scored == 0
    rows = scores(store, final=True)
    hashes: dict[str, set[str]] = {}
    for row in rows:
        hashes.setdefault(row["Evaluator"], set()).add(row["ConfigHash"])
    assert len(hashes["fast"]) == 2
    assert len(hashes["no_error_spans"]) == 1
    assert len(rows) == 30 + 12
    new_fast = [
        r for r in rows if r["Evaluator"] == "fast" and r["ConfigHash"] not in
        {h for h in hashes["fast"] if h == loaded.evaluators[1].config_hash}
    ]  # fmt: skip
    assert len(new_fast) == 12
    assert not any(r["Passed"] for r in new_fast)  # every trace takes ≥ 200 ms > 100 ms


def selected(store: Store, loaded: LoadedScoringConfig, **options: Any) -> list[str]:
    return [s.trace_id for s in select_traces(store, loaded, RescoreOptions(**options))]


def test_selection_by_time_service_where_sample_and_limit(
    store: Store, exporter: Exporter, tmp_path: Path
) -> None:
    groups = seed(exporter)
    loaded = load(tmp_path, exporter.writer.database)
    recent, old = groups["recent"], groups["old"]

    everything = selected(store, loaded)
    assert set(everything) == set(recent) | set(old)
    # Newest first: trace n is n + 1 minutes old.
    assert everything[:12] == recent

    assert set(selected(store, loaded, since=parse_time("24h"))) == set(recent)
    assert set(selected(store, loaded, until=parse_time("1d"))) == set(old)
    assert selected(store, loaded, since=parse_time("4d"), until=parse_time("2d")) == sorted(old)

    assert set(selected(store, loaded, service="billing")) == set(groups["billing"])
    assert set(selected(store, loaded, where="status = Error")) == set(groups["error"])
    assert selected(store, loaded, where="resource.deployment.environment = staging") == [tid(5)]
    assert set(
        selected(store, loaded, service="checkout", where="status = Error and duration_ms < 5")
    ) == set(groups["error"]) - set(groups["billing"])
    assert selected(store, loaded, where="attr.http.status_code >= 500") == []

    assert selected(store, loaded, limit=3) == recent[:3]
    assert selected(store, loaded, limit=2, where="status = Error") == groups["error"][:2]

    half = selected(store, loaded, sample=0.5)
    assert half == selected(store, loaded, sample=0.5)
    assert 0 < len(half) < len(everything)
    assert set(half) <= set(everything)
    # A larger share keeps what a smaller one picked: the same hash decides.
    assert set(selected(store, loaded, sample=0.2)) <= set(half)
    assert set(selected(store, loaded, sample=1.0)) == set(everything)
    expected_half = {
        row["TraceId"]
        for row in store.query(
            "SELECT TraceId FROM (SELECT arrayJoin({ids:Array(String)}) AS TraceId) "
            "WHERE cityHash64(TraceId) % 10000 < 5000",
            {"ids": everything},
        )
    }
    assert set(half) == expected_half

    # The config's own service/where are combined with the options (AND).
    narrowed = load(
        tmp_path, exporter.writer.database, extra='service: billing\nwhere: "status = Error"\n'
    )
    assert set(selected(store, narrowed)) == set(groups["billing"]) & set(groups["error"])
    assert selected(store, narrowed, where="resource.service.version = 9.9.9") == []


def test_variant_comes_from_the_configured_key(
    store: Store, exporter: Exporter, tmp_path: Path
) -> None:
    seed(exporter)
    loaded = load(tmp_path, exporter.writer.database)
    variants = {s.trace_id: s.variant for s in select_traces(store, loaded, RescoreOptions())}
    assert variants[tid(0)] == "1.0.0" and variants[tid(1)] == "2.0.0"
    by_env = select_traces(store, loaded, RescoreOptions(variant_key="deployment.environment"))
    assert {s.trace_id: s.variant for s in by_env}[tid(5)] == "staging"
    unknown = select_traces(store, loaded, RescoreOptions(variant_key="tracescore.variant"))
    assert {s.variant for s in unknown} == {""}


@pytest.mark.parametrize(
    "where",
    [
        "service = \"x' OR '1'='1\"",
        "service = 'checkout\\' OR 1=1 --'",
        'resource."service.name\') OR 1=1 --" = checkout',
        "name = 'x\\'; DROP TABLE otel_traces; --'",
    ],
)
def test_injection_through_where_matches_nothing(
    store: Store, chdb_path: Path, exporter: Exporter, tmp_path: Path, where: str, capsys: Any
) -> None:
    seed(exporter)
    config = write_config(tmp_path, exporter.writer.database)
    code = main(
        ["rescore", "--config", str(config), "--where", where,
         "--store", store_url(store, chdb_path)]
    )  # fmt: skip
    assert code == 0
    assert ": 0 traces selected" in capsys.readouterr().out
    assert scores(store) == []
    assert exporter.writer.count_spans() == 15 * 2 + 6


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("colour = red", "unknown field 'colour' (known: service, name"),
        ("service = x; DROP TABLE otel_traces", "expected 'and', 'or' or the end"),
        ("service = sleep(3)", "got '('"),
        ("service = x' OR '1'='1", "expected 'and', 'or' or the end"),
        ("service like x", "unknown operator 'like'"),
    ],
)
def test_bad_where_exits_2_with_one_line(
    store: Store, chdb_path: Path, exporter: Exporter, tmp_path: Path, where: str, message: str,
    capsys: Any,
) -> None:  # fmt: skip
    seed(exporter)
    config = write_config(tmp_path, exporter.writer.database)
    code = main(
        ["rescore", "--config", str(config), "--where", where,
         "--store", store_url(store, chdb_path)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --where: filter ")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_interrupted_rescore_resumes_with_the_rest(
    store: Store, exporter: Exporter, tmp_path: Path
) -> None:
    groups = seed(exporter)
    loaded = load(tmp_path, exporter.writer.database, batch_size=100)
    options = RescoreOptions(since=parse_time("24h"))
    seen: list[str] = []

    def stop_after_five(result: TraceScores) -> None:
        seen.append(result.trace_id)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rescore(store, loaded, options, on_trace=stop_after_five)
    # What was scored before the interruption is stored (even within one write batch).
    assert {r["TraceId"] for r in scores(store)} == set(seen)

    resumed: list[str] = []
    summary = rescore(store, loaded, options, on_trace=lambda r: resumed.append(r.trace_id))
    assert summary.already_scored == 5
    assert summary.scored == 7
    assert set(resumed) == set(groups["recent"]) - set(seen)
    assert {r["TraceId"] for r in scores(store)} == set(groups["recent"])
    rows = scores(store, final=False)
    assert len(rows) == len({(r["TraceId"], r["Evaluator"], r["ConfigHash"]) for r in rows})


def test_resume_after_a_limited_first_run(
    store: Store, chdb_path: Path, exporter: Exporter, tmp_path: Path, capsys: Any
) -> None:
    seed(exporter)
    config = write_config(tmp_path, exporter.writer.database)
    url = store_url(store, chdb_path)
    assert main(["rescore", "--config", str(config), "--since", "24h", "--limit", "4",
                 "--store", url]) == 0  # fmt: skip
    assert "4 traces selected, scored 4" in capsys.readouterr().out
    assert main(["rescore", "--config", str(config), "--since", "24h", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "12 traces selected, scored 8, skipped 4 already scored" in out
    assert main(["rescore", "--config", str(config), "--since", "24h", "--dry-run",
                 "--force", "--store", url]) == 0  # fmt: skip
    assert "12 traces selected, would score 12" in capsys.readouterr().out


def test_evaluator_sample_is_deterministic_and_partial(
    store: Store, exporter: Exporter, tmp_path: Path
) -> None:
    seed(exporter)
    extra_eval = "  - name: sampled\n    type: span_count\n    params: {min: 1}\n    sample: 0.5\n"
    loaded = load(tmp_path, exporter.writer.database, extra=extra_eval)
    summary = rescore(store, loaded)
    sampled = summary.evaluators["sampled"].scored
    assert 0 < sampled < 15
    assert summary.evaluators["no_error_spans"].scored == 15
    again = rescore(store, loaded, RescoreOptions(force=True))
    assert again.evaluators["sampled"].scored == sampled


def test_workers_score_in_processes_with_the_same_results(
    store: Store, exporter: Exporter, tmp_path: Path
) -> None:
    seed(exporter)
    inline = rescore(store, load(tmp_path, exporter.writer.database))
    first = {(r["TraceId"], r["Evaluator"]): r["Passed"] for r in scores(store)}
    pooled = rescore(
        store, load(tmp_path, exporter.writer.database, workers=2), RescoreOptions(force=True)
    )
    assert pooled.scored == inline.scored == 15
    assert {(r["TraceId"], r["Evaluator"]): r["Passed"] for r in scores(store)} == first


def test_default_source_is_the_stores_own_table(store: Store, tmp_path: Path) -> None:
    writer = Exporter(store)
    writer.trace(1, age_ns=MINUTE, error="Error")
    writer.trace(2, age_ns=2 * MINUTE)
    writer.flush()
    path = tmp_path / "scoring.yaml"
    path.write_text("name: own\nevaluators:\n  - type: no_error_spans\n")
    summary = rescore(store, load_scoring_config(path))
    assert summary.scored == 2
    assert {r["TraceId"]: r["Passed"] for r in scores(store)} == {tid(1): False, tid(2): True}
    assert {r["RunId"] for r in scores(store)} == {"rescore:own"}


def test_missing_source_table_is_a_config_error(store: Store, tmp_path: Path) -> None:
    loaded = load(tmp_path, "no_such_database")
    with pytest.raises(ConfigError, match=r"source table no_such_database\.otel_traces does not"):
        rescore(store, loaded)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            'name: x\nevaluators:\n  - type: no_error_spans\n    when: "colour = red"\n',
            "scoring.yaml:4: evaluators[0].when: filter 'colour = red': position 1: "
            "unknown field 'colour'",
        ),
        (
            'name: x\nwhere: "service ="\nevaluators:\n  - type: no_error_spans\n',
            "scoring.yaml:2: where: filter 'service =': position 10: expected a value",
        ),
        (
            "name: x\nevaluators:\n  - type: latency_under\n    params: {max_ms: -1}\n",
            "scoring.yaml:4: evaluators[0].params.max_ms:",
        ),
        ("name: x\nevaluators:\n  - type: nope\n", "scoring.yaml:3: evaluators[0].type: unknown"),
        ("name: x\nsauce: 1\nevaluators: []\n", "scoring.yaml:2: sauce: unknown field"),
    ],
)
def test_config_errors_name_file_line_and_field(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = tmp_path / "scoring.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_scoring_config(path)
    assert str(caught.value).startswith(str(tmp_path))
    assert message in str(caught.value)


def test_parse_time() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_time("24h", now=now) == now - timedelta(hours=24)
    assert parse_time("90s", now=now) == now - timedelta(seconds=90)
    assert parse_time("2w", now=now) == now - timedelta(days=14)
    assert parse_time("2026-01-30", now=now) == datetime(2026, 1, 30, tzinfo=UTC)
    assert parse_time("2026-01-30T10:00:00+02:00") == datetime(2026, 1, 30, 8, tzinfo=UTC)
    with pytest.raises(ConfigError, match="invalid time 'yesterday'"):
        parse_time("yesterday")


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "configs" / "scoring.example.yaml"
    loaded = load_scoring_config(example)
    assert loaded.run_id_rescore == "rescore:prod-agent"
    assert loaded.config.source.database == "otel"
    assert loaded.where is not None and loaded.when[3] is not None
