"""The ``command`` adapter: workspaces, the SUT environment, timeouts."""

import json
from pathlib import Path

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, CommandSystem, Variant
from tracescore.scoring.systems.base import CallContext
from tracescore.scoring.systems.command import CommandAdapter, encode_resource_attributes

CASE = Case(id="c1", input="hello")
REPORT = (
    "import json, os, sys; print(json.dumps({'cwd': os.getcwd(), 'argv': sys.argv[1:], "
    "'env': {k: os.environ.get(k) for k in ('TRACESCORE_WORKSPACE', 'LAYER', "
    "'OTEL_RESOURCE_ATTRIBUTES', 'TRACEPARENT', 'OTEL_EXPORTER_OTLP_ENDPOINT')}}))"
)


def _call(workspace: Path | None = None) -> CallContext:
    return CallContext(
        otlp_endpoint="http://127.0.0.1:4999",
        trace_env={"TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        resource_attributes={"tracescore.variant": "a b"},
        workspace=workspace,
    )


def _adapter(tmp_path: Path, command: list[str], **fields: object) -> CommandAdapter:
    # A file, not `-c`: the command adapter reads braces in its items as placeholders.
    (tmp_path / "report.py").write_text(REPORT)
    system = CommandSystem.model_validate({"type": "command", "command": command, **fields})
    return CommandAdapter(system, tmp_path)


def test_workspace_is_cwd_placeholder_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=x")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    adapter = _adapter(
        tmp_path,
        ["{python}", str(tmp_path / "report.py"), "{workspace}/file.txt", "{case_id}"],
        env={"LAYER": "system", "TRACESCORE_WORKSPACE": "overridden"},
    )
    result = adapter.invoke(CASE, Variant(name="a", env={"LAYER": "variant"}), _call(workspace))
    assert result.error is None
    seen = json.loads(result.output)
    assert seen["cwd"] == str(workspace)
    assert seen["argv"] == [f"{workspace}/file.txt", "c1"]
    assert seen["env"] == {
        "TRACESCORE_WORKSPACE": str(workspace),
        "LAYER": "variant",
        "OTEL_RESOURCE_ATTRIBUTES": "team=x,tracescore.variant=a%20b",
        "TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4999",
    }


def test_without_workspace_runs_in_cwd_and_placeholder_is_an_error(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, ["{python}", "report.py"])
    seen = json.loads(adapter.invoke(CASE, Variant(name="a"), _call()).output)
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"]["TRACESCORE_WORKSPACE"] is None
    needs = _adapter(tmp_path, ["{python}", "report.py", "{workspace}"])
    with pytest.raises(ConfigError, match=r"\{workspace\} needs a `workspace:` section"):
        needs.invoke(CASE, Variant(name="a"), _call())


def test_timeout_is_transient(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, ["{python}", "-c", "import time; time.sleep(30)"], timeout_s=0.3)
    result = adapter.invoke(CASE, Variant(name="a"), _call())
    assert result.error == "SUT timed out after 0.3s"
    assert result.transient


def test_crash_is_not_transient(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path, ["{python}", "-c", "import sys; sys.exit('fell over')"])
    result = adapter.invoke(CASE, Variant(name="a"), _call())
    assert result.error == "SUT exited with code 1: fell over"
    assert not result.transient and result.exit_code == 1


def test_encode_resource_attributes_percent_encodes_values() -> None:
    assert encode_resource_attributes({"k": "a,b=c", "v": "x"}) == "k=a%2Cb%3Dc,v=x"
