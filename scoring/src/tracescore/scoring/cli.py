"""The ``tracescore`` command line."""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

from rich.console import Console

from tracescore.collector.config import load_collector_config
from tracescore.collector.store import DEFAULT_DATABASE, STORE_ENV, open_store, store_url
from tracescore.schemas.ddl import migrations, retention_statements, setup_statements
from tracescore.schemas.errors import ConfigError, TracescoreError
from tracescore.schemas.suite import eval_json_schema_text
from tracescore.scoring.baselines import Baseline, promote, resolve_baseline
from tracescore.scoring.compare import (
    DEFAULT_RESAMPLES,
    DEFAULT_THRESHOLD,
    compare_runs,
    compare_variants,
    gate_comparison,
    print_comparison,
    print_gate,
)
from tracescore.scoring.config import load_suite
from tracescore.scoring.evaluators import evaluator_source, plugin_failures, registered
from tracescore.scoring.inspection import print_inspection, runs_table, select_cases
from tracescore.scoring.progress import RunProgress
from tracescore.scoring.report import print_summary
from tracescore.scoring.reports import check_report_paths, write_reports
from tracescore.scoring.runner import RunOptions, Shard, SuiteRunner, tracescore_version
from tracescore.scoring.runs import list_runs, resolve_run

DEFAULT_COLLECTOR_CONFIG = Path("configs/collector.yaml")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tracescore", description="Score LLM agents from their OpenTelemetry traces."
    )
    parser.add_argument("--version", action="version", version=f"tracescore {tracescore_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run an eval suite and score every case")
    run.add_argument("eval_yaml", help="path to the suite's eval.yaml")
    run.add_argument("--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)")
    run.add_argument(
        "--variant", action="append", default=[], help="run only this variant (repeatable)"
    )
    run.add_argument(
        "--case", action="append", default=[], help="run only this case id (repeatable)"
    )
    run.add_argument(
        "--junit", type=Path, metavar="PATH", help="write a JUnit XML report (for CI) to PATH"
    )
    run.add_argument(
        "--json", type=Path, metavar="PATH", help="write the run as a JSON report to PATH"
    )
    run.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write a Markdown summary to PATH"
    )
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="run only the I-th of N slices of the cases (CI machines sharing one store; "
        "needs --run-id, the same on every shard)",
    )
    run.add_argument(
        "--run-id", metavar="ID", help="the run's id (default: <suite>-<time>-<random>)"
    )
    run.add_argument(
        "--retry-failed",
        metavar="RUN",
        help="rerun only the cells of stored run RUN (or `latest`) that errored or never "
        "ran (stopped, interrupted), into that same run",
    )
    run.add_argument(
        "--no-progress", action="store_true", help="print one line per case, no progress bar"
    )

    validate = commands.add_parser(
        "validate", help="check an eval.yaml and its cases without running"
    )
    validate.add_argument("eval_yaml")

    commands.add_parser("schema", help="print the JSON Schema of eval.yaml (for editor completion)")

    db = commands.add_parser("db", help="store administration")
    db_commands = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    init = db_commands.add_parser("init", help="create the database and apply migrations")
    init.add_argument("--store", help="store URL")
    init.add_argument(
        "--cluster",
        metavar="NAME",
        help="create every table ON CLUSTER NAME: replicated <table>_local tables "
        "plus Distributed tables under the usual names",
    )
    init.add_argument(
        "--print",
        dest="print_ddl",
        action="store_true",
        help="print the DDL instead of running it (the store is not opened)",
    )
    init.add_argument(
        "--retention-days",
        type=int,
        metavar="N",
        help="keep spans, logs and the trace-id lookup N days (a TTL; running again with "
        "another N changes it; default: leave the TTL as it is)",
    )
    init.add_argument(
        "--scores-retention-days",
        type=int,
        metavar="N",
        help="keep scores N days (default: leave the TTL as it is; runs never expire)",
    )

    evaluators = commands.add_parser(
        "evaluators", help="list the available evaluator types (built-in and plugins)"
    )
    # `list` is optional: bare `tracescore evaluators` kept its meaning.
    evaluators.add_subparsers(dest="evaluators_command", parser_class=_Parser).add_parser(
        "list", help="list the available evaluator types (the default)"
    )

    runs = commands.add_parser("runs", help="list recent runs in the store")
    runs.add_argument("--suite", help="only runs of this suite")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    runs.add_argument("--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)")

    inspect = commands.add_parser(
        "inspect", help="show a stored run's traces as span trees, with its scores"
    )
    inspect.add_argument("run_id", help="a run id from `tracescore runs`, or `latest`")
    inspect.add_argument(
        "--case", action="append", default=[], help="only this case id (repeatable)"
    )
    inspect.add_argument(
        "--variant", action="append", default=[], help="only this variant (repeatable)"
    )
    inspect.add_argument("--suite", help="with `latest`: the latest run of this suite")
    inspect.add_argument(
        "--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)"
    )

    compare = commands.add_parser(
        "compare",
        help="compare two stored runs (or two variants of one run) per evaluator",
        description="Two runs: cases are paired by (case id, variant); A is the baseline, "
        "B the candidate, delta = B - A, with a paired-bootstrap 95% CI. One run and two "
        "--variant: the first variant is A, the second B, paired by case id. Errored and "
        "skipped scores are left out of their evaluator's pairing. Runs over different "
        "datasets are refused unless --force.",
    )
    compare.add_argument(
        "run_a",
        help="baseline: a run id from `tracescore runs`, `latest`, `promoted` (the promoted "
        "baseline of RUN_B's suite) or a git ref (git:REF; see `tracescore ci --help`)",
    )
    compare.add_argument(
        "run_b",
        nargs="?",
        help="candidate run id, or `latest`; omit it to compare two --variant of RUN_A",
    )
    compare.add_argument(
        "--variant",
        action="append",
        default=[],
        help="with two runs: only this variant (repeatable); with one run: give exactly two, "
        "baseline first",
    )
    compare.add_argument("--suite", help="with `latest`: the latest run of this suite")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    compare.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})",
    )
    compare.add_argument(
        "--force", action="store_true", help="compare runs even if their dataset hashes differ"
    )
    compare.add_argument(
        "--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)"
    )

    ci = commands.add_parser(
        "ci",
        help="gate CI: exit 1 when a candidate run regressed against a baseline run",
        description="Compares like `tracescore compare` (pairing by case id and variant) and "
        "fails (exit 1) only when an evaluator dropped by more than --threshold with a 95% "
        "CI entirely below zero, or when more than --max-flips cases went from pass to fail. "
        "Drops within run-to-run noise are printed as notes. Exit 2 on usage errors, "
        "including runs over different datasets (unless --force). The baseline is a stored "
        "run id, `latest`, `promoted` (the run `tracescore promote` last made the "
        "baseline of the candidate's suite) or a git ref: `git:REF`, or any value that is "
        "not a stored run id and names a commit of the git repository in the current "
        "directory; it picks the newest finished run of the candidate's suite made at that "
        "commit, preferring runs from a clean working tree.",
    )
    ci.add_argument(
        "--baseline",
        required=True,
        help="baseline: a run id, `latest`, `promoted`, or a git ref (git:REF, e.g. "
        "git:origin/main)",
    )
    ci.add_argument(
        "--candidate", default="latest", help="candidate run id, or `latest` (the default)"
    )
    ci.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"largest tolerated drop of an evaluator's mean (default {DEFAULT_THRESHOLD})",
    )
    ci.add_argument(
        "--max-flips",
        type=int,
        metavar="N",
        help="also fail when more than N cases flip from pass to fail (default: no limit)",
    )
    ci.add_argument("--suite", help="with `latest`: the latest run of this suite")
    ci.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    ci.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})",
    )
    ci.add_argument(
        "--force", action="store_true", help="compare runs even if their dataset hashes differ"
    )
    ci.add_argument("--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)")

    promote = commands.add_parser(
        "promote",
        help="make a stored run its suite's baseline (for `ci --baseline promoted`)",
        description="Records RUN as the baseline of its suite; the newest promotion wins, "
        "and earlier ones stay in the tracescore_baselines table. Only finished runs are "
        "promoted unless --force.",
    )
    promote.add_argument(
        "run_id", metavar="RUN", help="a run id from `tracescore runs`, or `latest`"
    )
    promote.add_argument("--suite", help="with `latest`: the latest run of this suite")
    promote.add_argument("--note", default="", help="why (stored with the promotion)")
    promote.add_argument(
        "--force", action="store_true", help="promote a run that did not finish (stopped...)"
    )
    promote.add_argument(
        "--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)"
    )

    rescore = commands.add_parser(
        "rescore",
        help="score stored traces again with the evaluators of a scoring.yaml",
        description="Selects traces with a span matching --service/--where (and the config's) "
        "in the time range, scores them and writes scores with RunId rescore:<name>. Scores "
        "replace earlier ones of the same evaluator config; traces already scored with it "
        "are skipped unless --force.",
    )
    rescore.add_argument("--config", type=Path, required=True, help="path to scoring.yaml")
    rescore.add_argument("--since", help="spans from this long ago (24h, 7d) or this ISO time")
    rescore.add_argument("--until", help="spans before this long ago or this ISO time")
    rescore.add_argument("--service", help="only traces with a span of this service")
    rescore.add_argument(
        "--where", help='filter expression, e.g. "resource.deployment.environment = prod"'
    )
    rescore.add_argument("--sample", type=float, help="keep this share of traces (by trace id)")
    rescore.add_argument("--limit", type=int, help="at most this many traces, newest first")
    rescore.add_argument("--variant-key", help="resource attribute naming the variant")
    rescore.add_argument("--workers", type=int, help="scoring processes (default: config)")
    rescore.add_argument("--force", action="store_true", help="score already scored traces too")
    rescore.add_argument(
        "--dry-run", action="store_true", help="count the traces that would be scored"
    )
    rescore.add_argument("--no-progress", action="store_true", help="no progress bar")
    rescore.add_argument(
        "--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)"
    )

    watch = commands.add_parser(
        "watch",
        help="score new traces as they land (online), with the evaluators of a scoring.yaml",
        description="Polls the store every watch.poll_interval_s and scores each trace once "
        "no span of it has arrived for watch.quiet_period_s (RunId watch:<name>). The "
        "checkpoint is in the store: a restarted watcher neither skips nor repeats. A span "
        "arriving later (within watch.late_span_window_s) triggers one re-score. With "
        "source.database/source.table set (e.g. the OTel Collector exporter's table), the "
        "first start adds a view on that table recording arrivals; spans inserted before "
        "it are left to `tracescore rescore`.",
    )
    watch.add_argument("--config", type=Path, required=True, help="path to scoring.yaml")
    watch.add_argument("--once", action="store_true", help="one poll cycle, then exit (cron)")
    watch.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics here (default: config)"
    )
    watch.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    watch.add_argument("--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)")

    collector = commands.add_parser("collector", help="the OTLP collector")
    collector_commands = collector.add_subparsers(
        dest="collector_command", required=True, parser_class=_Parser
    )
    serve = collector_commands.add_parser(
        "serve",
        help="receive OTLP (gRPC :4317, HTTP :4318) into the store until stopped",
        description="Settings come from --config (default configs/collector.yaml when present), "
        "then $TRACESCORE_STORE, then these flags.",
    )
    serve.add_argument("--config", type=Path, help="collector YAML file")
    serve.add_argument("--store", help="store URL (default: $TRACESCORE_STORE or chdb:.tracescore)")
    serve.add_argument("--host", help="address for the OTLP listeners (default 0.0.0.0)")
    serve.add_argument("--grpc-port", type=int, help="OTLP/gRPC port (default 4317)")
    serve.add_argument("--http-port", type=int, help="OTLP/HTTP port (default 4318)")
    serve.add_argument(
        "--query-port", type=int, help="ClickHouse-compatible query port (default 8124)"
    )
    serve.add_argument("--spool-dir", type=Path, help="where accepted requests wait to be loaded")
    serve.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


def _run(args: argparse.Namespace, console: Console) -> int:
    suite = load_suite(args.eval_yaml)
    reports = {"--junit": args.junit, "--json": args.json, "--markdown": args.markdown}
    check_report_paths(reports)
    shard = Shard.parse(args.shard) if args.shard else None
    if args.retry_failed and (shard or args.run_id):
        raise ConfigError("--retry-failed reruns into that run: it takes no --shard or --run-id")
    url = store_url(args.store)
    store = open_store(url)
    try:
        retry_of = (
            resolve_run(store, args.retry_failed, suite.config.suite) if args.retry_failed else None
        )
        progress = RunProgress(console, enabled=not args.no_progress)
        runner = SuiteRunner(suite, store, on_case=progress.case_done, on_start=progress.start)
        options = RunOptions(
            variants=args.variant,
            case_ids=args.case,
            shard=shard,
            run_id=args.run_id,
            retry_of=retry_of,
        )
        variants, cases = runner.select(options)
        scope = f", shard {shard.index}/{shard.count}" if shard else ""
        repeats = suite.config.repeats
        console.print(
            f"Running suite [bold]{suite.config.suite}[/]: {len(cases)} cases × "
            f"{len(variants)} variants"
            + (f" × {repeats} repeats" if repeats > 1 else "")
            + f"{scope} (store {store.location})"
        )
        with progress:
            record = runner.run(options)
        if runner.storage_problem:
            console.print(f"error: {runner.storage_problem}", style="yellow", markup=False)
        if record.status.startswith("stopped"):
            console.print(f"[yellow]Run {record.status}[/]; finished cases were kept.")
        print_summary(console, record, [e.name for e in suite.evaluators], store.location)
    finally:
        store.close()
    written = write_reports(
        record,
        [e.name for e in suite.evaluators],
        junit=args.junit,
        json=args.json,
        markdown=args.markdown,
    )
    for path in written:
        console.print(f"Report written to {path}", markup=False, highlight=False)
    counts = record.counts()
    return EXIT_OK if counts["failed"] == 0 and counts["error"] == 0 else EXIT_FAILED


def _validate(args: argparse.Namespace, console: Console) -> int:
    suite = load_suite(args.eval_yaml)
    console.print(
        f"{suite.path}: suite {suite.config.suite!r} is valid — {len(suite.cases)} cases, "
        f"{len(suite.config.variants)} variants, {len(suite.evaluators)} evaluators",
        markup=False,
        highlight=False,
    )
    return EXIT_OK


def _schema(_: argparse.Namespace, __: Console) -> int:
    # Not through rich: the output is redirected to a file and must be exact JSON.
    sys.stdout.write(eval_json_schema_text())
    return EXIT_OK


def _db_init(args: argparse.Namespace, console: Console) -> int:
    def retention(database: str) -> tuple[str, ...]:
        return retention_statements(
            database,
            span_days=args.retention_days,
            score_days=args.scores_retention_days,
            cluster=args.cluster,
        )

    if args.print_ddl:
        database = _store_database(store_url(args.store))
        script = _ddl_script(database, args.cluster)
        if ttls := retention(database):
            script += "\n-- retention\n" + "\n".join(f"{statement};\n" for statement in ttls)
        sys.stdout.write(script)
        return EXIT_OK
    # Rendered (and so checked) before the store is opened.
    ttls = retention(_store_database(store_url(args.store)))
    store = open_store(args.store)
    try:
        applied = store.migrate(args.cluster)
        for statement in ttls:
            store.command(statement)
        versions = store.applied_migrations()
    finally:
        store.close()
    done = ", ".join(str(v) for v in applied) if applied else "none (already up to date)"
    where = f"{store.location} on cluster {args.cluster}" if args.cluster else store.location
    kept = [
        f"{what} {days} days"
        for what, days in (
            ("spans and logs", args.retention_days),
            ("scores", args.scores_retention_days),
        )
        if days is not None
    ]
    # One line whatever the width: scripts and logs read it.
    console.print(
        f"{where}: applied migrations {done}; schema at version {max(versions)}"
        + (f"; retention: {', '.join(kept)}" if kept else ""),
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    return EXIT_OK


def _ddl_script(database: str, cluster: str | None) -> str:
    """Every statement ``db init`` would run, as a script clickhouse-client can run."""
    blocks = [
        "-- setup: database and applied-migrations table\n"
        + "\n".join(f"{statement};\n" for statement in setup_statements(database, cluster))
    ]
    for migration in migrations(database, cluster):
        blocks.append(
            f"-- migration {migration.version:04d}_{migration.name}\n"
            + "\n".join(f"{statement};\n" for statement in migration.statements)
        )
    return "\n".join(blocks)


def _store_database(url: str) -> str:
    """The database a store URL names, read without opening the store."""
    location, _, query = url.partition("?")
    named = parse_qs(query).get("database")
    if named:
        return named[-1]
    if location.startswith(("clickhouse://", "clickhouses://", "http://", "https://")):
        path = urlsplit(location).path.strip("/")
        if path:
            return path
    return DEFAULT_DATABASE


def _log_to_stderr(level: str) -> None:
    """Logging of the long-running commands (collector, watch)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _collector(args: argparse.Namespace, _: Console) -> int:
    _log_to_stderr(args.log_level)
    path = args.config
    if path is None and DEFAULT_COLLECTOR_CONFIG.is_file():
        path = DEFAULT_COLLECTOR_CONFIG
    overrides: dict[str, Any] = {
        "store": args.store or os.environ.get(STORE_ENV),
        "http.host": args.host,
        "grpc.host": args.host,
        "http.port": args.http_port,
        "grpc.port": args.grpc_port,
        "query.port": args.query_port,
        "spool.dir": str(args.spool_dir) if args.spool_dir else None,
    }
    config = load_collector_config(path, overrides)
    # Imported here: grpc is only needed by the long-running collector.
    from tracescore.collector.service import Collector

    collector = Collector(config)
    # Before start(): a SIGTERM while the listeners open still shuts down cleanly.
    collector.handle_signals()
    collector.start()
    collector.serve_forever()
    return EXIT_OK


def _runs(args: argparse.Namespace, console: Console) -> int:
    store = open_store(store_url(args.store))
    try:
        summaries = list_runs(store, args.suite, args.limit)
    finally:
        store.close()
    if not summaries:
        scope = f" of suite {args.suite!r}" if args.suite else ""
        console.print(f"no runs{scope} in {store.location}", markup=False, highlight=False)
        return EXIT_OK
    console.print(runs_table(summaries))
    return EXIT_OK


def _inspect(args: argparse.Namespace, console: Console) -> int:
    store = open_store(store_url(args.store))
    try:
        run = resolve_run(store, args.run_id, args.suite)
        cases = select_cases(run, args.case, args.variant)
        print_inspection(console, store, run, cases)
    finally:
        store.close()
    return EXIT_OK


def _compare(args: argparse.Namespace, console: Console) -> int:
    store = open_store(store_url(args.store))
    try:
        if args.run_b is None:
            if len(args.variant) != 2:
                raise ConfigError(
                    "compare: give a second run, or exactly two --variant to compare "
                    "within one run (baseline first)"
                )
            run_a = resolve_baseline(store, args.run_a, args.suite, flag="RUN_A").run
            comparison = compare_variants(
                run_a, args.variant[0], args.variant[1], seed=args.seed, resamples=args.resamples
            )
        else:
            # B first: `promoted` and git refs in RUN_A pick among B's suite's runs.
            run_b = resolve_run(store, args.run_b, args.suite)
            baseline = resolve_baseline(store, args.run_a, args.suite or run_b.suite, flag="RUN_A")
            _print_baseline(console, baseline)
            comparison = compare_runs(
                baseline.run,
                run_b,
                variants=args.variant,
                seed=args.seed,
                resamples=args.resamples,
                force=args.force,
            )
    finally:
        store.close()
    print_comparison(console, comparison)
    return EXIT_OK


def _print_baseline(console: Console, baseline: Baseline) -> None:
    console.print(f"Baseline: {baseline.source}", markup=False, highlight=False)
    for note in baseline.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def _ci(args: argparse.Namespace, console: Console) -> int:
    store = open_store(store_url(args.store))
    try:
        candidate = resolve_run(store, args.candidate, args.suite)
        baseline = resolve_baseline(store, args.baseline, args.suite or candidate.suite)
    finally:
        store.close()
    _print_baseline(console, baseline)
    comparison = compare_runs(
        baseline.run, candidate, seed=args.seed, resamples=args.resamples, force=args.force
    )
    result = gate_comparison(comparison, args.threshold, args.max_flips)
    print_comparison(console, comparison)
    print_gate(console, result)
    return EXIT_FAILED if result.regressed else EXIT_OK


def _promote(args: argparse.Namespace, console: Console) -> int:
    store = open_store(store_url(args.store))
    try:
        run = resolve_run(store, args.run_id, args.suite)
        promotion, previous = promote(store, run, note=args.note, force=args.force)
    finally:
        store.close()
    commit = f" at commit {run.git_sha[:12]}" if run.git_sha else ""
    dirty = " (uncommitted changes)" if run.git_dirty else ""
    console.print(
        f"Promoted run {run.run_id}{commit}{dirty} as the baseline of suite {run.suite} "
        f"({promotion.when})",
        markup=False,
        highlight=False,
    )
    if previous is None:
        console.print("Previous baseline: none", markup=False, highlight=False)
    else:
        console.print(
            f"Previous baseline: run {previous.run_id} (promoted {previous.when}"
            + (f" by {previous.promoted_by}" if previous.promoted_by else "")
            + ")",
            markup=False,
            highlight=False,
        )
    return EXIT_OK


def _rescore(args: argparse.Namespace, console: Console) -> int:
    # Imported here: only this command needs the rescore machinery.
    from tracescore.scoring.rescore import (
        RescoreOptions,
        RescoreProgress,
        parse_time,
        print_rescore_summary,
        rescore,
    )
    from tracescore.scoring.scoring_config import load_scoring_config

    loaded = load_scoring_config(args.config)
    options = RescoreOptions(
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        service=args.service,
        where=args.where,
        sample=args.sample,
        limit=args.limit,
        variant_key=args.variant_key,
        workers=args.workers,
        force=args.force,
        dry_run=args.dry_run,
    )
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    store = open_store(store_url(args.store))
    try:
        store.migrate()
        progress = RescoreProgress(console, enabled=not (args.no_progress or args.dry_run))
        with progress:
            summary = rescore(
                store, loaded, options, on_start=progress.start, on_trace=progress.trace_done
            )
    finally:
        store.close()
    print_rescore_summary(console, summary)
    return EXIT_OK


def _watch(args: argparse.Namespace, console: Console) -> int:
    # Imported here: only this command needs the watcher and its metrics server.
    import gc
    import signal

    from tracescore.scoring.scoring_config import load_scoring_config
    from tracescore.scoring.watch import Watcher
    from tracescore.scoring.watch_metrics import MetricsServer, WatchMetrics

    _log_to_stderr(args.log_level)
    loaded = load_scoring_config(args.config)
    port = args.metrics_port if args.metrics_port is not None else loaded.config.watch.metrics_port
    store = open_store(store_url(args.store))
    server: MetricsServer | None = None
    watcher: Watcher | None = None
    try:
        store.migrate()
        metrics = WatchMetrics()
        watcher = Watcher(store, loaded, metrics=metrics)
        if args.once:
            result = watcher.poll()
            console.print(
                f"watch:{loaded.config.name}: {result.due} due, {result.scored} scored, "
                f"{result.rescored} re-scored, {result.skipped} skipped, "
                f"{result.late_ignored} late ignored ({store.location})",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
            return EXIT_OK
        if port is not None:
            server = MetricsServer(metrics, port)

        def stop(signum: int, _: object) -> None:
            # The batch being scored is finished and stored; the next start resumes.
            if watcher is None:
                return
            if watcher.stopping:
                # A second signal: do not wait for a batch that may hang (a stuck query,
                # a slow judge). What is stored stays; the rest is re-scored on restart.
                signal.signal(signum, signal.SIG_DFL)
                raise KeyboardInterrupt
            watcher.stop()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Everything loaded so far (modules, config, evaluators) lives as long as the
        # process: kept out of the cyclic collector, whose full passes over it cost ~4 %
        # of a busy watcher's time.
        gc.freeze()
        console.print(
            f"watching {store.location} as watch:{loaded.config.name} "
            f"(quiet {loaded.config.watch.quiet_period_s:g}s, poll every "
            f"{loaded.config.watch.poll_interval_s:g}s"
            + (f", metrics on :{server.port}" if server else "")
            + "); Ctrl-C stops",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        watcher.run()
    finally:
        if server is not None:
            server.close()
        if watcher is not None:
            watcher.close()
        store.close()
    return EXIT_OK


def _evaluators(_: argparse.Namespace, console: Console) -> int:
    types = sorted(registered().items())
    sources = {name: evaluator_source(name) for name, _ in types}
    width = max((len(source) for source in sources.values()), default=0)
    for name, cls in types:
        needs = f" (needs {', '.join(cls.requires)})" if cls.requires else ""
        console.print(
            f"{name:<20} {sources[name]:<{width}}  {cls.summary}{needs}",
            markup=False,
            highlight=False,
        )
    # Warnings, not errors: a broken plugin must not hide the evaluators that work.
    for failure in plugin_failures():
        print(
            f"warning: evaluator plugin {failure.name!r} ({failure.value}) from "
            f"{failure.distribution} failed to load: {failure.error}",
            file=sys.stderr,
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    if not console.is_terminal:
        # Logs and CI: wide enough that case ids and evaluator names are not cut.
        console = Console(width=120)
    command = ""
    try:
        args = _parser().parse_args(argv)
        command = args.command
        handlers = {
            "run": _run,
            "validate": _validate,
            "schema": _schema,
            "db": _db_init,
            "evaluators": _evaluators,
            "collector": _collector,
            "runs": _runs,
            "inspect": _inspect,
            "compare": _compare,
            "ci": _ci,
            "promote": _promote,
            "rescore": _rescore,
            "watch": _watch,
        }
        return handlers[args.command](args, console)
    except TracescoreError as exc:
        # One plain line, never wrapped: CI logs and scripts read it.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        stored = {
            "run": "finished cases were stored",
            "rescore": "finished batches were stored; run it again to resume",
            "watch": "scored batches were stored; the next start resumes",
        }
        what = stored.get(command, "")
        print(f"interrupted{'; ' + what if what else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
