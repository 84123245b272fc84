"""The case's workspace as evaluators see it, and ``git_diff`` on what the SUT changed."""

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators.base import Evaluator, EvaluatorParams, register
from tracescore.scoring.workspaces import GitError, run_git, workspace_base

current_workspace: ContextVar[Path | None] = ContextVar("current_workspace", default=None)
"""The workspace of the case being scored; the runner sets it with :func:`use_workspace`
so that ``score(trace, case)`` keeps its signature."""


@contextmanager
def use_workspace(path: Path | None) -> Iterator[None]:
    """Evaluators run inside this block see ``path`` as the case's workspace."""
    token = current_workspace.set(path)
    try:
        yield
    finally:
        current_workspace.reset(token)


# --- globs ------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` stay within a folder, ``**`` crosses folders, ``[abc]`` is a class."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def path_matches(pattern: str, path: str) -> bool:
    """A pattern without ``/`` matches a file name in any folder (as in .gitignore);
    one with ``/`` matches the whole path relative to the workspace."""
    pattern = pattern.removeprefix("./")
    if "/" not in pattern:
        return _glob_regex(pattern).match(path.rsplit("/", 1)[-1]) is not None
    return _glob_regex(pattern.lstrip("/")).match(path) is not None


# --- the diff ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    status: str
    """``A`` added, ``M`` modified, ``D`` deleted, ``T`` type changed."""
    path: str
    added: int = 0
    removed: int = 0


@dataclass(frozen=True)
class WorkspaceDiff:
    changes: list[Change]
    text: str
    """The unified diff (``git diff --no-color --no-ext-diff``)."""

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.changes]

    @property
    def lines(self) -> int:
        return sum(c.added + c.removed for c in self.changes)

    def stat(self, limit: int = 10) -> str:
        if not self.changes:
            return "no files changed"
        added = sum(c.added for c in self.changes)
        removed = sum(c.removed for c in self.changes)
        shown = ", ".join(f"{c.status} {c.path}" for c in self.changes[:limit])
        more = f", … {len(self.changes) - limit} more" if len(self.changes) > limit else ""
        files = "file" if len(self.changes) == 1 else "files"
        return f"{len(self.changes)} {files} changed (+{added} -{removed}): {shown}{more}"


_DIFF_FLAGS = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--relative")


def workspace_diff(
    path: Path, *, include_untracked: bool = True, ignore: list[str] | None = None
) -> WorkspaceDiff:
    """What changed in ``path`` since its base commit, untracked files included.

    Staging happens in a throwaway index, so the workspace's own index (and whatever
    the SUT staged or committed) is left as it is.
    """
    base = workspace_base(path)
    with tempfile.TemporaryDirectory(prefix="tracescore-diff-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        run_git(path, "read-tree", base, env=env)
        run_git(path, "add", "-A", "--", ".", env=env)
        statuses = _name_status(
            run_git(path, "diff", "--cached", "--name-status", "-z", *_DIFF_FLAGS, base, env=env)
        )
        drop = [p for _, p in statuses if any(path_matches(g, p) for g in ignore or [])]
        if not include_untracked:
            others = set(
                run_git(path, "ls-files", "-z", "--others", "--exclude-standard").split("\0")
            )
            drop += [p for status, p in statuses if status == "A" and p in others]
        if drop:
            run_git(
                path,
                "--literal-pathspecs",
                "reset",
                "-q",
                base,
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                env=env,
                stdin="\0".join(drop),
            )
        dropped = set(drop)
        kept = [(s, p) for s, p in statuses if p not in dropped]
        counts = _numstat(
            run_git(path, "diff", "--cached", "--numstat", "-z", *_DIFF_FLAGS, base, env=env)
        )
        text = run_git(path, "diff", "--cached", *_DIFF_FLAGS, base, env=env)
    changes = [Change(s, p, *counts.get(p, (0, 0))) for s, p in kept]
    return WorkspaceDiff(changes=changes, text=text)


def _name_status(output: str) -> list[tuple[str, str]]:
    parts = output.split("\0")
    return [(parts[i][:1], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]]


def _numstat(output: str) -> dict[str, tuple[int, int]]:
    """path → (added, removed) lines; binary files count as 0."""
    counts: dict[str, tuple[int, int]] = {}
    for record in output.split("\0"):
        fields = record.split("\t", 2)
        if len(fields) == 3:
            added, removed, name = fields
            counts[name] = (
                int(added) if added.isdigit() else 0,
                int(removed) if removed.isdigit() else 0,
            )
    return counts


# --- git_diff ---------------------------------------------------------------------------------


class DiffChecks(BaseModel):
    """The checks, as params or as the case's ``expected.<case_key>`` mapping."""

    model_config = ConfigDict(extra="forbid")

    changed: list[str] | None = None
    """Globs that must each match at least one changed path."""
    unchanged: list[str] | None = None
    """Globs that must match no changed path."""
    contains: list[str] | None = None
    """Texts the unified diff must contain."""
    not_contains: list[str] | None = None
    """Texts the unified diff must not contain."""
    max_files: int | None = Field(default=None, ge=0)
    max_lines: int | None = Field(default=None, ge=0)
    """Added plus removed lines."""


class GitDiffParams(DiffChecks, EvaluatorParams):
    case_key: str = "git_diff"
    include_untracked: bool = True
    """New files the SUT did not ``git add`` count as changed."""
    ignore: list[str] = Field(default_factory=lambda: ["**/__pycache__/**"])
    """Globs of paths that never count (by default Python's bytecode caches, which
    running the workspace's tests creates)."""


_CHECK_FIELDS = tuple(DiffChecks.model_fields)


@register
class GitDiff(Evaluator):
    type_name = "git_diff"
    summary = "the files the SUT changed in the case's workspace (vs its start) meet the checks"
    Params = GitDiffParams

    def score(self, trace: Trace, case: Case) -> Score:
        p = self.params
        assert isinstance(p, GitDiffParams)
        workspace = current_workspace.get()
        if workspace is None:
            return Score.failure(
                self.name,
                "no workspace: git_diff needs the suite to set `workspace:` (a fixture "
                "folder copied for each case)",
            )
        checks = self._checks(p, case)
        if isinstance(checks, Score):
            return checks
        try:
            diff = workspace_diff(workspace, include_untracked=p.include_untracked, ignore=p.ignore)
        except GitError as exc:
            return Score.failure(self.name, f"cannot diff the workspace: {exc}")
        results = _run_checks(checks, diff)
        failures = [message for passed, message in results if not passed]
        value = sum(passed for passed, _ in results) / len(results)
        if failures:
            return self.verdict(False, f"{'; '.join(failures)} ({diff.stat()})", value)
        count = f"{len(results)} check" + ("" if len(results) == 1 else "s")
        return self.verdict(True, f"{count} passed; {diff.stat()}", value)

    def _checks(self, p: GitDiffParams, case: Case) -> DiffChecks | Score:
        """Each check from the params, else from the case's ``expected.<case_key>``."""
        from_case: Any = case.expected.get(p.case_key) or {}
        try:
            case_checks = DiffChecks.model_validate(from_case)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "".join(f".{part}" for part in first["loc"])
            return Score.failure(self.name, f"expected.{p.case_key}{where}: {first['msg']}")
        merged = {
            name: getattr(p, name) if getattr(p, name) is not None else getattr(case_checks, name)
            for name in _CHECK_FIELDS
        }
        return DiffChecks.model_validate(merged)


def _run_checks(checks: DiffChecks, diff: WorkspaceDiff) -> list[tuple[bool, str]]:
    results: list[tuple[bool, str]] = []
    for glob in checks.changed or []:
        hit = any(path_matches(glob, p) for p in diff.paths)
        results.append((hit, f"nothing changed matching {glob!r}"))
    for glob in checks.unchanged or []:
        hits = [p for p in diff.paths if path_matches(glob, p)]
        results.append((not hits, f"{', '.join(hits)} changed (matches {glob!r})"))
    for text in checks.contains or []:
        results.append((text in diff.text, f"diff lacks {text!r}"))
    for text in checks.not_contains or []:
        results.append((text not in diff.text, f"diff contains {text!r}"))
    if checks.max_files is not None:
        n = len(diff.changes)
        results.append((n <= checks.max_files, f"{n} files changed > max_files {checks.max_files}"))
    if checks.max_lines is not None:
        n = diff.lines
        results.append((n <= checks.max_lines, f"{n} lines changed > max_lines {checks.max_lines}"))
    if not results:
        # Nothing configured: an agent that was asked to edit must have edited something.
        results.append((bool(diff.changes), "no file changed"))
    return results
