"""Files that describe a finished run for CI and scripts: JUnit XML, JSON and Markdown."""

import os
import tempfile
from pathlib import Path

from tracescore.schemas.errors import ConfigError
from tracescore.scoring.reports.json_report import FORMAT_VERSION, json_report, render_json
from tracescore.scoring.reports.junit import junit_xml
from tracescore.scoring.reports.markdown import markdown_report
from tracescore.scoring.reports.summary import EvaluatorStats, case_stats, evaluator_stats
from tracescore.scoring.results import RunRecord

__all__ = [
    "FORMAT_VERSION",
    "EvaluatorStats",
    "case_stats",
    "check_report_paths",
    "evaluator_stats",
    "json_report",
    "junit_xml",
    "markdown_report",
    "render_json",
    "write_report",
    "write_reports",
]


def write_report(path: Path, content: str) -> None:
    """Write ``content`` to ``path``, creating its parent directories.

    Through a temporary file and a rename, so a CI job that collects the file never
    reads half a report (an interrupted run leaves the previous one, or none).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(content)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_report_paths(paths: dict[str, Path | None]) -> None:
    """Reject, before a run starts, a report path that can never be written.

    ``paths`` maps the option (``--junit``) to its path; None when not given.
    """
    for option, path in paths.items():
        if path is not None and path.is_dir():
            raise ConfigError(f"{option} {path}: is a directory, not a file")


def write_reports(
    run: RunRecord,
    evaluator_names: list[str],
    *,
    junit: Path | None = None,
    json: Path | None = None,
    markdown: Path | None = None,
) -> list[Path]:
    """Write the reports that were asked for; returns the paths written."""
    renderers = (
        ("--junit", junit, junit_xml),
        ("--json", json, render_json),
        ("--markdown", markdown, markdown_report),
    )
    written: list[Path] = []
    for option, path, render in renderers:
        if path is None:
            continue
        try:
            write_report(path, render(run, evaluator_names))
        except OSError as exc:
            raise ConfigError(f"{option} {path}: cannot write: {exc.strerror or exc}") from exc
        written.append(path)
    return written
