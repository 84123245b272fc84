"""The live progress of ``tracescore run``: a bar with cases done, pass rate and ETA, and
one line per finished case above it."""

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tracescore.scoring.report import case_line
from tracescore.scoring.results import ScoredCase


class RunProgress:
    """Listener for ``SuiteRunner(on_start=..., on_case=...)``. Disabled (or when the
    console is not a terminal, as in CI logs) it prints only the per-case lines."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.live = enabled and console.is_terminal
        self.done = 0
        self.passed = 0
        self.errors = 0
        self._progress = Progress(
            TextColumn("[bold]cases"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, total: int) -> None:
        self._task = self._progress.add_task("run", total=total, rate=self.rate_text())

    def rate_text(self) -> str:
        if not self.done:
            return "pass –"
        text = f"pass {self.passed / self.done:.0%}"
        return text + (f", {self.errors} errors" if self.errors else "")

    def case_done(self, case: ScoredCase) -> None:
        self.done += 1
        self.passed += case.status == "passed"
        self.errors += case.status == "error"
        # Printed through the progress's console: it stays above the bar.
        self._progress.console.print(case_line(case))
        if self._task is not None:
            self._progress.update(self._task, advance=1, rate=self.rate_text())
