"""Live progress bars: items done of a total with the ETA (and, for runs, the pass rate so
far), with lines printed above the bar. Off when the console is not a terminal, as in CI
logs, where only the printed lines appear."""

from types import TracebackType
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tracescore.scoring.report import case_line
from tracescore.scoring.results import ScoredCase


class CountProgress:
    """A bar of ``noun`` done out of the total given to ``start``."""

    def __init__(self, console: Console, noun: str, *, enabled: bool = True) -> None:
        self.console = console
        self.live = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn(f"[bold]{noun}"),
            BarColumn(),
            MofNCompleteColumn(),
            *self.extra_columns(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self._task: TaskID | None = None

    def extra_columns(self) -> tuple[ProgressColumn, ...]:
        return ()

    def fields(self) -> dict[str, Any]:
        """Values for the extra columns' ``task.fields``."""
        return {}

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
        self._task = self._progress.add_task("work", total=total, **self.fields())

    def advance(self, line: RenderableType | None = None) -> None:
        if line is not None:
            # Printed through the progress's console: it stays above the bar.
            self._progress.console.print(line)
        if self._task is not None:
            self._progress.update(self._task, advance=1, **self.fields())


class RunProgress(CountProgress):
    """Listener for ``SuiteRunner(on_start=..., on_case=...)``: one line per finished case
    and the pass rate so far."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.done = 0
        self.passed = 0
        self.errors = 0
        super().__init__(console, "cases", enabled=enabled)

    def extra_columns(self) -> tuple[ProgressColumn, ...]:
        return (TextColumn("{task.fields[rate]}"),)

    def fields(self) -> dict[str, Any]:
        return {"rate": self.rate_text()}

    def rate_text(self) -> str:
        if not self.done:
            return "pass –"
        text = f"pass {self.passed / self.done:.0%}"
        return text + (f", {self.errors} errors" if self.errors else "")

    def case_done(self, case: ScoredCase) -> None:
        self.done += 1
        self.passed += case.status == "passed"
        self.errors += case.status == "error"
        self.advance(case_line(case))
