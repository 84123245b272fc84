"""A command that migrates as it starts (watch, rescore, run) against a schema that
``db init --cluster`` made: it must not apply a new migration to one node only.

chDB has no clusters, so whether a schema is a cluster's is the one thing these tests
decide for the store; the migrations, their records and the refusal run on chDB."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tracescore.collector.store.base import distributed_cluster
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.ddl import MIGRATIONS_TABLE, migrations
from tracescore.schemas.errors import ConfigError


class _ClusterSchemaStore(ChdbStore):
    def _schema_cluster(self) -> str | None:
        return "prod"


@pytest.fixture
def cluster_schema(chdb_path: Path, database: str) -> Iterator[_ClusterSchemaStore]:
    opened = _ClusterSchemaStore(chdb_path, database=database)
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("engine_full", "cluster"),
    [
        ("Distributed('prod', 'otel', 'otel_traces_local', rand())", "prod"),
        ("Distributed('my-cluster', 'db', 't')", "my-cluster"),
        ("MergeTree ORDER BY Version SETTINGS index_granularity = 8192", None),
        ("ReplicatedMergeTree('/clickhouse/{shard}/t', '{replica}') ORDER BY x", None),
        ("", None),
    ],
)
def test_distributed_cluster_reads_the_engine_clause(engine_full: str, cluster: str | None) -> None:
    assert distributed_cluster(engine_full) == cluster


def test_a_single_server_schema_has_no_cluster(store: ChdbStore) -> None:
    assert store._schema_cluster() is None


def test_pending_migrations_on_a_cluster_schema_are_refused_and_nothing_is_applied(
    cluster_schema: _ClusterSchemaStore,
) -> None:
    with pytest.raises(ConfigError) as caught:
        cluster_schema.migrate()
    message = str(caught.value)
    every = [m.version for m in migrations(cluster_schema.database)]
    assert f"migrations {every} pending" in message
    assert "tracescore db init --cluster prod" in message
    assert cluster_schema.applied_migrations() == []
    tables = cluster_schema.query(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        {"db": cluster_schema.database},
    )
    assert [r["name"] for r in tables] == [MIGRATIONS_TABLE]


def test_an_up_to_date_cluster_schema_is_left_alone(
    chdb_path: Path, cluster_schema: _ClusterSchemaStore
) -> None:
    # Made current as `db init --cluster` would leave it (here by a plain migrate).
    plain = ChdbStore(chdb_path, database=cluster_schema.database)
    applied = plain.migrate()
    plain.close()
    assert applied
    assert cluster_schema.migrate() == []
    assert cluster_schema.applied_migrations() == applied
