"""JUnit XML, JSON and Markdown reports, built from a hand-made run record."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.scoring.cli import EXIT_USAGE, main
from tracescore.scoring.reports import (
    FORMAT_VERSION,
    check_report_paths,
    json_report,
    junit_xml,
    markdown_report,
    render_json,
    write_reports,
)
from tracescore.scoring.results import RunRecord, ScoredCase

EVALUATORS = ["answer", "exact", "judge"]
NASTY = 'output lacks "<b>&amp;</b>"\x00\x1b[31m | *bold* \ud800 end'
NASTY_CLEAN = 'output lacks "<b>&amp;</b>"[31m | *bold*  end'
REPO = Path(__file__).resolve().parents[2]


def _passed(name: str, value: float = 1.0) -> Score:
    return Score(evaluator=name, value=value, passed=True, label="pass", explanation="ok")


def _run() -> RunRecord:
    run = RunRecord(
        run_id="run-1",
        suite="demo",
        config_path="eval.yaml",
        variant_key="tracescore.variant",
        variants=["strong", "weak"],
        config_hash="c0ffee",
        dataset_hash="da7a",
        git_sha="0123456789abcdef",
        git_dirty=True,
        version="0.1.0",
        started_ns=1_700_000_000_000_000_000,
        finished_ns=1_700_000_012_500_000_000,
        status="finished",
    )
    run.cases = [
        ScoredCase(
            case_id="greet",
            variant="strong",
            repeat=0,
            trace_id="a" * 32,
            status="passed",
            input="hi",
            output="hello",
            scores=[
                _passed("answer", 0.5),
                Score.skip("exact", "no expected.output"),
                _passed("judge", 1.0),
            ],
            score_configs={"answer": ("contains_text", "h1")},
            duration_ns=1_250_000_000,
            input_tokens=10,
            output_tokens=5,
        ),
        ScoredCase(
            case_id="atlantis",
            variant="strong",
            repeat=0,
            trace_id="b" * 32,
            status="error",
            input="capital?",
            output="",
            scores=[
                Score(evaluator="answer", value=0.0, passed=False, label="fail", explanation=NASTY),
                Score.failure("exact", "trace has no final output"),
                Score(evaluator="judge", value=float("nan"), passed=True, label="pass"),
            ],
            duration_ns=2_000_000_000,
        ),
        ScoredCase(
            case_id="greet",
            variant="weak",
            repeat=0,
            trace_id="c" * 32,
            status="error",
            input="hi",
            output="",
            error="SUT exited with code 1: agent fell over\x07",
            duration_ns=500_000_000,
        ),
        ScoredCase(
            case_id="atlantis",
            variant="weak",
            repeat=0,
            trace_id="d" * 32,
            status="failed",
            input="capital?",
            output="dunno",
            scores=[
                Score(evaluator="answer", value=0.0, passed=False, label="fail", explanation="no"),
                Score.skip("exact", "nothing to check"),
                _passed("judge", 0.0),
            ],
            duration_ns=750_000_000,
        ),
    ]
    return run


def _suite_counts(element: ET.Element) -> dict[str, str]:
    return {k: element.attrib[k] for k in ("tests", "failures", "errors", "skipped", "time")}


def test_junit_counts_outcomes_per_variant_and_in_total() -> None:
    root = ET.fromstring(junit_xml(_run(), EVALUATORS))
    assert root.tag == "testsuites"
    strong, weak = root.findall("testsuite")
    assert strong.attrib["name"] == "demo.strong"
    assert strong.attrib["timestamp"] == "2023-11-14T22:13:20"
    # time is per case, not per testcase: 1.25 s + 2 s.
    assert _suite_counts(strong) == {
        "tests": "6",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
        "time": "3.250",
    }
    assert _suite_counts(weak) == {
        "tests": "6",
        "failures": "1",
        "errors": "3",
        "skipped": "1",
        "time": "1.250",
    }
    assert _suite_counts(root) == {
        "tests": "12",
        "failures": "2",
        "errors": "4",
        "skipped": "2",
        "time": "4.500",
    }
    properties = {p.attrib["name"]: p.attrib["value"] for p in strong.iter("property")}
    assert properties["run_id"] == "run-1" and properties["git_dirty"] == "true"


def test_junit_testcases_name_the_case_and_carry_the_messages() -> None:
    root = ET.fromstring(junit_xml(_run(), EVALUATORS))
    cases = {(t.attrib["classname"], t.attrib["name"]): t for t in root.iter("testcase")}
    assert len(cases) == 12
    failed = cases[("demo.strong.atlantis", "answer")]
    failure = failed.find("failure")
    assert failure is not None
    # Escaped on the way out, unescaped on the way in; invalid XML characters are gone.
    assert failure.attrib["message"] == NASTY_CLEAN
    assert failure.text == f"{NASTY_CLEAN}\nvalue: 0"
    assert failed.attrib["time"] == "2.000"
    assert failed.findtext("system-out") == f"trace_id: {'b' * 32}"

    error = cases[("demo.strong.atlantis", "exact")].find("error")
    assert error is not None and error.attrib["type"] == "evaluator_error"
    assert error.attrib["message"] == "trace has no final output"

    # A NaN value without a verdict against it is a pass, as the runner counts it.
    judge = cases[("demo.strong.atlantis", "judge")]
    assert [child.tag for child in judge] == ["system-out"]

    skipped = cases[("demo.strong.greet", "exact")].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == "no expected.output"

    # The SUT's error marks every evaluator's testcase of that case.
    for name in EVALUATORS:
        sut = cases[("demo.weak.greet", name)].find("error")
        assert sut is not None and sut.attrib["type"] == "case_error"
        assert sut.attrib["message"] == "SUT exited with code 1: agent fell over"


def test_junit_of_a_run_without_cases_is_still_valid() -> None:
    run = _run()
    run.cases = []
    root = ET.fromstring(junit_xml(run, EVALUATORS))
    assert root.attrib["tests"] == "0"
    assert [s.attrib["tests"] for s in root.findall("testsuite")] == ["0", "0"]


def test_json_report_identity_cases_and_summary() -> None:
    text = render_json(_run(), EVALUATORS)
    report = json.loads(text)
    assert report == json_report(_run(), EVALUATORS) | {"cases": report["cases"]}
    assert report["format_version"] == FORMAT_VERSION == 1
    run = report["run"]
    assert run["run_id"] == "run-1" and run["git_sha"] == "0123456789abcdef"
    assert run["git_dirty"] is True and run["dataset_hash"] == "da7a"
    assert run["config_hash"] == "c0ffee" and run["tracescore_version"] == "0.1.0"
    assert run["variants"] == ["strong", "weak"] and run["evaluators"] == EVALUATORS
    assert run["started_at"] == "2023-11-14T22:13:20+00:00"
    assert run["duration_s"] == 12.5
    assert report["totals"] == {"cases": 4, "passed": 1, "failed": 1, "errors": 2}

    greet, atlantis, weak_greet, _ = report["cases"]
    assert greet["tokens"] == {"input": 10, "output": 5, "total": 15}
    assert greet["duration_ms"] == 1250.0 and greet["trace_id"] == "a" * 32
    assert greet["scores"][0] == {
        "evaluator": "answer",
        "type": "contains_text",
        "config_hash": "h1",
        "value": 0.5,
        "passed": True,
        "label": "pass",
        "explanation": "ok",
        "error": None,
        "skipped": False,
    }
    assert greet["scores"][1]["skipped"] is True and greet["scores"][1]["passed"] is None
    assert atlantis["scores"][0]["explanation"] == NASTY.replace("\ud800", "")
    assert atlantis["scores"][2]["value"] is None  # NaN is not JSON
    assert weak_greet["status"] == "error" and weak_greet["scores"] == []
    assert weak_greet["error"].startswith("SUT exited with code 1")

    strong = report["summary"]["strong"]
    assert strong["cases"] == {
        "total": 2,
        "passed": 1,
        "failed": 0,
        "errors": 1,
        "pass_rate": 0.5,
    }
    assert strong["evaluators"]["answer"] == {
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 0,
        "unscored": 0,
        "pass_rate": 0.5,
        "mean": 0.25,
    }
    assert strong["evaluators"]["exact"]["errors"] == 1
    assert strong["evaluators"]["exact"]["pass_rate"] == 0.0
    assert strong["evaluators"]["judge"]["mean"] == 1.0  # the NaN is left out
    weak_exact = report["summary"]["weak"]["evaluators"]["exact"]
    assert weak_exact["skipped"] == 1 and weak_exact["unscored"] == 1
    assert weak_exact["pass_rate"] is None and weak_exact["mean"] is None


def test_markdown_report_tables_failures_and_errors() -> None:
    text = markdown_report(_run(), EVALUATORS)
    assert text.startswith("# tracescore: suite demo\n")
    assert "`run-1`" in text and "`0123456789ab` (dirty)" in text
    assert "**4 cases: 1 passed, 1 failed, 2 errors.**" in text
    assert "| evaluator | strong | weak |" in text
    assert "| answer | 1/2 (50%) | 0/1 (0%) |" in text
    assert "| exact | 0/1 (0%), 1 error | – |" in text
    assert "| case (all evaluators) | 1/2 (50%) | 0/2 (0%) |" in text
    failing, errors = text.split("## Failing cases")[1].split("## Errors")
    assert "**atlantis** [weak]" in failing and "  - answer: no" in failing
    assert "**greet** [weak]" in errors and "SUT exited with code 1" in errors
    assert "  - exact: trace has no final output" in errors
    # Agent text cannot break the table or turn into markup; control characters are gone.
    assert r'  - answer (failed): output lacks "\<b\>\&amp;\</b\>"\[31m \| \*bold\* end' in errors


def test_write_reports_creates_parents_and_all_three_files(tmp_path: Path) -> None:
    paths = {
        "junit": tmp_path / "a" / "junit.xml",
        "json": tmp_path / "b" / "c" / "report.json",
        "markdown": tmp_path / "report.md",
    }
    written = write_reports(_run(), EVALUATORS, **paths)
    assert written == list(paths.values())
    ET.parse(paths["junit"])
    assert json.loads(paths["json"].read_text())["format_version"] == 1
    assert paths["markdown"].read_text().startswith("# tracescore")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "junit.xml",
        "report.json",
        "report.md",
    ]


def test_unwritable_report_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"^--json .*: cannot write"):
        write_reports(_run(), EVALUATORS, json=blocker / "report.json")
    with pytest.raises(ConfigError, match="is a directory"):
        check_report_paths({"--junit": tmp_path, "--json": None})


def test_cli_rejects_a_directory_as_report_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eval_yaml = str(REPO / "configs" / "demo" / "eval.yaml")
    assert main(["run", eval_yaml, "--markdown", str(tmp_path)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: --markdown {tmp_path}: is a directory, not a file"
    assert "Running suite" not in captured.out


def test_repeated_cases_add_pass_at_k_and_pass_hat_k_rows() -> None:
    run = _run()
    # [strong] run twice: greet passes once (pass@2 1, pass^2 0), atlantis never (0, 0).
    again = ScoredCase(
        case_id="greet", variant="strong", repeat=1, trace_id="e" * 32,
        status="failed", input="hi", output="?",
    )  # fmt: skip
    atlantis = next(c for c in run.cases if (c.case_id, c.variant) == ("atlantis", "strong"))
    run.cases += [again, ScoredCase(**{**atlantis.__dict__, "repeat": 1, "trace_id": "f" * 32})]
    text = markdown_report(run, EVALUATORS)
    assert "| case pass@2 | 50% | – |" in text
    assert "| case pass^2 | 0% | – |" in text
