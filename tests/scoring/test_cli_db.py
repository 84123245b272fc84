"""``tracescore db init``: migrations on the store, and the DDL it would run with --print."""

import re
from pathlib import Path

import pytest

from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.ddl import migrations, setup_statements
from tracescore.scoring.cli import EXIT_OK, EXIT_USAGE, main


def _statements(script: str) -> list[str]:
    """The statements of a script, without comment lines (as the DDL files are split)."""
    return [
        uncommented
        for chunk in re.split(r";\s*$", script, flags=re.MULTILINE)
        if (uncommented := _uncommented(chunk))
    ]


def _uncommented(sql: str) -> str:
    return "\n".join(
        line for line in sql.strip().splitlines() if not line.lstrip().startswith("--")
    ).strip()


def _expected(database: str, cluster: str | None) -> list[str]:
    return [
        _uncommented(s)
        for s in [
            *setup_statements(database, cluster),
            *(s for m in migrations(database, cluster) for s in m.statements),
        ]
    ]


def test_print_with_cluster_shows_the_cluster_ddl_without_opening_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "never-created"
    assert (
        main(["db", "init", "--print", "--cluster", "c1", "--store", f"chdb:{path}?database=obs"])
        == EXIT_OK
    )
    out = capsys.readouterr().out
    assert _statements(out) == _expected("obs", "c1")
    assert out.startswith("-- setup")
    for migration in migrations("obs"):
        assert f"-- migration {migration.version:04d}_{migration.name}\n" in out
    assert "CREATE DATABASE IF NOT EXISTS `obs` ON CLUSTER `c1`;\n" in out
    assert "ENGINE = Distributed('c1', 'obs', 'otel_traces_local', cityHash64(TraceId));\n" in out
    assert not path.exists()


def test_print_without_cluster_shows_the_single_server_ddl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "init", "--print", "--store", "chdb:unused"]) == EXIT_OK
    out = capsys.readouterr().out
    assert _statements(out) == _expected("otel", None)
    assert "ON CLUSTER" not in out


def test_print_reads_the_database_of_a_clickhouse_url(capsys: pytest.CaptureFixture[str]) -> None:
    store = "clickhouse://user:secret@ch.example:8123/prod"
    assert main(["db", "init", "--print", "--cluster", "main", "--store", store]) == EXIT_OK
    assert _statements(capsys.readouterr().out) == _expected("prod", "main")


def test_an_invalid_cluster_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "init", "--print", "--cluster", "c1;DROP"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: invalid cluster name 'c1;DROP'")


def test_db_init_applies_every_migration_once(
    chdb_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"chdb:{chdb_path}?database={database}"
    versions = [m.version for m in migrations(database)]
    assert main(["db", "init", "--store", store]) == EXIT_OK
    first = capsys.readouterr().out
    assert f"applied migrations {', '.join(map(str, versions))};" in first
    assert f"schema at version {versions[-1]}" in first
    assert main(["db", "init", "--store", store]) == EXIT_OK
    assert "applied migrations none (already up to date)" in capsys.readouterr().out


def test_db_init_on_a_cluster_the_store_lacks_fails_before_creating_anything(
    chdb_path: Path, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"chdb:{chdb_path}?database={database}"
    assert main(["db", "init", "--cluster", "c1", "--store", store]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: ")
    check = ChdbStore(chdb_path, database=database)
    try:
        rows = check.query(
            "SELECT count() AS n FROM system.databases WHERE name = {d:String}", {"d": database}
        )
    finally:
        check.close()
    assert rows[0]["n"] == 0
