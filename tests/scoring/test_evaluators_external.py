"""The ``python`` and ``command`` evaluators."""

import importlib
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec
from tracescore.schemas.trace import ToolCall, Trace
from tracescore.scoring.evaluators import build_evaluator

CASE = Case(id="c1", input="capital of France?", expected={"output": "Paris"})

MODULE = """
import asyncio


def mentions(trace, case, word="Paris"):
    return word in (trace.final_output or ""), f"looked for {word}"


async def ratio(trace, case):
    await asyncio.sleep(0)
    return len(trace.final_output or "") / 10


def crashes(trace, case):
    raise RuntimeError("boom")


NOT_CALLABLE = 42
"""


@pytest.fixture(autouse=True)
def scorers_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / "ts_ext_scorers.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(tmp_path)
    importlib.invalidate_caches()
    yield
    sys.modules.pop("ts_ext_scorers", None)


def make_trace(output: str | None = "It is Paris.") -> Trace:
    return Trace(
        trace_id="t" * 32,
        spans=[],
        roots=[],
        input="capital of France?",
        final_output=output,
        tool_calls=[
            ToolCall(span_id="s1", name="search", arguments={"q": "France"}, result="Paris")
        ],
        input_tokens=10,
        output_tokens=5,
        duration_ns=1_000,
    )


def score(type_: str, output: str | None = "It is Paris.", **params: object) -> Score:
    evaluator = build_evaluator(EvaluatorSpec(type=type_, params=params))
    return evaluator.safe_score(make_trace(output), CASE)


# --- python -----------------------------------------------------------------------------------


def test_python_function_passes_and_fails_with_args() -> None:
    passed = score("python", function="ts_ext_scorers:mentions")
    assert (passed.passed, passed.explanation) == (True, "looked for Paris")
    failed = score("python", function="ts_ext_scorers:mentions", args={"word": "Lyon"})
    assert (failed.passed, failed.label, failed.explanation) == (False, "fail", "looked for Lyon")


def test_python_async_float_uses_the_threshold() -> None:
    result = score("python", "12345678", function="ts_ext_scorers:ratio")
    assert result.value == pytest.approx(0.8)
    assert result.passed is True
    strict = score("python", "12345678", function="ts_ext_scorers:ratio", threshold=0.9)
    assert strict.passed is False


def test_python_exception_becomes_an_error_score() -> None:
    result = score("python", function="ts_ext_scorers:crashes")
    assert result.passed is None
    assert result.error == "ts_ext_scorers:crashes raised RuntimeError: boom"


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("ts_ext_nowhere:f", "cannot import 'ts_ext_nowhere'"),
        ("ts_ext_scorers:absent", "has no attribute 'absent'"),
        ("ts_ext_scorers:NOT_CALLABLE", "not a callable"),
        ("ts_ext_scorers.mentions", "must look like"),
    ],
)
def test_python_bad_function_is_a_config_error(function: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"params\.function") as info:
        build_evaluator(EvaluatorSpec(type="python", params={"function": function}))
    assert message in str(info.value)


# --- command ----------------------------------------------------------------------------------


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_command_exit_code_decides_and_last_line_explains() -> None:
    passed = score("command", command=py("print('checking'); print('all good'); print()"))
    assert (passed.passed, passed.explanation) == (True, "all good")
    failed = score(
        "command", command=py("import sys; sys.stderr.write('bad output\\n'); sys.exit(3)")
    )
    assert (failed.passed, failed.label) == (False, "fail")
    assert failed.explanation == "exit code 3: bad output"


def test_command_sees_the_trace_file(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    code = f"""
        import json, os, sys, pathlib
        data = json.loads(pathlib.Path(sys.argv[1]).read_text())
        data["env_file_same"] = os.environ["TRACESCORE_TRACE_FILE"] == sys.argv[1]
        data["argv_case"] = sys.argv[2]
        data["extra_env"] = os.environ["MY_VAR"]
        pathlib.Path({str(seen)!r}).write_text(json.dumps(data))
    """
    result = score(
        "command",
        None,
        command=[*py(code), "{output_file}", "{case_id}"],
        env={"MY_VAR": "yes"},
    )
    assert result.passed is True, result
    data = json.loads(seen.read_text())
    assert data == {
        "trace_id": "t" * 32,
        "case_id": "c1",
        "input": "capital of France?",
        "final_output": None,
        "expected": {"output": "Paris"},
        "tool_calls": [{"name": "search", "arguments": {"q": "France"}, "result": "Paris"}],
        "tokens": {"input": 10, "output": 5, "total": 15},
        "duration_ns": 1_000,
        "env_file_same": True,
        "argv_case": "c1",
        "extra_env": "yes",
    }


def test_command_cwd(tmp_path: Path) -> None:
    result = score("command", command=py("import os; print(os.getcwd())"), cwd=str(tmp_path))
    assert result.passed is True
    assert Path(result.explanation).resolve() == tmp_path.resolve()


def test_command_timeout_is_an_error() -> None:
    result = score("command", command=py("import time; time.sleep(5)"), timeout_s=0.2)
    assert result.passed is None
    assert result.error is not None and "timed out after 0.2 s" in result.error


def test_command_not_found_is_an_error() -> None:
    result = score("command", command=["ts-no-such-command-xyz", "{output_file}"])
    assert result.passed is None
    assert result.error == "command not found: 'ts-no-such-command-xyz'"


def test_command_needs_an_argv() -> None:
    with pytest.raises(ConfigError, match=r"params\.command"):
        build_evaluator(EvaluatorSpec(type="command", params={"command": []}))


# --- declared fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("python", {"function": "ts_ext_scorers:mentions"}),
        ("command", {"command": [sys.executable, "-c", "raise SystemExit(0)"]}),
    ],
)
def test_declared_fields_missing_from_the_trace_are_an_error_before_running(
    type_: str, params: dict[str, Any]
) -> None:
    ran = score(type_, output=None, **params)
    assert ran.error is None  # without a declaration the function/command runs
    missing = score(type_, output=None, requires=["final_output"], **params)
    assert missing.passed is None
    assert missing.error is not None
    assert missing.error.startswith("trace has no final output")
    present = score(type_, requires=["final_output"], **params)
    assert present.passed is True


def test_unknown_declared_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"params\.requires\[0\]"):
        build_evaluator(
            EvaluatorSpec(
                type="python", params={"function": "ts_ext_scorers:mentions", "requires": ["x"]}
            )
        )
