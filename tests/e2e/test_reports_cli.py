"""`tracescore run --junit --json --markdown` on the demo suite: three reports that
parse and agree with each other and with the summary the run printed."""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo" / "eval.yaml"
EVALUATORS = ["answer", "exact", "used_tools"]


@dataclass(frozen=True)
class Reports:
    done: subprocess.CompletedProcess[str]
    junit: ET.Element
    report: dict[str, Any]
    markdown: str


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    # The demo suite takes tens of seconds: run it once for every test here.
    tmp = tmp_path_factory.mktemp("reports")
    out = tmp / "out" / "nested"
    env = {k: v for k, v in os.environ.items() if k != "TRACESCORE_STORE"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tracescore.scoring",
            "run",
            str(DEMO),
            "--store",
            f"chdb:{tmp / 'store'}",
            "--junit",
            str(out / "junit.xml"),
            "--json",
            str(out / "report.json"),
            "--markdown",
            str(tmp / "report.md"),
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # capital-atlantis fails on purpose
    return Reports(
        done=done,
        junit=ET.parse(out / "junit.xml").getroot(),
        report=json.loads((out / "report.json").read_text(encoding="utf-8")),
        markdown=(tmp / "report.md").read_text(encoding="utf-8"),
    )


def _printed_rates(stdout: str) -> dict[str, list[str]]:
    """The rows of the printed "Pass rate per evaluator" table."""
    table = stdout.split("Pass rate per evaluator", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[0] in [*EVALUATORS, "case (all evaluators)"]:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_run_says_where_the_reports_are(reports: Reports) -> None:
    out = reports.done.stdout
    assert "14 cases: 8 passed, 6 failed, 0 errors" in out
    assert out.count("Report written to ") == 3


def test_json_agrees_with_the_printed_summary(reports: Reports) -> None:
    report = reports.report
    assert report["format_version"] == 1
    run = report["run"]
    assert run["suite"] == "demo" and run["variants"] == ["strong", "weak"]
    assert run["evaluators"] == EVALUATORS and run["status"] == "finished"
    assert len(run["run_id"]) > 0 and run["run_id"] in reports.done.stdout
    assert report["totals"] == {"cases": 14, "passed": 8, "failed": 6, "errors": 0}
    assert len(report["cases"]) == 14
    for case in report["cases"]:
        assert re.fullmatch(r"[0-9a-f]{32}", case["trace_id"])
        assert [s["evaluator"] for s in case["scores"]] == EVALUATORS
    printed = _printed_rates(reports.done.stdout)
    for row, cells in printed.items():
        for variant, cell in zip(run["variants"], cells, strict=True):
            summary = report["summary"][variant]
            if row == "case (all evaluators)":
                passed, counted = summary["cases"]["passed"], summary["cases"]["total"]
            else:
                stats = summary["evaluators"][row]
                passed = stats["passed"]
                counted = stats["passed"] + stats["failed"] + stats["errors"]
            assert cell.startswith(f"{passed}/{counted} "), (row, variant, cell)
    assert set(printed) == {*EVALUATORS, "case (all evaluators)"}


def test_junit_agrees_with_the_json(reports: Reports) -> None:
    root, report = reports.junit, reports.report
    assert root.attrib["tests"] == str(14 * len(EVALUATORS))
    assert root.attrib["errors"] == "0"
    by_name = {s.attrib["name"]: s for s in root.findall("testsuite")}
    assert list(by_name) == ["demo.strong", "demo.weak"]
    for variant, summary in report["summary"].items():
        testsuite = by_name[f"demo.{variant}"]
        stats = summary["evaluators"].values()
        assert int(testsuite.attrib["failures"]) == sum(s["failed"] for s in stats)
        assert int(testsuite.attrib["skipped"]) == sum(s["skipped"] for s in stats)
        assert int(testsuite.attrib["tests"]) == summary["cases"]["total"] * len(EVALUATORS)
    testcases = {(t.attrib["classname"], t.attrib["name"]): t for t in root.iter("testcase")}
    for case in report["cases"]:
        for score in case["scores"]:
            testcase = testcases[(f"demo.{case['variant']}.{case['case_id']}", score["evaluator"])]
            assert testcase.findtext("system-out") == f"trace_id: {case['trace_id']}"
            assert float(testcase.attrib["time"]) == pytest.approx(
                case["duration_ms"] / 1000, abs=0.001
            )
            failure = testcase.find("failure")
            if score["passed"] is False:
                assert failure is not None
                assert failure.attrib["message"] == score["explanation"]
            else:
                assert failure is None
            assert (testcase.find("skipped") is not None) == score["skipped"]
    atlantis = testcases[("demo.strong.capital-atlantis", "answer")].find("failure")
    assert atlantis is not None and "output lacks 'Poseidonia'" in atlantis.attrib["message"]


def test_markdown_agrees_with_the_json(reports: Reports) -> None:
    text, report = reports.markdown, reports.report
    assert "**14 cases: 8 passed, 6 failed, 0 errors.**" in text
    assert f"`{report['run']['run_id']}`" in text
    assert "| evaluator | strong | weak |" in text
    printed = _printed_rates(reports.done.stdout)
    for row, cells in printed.items():
        # Markdown escapes the underscore; it renders as the printed name.
        name = row.replace("_", r"\_")
        assert f"| {name} | " + " | ".join(cells) + " |" in text
    failing = text.split("## Failing cases", 1)[1]
    assert "## Errors" not in text
    for case in report["cases"]:
        line = f"- **{case['case_id']}** [{case['variant']}] trace `{case['trace_id']}`"
        assert (line in failing) == (case["status"] == "failed")
    assert "output lacks 'Poseidonia'" in failing
