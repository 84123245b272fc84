"""The committed fixture traces still match what the real instrumentors emit today.

The capture script runs for real (stand-in LLM, real SDKs and instrumentors, OTLP into
tracescore's collector); ids, timestamps and ports differ run to run, so the comparison
is on structure: span names, scopes, the parent/child shape, attribute keys, log events.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
CAPTURE = FIXTURES / "capture.py"
NAMES = (
    "otel_genai_openai_latest",
    "otel_genai_openai_events",
    "openinference_openai",
    "openinference_anthropic",
    "openllmetry_anthropic",
    "anthropic_native_plus_openinference",
)
# The instrumentation scopes each fixture must show. openai-v2 writes its spans through
# util-genai's TelemetryHandler, which names the scope after itself; the OTel GenAI agent
# uses that handler for its agent and tool spans too. The others' agent code traces with
# its own "weather_agent" tracer.
AGENT_SCOPE = "weather_agent"
EXPECTED_SCOPES = {
    "otel_genai_openai_latest": {"opentelemetry.util.genai.handler"},
    "otel_genai_openai_events": {"opentelemetry.util.genai.handler"},
    "openinference_openai": {AGENT_SCOPE, "openinference.instrumentation.openai"},
    "openinference_anthropic": {AGENT_SCOPE, "openinference.instrumentation.anthropic"},
    "openllmetry_anthropic": {AGENT_SCOPE, "opentelemetry.instrumentation.anthropic"},
    "anthropic_native_plus_openinference": {
        AGENT_SCOPE,
        "openinference.instrumentation.anthropic",
        "com.anthropic.sdk.python",
    },
}


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _shape(document: dict[str, Any]) -> dict[str, Any]:
    spans: list[dict[str, Any]] = document["spans"]
    by_id = {s["span_id"]: s for s in spans}

    def path(span: dict[str, Any]) -> str:
        names = [span["name"]]
        parent = by_id.get(span["parent_span_id"])
        while parent is not None:
            names.append(parent["name"])
            parent = by_id.get(parent["parent_span_id"])
        return " > ".join(reversed(names))

    return {
        "spans": sorted(
            (path(s), s["kind"], s["scope_name"], s["status_code"], sorted(s["attributes"]))
            for s in spans
        ),
        "roots": sum(1 for s in spans if s["parent_span_id"] not in by_id),
        "logs": sorted(
            (r["event_name"], r["scope_name"], by_id[r["span_id"]]["name"], sorted(r["attributes"]))
            for r in document["logs"]
        ),
        "resource": sorted({tuple(sorted(s["resource_attributes"])) for s in spans}),
    }


@pytest.fixture(scope="module")
def recaptured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traces")
    subprocess.run(
        [sys.executable, str(CAPTURE), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return out


@pytest.mark.parametrize("name", NAMES)
def test_recaptured_fixture_has_the_committed_structure(recaptured: Path, name: str) -> None:
    committed = _load(FIXTURES / f"{name}.json")
    fresh = _load(recaptured / f"{name}.json")
    assert fresh["packages"] == committed["packages"]
    assert fresh["env"] == committed["env"]
    assert _shape(fresh) == _shape(committed)
    assert fresh["trace_id"] != committed["trace_id"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_fixture_comes_from_the_real_instrumentors(name: str) -> None:
    document = _load(FIXTURES / f"{name}.json")
    scopes = {s["scope_name"] for s in document["spans"]}
    assert scopes == EXPECTED_SCOPES[name]
    assert _shape(document)["roots"] == 1
    assert {s["trace_id"] for s in document["spans"]} == {document["trace_id"]}
    assert {s["service_name"] for s in document["spans"]} == {"weather-agent"}
    llm_versions = {s["scope_version"] for s in document["spans"] if s["scope_name"] != AGENT_SCOPE}
    assert "" not in llm_versions
