"""ClickHouse DDL shipped as package data, in versioned migrations.

Each ``ddl/NNNN_name.sql`` file is one migration; statements are separated by
``;`` at the end of a line and use ``{database}`` for the target database.

The files are written for a single server. For a ClickHouse cluster the same
statements are rendered differently (``cluster=NAME``):

- ``CREATE DATABASE ... ON CLUSTER NAME``;
- every table becomes ``<table>_local ... ON CLUSTER NAME`` with the Replicated
  engine of the same family (``MergeTree`` → ``ReplicatedMergeTree``,
  ``ReplacingMergeTree(v)`` → ``ReplicatedReplacingMergeTree(path, replica, v)``,
  ...), plus a ``Distributed`` table under the original name, so readers and
  writers use the same table names on a single server and on a cluster;
- materialized views are created ``ON CLUSTER``, read the local source table and
  write into the local target table, so each shard aggregates its own rows;
- ``ALTER TABLE ... MODIFY TTL`` changes the ``_local`` table ``ON CLUSTER`` only:
  rows live there, and a Distributed table has no TTL.

Replicated tables keep their data at :data:`ZOOKEEPER_PATH` with replica name
:data:`REPLICA_NAME`. The ``{shard}`` and ``{replica}`` macros must be defined
on every server; ``{database}`` and ``{table}`` are expanded by ClickHouse when
the table is created. The path deliberately has no ``{uuid}``: it is the same on
every replica whatever the database engine, and readable in Keeper. The price is
that a dropped table must be dropped with ``SYNC`` before it can be recreated,
since its Keeper path is only freed once the drop has completed.
"""

import re
from dataclasses import dataclass
from importlib import resources

from tracescore.schemas.errors import ConfigError

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

TRACES_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
LOGS_TABLE = "otel_logs"
RUNS_TABLE = "tracescore_runs"
CASE_RESULTS_TABLE = "tracescore_case_results"
SCORES_TABLE = "tracescore_scores"
BASELINES_TABLE = "tracescore_baselines"
MIGRATIONS_TABLE = "tracescore_schema_migrations"
TRACE_ARRIVALS_TABLE = "tracescore_trace_arrivals"
WATCH_STATE_TABLE = "tracescore_watch_state"
WATCH_CHECKPOINTS_TABLE = "tracescore_watch_checkpoints"

LOCAL_SUFFIX = "_local"
ZOOKEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"

# Sharding keys chosen for locality rather than derived from the engine: all
# spans of a trace on one shard, so a trace lookup can skip the other shards
# (optimize_skip_unused_shards) and the per-shard trace-id lookup rows stay whole.
_SHARDING_KEYS = {TRACES_TABLE: "cityHash64(TraceId)", TRACE_ARRIVALS_TABLE: "cityHash64(TraceId)"}


# The time each table's rows expire from, as the clickhouseexporter writes its own TTL
# (`TTL <expr> + toIntervalDay(N)`), so a table either writer created reads the same.
SPAN_RETENTION = {
    TRACES_TABLE: "toDateTime(Timestamp)",
    TRACE_ID_TS_TABLE: "toDateTime(Start)",
    LOGS_TABLE: "toDateTime(Timestamp)",
}
SCORE_RETENTION = {SCORES_TABLE: "toDateTime(Timestamp)"}


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


def local_table_name(table: str, cluster: str | None) -> str:
    """The table that holds ``table``'s rows on the server one is connected to."""
    return f"{table}{LOCAL_SUFFIX}" if cluster is not None else table


def setup_statements(database: str, cluster: str | None = None) -> tuple[str, ...]:
    """Create the database and the table recording applied migrations (run first)."""
    db = quote_identifier(database)
    create_database = f"CREATE DATABASE IF NOT EXISTS {db}"
    create_migrations = (
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} "
        "(Version UInt32, Name String, AppliedAt DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree(AppliedAt) ORDER BY Version"
    )
    if cluster is None:
        return (create_database, create_migrations)
    renderer = _ClusterRenderer(database, cluster)
    return (
        f"{create_database} ON CLUSTER {renderer.cluster}",
        *renderer.render(create_migrations, "the migrations table"),
    )


def retention_statements(
    database: str,
    *,
    span_days: int | None = None,
    score_days: int | None = None,
    cluster: str | None = None,
) -> tuple[str, ...]:
    """``ALTER TABLE ... MODIFY TTL`` keeping spans and logs ``span_days`` days and scores
    ``score_days`` days (``None``: that group's TTL is left as it is).

    MODIFY TTL replaces whatever TTL the table had, so running these again with another
    value changes the retention. Runs and case results never expire: they are a suite's
    small history that baselines and comparisons read.
    """
    db = quote_identifier(database)
    statements: list[str] = []
    for days, tables in ((span_days, SPAN_RETENTION), (score_days, SCORE_RETENTION)):
        if days is None:
            continue
        if isinstance(days, bool) or days < 1:
            raise ConfigError(f"retention must be a whole number of days >= 1, got {days!r}")
        statements.extend(
            f"ALTER TABLE {db}.{table} MODIFY TTL {column} + toIntervalDay({days})"
            for table, column in tables.items()
        )
    if cluster is None or not statements:
        return tuple(statements)
    renderer = _ClusterRenderer(database, cluster)
    # The renderer learns which tables have a _local counterpart from their CREATE.
    for migration in _load_migrations(database):
        for statement in migration.statements:
            renderer.render(statement, f"migration {migration.version:04d}_{migration.name}")
    return tuple(
        rendered for statement in statements for rendered in renderer.render(statement, "retention")
    )


def migrations(database: str, cluster: str | None = None) -> list[Migration]:
    """All migrations in version order, rendered for ``database`` (on ``cluster`` if given)."""
    found = _load_migrations(database)
    if cluster is None:
        return found
    return _render_migrations(found, database, cluster)


def _load_migrations(database: str) -> list[Migration]:
    """The migration files as written (single server), in version order."""
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


def _render_migrations(found: list[Migration], database: str, cluster: str) -> list[Migration]:
    # One renderer across all migrations: a view may read a table an earlier one created.
    renderer = _ClusterRenderer(database, cluster)
    return [
        Migration(
            m.version,
            m.name,
            tuple(
                rendered
                for statement in m.statements
                for rendered in renderer.render(statement, f"migration {m.version:04d}_{m.name}")
            ),
        )
        for m in found
    ]


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


# -- cluster rendering ----------------------------------------------------------------

_NAME = r"(?:`_*`|[A-Za-z_][A-Za-z0-9_]*)"
_CREATE_TABLE = re.compile(
    rf"\A\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+({_NAME})\.({_NAME})\s*\(", re.IGNORECASE
)
_ENGINE = re.compile(r"\s*ENGINE\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\()?", re.IGNORECASE)
_MERGE_TREE_FAMILY = re.compile(r"\A([A-Za-z]*)MergeTree\Z")
_CLAUSE = re.compile(
    r"\b(?:PARTITION\s+BY|PRIMARY\s+KEY|ORDER\s+BY|SAMPLE\s+BY|TTL|SETTINGS)\b", re.IGNORECASE
)
_CREATE_VIEW = re.compile(
    rf"\A\s*CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+({_NAME})\.({_NAME})"
    rf"\s+TO\s+({_NAME})\.({_NAME})\s+AS\s+SELECT\b",
    re.IGNORECASE,
)
_ADD_COLUMN = re.compile(
    rf"\A\s*ALTER\s+TABLE\s+({_NAME})\.({_NAME})\s+ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\b",
    re.IGNORECASE,
)
_MODIFY_TTL = re.compile(
    rf"\A\s*ALTER\s+TABLE\s+({_NAME})\.({_NAME})\s+MODIFY\s+TTL\b", re.IGNORECASE
)
_QUALIFIED = re.compile(rf"({_NAME})\.({_NAME})")
_SOURCE = re.compile(r"\b(?:FROM|JOIN)\s+", re.IGNORECASE)


class _ClusterRenderer:
    """Turns our single-server DDL into cluster DDL, or refuses with ConfigError.

    It works on the statement text: quoted strings, quoted names and comments are
    masked first (:func:`_mask`), so keywords, parentheses and names are only
    found in the SQL itself. Anything outside the shapes our DDL files use is an
    error rather than a guess, since a wrong engine or a view on the wrong table
    would be silently wrong on every shard.
    """

    def __init__(self, database: str, cluster: str) -> None:
        self.database = database
        self.db = quote_identifier(database)
        self.cluster_name = cluster
        try:
            self.cluster = quote_identifier(cluster)
        except ConfigError:
            raise ConfigError(
                f"invalid cluster name {cluster!r}: use letters, digits and _"
            ) from None
        self.tables: set[str] = set()

    def render(self, sql: str, where: str) -> list[str]:
        masked = _mask(sql, where)
        if match := _CREATE_TABLE.match(masked):
            return self._table(sql, masked, match, where)
        if match := _CREATE_VIEW.match(masked):
            return [self._view(sql, masked, match, where)]
        if match := _ADD_COLUMN.match(masked):
            return self._add_column(sql, match, where)
        if match := _MODIFY_TTL.match(masked):
            return [self._modify_ttl(sql, match, where)]
        raise ConfigError(f"{where}: cannot render this statement for a cluster: {_head(sql)}")

    def _table(self, sql: str, masked: str, match: re.Match[str], where: str) -> list[str]:
        table = self._name_in_database(sql, match, 1, where)
        columns_end = _closing(masked, match.end() - 1, where)
        engine = _ENGINE.match(masked, columns_end + 1)
        if engine is None:
            raise ConfigError(f"{where}: {table}: no ENGINE clause after the column list")
        family = _MERGE_TREE_FAMILY.match(engine.group(1))
        if family is None or family.group(1).startswith("Replicated"):
            raise ConfigError(
                f"{where}: {table}: engine {engine.group(1)} has no Replicated counterpart "
                "to render for a cluster (expected a non-replicated MergeTree family engine)"
            )
        if engine.group(2):
            args_end = _closing(masked, engine.end() - 1, where)
            args = sql[engine.end() : args_end].strip()
            engine_end = args_end + 1
        else:
            args = ""
            engine_end = engine.end()
        replicated_args = ", ".join(
            a for a in (f"'{ZOOKEEPER_PATH}'", f"'{REPLICA_NAME}'", args) if a
        )
        sharding_key = _SHARDING_KEYS.get(table)
        if sharding_key is None:
            if family.group(1):
                # Replacing/Aggregating/... rows only merge within a shard, so rows
                # with the same sorting key must land on the same shard.
                first = self._first_sort_column(sql, masked, engine_end, where)
                sharding_key = f"cityHash64({first})"
            else:
                sharding_key = "rand()"
        local = f"{table}{LOCAL_SUFFIX}"
        local_sql = (
            sql[: match.end(2)]
            + f"{LOCAL_SUFFIX} ON CLUSTER {self.cluster}"
            + sql[match.end(2) : engine.start(1)]
            + f"Replicated{engine.group(1)}({replicated_args})"
            + sql[engine_end:]
        )
        distributed_sql = (
            f"CREATE TABLE IF NOT EXISTS {self.db}.{table} ON CLUSTER {self.cluster} "
            f"AS {self.db}.{local}\n"
            f"ENGINE = Distributed('{self.cluster_name}', '{self.database}', '{local}', "
            f"{sharding_key})"
        )
        self.tables.add(table)
        return [local_sql, distributed_sql]

    def _add_column(self, sql: str, match: re.Match[str], where: str) -> list[str]:
        """A column added to a table is added to its local table on every node and to
        the Distributed table over it (which does not follow its source by itself)."""
        table = self._name_in_database(sql, match, 1, where)
        if table not in self.tables:
            raise ConfigError(f"{where}: ALTER TABLE {table}: not a table our migrations made")
        rest = sql[match.end(2) :]
        return [
            f"ALTER TABLE {self.db}.{table}{LOCAL_SUFFIX} ON CLUSTER {self.cluster}{rest}",
            f"ALTER TABLE {self.db}.{table} ON CLUSTER {self.cluster}{rest}",
        ]

    def _modify_ttl(self, sql: str, match: re.Match[str], where: str) -> str:
        """Only the local table: it holds the rows, and a Distributed table takes no TTL."""
        table = self._name_in_database(sql, match, 1, where)
        if table not in self.tables:
            raise ConfigError(f"{where}: ALTER TABLE {table}: not a table our migrations made")
        rest = sql[match.end(2) :]
        return f"ALTER TABLE {self.db}.{table}{LOCAL_SUFFIX} ON CLUSTER {self.cluster}{rest}"

    def _first_sort_column(self, sql: str, masked: str, start: int, where: str) -> str:
        clauses = [
            m for m in _CLAUSE.finditer(masked, start) if _depth(masked, start, m.start()) == 0
        ]
        for i, clause in enumerate(clauses):
            if not clause.group(0).upper().startswith("ORDER"):
                continue
            end = clauses[i + 1].start() if i + 1 < len(clauses) else len(masked)
            first = _first_element(sql, masked, clause.end(), end)
            if first and first.lower() != "tuple()":
                return first
        raise ConfigError(f"{where}: no ORDER BY key to shard by in: {_head(sql)}")

    def _view(self, sql: str, masked: str, match: re.Match[str], where: str) -> str:
        self._name_in_database(sql, match, 1, where)
        target = self._name_in_database(sql, match, 3, where)
        select_start = match.end() - len("SELECT")
        for source in _SOURCE.finditer(masked, select_start):
            rest = masked[source.end() :]
            qualified = _QUALIFIED.match(rest)
            if not rest.startswith("(") and (
                qualified is None
                or sql[source.end() : source.end() + len(qualified.group(1))] != self.db
            ):
                raise ConfigError(
                    f"{where}: a materialized view must read tables as {self.db}.<table> "
                    "to be rendered for a cluster"
                )
        renames = [match.end(4)]
        for ref in _QUALIFIED.finditer(masked, select_start):
            if sql[ref.start(1) : ref.end(1)] != self.db:
                continue
            name = sql[ref.start(2) : ref.end(2)]
            if name not in self.tables:
                raise ConfigError(
                    f"{where}: the view reads {name}, which is not a table created by an "
                    "earlier statement, so its local table is unknown"
                )
            renames.append(ref.end(2))
        if target not in self.tables:
            raise ConfigError(f"{where}: the view writes to {target}, an unknown table")
        out = sql[: match.end(2)] + f" ON CLUSTER {self.cluster}"
        position = match.end(2)
        for end in sorted(renames):
            out += sql[position:end] + LOCAL_SUFFIX
            position = end
        return out + sql[position:]

    def _name_in_database(self, sql: str, match: re.Match[str], group: int, where: str) -> str:
        database = sql[match.start(group) : match.end(group)]
        name = sql[match.start(group + 1) : match.end(group + 1)]
        if database != self.db or not _IDENTIFIER.match(name):
            raise ConfigError(f"{where}: expected a plain name in {self.db}, got {database}.{name}")
        return name


def _mask(sql: str, where: str) -> str:
    """``sql`` with comments blanked and the insides of quotes replaced by ``_``.

    Same length as ``sql``, so positions found in the mask index the original.
    """
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ConfigError(f"{where}: unterminated /* comment")
            out[i : end + 2] = " " * (end + 2 - i)
            i = end + 2
        elif sql[i] in "'`\"":
            quote, j = sql[i], i + 1
            while j < n and sql[j] != quote:
                j += 2 if sql[j] == "\\" else 1
            if j >= n:
                raise ConfigError(f"{where}: unterminated {quote} quote")
            out[i + 1 : j] = "_" * (j - i - 1)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _closing(masked: str, open_at: int, where: str) -> int:
    """Index of the parenthesis closing the one at ``open_at``."""
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == "(":
            depth += 1
        elif masked[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ConfigError(f"{where}: unbalanced parentheses")


def _depth(masked: str, start: int, end: int) -> int:
    segment = masked[start:end]
    return segment.count("(") - segment.count(")")


def _first_element(sql: str, masked: str, start: int, end: int) -> str:
    """The first element of the key expression in ``sql[start:end]`` (a tuple or one expr)."""
    while start < end and masked[start].isspace():
        start += 1
    while end > start and masked[end - 1].isspace():
        end -= 1
    if start < end and masked[start] == "(" and _closing(masked, start, "") == end - 1:
        start, end = start + 1, end - 1
    for i in range(start, end):
        if masked[i] == "," and _depth(masked, start, i) == 0:
            end = i
            break
    return sql[start:end].strip()


def _head(sql: str) -> str:
    """The start of a statement, on one line and without comments, for messages."""
    return " ".join(_strip_comments(sql).split())[:80]
