"""Per-case workspaces: a fresh copy (or git worktree) of a fixture folder for each case.

Every workspace is a git checkout whose starting state is recorded as the per-worktree
ref :data:`BASE_REF`, so the ``git_diff`` evaluator can tell what the SUT changed even
if the SUT commits, stashes or resets.
"""

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import WorkspaceSpec

BASE_REF = "refs/worktree/tracescore-base"
"""Per-worktree ref (git keeps one per linked worktree) naming a workspace's start."""

WORKSPACE_ENV = "TRACESCORE_WORKSPACE"
"""Set to the case's workspace in the environment of the SUT and of ``command`` evaluators."""

# Commits made by tracescore must work with no global git config and never prompt,
# sign or run the user's hooks.
_IDENTITY = (
    "-c",
    "user.name=tracescore",
    "-c",
    "user.email=tracescore@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
)

# Inherited from a git hook or a shell inside another repo, these would redirect our
# commands to that repo instead of the workspace.
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)

# `git worktree add/remove/prune` edit shared files under .git/worktrees and race when
# run concurrently against one repository.
_WORKTREE_LOCK = threading.Lock()


class GitError(Exception):
    """A git command failed; the message carries its stderr."""


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.update(extra or {})
    return env


def run_git(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout_s: float = 120.0,
) -> str:
    """stdout of ``git args`` run in ``cwd``; GitError when it exits non-zero."""
    argv = ["git", *args]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=git_env(env),
            input=stdin,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {' '.join(args[:2])} failed: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
        raise GitError(f"git {' '.join(args[:2])} in {cwd}: {detail}")
    return done.stdout


def workspace_base(path: Path) -> str:
    """The commit a workspace started from: :data:`BASE_REF`, else ``HEAD`` (so any git
    folder can be diffed); GitError when ``path`` is not in a git repository."""
    for ref in (BASE_REF, "HEAD"):
        try:
            return run_git(path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except GitError:
            continue
    raise GitError(f"{path} is not in a git repository with a commit")


def sanitize_label(label: str) -> str:
    """A folder-name-safe version of ``label`` (``case-variant-r0``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip(".-")[:80]
    return cleaned or "case"


def _is_git_repo_root(folder: Path) -> bool:
    # A `.git` *file* (a linked worktree or submodule) points at another repository's
    # metadata; copying it would make the copy share that repository's index.
    return (folder / ".git").is_dir()


def _snapshot_commit(repo: Path) -> str:
    """A commit of the working tree as it is (tracked and untracked, minus ignored files)
    without moving HEAD or touching the real index; HEAD itself when nothing differs."""
    with tempfile.TemporaryDirectory(prefix="tracescore-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        head: str | None
        try:
            head = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip()
        except GitError:
            head = None  # a repository without commits yet
        if head is not None:
            run_git(repo, "read-tree", head, env=env)
        run_git(repo, "add", "-A", "--", ".", env=env)
        tree = run_git(repo, "write-tree", env=env).strip()
        if head is not None and run_git(repo, "rev-parse", f"{head}^{{tree}}").strip() == tree:
            return head
        parents = ["-p", head] if head is not None else []
        message = "tracescore: workspace starting state"
        return run_git(repo, *_IDENTITY, "commit-tree", tree, *parents, "-m", message).strip()


class Workspaces:
    """The workspaces of one run: ``case(label)`` per case × variant × repeat, ``close()``
    once at the end. Safe to use from several threads.

    ``copy`` mode copies the fixture (a git repository keeps its ``.git``; any other
    folder gets a fresh repository committing its contents). ``worktree`` mode checks
    out the fixture repository's ``HEAD`` as a detached worktree: uncommitted changes
    in the fixture are *not* included.
    """

    def __init__(self, spec: WorkspaceSpec, folder: Path) -> None:
        self.spec = spec
        self.fixture = (folder / spec.fixture).resolve()
        if not self.fixture.exists():
            raise ConfigError(f"workspace.fixture: {self.fixture} does not exist")
        if not self.fixture.is_dir():
            raise ConfigError(f"workspace.fixture: {self.fixture} is not a directory")
        if shutil.which("git") is None:
            raise ConfigError("workspace: needs git on PATH (every workspace is a git checkout)")
        self._repo: Path | None = None
        self._subfolder = Path()
        self._commit = ""
        if spec.mode == "worktree":
            self._repo, self._subfolder, self._commit = self._worktree_source()
        self.root = Path(tempfile.mkdtemp(prefix=f"tracescore-ws-{os.getpid()}-"))
        self._lock = threading.Lock()
        self._template: Path | None = None
        self._live: set[Path] = set()
        self._closed = False

    def _worktree_source(self) -> tuple[Path, Path, str]:
        """(repository top level, fixture path inside it, commit to check out)."""
        try:
            top = Path(run_git(self.fixture, "rev-parse", "--show-toplevel").strip()).resolve()
        except GitError:
            raise ConfigError(
                f"workspace.fixture: {self.fixture} is not inside a git repository, which "
                "mode: worktree needs (use mode: copy, or `git init` and commit it)"
            ) from None
        try:
            commit = run_git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip()
        except GitError:
            raise ConfigError(
                f"workspace.fixture: the repository {top} has no commit for mode: worktree "
                "to check out"
            ) from None
        subfolder = self.fixture.relative_to(top)
        if (
            subfolder != Path()
            and not run_git(
                top, "ls-tree", "--name-only", commit, "--", subfolder.as_posix()
            ).strip()
        ):
            raise ConfigError(
                f"workspace.fixture: {subfolder} is not committed in {top} (mode: worktree "
                "checks out HEAD; uncommitted files are not included)"
            )
        return top, subfolder, commit

    @contextmanager
    def case(self, label: str) -> Iterator[Path]:
        """A fresh workspace for one case, removed on exit (even if the case raised)
        unless ``keep``. The path is the fixture's counterpart inside the checkout."""
        holder = self._create(label)
        try:
            yield holder / self._subfolder
        finally:
            if not self.spec.keep:
                self._remove(holder)

    def _create(self, label: str) -> Path:
        with self._lock:
            if self._closed:
                raise RuntimeError("Workspaces used after close()")
        holder = Path(tempfile.mkdtemp(prefix=f"{sanitize_label(label)}-", dir=self.root))
        with self._lock:
            self._live.add(holder)
        try:
            if self.spec.mode == "worktree":
                self._add_worktree(holder)
            else:
                shutil.copytree(self._copy_template(), holder, symlinks=True, dirs_exist_ok=True)
        except BaseException:
            self._remove(holder)
            raise
        return holder

    def _copy_template(self) -> Path:
        """The fixture copied once, as a repository with :data:`BASE_REF` set; every
        case copies this, so all of them start from the same base commit."""
        with self._lock:
            if self._template is not None:
                return self._template
            template = self.root / ".template"
            ignore = None if _is_git_repo_root(self.fixture) else shutil.ignore_patterns(".git")
            shutil.copytree(self.fixture, template, symlinks=True, ignore=ignore)
            if _is_git_repo_root(template):
                base = _snapshot_commit(template)
            else:
                run_git(template, *_IDENTITY, "init", "-q")
                run_git(template, "add", "-A")
                message = "tracescore: workspace starting state"
                run_git(
                    template,
                    *_IDENTITY,
                    "commit",
                    "-q",
                    "--no-verify",
                    "--allow-empty",
                    "-m",
                    message,
                )
                base = run_git(template, "rev-parse", "HEAD").strip()
            run_git(template, "update-ref", BASE_REF, base)
            self._template = template
            return template

    def _add_worktree(self, holder: Path) -> None:
        assert self._repo is not None
        with _WORKTREE_LOCK:
            run_git(self._repo, "worktree", "add", "--detach", "--quiet", str(holder), self._commit)
        run_git(holder, "update-ref", BASE_REF, self._commit)

    def _remove(self, holder: Path) -> None:
        if self.spec.mode == "worktree" and self._repo is not None:
            with _WORKTREE_LOCK:
                # Fails when never registered or already gone; prune then forgets it.
                with suppress(GitError):
                    run_git(self._repo, "worktree", "remove", "--force", str(holder))
                shutil.rmtree(holder, ignore_errors=True)
                with suppress(GitError):
                    run_git(self._repo, "worktree", "prune")
        else:
            shutil.rmtree(holder, ignore_errors=True)
        with self._lock:
            self._live.discard(holder)

    def close(self) -> None:
        """Remove what is left (all of it, unless ``keep``). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live = list(self._live)
        if self.spec.keep:
            # Kept workspaces are for reading; the template is only tracescore's.
            shutil.rmtree(self.root / ".template", ignore_errors=True)
            return
        for holder in live:
            self._remove(holder)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Workspaces":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def workspace_for(spec: WorkspaceSpec, folder: Path, label: str) -> Iterator[Path]:
    """One workspace on its own (tests, ad-hoc use); a run holds one :class:`Workspaces`."""
    with Workspaces(spec, folder) as workspaces, workspaces.case(label) as path:
        yield path
