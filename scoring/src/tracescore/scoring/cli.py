"""The ``tracescore`` command line."""

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from rich.console import Console

from tracescore.collector.store import open_store, store_url
from tracescore.schemas.errors import ConfigError, TracescoreError
from tracescore.scoring.config import load_suite
from tracescore.scoring.evaluators import registered
from tracescore.scoring.report import case_line, print_summary
from tracescore.scoring.runner import RunOptions, SuiteRunner, tracescore_version

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

    validate = commands.add_parser(
        "validate", help="check an eval.yaml and its cases without running"
    )
    validate.add_argument("eval_yaml")

    db = commands.add_parser("db", help="store administration")
    db_commands = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    init = db_commands.add_parser("init", help="create the database and apply migrations")
    init.add_argument("--store", help="store URL")

    commands.add_parser("evaluators", help="list the available evaluator types")
    return parser


def _run(args: argparse.Namespace, console: Console) -> int:
    suite = load_suite(args.eval_yaml)
    url = store_url(args.store)
    store = open_store(url)
    try:
        runner = SuiteRunner(suite, store, on_case=lambda case: console.print(case_line(case)))
        options = RunOptions(variants=args.variant, case_ids=args.case)
        variants, cases = runner.select(options)
        console.print(
            f"Running suite [bold]{suite.config.suite}[/]: {len(cases)} cases × "
            f"{len(variants)} variants (store {store.location})"
        )
        record = runner.run(options)
        print_summary(console, record, [e.name for e in suite.evaluators], store.location)
    finally:
        store.close()
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


def _db_init(args: argparse.Namespace, console: Console) -> int:
    store = open_store(args.store)
    try:
        applied = store.migrate()
        versions = store.applied_migrations()
    finally:
        store.close()
    done = ", ".join(str(v) for v in applied) if applied else "none (already up to date)"
    console.print(f"{store.location}: applied migrations {done}; schema at version {max(versions)}")
    return EXIT_OK


def _evaluators(_: argparse.Namespace, console: Console) -> int:
    for name, cls in sorted(registered().items()):
        console.print(f"{name:<16} {cls.summary}", markup=False, highlight=False)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    if not console.is_terminal:
        # Logs and CI: wide enough that case ids and evaluator names are not cut.
        console = Console(width=120)
    try:
        args = _parser().parse_args(argv)
        handlers = {"run": _run, "validate": _validate, "db": _db_init, "evaluators": _evaluators}
        return handlers[args.command](args, console)
    except TracescoreError as exc:
        # One plain line, never wrapped: CI logs and scripts read it.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; finished cases were stored", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
