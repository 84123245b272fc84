"""An instrumented HTTP SUT started by tracescore itself (``server:``), once per variant,
called once per case × variant × repeat with the case's trace context in its headers."""

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scoring.test_systems_http import _alive
from tracescore.collector.store import Store
from tracescore.scoring.config import suite_from
from tracescore.scoring.runner import SuiteRunner

SUT = Path(__file__).resolve().parents[1] / "support" / "http_sut.py"
CASES: list[dict[str, Any]] = [
    {"id": "france", "input": "What is the capital of France?", "expected": {"contains": "Paris"}},
    {"id": "sum", "input": "What is 2 + 3?", "expected": {"contains": "5"}},
]


def _config(pid_dir: Path) -> dict[str, Any]:
    return {
        "suite": "http-e2e",
        "system": {
            "type": "http",
            "url": "http://127.0.0.1:{port}/answer",
            "body": {"question": "{{input}}"},
            "output": "$.output",
            "timeout_s": 30,
            "server": {
                "command": ["{python}", str(SUT), "{port}"],
                "env": {"HTTP_SUT_PID_DIR": str(pid_dir)},
                "ready_url": "http://127.0.0.1:{port}/health",
            },
        },
        "variants": [
            {"name": "good", "env": {"HTTP_SUT_SKILL": "good"}},
            {"name": "bad", "env": {"HTTP_SUT_SKILL": "bad"}},
        ],
        "evaluators": [{"type": "contains_text"}],
        "repeats": 2,
        "concurrency": 4,
        "seal_timeout_s": 10,
    }


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pid_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the SUT servers register; any still alive after the test are killed."""
    folder = tmp_path / "pids"
    folder.mkdir()
    try:
        yield folder
    finally:
        for entry in folder.iterdir():
            if _alive(int(entry.name)):
                os.kill(int(entry.name), signal.SIGKILL)


def test_http_server_sut_per_variant_with_repeats(
    store: Store, tmp_path: Path, pid_dir: Path
) -> None:
    suite = suite_from(_config(pid_dir), CASES, tmp_path)
    run = SuiteRunner(suite, store).run()

    # One server per variant, each stopped (with its port closed) after the run.
    servers = {int(p.name): int(p.read_text()) for p in pid_dir.iterdir()}
    assert len(servers) == 2
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in servers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in servers)
    assert not any(_accepts(port) for port in servers.values())

    cells = {(c.case_id, c.variant, c.repeat): c for c in run.cases}
    assert sorted(cells) == sorted(
        (case, variant, repeat)
        for case in ("france", "sum")
        for variant in ("good", "bad")
        for repeat in (0, 1)
    )
    assert len({c.trace_id for c in run.cases}) == 8
    for (case_id, variant, _), case in cells.items():
        assert case.error is None, case.error
        assert case.status == ("passed" if variant == "good" else "failed")
        expected = "I am not sure." if variant == "bad" else None
        if expected:
            assert case.output == expected
        else:
            assert case.output == f"The answer is {'Paris' if case_id == 'france' else '5'}."
        assert case.orphan_spans == 0
        assert case.input_tokens > 0 and case.output_tokens > 0

        spans = store.fetch_trace(case.trace_id)
        sut = [s for s in spans if s.service_name == "http-sut"]
        assert sorted(s.name for s in sut) == ["chat stand-in-model-1", "invoke_agent http-agent"]
        assert {s.resource_attributes["tracescore.variant"] for s in spans} == {variant}
        ids = {s.span_id for s in spans}
        agent = next(s for s in sut if s.name.startswith("invoke_agent"))
        # Joined the harness trace through the traceparent header; the case id came
        # through the baggage header.
        assert agent.parent_span_id in ids
        assert agent.attributes["tracescore.case_id"] == case_id
        assert agent.attributes["tracescore.run_id"] == run.run_id

    passed = {
        v: sum(c.status == "passed" for c in run.cases if c.variant == v) for v in ("good", "bad")
    }
    assert passed == {"good": 4, "bad": 0}
