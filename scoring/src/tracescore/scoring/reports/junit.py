"""JUnit XML, in the dialect GitLab, GitHub test reporters and Jenkins all read.

One ``<testsuite>`` per variant, one ``<testcase>`` per case × evaluator:
``classname="<suite>.<variant>.<case_id>"``, ``name="<evaluator>"``, ``time`` the
case's trace duration in seconds (shared by its evaluators, so a suite's ``time`` is
the sum over its cases, not over its testcases).

A case whose SUT failed (timeout, crash, no spans) still gets one testcase per
evaluator, each an ``<error>`` carrying the case's error: the set of test names stays
the same from run to run, so CI's test history does not lose or gain tests when an
agent breaks.
"""

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from tracescore.schemas.scores import Score
from tracescore.scoring.reports.text import xml_safe
from tracescore.scoring.results import RunRecord, ScoredCase


def _clean(text: str) -> str:
    return xml_safe(text)


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.3f}"


def _timestamp(ns: int) -> str:
    # No offset: the Jenkins/Ant schema types it as a dateTime without a time zone.
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class _Counts:
    def __init__(self) -> None:
        self.tests = self.failures = self.errors = self.skipped = 0
        self.time_ns = 0

    def apply(self, element: ET.Element) -> None:
        element.set("tests", str(self.tests))
        element.set("failures", str(self.failures))
        element.set("errors", str(self.errors))
        element.set("skipped", str(self.skipped))
        element.set("time", _seconds(self.time_ns))


def _testcase(
    parent: ET.Element, suite: str, case: ScoredCase, evaluator: str, score: Score | None
) -> str:
    """Append the testcase; returns its outcome: passed, failure, error or skipped."""
    testcase = ET.SubElement(
        parent,
        "testcase",
        {
            "name": _clean(evaluator),
            "classname": _clean(f"{suite}.{case.variant}.{case.case_id}"),
            "time": _seconds(case.duration_ns),
        },
    )
    outcome = "passed"
    if score is None:
        why = case.error or f"evaluator {evaluator!r} gave no score"
        _detail(testcase, "error", why, "case_error" if case.error else "no_score")
        outcome = "error"
    elif score.skipped:
        ET.SubElement(testcase, "skipped", {"message": _clean(score.explanation)})
        outcome = "skipped"
    elif score.error:
        _detail(testcase, "error", score.error, "evaluator_error")
        outcome = "error"
    elif score.passed is False:
        _detail(testcase, "failure", score.explanation, "failure", score.value)
        outcome = "failure"
    # Where to look next: the trace id finds the spans in the store or any OTel UI.
    ET.SubElement(testcase, "system-out").text = _clean(f"trace_id: {case.trace_id}")
    return outcome


def _detail(
    testcase: ET.Element, tag: str, message: str, kind: str, value: float | None = None
) -> None:
    element = ET.SubElement(testcase, tag, {"message": _clean(message), "type": kind})
    body = message if value is None else f"{message}\nvalue: {value:g}"
    element.text = _clean(body)


def junit_xml(run: RunRecord, evaluator_names: list[str]) -> str:
    """The run as a JUnit XML document (UTF-8, with its declaration)."""
    root = ET.Element("testsuites", {"name": _clean(run.suite)})
    totals = _Counts()
    for variant in run.variants:
        testsuite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": _clean(f"{run.suite}.{variant}"),
                "timestamp": _timestamp(run.started_ns),
            },
        )
        properties = ET.SubElement(testsuite, "properties")
        for key, value in (
            ("run_id", run.run_id),
            ("suite", run.suite),
            ("variant", variant),
            ("git_sha", run.git_sha),
            ("git_dirty", str(run.git_dirty).lower()),
            ("config_hash", run.config_hash),
            ("dataset_hash", run.dataset_hash),
            ("tracescore_version", run.version),
        ):
            ET.SubElement(properties, "property", {"name": key, "value": _clean(value)})
        counts = _Counts()
        for case in run.cases:
            if case.variant != variant:
                continue
            counts.time_ns += case.duration_ns
            by_name = {s.evaluator: s for s in case.scores}
            for evaluator in evaluator_names:
                outcome = _testcase(testsuite, run.suite, case, evaluator, by_name.get(evaluator))
                counts.tests += 1
                counts.failures += outcome == "failure"
                counts.errors += outcome == "error"
                counts.skipped += outcome == "skipped"
        counts.apply(testsuite)
        totals.tests += counts.tests
        totals.failures += counts.failures
        totals.errors += counts.errors
        totals.skipped += counts.skipped
        totals.time_ns += counts.time_ns
    totals.apply(root)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
