"""Evaluators that hand the trace to outside code: a Python function or a command."""

import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators.base import Evaluator, EvaluatorParams, TraceField, register
from tracescore.scoring.evaluators.plugins import _awaited, _run_coroutine, to_score
from tracescore.scoring.evaluators.workspace import current_workspace
from tracescore.scoring.workspaces import WORKSPACE_ENV


def _shorten(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- python -----------------------------------------------------------------------------------


def resolve_function(path: str) -> Callable[..., Any]:
    """The callable named by ``package.module:attr`` (``attr`` may be dotted)."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"{path!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ValueError(f"{module_name!r} has no attribute {attr_path!r}") from exc
    if not callable(target):
        raise ValueError(f"{path!r} is a {type(target).__name__}, not a callable")
    function: Callable[..., Any] = target
    return function


class PythonParams(EvaluatorParams):
    function: str
    """``package.module:function`` taking ``(trace, case, **args)``, like a ``@scorer``."""
    threshold: float = 0.5
    """A float result passes when it is ≥ threshold."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the function."""
    requires: list[TraceField] = Field(default_factory=list)
    """Trace fields without which the function is not called (the Score names the missing one)."""

    @field_validator("function")
    @classmethod
    def _importable(cls, value: str) -> str:
        # A typo should stop the run at load time, not turn every case into an error.
        resolve_function(value)
        return value


@register
class PythonFunction(Evaluator):
    type_name = "python"
    summary = "a Python function (trace, case, **args) scores the trace, as a @scorer would"
    Params = PythonParams

    def required_fields(self) -> tuple[TraceField, ...]:
        assert isinstance(self.params, PythonParams)
        return tuple(self.params.requires)

    def __init__(self, name: str, params: EvaluatorParams) -> None:
        super().__init__(name, params)
        assert isinstance(params, PythonParams)
        self.function = resolve_function(params.function)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, PythonParams)
        if (missing := self.require(trace)) is not None:
            return missing
        try:
            result = self.function(trace, case, **p.args)
            if inspect.isawaitable(result):
                result = _run_coroutine(_awaited(result))
            return to_score(self.name, result, p.threshold)
        except Exception as exc:
            return Score.failure(self.name, f"{p.function} raised {type(exc).__name__}: {exc}")


# --- command ----------------------------------------------------------------------------------


TRACE_FILE_ENV = "TRACESCORE_TRACE_FILE"


class CommandParams(EvaluatorParams):
    command: list[str] = Field(min_length=1)
    """argv (no shell); items may use ``{output_file}`` (the trace JSON), ``{case_id}``,
    ``{python}`` (tracescore's interpreter) and ``{workspace}`` (the case's workspace
    folder, when the suite has one)."""
    timeout_s: float = Field(default=60.0, gt=0)
    requires: list[TraceField] = Field(default_factory=list)
    """Trace fields without which the command is not run (the Score names the missing one)."""
    cwd: str | None = None
    """Default: the case's workspace, if any; a relative path is inside the workspace."""
    env: dict[str, str] = Field(default_factory=dict)


def trace_payload(trace: Trace, case: Case) -> dict[str, Any]:
    """What the command reads from ``{output_file}`` / ``$TRACESCORE_TRACE_FILE``."""
    return {
        "trace_id": trace.trace_id,
        "case_id": case.id,
        "input": trace.input if trace.input is not None else case.input,
        "final_output": trace.final_output,
        "expected": case.expected,
        "tool_calls": [
            {"name": call.name, "arguments": call.arguments, "result": call.result}
            for call in trace.tool_calls
        ],
        "tokens": {
            "input": trace.input_tokens,
            "output": trace.output_tokens,
            "total": trace.total_tokens,
        },
        "duration_ns": trace.duration_ns,
    }


def _last_line(*texts: str) -> str:
    for text in texts:
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            return _shorten(lines[-1])
    return ""


def _working_folder(cwd: str | None, workspace: Path | None) -> Path | None:
    # The case's workspace is where the SUT worked, so a test command belongs there.
    if workspace is None:
        return Path(cwd) if cwd is not None else None
    return workspace / cwd if cwd is not None else workspace


@register
class Command(Evaluator):
    type_name = "command"
    summary = "a command run on the trace (as a JSON file) exits with code 0"
    Params = CommandParams

    def required_fields(self) -> tuple[TraceField, ...]:
        assert isinstance(self.params, CommandParams)
        return tuple(self.params.requires)

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, CommandParams)
        if (missing := self.require(trace)) is not None:
            return missing
        workspace = current_workspace.get()
        cwd = _working_folder(p.cwd, workspace)
        if cwd is not None and not cwd.is_dir():
            return Score.failure(self.name, f"params.cwd {str(cwd)!r} is not a directory")
        with tempfile.TemporaryDirectory(prefix="tracescore-") as folder:
            path = Path(folder) / "trace.json"
            path.write_text(json.dumps(trace_payload(trace, case), default=str), "utf-8")
            # str.replace, not str.format: argv items (e.g. `python -c`) may hold braces.
            argv = [
                arg.replace("{output_file}", str(path))
                .replace("{case_id}", case.id)
                .replace("{workspace}", str(workspace or ""))
                .replace("{python}", sys.executable)
                for arg in p.command
            ]
            env = {**os.environ, **p.env, TRACE_FILE_ENV: str(path)}
            if workspace is not None:
                env[WORKSPACE_ENV] = str(workspace)
            try:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    errors="replace",
                    timeout=p.timeout_s,
                    cwd=cwd,
                    env=env,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return Score.failure(
                    self.name, f"command {argv[0]!r} timed out after {p.timeout_s:g} s"
                )
            except FileNotFoundError:
                return Score.failure(self.name, f"command not found: {argv[0]!r}")
            except OSError as exc:
                return Score.failure(
                    self.name, f"command {argv[0]!r} could not start: {exc.strerror or exc}"
                )
        last = _last_line(done.stdout, done.stderr)
        if done.returncode == 0:
            return self.verdict(True, last or "exit code 0")
        status = f"exit code {done.returncode}"
        return self.verdict(False, f"{status}: {last}" if last else status)
