"""The Store contract through ClickhouseStore (clickhouse-connect), against the query server."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tracescore.collector.query_server import QueryServer
from tracescore.collector.spans_decode import SpanColumns
from tracescore.collector.store import Store, open_store
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.collector.store.clickhouse_store import (
    ClickhouseOptions,
    ClickhouseStore,
    parse_clickhouse_url,
)
from tracescore.schemas.ddl import migrations
from tracescore.schemas.errors import ConfigError, StoreError

TOKEN = "owner-token-7d2e"


@pytest.fixture(scope="module")
def server(chdb_path: Path) -> Iterator[QueryServer]:
    backing = ChdbStore(chdb_path, database="default")
    with QueryServer(backing, port=0, auth_token=TOKEN) as running:
        yield running
    backing.close()


def _owner_url(server: QueryServer, database: str) -> str:
    return f"clickhouse://default:{TOKEN}@127.0.0.1:{server.port}/{database}"


@pytest.fixture
def remote(server: QueryServer, store: Store) -> Iterator[ClickhouseStore]:
    """The test's database, reached without the token."""
    opened = ClickhouseStore.from_url(server.store_url(store.database))
    yield opened
    opened.close()


def test_migrate_over_the_query_server_is_idempotent(
    server: QueryServer, chdb_path: Path, database: str
) -> None:
    every_version = [m.version for m in migrations(database)]
    anonymous = ClickhouseStore.from_url(server.store_url(database))
    try:
        # Creating the span tables is a span-table write: refused, with the reason.
        with pytest.raises(StoreError, match=r"span table otel_traces.*ACCESS_DENIED"):
            anonymous.migrate()
        owner = ClickhouseStore.from_url(_owner_url(server, database))
        try:
            assert owner.migrate() == every_version
            assert owner.migrate() == []
        finally:
            owner.close()
        # Nothing left to apply, so no span-table DDL is sent: fine without the token.
        assert anonymous.migrate() == []
        assert anonymous.applied_migrations() == every_version
    finally:
        anonymous.close()
    embedded = ChdbStore(chdb_path, database=database)
    try:
        assert embedded.applied_migrations() == every_version
        assert embedded.count_spans() == 0
    finally:
        embedded.close()


ROUND_TRIP_DDL = """
CREATE TABLE {db}.all_types (
    Id UInt64,
    Ts DateTime64(9),
    TsUtc DateTime64(6, 'UTC'),
    Name LowCardinality(String),
    Attrs Map(LowCardinality(String), String),
    Tags Array(String),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ),
    Value Nullable(Float64),
    Passed Nullable(Bool),
    Count UInt32
) ENGINE = MergeTree ORDER BY Id
"""


def test_arrow_round_trip_of_the_column_types_tracescore_uses(
    store: Store, remote: ClickhouseStore
) -> None:
    remote.command(ROUND_TRIP_DDL.format(db=store.db))
    ts = pa.timestamp("ns", tz="UTC")
    attrs = pa.map_(pa.string(), pa.string())
    weird = "quote ' back \\ tab \t newline \n ünïcode"
    sent = pa.table(
        {
            "Id": pa.array([1, 2**64 - 1], pa.uint64()),
            "Ts": pa.array([1_700_000_000_123_456_789, 0], ts),
            "TsUtc": pa.array([1_700_000_000_123_456_000, 5_000], ts),
            "Name": [weird, ""],
            "Attrs": pa.array([[("k", weird), ("n", "1")], []], attrs),
            "Tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
            "Events.Timestamp": pa.array([[1_700_000_000_000_000_001], []], pa.list_(ts)),
            "Events.Name": pa.array([["gen_ai.choice"], []], pa.list_(pa.string())),
            "Events.Attributes": pa.array([[[("index", "0")]], []], pa.list_(attrs)),
            "Value": pa.array([0.5, None], pa.float64()),
            "Passed": pa.array([True, None], pa.bool_()),
            "Count": pa.array([7, 4_000_000_000], pa.uint32()),
        }
    )
    remote.insert_arrow("all_types", sent)
    sql = f"""
        SELECT Id, toUnixTimestamp64Nano(Ts) AS TsNs, toUnixTimestamp64Micro(TsUtc) AS TsUs,
               Name, Attrs, Tags, arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EvNs,
               Events.Name AS EvNames, Events.Attributes AS EvAttrs, Value, Passed, Count
        FROM {store.db}.all_types ORDER BY Id
    """
    over_http = remote.query(sql)
    assert over_http == store.query(sql)  # both backends read the same values
    first, last = over_http
    assert first["Id"] == 1 and last["Id"] == 2**64 - 1
    assert first["TsNs"] == 1_700_000_000_123_456_789 and last["TsNs"] == 0
    assert (first["TsUs"], last["TsUs"]) == (1_700_000_000_123_456, 5)
    assert first["Name"] == weird and dict(first["Attrs"]) == {"k": weird, "n": "1"}
    assert last["Attrs"] == [] and first["Tags"] == ["a", "b"]
    assert first["EvNs"] == [1_700_000_000_000_000_001] and first["EvNames"] == ["gen_ai.choice"]
    assert [dict(a) for a in first["EvAttrs"]] == [{"index": "0"}]
    assert (first["Value"], first["Passed"], last["Value"], last["Passed"]) == (
        0.5,
        True,
        None,
        None,
    )
    assert last["Count"] == 4_000_000_000
    # The Arrow types match what the embedded store returns, not just the values.
    assert (
        remote.query_arrow(f"SELECT * FROM {store.db}.all_types").schema
        == store.query_arrow(f"SELECT * FROM {store.db}.all_types").schema
    )


def _trace(trace_id: str) -> SpanColumns:
    spans = SpanColumns()
    rows = [
        ("0000000000000001", "", "invoke_agent", "Server", 0, [("gen_ai.choice", [("i", "0")])]),
        ("0000000000000002", "0000000000000001", "chat model", "Client", 10, []),
    ]
    for span_id, parent, name, kind, offset, events in rows:
        start = 1_700_000_000_000_000_000 + offset
        spans.timestamp.append(start)
        spans.trace_id.append(trace_id)
        spans.span_id.append(span_id)
        spans.parent_span_id.append(parent)
        spans.trace_state.append("congo=t61")
        spans.span_name.append(name)
        spans.span_kind.append(kind)
        spans.service_name.append("agent")
        spans.resource_attributes.append([("service.name", "agent"), ("tracescore.variant", "v")])
        spans.scope_name.append("scope")
        spans.scope_version.append("1.0")
        spans.span_attributes.append([("gen_ai.request.model", "m'1")])
        spans.duration.append(5_000)
        spans.status_code.append("Error" if parent else "Unset")
        spans.status_message.append("boom" if parent else "")
        spans.events_timestamp.append([start + 1 for _ in events])
        spans.events_name.append([e[0] for e in events])
        spans.events_attributes.append([e[1] for e in events])
        spans.links_trace_id.append(["ab" * 16] if parent else [])
        spans.links_span_id.append(["cd" * 8] if parent else [])
        spans.links_trace_state.append(["x=1"] if parent else [])
        spans.links_attributes.append([[("link", "follows")]] if parent else [])
    return spans


def test_spans_round_trip_between_the_two_backends(
    server: QueryServer, store: Store, remote: ClickhouseStore
) -> None:
    # Written by the embedded store, read over HTTP.
    store.insert_spans(_trace("e" * 32))
    over_http = remote.fetch_trace("e" * 32)
    assert over_http == store.fetch_trace("e" * 32)
    assert [s.name for s in over_http] == ["invoke_agent", "chat model"]
    assert over_http[0].events[0].attributes == {"i": "0"}
    assert over_http[1].links[0].trace_id == "ab" * 16
    assert over_http[1].attributes == {"gen_ai.request.model": "m'1"}
    # Written over HTTP (with the token), read by the embedded store.
    owner = ClickhouseStore.from_url(_owner_url(server, store.database))
    try:
        owner.insert_spans(_trace("f" * 32))
    finally:
        owner.close()
    assert store.fetch_trace("f" * 32) == remote.fetch_trace("f" * 32)
    assert [remote.count_spans("f" * 32), remote.count_spans(), remote.count_spans("0" * 32)] == [
        2,
        4,
        0,
    ]


def test_parameters_are_bound_on_the_server(store: Store, remote: ClickhouseStore) -> None:
    hostile = "x' OR '1'='1 \\' ; DROP TABLE t -- \" %s %(v)s {v:String}\t\n"
    assert remote.query("SELECT {v:String} AS v", {"v": hostile}) == [{"v": hostile}]
    remote.command(f"CREATE TABLE {store.db}.names (Name String) ENGINE = Memory")
    remote.insert_arrow("names", pa.table({"Name": [hostile, "plain"]}))
    matching = f"SELECT count() AS n FROM {store.db}.names WHERE Name = {{v:String}}"
    assert remote.query(matching, {"v": hostile}) == [{"n": 1}]
    assert remote.query(matching, {"v": "x' OR '1'='1"}) == [{"n": 0}]
    # Long values go as multipart form fields instead of URL parameters.
    long_value = hostile * 1000
    assert remote.query(
        "SELECT {v:String} = {w:String} AS same, length({v:String}) AS n",
        {"v": long_value, "w": long_value},
    ) == [{"same": True, "n": len(long_value.encode())}]
    # A parameter without a placeholder would be formatted into the SQL by the client.
    with pytest.raises(StoreError, match="no \\{name:Type\\} placeholder"):
        remote.query(f"SELECT count() FROM {store.db}.names WHERE Name = %(v)s", {"v": "x"})


def test_errors_carry_clickhouse_messages(store: Store, remote: ClickhouseStore) -> None:
    with pytest.raises(StoreError, match=r"(?s)Code: 62.*Syntax error.*SYNTAX_ERROR") as syntax:
        remote.query("SELEC 1")
    assert remote.location in str(syntax.value)
    with pytest.raises(StoreError, match="UNKNOWN_TABLE"):
        remote.query(f"SELECT * FROM {store.db}.no_such_table")
    with pytest.raises(StoreError, match="no_such_table"):
        remote.insert_arrow("no_such_table", pa.table({"a": [1]}))
    remote.close()
    with pytest.raises(StoreError, match="closed"):
        remote.query("SELECT 1")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_connection_refused_names_the_url_without_the_password() -> None:
    port = _closed_port()
    with pytest.raises(StoreError) as refused:
        open_store(f"clickhouse://alice:pw-s3cret@127.0.0.1:{port}/otel?connect_timeout=2")
    message = str(refused.value)
    assert f"clickhouse://alice@127.0.0.1:{port}/otel" in message
    assert "pw-s3cret" not in message


def test_open_store_dispatches_on_the_scheme(
    server: QueryServer, store: Store, chdb_path: Path
) -> None:
    over_http = open_store(server.store_url(store.database) + "?async_insert=1")
    try:
        assert isinstance(over_http, ClickhouseStore)
        assert (
            over_http.location == f"clickhouse://default@127.0.0.1:{server.port}/{store.database}"
        )
        # The URL's settings reach the server with every request.
        assert over_http.query(
            "SELECT getSetting('async_insert') AS a, getSetting('wait_for_async_insert') AS w"
        ) == [{"a": True, "w": True}]
    finally:
        over_http.close()
    embedded = open_store(f"chdb:{chdb_path}?database={store.database}")
    try:
        assert isinstance(embedded, ChdbStore)
    finally:
        embedded.close()
    with pytest.raises(ConfigError, match="clickhouse://"):
        open_store("http://127.0.0.1:8123/otel")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("clickhouse://db.internal", ClickhouseOptions(host="db.internal")),
        (
            "clickhouses://u%40corp:p%3Ass@ch.example:9440/traces_1?verify=0&async_insert=1"
            "&wait_for_async_insert=0&compress=zstd&connect_timeout=2.5&ca_cert=/etc/ca.pem",
            ClickhouseOptions(
                host="ch.example",
                port=9440,
                username="u@corp",
                password="p:ss",
                database="traces_1",
                secure=True,
                verify=False,
                ca_cert="/etc/ca.pem",
                compress="zstd",
                async_insert=True,
                wait_for_async_insert=False,
                connect_timeout=2.5,
            ),
        ),
        (
            "clickhouse://h/?database=db2&secure=1",
            ClickhouseOptions(host="h", port=8443, database="db2", secure=True),
        ),
        (
            "clickhouse://[::1]:8124/otel?compress=0",
            ClickhouseOptions(host="::1", port=8124, compress=False),
        ),
    ],
)
def test_url_parsing(url: str, expected: ClickhouseOptions) -> None:
    parsed = parse_clickhouse_url(url)
    assert parsed == expected
    assert parsed.password not in parsed.url or not parsed.password


def test_url_options_become_settings() -> None:
    assert parse_clickhouse_url("clickhouse://h").settings == {}
    assert parse_clickhouse_url("clickhouse://h?async_insert=1").settings == {
        "async_insert": 1,
        "wait_for_async_insert": 1,
    }
    assert parse_clickhouse_url("clickhouses://u:secret@h/otel").url == (
        "clickhouses://u@h:8443/otel"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhouse://h/otel?retries=3", "unknown store option.*retries"),
        ("clickhouse://h:99999/otel", "port"),
        ("clickhouse://h/bad-name", "invalid ClickHouse identifier"),
        ("clickhouse://h/a/b", "invalid ClickHouse identifier"),
        ("clickhouse://h/otel?database=other", "both in its path and"),
        ("clickhouse://h/otel?async_insert=maybe", "async_insert='maybe'"),
        ("clickhouse://h/otel?compress=brotli", "compress='brotli'"),
        ("clickhouse://h/otel?connect_timeout=-1", "connect_timeout"),
        ("clickhouse://u:topsecret@h:x/otel", "port"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        open_store(url)
    assert "topsecret" not in str(error.value)
