"""The ClickHouse-compatible query server over chDB: protocol, errors and write protection."""

import gzip
import importlib
import json
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pyarrow as pa
import pytest

from tracescore.collector.query_server import QueryServer
from tracescore.collector.spans_decode import SpanColumns
from tracescore.collector.store import Store
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.collector.store.clickhouse_store import ClickhouseStore
from tracescore.schemas.errors import ConfigError, StoreError

TOKEN = "tok-3f9c1a"


@pytest.fixture(scope="module")
def server(chdb_path: Path) -> Iterator[QueryServer]:
    # The server reaches every database of the engine; tests use their own.
    backing = ChdbStore(chdb_path, database="default")
    with QueryServer(backing, port=0, auth_token=TOKEN) as running:
        yield running
    backing.close()


@pytest.fixture
def anonymous(server: QueryServer, store: Store) -> Iterator[ClickhouseStore]:
    opened = ClickhouseStore.from_url(server.store_url(store.database))
    yield opened
    opened.close()


@pytest.fixture
def owner(server: QueryServer, store: Store) -> Iterator[ClickhouseStore]:
    opened = ClickhouseStore.from_url(
        f"clickhouse://default:{TOKEN}@127.0.0.1:{server.port}/{store.database}"
    )
    yield opened
    opened.close()


def _http(
    server: QueryServer,
    body: bytes | str = b"",
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    path: str = "/",
) -> tuple[int, dict[str, str], bytes]:
    data = body.encode() if isinstance(body, str) else body
    url = f"{server.url}{path}?{urllib.parse.urlencode(params or {})}"
    request = urllib.request.Request(
        url, data=data if method == "POST" else None, headers=headers or {}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers: Any) -> dict[str, str]:
    # HTTP header names are case-insensitive; uvicorn sends them in lower case.
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _spans(trace_id: str, count: int) -> SpanColumns:
    spans = SpanColumns()
    for i in range(count):
        spans.add_span(
            timestamp=1_700_000_000_000_000_000 + i,
            trace_id=trace_id,
            span_id=f"{i + 1:016x}",
            parent_span_id="" if i == 0 else f"{1:016x}",
            name=f"step {i}",
            kind="Internal",
            service_name="agent",
            resource_attributes=[("service.name", "agent")],
            scope_name="test",
            scope_version="1",
            attributes=[("i", str(i))],
            duration=1000,
        )
    return spans


def test_ping_and_a_bare_get_answer_ok(server: QueryServer) -> None:
    assert _http(server, method="GET", path="/ping")[::2] == (200, b"Ok.\n")
    assert _http(server, method="GET")[::2] == (200, b"Ok.\n")


def test_select_with_clickhouse_headers_params_and_formats(server: QueryServer) -> None:
    status, headers, body = _http(server, "SELECT 1 AS a, 'x' AS b", params={"query_id": "q-1"})
    assert (status, body) == (200, b"1\tx\n")
    assert headers["x-clickhouse-query-id"] == "q-1"
    assert headers["x-clickhouse-format"] == "TabSeparated"
    assert headers["x-clickhouse-timezone"]
    assert headers["x-clickhouse-server-display-name"] == "tracescore"
    assert int(json.loads(headers["x-clickhouse-summary"])["read_rows"]) >= 1

    # The query parameter and the body form one query, as ClickHouse joins them.
    assert _http(server, "41 + 1", params={"query": "SELECT"})[2] == b"42\n"
    # param_<name> values are in the escaped format: \t is a tab.
    status, _, body = _http(
        server,
        method="GET",
        params={"query": "SELECT length({x:String}), {x:String}", "param_x": "a\\tb'"},
    )
    assert (status, body) == (200, b"4\ta\\tb\\'\n")
    status, headers, body = _http(server, "SELECT 7 AS n", params={"default_format": "JSONEachRow"})
    assert (body, headers["x-clickhouse-format"]) == (b'{"n":7}\n', "JSONEachRow")
    # Settings ride as parameters and apply to that request only.
    assert _http(server, "SELECT getSetting('max_threads')", params={"max_threads": "3"})[2] == (
        b"3\n"
    )


def test_errors_are_answered_the_clickhouse_way(server: QueryServer, store: Store) -> None:
    status, headers, body = _http(server, "SELEC 1")
    assert status == 400
    assert headers["x-clickhouse-exception-code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error")
    assert b"(SYNTAX_ERROR)" in body and b"formatQuerySingleLine" not in body

    status, headers, body = _http(server, "SELECT * FROM system.no_such_table")
    assert (status, headers["x-clickhouse-exception-code"]) == (404, "60")
    assert b"(UNKNOWN_TABLE)" in body

    status, _, body = _http(server, "SELECT 1", params={"no_such_setting": "1"})
    assert status == 404 and b"UNKNOWN_SETTING" in body
    status, _, body = _http(server, "SELECT 1", headers={"Content-Encoding": "br"})
    assert status == 400 and b"Content-Encoding" in body

    store.command(f"CREATE TABLE {store.db}.native_in (a UInt64) ENGINE = Memory")
    garbage = f"INSERT INTO {store.db}.native_in FORMAT Native\n".encode() + b"\x01\x09garbage"
    status, _, body = _http(server, garbage)
    assert status == 400 and body.startswith(b"Code: 33. DB::Exception: ")
    assert body.count(b"(version") == 1 and b"(CANNOT_READ_ALL_DATA)" in body


def _lz4(data: bytes) -> bytes:
    frame: Any = importlib.import_module("lz4.frame")
    compressed: bytes = frame.compress(data)
    return compressed


def _zstd(data: bytes) -> bytes:
    module: Any = importlib.import_module("backports.zstd")
    compressed: bytes = module.compress(data)
    return compressed


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("lz4", _lz4), ("zstd", _zstd)],
)
def test_compressed_request_bodies(
    server: QueryServer, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = compress(b"SELECT 40 + 2") + compress(b" AS answer")  # two frames: one body
    status, _, answer = _http(server, body, headers={"Content-Encoding": encoding})
    assert (status, answer) == (200, b"42\n")


def test_clickhouse_connect_native_query_command_and_compressed_insert(
    server: QueryServer, store: Store
) -> None:
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=server.port, compress="lz4", autogenerate_session_id=False
    )
    try:
        assert client.command("SELECT 6 * 7") == 42
        table = f"{store.db}.native_rows"
        client.command(
            f"CREATE TABLE {table} (id UInt64, name LowCardinality(String), "
            "attrs Map(LowCardinality(String), String), tags Array(String)) "
            "ENGINE = MergeTree ORDER BY id"
        )
        # client.insert sends Native, lz4-compressed (Content-Encoding: lz4).
        client.insert(
            table,
            [[1, "a", {"k": "v"}, ["x"]], [2**64 - 1, "b", {}, []]],
            column_names=["id", "name", "attrs", "tags"],
        )
        result = client.query(f"SELECT id, name, attrs, tags FROM {table} ORDER BY id")
        assert result.result_rows == [(1, "a", {"k": "v"}, ["x"]), (2**64 - 1, "b", {}, [])]
    finally:
        client.close()
    assert store.query(f"SELECT count() AS n FROM {store.db}.native_rows") == [{"n": 2}]


def test_multi_statements_and_inline_data_cannot_smuggle_sql(
    server: QueryServer, store: Store
) -> None:
    keep = f"{store.db}.keep"
    assert _http(server, f"CREATE TABLE {keep} (a UInt8) ENGINE = Memory")[0] == 200
    status, _, body = _http(server, f"SELECT 1; DROP TABLE {keep}")
    assert status == 400 and b"Multi-statements are not allowed" in body
    # VALUES data is handed to the engine as data, never run as SQL.
    _http(server, f"INSERT INTO {keep} VALUES (1); DROP TABLE {keep}")
    _http(server, f"INSERT INTO {keep} FORMAT TSV\n2\n; DROP TABLE {keep}")
    assert store.query(f"EXISTS TABLE {keep}") == [{"result": 1}]


SPAN_WRITES = [
    "INSERT INTO {db}.otel_traces (TraceId) VALUES ('ff')",
    "INSERT INTO {db}.otel_traces (TraceId) FORMAT TSV\nff\n",
    "INSERT INTO {db}.otel_traces (TraceId) SELECT 'ff'",
    "ALTER TABLE {db}.otel_traces DELETE WHERE 1",
    "ALTER TABLE {db}.otel_traces DROP COLUMN StatusMessage",
    "DELETE FROM {db}.otel_traces WHERE 1",
    "TRUNCATE TABLE {db}.otel_traces",
    "TRUNCATE ALL TABLES FROM {db}",
    "DROP TABLE {db}.otel_traces",
    "DROP TABLE {db}.otel_traces_trace_id_ts_mv",
    "DROP DATABASE {db}",
    "RENAME TABLE {db}.otel_traces TO {db}.moved",
    "EXCHANGE TABLES {db}.otel_traces AND {db}.tracescore_runs",
    "OPTIMIZE TABLE {db}.otel_traces_trace_id_ts FINAL",
    "CREATE TABLE {db}.copy AS {db}.otel_traces",
    "CREATE TABLE {db}.copy2 AS {db}.tracescore_runs",
    "CREATE MATERIALIZED VIEW {db}.mv TO {db}.otel_traces AS SELECT * FROM {db}.otel_traces",
    "CREATE TABLE {db}.otel_logs (a UInt8) ENGINE = Memory",
    # Spellings that hide the name from a naive check.
    "/* ; */ drop table `{db}`.`otel\\x5ftraces`",
    'DROP TABLE {db}."OTEL_TRACES"',
    "CREATE TABLE {db}.buf (TraceId String) ENGINE = "
    "Buffer('{db}', concat('otel', '_tr', 'aces'), 1, 1, 1, 1, 1, 1, 1)",
    "SYSTEM FLUSH LOGS",
    "ATTACH TABLE {db}.otel_traces",
]


@pytest.mark.parametrize("template", SPAN_WRITES)
def test_span_table_writes_need_the_token(server: QueryServer, store: Store, template: str) -> None:
    store.insert_spans(_spans("a" * 32, 3))
    status, headers, body = _http(server, template.format(db=store.database))
    assert status == 403, body
    assert headers["x-clickhouse-exception-code"] == "497"
    assert b"(ACCESS_DENIED)" in body and b"auth token" in body
    assert store.count_spans() == 3
    assert store.query(f"EXISTS TABLE {store.db}.otel_traces") == [{"result": 1}]


def test_identifier_parameters_and_multi_statements_cannot_bypass_the_check(
    server: QueryServer, store: Store
) -> None:
    store.insert_spans(_spans("b" * 32, 2))
    status, _, _ = _http(
        server,
        "DROP TABLE {t:Identifier}",
        params={"param_t": f"{store.database}.otel_traces"},
    )
    assert status == 403
    status, _, body = _http(server, f"SELECT 1; DROP TABLE {store.db}.otel_traces")
    assert status == 400 and b"Multi-statements" in body
    status, _, body = _http(
        server, method="GET", params={"query": f"TRUNCATE TABLE {store.db}.tracescore_runs"}
    )
    assert status == 403 and b"(READONLY)" in body
    assert store.count_spans() == 2


def test_the_token_allows_span_table_writes_every_way_it_can_be_sent(
    server: QueryServer, store: Store, owner: ClickhouseStore
) -> None:
    owner.insert_spans(_spans("c" * 32, 4))  # HTTP basic auth, password = token
    assert store.count_spans("c" * 32) == 4
    delete = f"ALTER TABLE {store.db}.otel_traces DELETE WHERE SpanName = 'step 0'"
    delete += " SETTINGS mutations_sync = 1"
    assert _http(server, delete, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert store.count_spans("c" * 32) == 3
    truncate = f"TRUNCATE TABLE {store.db}.otel_traces"
    assert _http(server, truncate, headers={"X-ClickHouse-Key": TOKEN})[0] == 200
    assert store.count_spans() == 0


def test_a_wrong_token_is_refused_even_for_reads(server: QueryServer) -> None:
    status, headers, body = _http(server, "SELECT 1", headers={"Authorization": "Bearer nope"})
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "516")
    assert b"AUTHENTICATION_FAILED" in body
    with pytest.raises(StoreError, match="AUTHENTICATION_FAILED"):
        ClickhouseStore.from_url(f"clickhouse://default:nope@127.0.0.1:{server.port}/otel")


def test_without_a_token_span_writes_are_refused_from_everyone(
    chdb_path: Path, store: Store
) -> None:
    backing = ChdbStore(chdb_path, database=store.database)
    try:
        with QueryServer(backing, port=0, auth_token=None) as tokenless:
            truncate = f"TRUNCATE TABLE {store.db}.otel_traces"
            status, _, body = _http(tokenless, truncate)
            assert status == 403 and b"has no auth token" in body
            status, _, _ = _http(tokenless, truncate, headers={"Authorization": "Bearer x"})
            assert status == 403
            # Reads and tracescore's own tables stay open.
            assert _http(tokenless, f"SELECT count() FROM {store.db}.otel_traces")[2] == b"0\n"
            runs = f"TRUNCATE TABLE {store.db}.tracescore_runs"
            assert _http(tokenless, runs)[0] == 200
    finally:
        backing.close()


def test_reads_and_tracescore_tables_need_no_token(
    store: Store, anonymous: ClickhouseStore
) -> None:
    store.insert_spans(_spans("d" * 32, 2))
    assert [s.name for s in anonymous.fetch_trace("d" * 32)] == ["step 0", "step 1"]
    anonymous.insert_arrow(
        "tracescore_case_results",
        pa.table({"RunId": ["r1"], "CaseId": ["c1"], "Variant": ["v"], "TraceId": ["d" * 32]}),
    )
    assert store.query(f"SELECT CaseId FROM {store.db}.tracescore_case_results") == [
        {"CaseId": "c1"}
    ]
    anonymous.command(f"CREATE TABLE {store.db}.scratch (a UInt8) ENGINE = Memory")
    anonymous.command(f"DROP TABLE {store.db}.scratch")
    assert store.query(f"EXISTS TABLE {store.db}.scratch") == [{"result": 0}]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
        "SELECT 1 INTO OUTFILE '{out}'",
        "CREATE TABLE {db}.f (a String) ENGINE = File(TSV)",
        "CREATE DICTIONARY {db}.d (a String) PRIMARY KEY a "
        "SOURCE(CLICKHOUSE(TABLE 'tracescore_runs')) LAYOUT(FLAT()) LIFETIME(0)",
    ],
)
def test_reaching_outside_the_database_needs_the_token(
    server: QueryServer, store: Store, sql: str, tmp_path: Path
) -> None:
    out = tmp_path / "outfile.tsv"
    status, _, body = _http(server, sql.format(db=store.database, out=out))
    assert status == 403 and b"ACCESS_DENIED" in body
    assert not out.exists()


def test_files_named_as_tables_are_not_readable_without_the_token(
    server: QueryServer, tmp_path: Path
) -> None:
    # chDB's default database is an Overlay that reads any file path named as a table.
    secret = tmp_path / "secret.txt"
    secret.write_text("top-secret\n")
    qualified = f"SELECT * FROM default.`{secret}`"
    status, _, body = _http(server, qualified)
    assert status == 403 and b"maps table names to files" in body
    status, _, body = _http(server, f"SELECT * FROM `{secret}`", params={"database": "default"})
    assert status == 403
    status, _, body = _http(server, f"SELECT * FROM `{secret}`")
    assert status == 404 and b"top-secret" not in body
    # The owner keeps the engine's full reach, which is what makes the above a leak.
    owner = {"Authorization": f"Bearer {TOKEN}"}
    assert _http(server, qualified, headers=owner)[::2] == (200, b"top-secret\n")


def test_a_busy_port_is_a_config_error(server: QueryServer, chdb_path: Path) -> None:
    backing = ChdbStore(chdb_path, database="default")
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            QueryServer(backing, port=server.port)
    finally:
        backing.close()
