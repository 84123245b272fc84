"""ClickHouse DDL shipped as package data, in versioned migrations.

Each ``ddl/NNNN_name.sql`` file is one migration; statements are separated by
``;`` at the end of a line and use ``{database}`` for the target database.
"""

import re
from dataclasses import dataclass
from importlib import resources

from tracescore.schemas.errors import ConfigError

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TRACES_TABLE = "otel_traces"
RUNS_TABLE = "tracescore_runs"
CASE_RESULTS_TABLE = "tracescore_case_results"
SCORES_TABLE = "tracescore_scores"
MIGRATIONS_TABLE = "tracescore_schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def quote_identifier(name: str) -> str:
    """Quote a database or table name; only plain identifiers are accepted."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"invalid ClickHouse identifier {name!r}: use letters, digits and _")
    return f"`{name}`"


def migrations(database: str) -> list[Migration]:
    """All migrations in version order, rendered for ``database``."""
    quoted = quote_identifier(database)
    found: list[Migration] = []
    for entry in resources.files("tracescore.schemas").joinpath("ddl").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8").replace("{database}", quoted)
        statements = tuple(
            stmt.strip()
            for stmt in re.split(r";\s*$", text, flags=re.MULTILINE)
            if _strip_comments(stmt).strip()
        )
        found.append(Migration(int(match.group(1)), match.group(2), statements))
    found.sort(key=lambda m: m.version)
    return found


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
