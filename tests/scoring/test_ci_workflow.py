"""The reference GitHub Actions workflow (deploy/ci/github-actions.yml) is valid YAML of
the expected shape, and every `tracescore ...` command in it parses with the real CLI."""

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tracescore.schemas.errors import ConfigError
from tracescore.scoring.cli import _parser
from tracescore.scoring.runner import Shard

WORKFLOW = Path(__file__).resolve().parents[2] / "deploy" / "ci" / "github-actions.yml"
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
_SHELL_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_OPERATORS = set("();<>|&")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads a bare `on` key as the boolean True.
    on = workflow.get("on", workflow.get(True))
    assert isinstance(on, dict)
    return on


def _steps(workflow: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]]


def _commands(script: str) -> list[list[str]]:
    """Each `tracescore` invocation in a shell script, as the argument list after the
    program name, with ${{ }} expressions and shell variables replaced by placeholders."""
    script = script.replace("\\\n", " ")
    script = _SHELL_VARIABLE.sub("1", _EXPRESSION.sub("1", script))
    found: list[list[str]] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if token == "tracescore" and (i == 0 or set(tokens[i - 1]) <= _OPERATORS):
                args: list[str] = []
                for arg in tokens[i + 1 :]:
                    if set(arg) <= _OPERATORS:
                        break
                    args.append(arg)
                found.append(args)
    return found


def _all_commands(workflow: dict[Any, Any]) -> list[tuple[str, list[str]]]:
    return [
        (job, args)
        for job, step in _steps(workflow)
        if "run" in step
        for args in _commands(step["run"])
    ]


def test_the_workflow_has_the_expected_triggers_and_jobs(workflow: dict[Any, Any]) -> None:
    on = _triggers(workflow)
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert set(jobs) == {"schema", "shards", "gate", "promote"}
    for name, job in jobs.items():
        needs = job.get("needs", [])
        for needed in [needs] if isinstance(needs, str) else needs:
            assert needed in jobs, f"{name} needs unknown job {needed}"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
    assert jobs["gate"]["needs"] == "shards" and "pull_request" in jobs["gate"]["if"]
    assert jobs["promote"]["needs"] == "shards" and "refs/heads/main" in jobs["promote"]["if"]
    # Both read the secret store; every job reads it from the workflow's env.
    assert "secrets.TRACESCORE_STORE" in workflow["env"]["TRACESCORE_STORE"]


def test_checkouts_fetch_full_history(workflow: dict[Any, Any]) -> None:
    checkouts = [s for _, s in _steps(workflow) if s.get("uses", "").startswith("actions/checkout")]
    assert checkouts
    assert all(s["with"]["fetch-depth"] == 0 for s in checkouts)


def test_every_tracescore_command_parses(workflow: dict[Any, Any]) -> None:
    commands = _all_commands(workflow)
    parser = _parser()
    used: set[str] = set()
    for job, args in commands:
        try:
            parsed = parser.parse_args(args)
        except ConfigError as exc:  # the CLI's parser raises instead of exiting
            pytest.fail(f"job {job}: `tracescore {shlex.join(args)}` does not parse: {exc}")
        used.add(parsed.command)
        if parsed.command == "run":
            assert parsed.shard and parsed.run_id, "sharded runs must share a --run-id"
            Shard.parse(parsed.shard)
        if parsed.command == "ci":
            assert parsed.baseline == "promoted" and parsed.candidate == "1"
    assert {"db", "validate", "run", "ci", "promote"} <= used


def test_the_matrix_matches_the_shard_count(workflow: dict[Any, Any]) -> None:
    shards = workflow["jobs"]["shards"]["strategy"]["matrix"]["shard"]
    count = int(workflow["env"]["SHARDS"])
    assert shards == list(range(1, count + 1))
    (run,) = [args for job, args in _all_commands(workflow) if args[:1] == ["run"]]
    assert run[run.index("--shard") + 1] == "1/1"  # ${{ matrix.shard }}/$SHARDS
    assert "--shard ${{ matrix.shard }}/$SHARDS" in WORKFLOW.read_text(encoding="utf-8")


def test_the_command_extraction_catches_bad_flags() -> None:
    # The check above is only worth something if a wrong flag fails it.
    (args,) = _commands("status=0\ntracescore ci --baseline promoted --no-such-flag |& tee x")
    assert args == ["ci", "--baseline", "promoted", "--no-such-flag"]
    with pytest.raises(ConfigError, match="unrecognized arguments: --no-such-flag"):
        _parser().parse_args(args)
    assert isinstance(_parser().parse_args(["promote", "r1"]), argparse.Namespace)
