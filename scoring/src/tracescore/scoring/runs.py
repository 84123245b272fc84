"""Reading runs, their case results and scores back from the store.

The three tables are ReplacingMergeTree, so until a merge runs (and across the scores
table's monthly partitions, which merges never join) a row written twice is stored
twice. Every read keeps only the newest version of each key with ``LIMIT 1 BY``,
ordered on the table's version column: exact at any merge state, and unlike ``argMax``
it keeps NULL values (an undecided score's ``Passed``) as they were written.
"""

from dataclasses import dataclass
from typing import Any, cast

from tracescore.collector.store import Store
from tracescore.schemas.ddl import CASE_RESULTS_TABLE, RUNS_TABLE, SCORES_TABLE
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.scoring.results import CaseStatus, RunRecord, ScoredCase

LATEST = "latest"

_RUN_COLUMNS = """
    RunId, Suite, toUnixTimestamp64Micro(StartedAt) AS StartedUs,
    toUnixTimestamp64Micro(FinishedAt) AS FinishedUs, Status, VariantKey, Variants,
    ConfigPath, ConfigHash, DatasetHash, GitSha, GitDirty, TracescoreVersion,
    CaseCount, PassedCount, FailedCount, ErrorCount
"""


@dataclass(frozen=True)
class RunSummary:
    """A run as ``tracescore runs`` lists it: the run row without its cases."""

    run: RunRecord
    case_count: int
    passed: int
    failed: int
    errors: int


def _run_from_row(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["RunId"],
        suite=row["Suite"],
        config_path=row["ConfigPath"],
        variant_key=row["VariantKey"],
        variants=list(row["Variants"]),
        config_hash=row["ConfigHash"],
        dataset_hash=row["DatasetHash"],
        git_sha=row["GitSha"],
        git_dirty=bool(row["GitDirty"]),
        version=row["TracescoreVersion"],
        started_ns=int(row["StartedUs"]) * 1000,
        finished_ns=int(row["FinishedUs"]) * 1000,
        status=row["Status"],
    )


def _summary(row: dict[str, Any]) -> RunSummary:
    return RunSummary(
        run=_run_from_row(row),
        case_count=int(row["CaseCount"]),
        passed=int(row["PassedCount"]),
        failed=int(row["FailedCount"]),
        errors=int(row["ErrorCount"]),
    )


def has_table(store: Store, table: str, database: str | None = None) -> bool:
    """Whether ``table`` exists in ``database`` (default: the store's).

    A store nothing was run against yet has no tables (or no database) to query;
    reading it must say "no runs", not fail with ClickHouse's UNKNOWN_DATABASE.
    """
    rows = store.query(
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": store.database if database is None else database, "t": table},
    )
    return bool(rows and rows[0]["n"])


def _has_runs_table(store: Store) -> bool:
    return has_table(store, RUNS_TABLE)


def run_exists(store: Store, run_id: str) -> bool:
    """Whether ``run_id`` names a stored run (finished, or in progress with cases)."""
    if not _has_runs_table(store):
        return False
    rows = store.query(
        f"""
        SELECT (SELECT count() FROM {store.db}.{RUNS_TABLE} WHERE RunId = {{rid:String}})
             + (SELECT count() FROM {store.db}.{CASE_RESULTS_TABLE} WHERE RunId = {{rid:String}})
            AS n
        """,
        {"rid": run_id},
    )
    return bool(rows and rows[0]["n"])


def runs_at_commit(store: Store, suite: str, git_sha: str) -> list[RunSummary]:
    """Every run of ``suite`` made at commit ``git_sha`` (full hex), newest first."""
    if not _has_runs_table(store):
        return []
    sql = f"""
        SELECT * FROM (
            SELECT {_RUN_COLUMNS} FROM {store.db}.{RUNS_TABLE}
            WHERE Suite = {{suite:String}} AND GitSha = {{sha:String}}
            ORDER BY FinishedAt DESC LIMIT 1 BY RunId
        )
        ORDER BY StartedUs DESC, RunId DESC
    """
    return [_summary(row) for row in store.query(sql, {"suite": suite, "sha": git_sha})]


def list_runs(store: Store, suite: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The most recently started runs, newest first, of one suite or of all."""
    if not _has_runs_table(store):
        return []
    where = "WHERE Suite = {suite:String}" if suite is not None else ""
    sql = f"""
        SELECT * FROM (
            SELECT {_RUN_COLUMNS} FROM {store.db}.{RUNS_TABLE} {where}
            ORDER BY FinishedAt DESC LIMIT 1 BY RunId
        )
        ORDER BY StartedUs DESC, RunId DESC
        LIMIT {{limit:UInt32}}
    """
    params: dict[str, Any] = {"limit": max(0, limit)}
    if suite is not None:
        params["suite"] = suite
    return [_summary(row) for row in store.query(sql, params)]


def latest_run(store: Store, suite: str | None = None) -> RunRecord:
    """The most recently started run (of ``suite`` if given), with its cases and scores."""
    found = list_runs(store, suite, limit=1)
    if not found:
        scope = f" of suite {suite!r}" if suite is not None else ""
        raise ConfigError(
            f"no runs{scope} in {store.location}; start one with `tracescore run EVAL_YAML`"
        )
    return load_run(store, found[0].run.run_id)


def resolve_run(store: Store, run_id: str, suite: str | None = None) -> RunRecord:
    """``run_id`` loaded, or the latest run when it is ``latest``."""
    return latest_run(store, suite) if run_id == LATEST else load_run(store, run_id)


def load_run(store: Store, run_id: str) -> RunRecord:
    """One run with its case results and their scores, as ``write_run``/``write_case``
    stored them.

    Not stored, so not restored: each case's ``orphan_spans`` (0; the trace has them)
    and the order of its scores (sorted by evaluator name). A run still in progress has
    case rows but no run row yet (``write_run`` runs last); it is returned with status
    ``running`` and what its cases tell.
    """
    if not _has_runs_table(store):
        raise ConfigError(
            f"no run {run_id!r} in {store.location} (it holds no runs yet); "
            "`tracescore runs` lists the stored runs"
        )
    rows = store.query(
        f"SELECT {_RUN_COLUMNS} FROM {store.db}.{RUNS_TABLE} WHERE RunId = {{rid:String}} "
        "ORDER BY FinishedAt DESC LIMIT 1",
        {"rid": run_id},
    )
    cases = _load_cases(store, run_id)
    if rows:
        run = _run_from_row(rows[0])
    elif cases:
        run = _unfinished_run(run_id, store, cases)
    else:
        raise ConfigError(
            f"no run {run_id!r} in {store.location}; `tracescore runs` lists the stored runs"
        )
    run.cases = cases
    if run.variants:
        # The order the runner wrote them in: variants as configured, then cases.
        rank = {v: i for i, v in enumerate(run.variants)}
        run.cases.sort(key=lambda c: (rank.get(c.variant, len(rank)), c.case_id, c.repeat))
    return run


def _unfinished_run(run_id: str, store: Store, cases: list[ScoredCase]) -> RunRecord:
    suite = store.query(
        f"SELECT any(Suite) AS Suite FROM {store.db}.{CASE_RESULTS_TABLE} "
        "WHERE RunId = {rid:String}",
        {"rid": run_id},
    )[0]["Suite"]
    return RunRecord(
        run_id=run_id,
        suite=suite,
        config_path="",
        variant_key="",
        variants=list(dict.fromkeys(sorted(c.variant for c in cases))),
        config_hash="",
        dataset_hash="",
        git_sha="",
        git_dirty=False,
        version="",
        started_ns=0,
        status="running",
    )


def _load_cases(store: Store, run_id: str) -> list[ScoredCase]:
    case_rows = store.query(
        f"""
        SELECT CaseId, Variant, Repeat, TraceId, Status, Error, Input, Output, DurationNs,
               SpanCount, InputTokens, OutputTokens, CostUsd
        FROM {store.db}.{CASE_RESULTS_TABLE}
        WHERE RunId = {{rid:String}}
        ORDER BY Timestamp DESC LIMIT 1 BY CaseId, Variant, Repeat
        """,
        {"rid": run_id},
    )
    score_rows = store.query(
        f"""
        SELECT TraceId, CaseId, Variant, Evaluator, EvaluatorType, ConfigHash, Value, Passed,
               Label, Explanation, Error
        FROM {store.db}.{SCORES_TABLE}
        WHERE RunId = {{rid:String}}
        ORDER BY Timestamp DESC LIMIT 1 BY TraceId, Evaluator, ConfigHash
        """,
        {"rid": run_id},
    )
    scores: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in score_rows:
        scores.setdefault((row["CaseId"], row["Variant"], row["TraceId"]), []).append(row)
    cases: list[ScoredCase] = []
    for row in case_rows:
        case = ScoredCase(
            case_id=row["CaseId"],
            variant=row["Variant"],
            repeat=int(row["Repeat"]),
            trace_id=row["TraceId"],
            status=cast(CaseStatus, row["Status"]),
            input=row["Input"],
            output=row["Output"],
            error=row["Error"] or None,
            duration_ns=int(row["DurationNs"]),
            span_count=int(row["SpanCount"]),
            input_tokens=int(row["InputTokens"]),
            output_tokens=int(row["OutputTokens"]),
            cost_usd=row["CostUsd"],
        )
        mine = sorted(
            scores.get((case.case_id, case.variant, case.trace_id), []),
            key=lambda r: (r["Evaluator"], r["ConfigHash"]),
        )
        for score_row in mine:
            case.scores.append(_score(score_row))
            if score_row["EvaluatorType"] or score_row["ConfigHash"]:
                case.score_configs[score_row["Evaluator"]] = (
                    score_row["EvaluatorType"],
                    score_row["ConfigHash"],
                )
        cases.append(case)
    return cases


def _score(row: dict[str, Any]) -> Score:
    error = row["Error"] or None
    passed = row["Passed"]
    return Score(
        evaluator=row["Evaluator"],
        value=row["Value"],
        passed=None if passed is None else bool(passed),
        label=row["Label"],
        explanation=row["Explanation"],
        error=error,
        # Not a column: Score.skip() is the only writer of this label on an undecided score.
        skipped=passed is None and error is None and row["Label"] == "skipped",
    )
