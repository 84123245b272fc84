"""The ``git_diff`` evaluator, and the ``command`` evaluator inside a workspace."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.scores import Score
from tracescore.schemas.suite import Case, EvaluatorSpec, WorkspaceSpec
from tracescore.schemas.trace import Trace
from tracescore.scoring.evaluators import build_evaluator
from tracescore.scoring.evaluators.workspace import (
    current_workspace,
    path_matches,
    use_workspace,
)
from tracescore.scoring.workspaces import Workspaces, run_git

CASE = Case(id="c1", input="fix add()")
TRACE = Trace(trace_id="t" * 32, spans=[], roots=[], final_output="done")
APP = "def add(a, b):\n    return a - b\n"


@pytest.fixture(params=["copy", "worktree"])
def workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    fixture = tmp_path / "proj"
    (fixture / "src").mkdir(parents=True)
    (fixture / "src" / "app.py").write_text(APP)
    (fixture / "src" / "util.py").write_text("X = 1\n")
    (fixture / "docs").mkdir()
    (fixture / "docs" / "guide.md").write_text("# Guide\n")
    (fixture / ".gitignore").write_text("*.log\n")
    if request.param == "worktree":
        identity = ["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=0"]
        run_git(fixture, "init", "-q")
        run_git(fixture, "add", "-A")
        run_git(fixture, *identity, "commit", "-q", "-m", "initial")
    spec = WorkspaceSpec.model_validate({"fixture": "proj", "mode": request.param})
    with Workspaces(spec, tmp_path) as workspaces, workspaces.case("c1") as path:
        yield path


def git_diff(workspace: Path | None, case: Case = CASE, **params: object) -> Score:
    evaluator = build_evaluator(EvaluatorSpec(type="git_diff", params=params))
    with use_workspace(workspace):
        return evaluator.safe_score(TRACE, case)


def fix_the_bug(path: Path) -> None:
    (path / "src" / "app.py").write_text(APP.replace("a - b", "a + b"))


def test_passes_when_the_right_files_changed(workspace: Path) -> None:
    fix_the_bug(workspace)
    score = git_diff(
        workspace,
        changed=["src/app.py"],
        unchanged=["docs/**", "*.md"],
        contains=["+    return a + b", "-    return a - b"],
        not_contains=["import os"],
        max_files=1,
        max_lines=2,
    )
    assert score.passed is True, score.explanation
    assert score.value == 1.0
    assert score.explanation.startswith("8 checks passed; 1 file changed (+1 -1): M src/app.py")


def test_fails_with_the_fraction_of_checks_and_the_diff_stat(workspace: Path) -> None:
    (workspace / "docs" / "guide.md").write_text("# Guide\nrewritten\n")
    score = git_diff(workspace, changed=["src/app.py"], unchanged=["docs/**"], max_files=3)
    assert score.passed is False
    assert score.error is None
    assert score.value == pytest.approx(1 / 3)
    assert "nothing changed matching 'src/app.py'" in score.explanation
    assert "docs/guide.md changed (matches 'docs/**')" in score.explanation
    assert "1 file changed (+1 -0): M docs/guide.md" in score.explanation


def test_untracked_files_count_unless_excluded(workspace: Path) -> None:
    (workspace / "src" / "new_module.py").write_text("VALUE = 2\n")
    (workspace / "debug.log").write_text("ignored by .gitignore\n")
    included = git_diff(workspace, changed=["src/new_*.py"], contains=["+VALUE = 2"])
    assert included.passed is True, included.explanation
    assert "A src/new_module.py" in included.explanation
    assert "debug.log" not in included.explanation
    excluded = git_diff(workspace, changed=["src/new_*.py"], include_untracked=False)
    assert excluded.passed is False
    assert "no files changed" in excluded.explanation


def test_staged_new_files_count_even_without_untracked(workspace: Path) -> None:
    (workspace / "added.py").write_text("Y = 3\n")
    run_git(workspace, "add", "added.py")
    score = git_diff(workspace, changed=["added.py"], include_untracked=False)
    assert score.passed is True, score.explanation


def test_deleted_files_are_changes(workspace: Path) -> None:
    (workspace / "src" / "util.py").unlink()
    score = git_diff(workspace, changed=["src/util.py"], contains=["-X = 1"], max_lines=1)
    assert score.passed is True, score.explanation
    assert "D src/util.py" in score.explanation
    kept = git_diff(workspace, unchanged=["util.py"])
    assert kept.passed is False
    assert "src/util.py changed (matches 'util.py')" in kept.explanation


def test_commits_by_the_sut_are_still_changes(workspace: Path) -> None:
    fix_the_bug(workspace)
    run_git(workspace, "add", "-A")
    identity = ["-c", "user.name=sut", "-c", "user.email=sut@localhost", "-c", "commit.gpgsign=0"]
    run_git(workspace, *identity, "commit", "-q", "-m", "fix")
    score = git_diff(workspace, changed=["src/app.py"], max_files=1)
    assert score.passed is True, score.explanation


def test_max_files_and_max_lines(workspace: Path) -> None:
    fix_the_bug(workspace)
    (workspace / "src" / "util.py").write_text("X = 2\nY = 3\n")
    (workspace / "extra.txt").write_text("a\nb\nc\n")
    score = git_diff(workspace, max_files=2, max_lines=4)
    assert score.passed is False
    assert score.value == 0.0
    assert "3 files changed > max_files 2" in score.explanation
    assert "8 lines changed > max_lines 4" in score.explanation


def test_bytecode_caches_are_ignored_by_default(workspace: Path) -> None:
    cache = workspace / "src" / "__pycache__"
    cache.mkdir()
    (cache / "app.cpython-311.pyc").write_bytes(b"\x00\x01")
    assert git_diff(workspace).passed is False  # no change at all
    counted = git_diff(workspace, ignore=[])
    assert counted.passed is True
    assert "src/__pycache__/app.cpython-311.pyc" in counted.explanation
    custom = git_diff(workspace, ignore=["*.pyc"], max_files=0)
    assert custom.passed is True, custom.explanation


def test_with_no_checks_something_must_change(workspace: Path) -> None:
    nothing = git_diff(workspace)
    assert (nothing.passed, nothing.explanation) == (False, "no file changed (no files changed)")
    fix_the_bug(workspace)
    assert git_diff(workspace).passed is True


def test_checks_from_the_case(workspace: Path) -> None:
    fix_the_bug(workspace)
    case = Case(
        id="c1",
        input="fix",
        expected={"git_diff": {"changed": ["src/app.py"], "unchanged": ["src/util.py"]}},
    )
    assert git_diff(workspace, case).passed is True
    # A param wins over the case's value for the same check.
    overridden = git_diff(workspace, case, changed=["docs/*"])
    assert overridden.passed is False
    assert "nothing changed matching 'docs/*'" in overridden.explanation
    renamed = Case(id="c1", input="fix", expected={"diff": {"changed": ["nothing/*"]}})
    assert git_diff(workspace, renamed, case_key="diff").passed is False


def test_bad_case_checks_are_an_error(workspace: Path) -> None:
    case = Case(id="c1", input="fix", expected={"git_diff": {"changd": ["x"]}})
    score = git_diff(workspace, case)
    assert score.error is not None
    assert "expected.git_diff.changd" in score.error


def test_the_workspace_is_not_touched(workspace: Path) -> None:
    fix_the_bug(workspace)
    (workspace / "new.txt").write_text("n\n")
    before = run_git(workspace, "status", "--porcelain")
    assert git_diff(workspace, changed=["new.txt"]).passed is True
    assert run_git(workspace, "status", "--porcelain") == before
    assert "?? new.txt" in before


def test_no_workspace_is_an_error() -> None:
    assert current_workspace.get() is None
    score = git_diff(None, changed=["x"])
    assert (score.passed, score.label) == (None, "error")
    assert score.error is not None and "`workspace:`" in score.error


def test_a_folder_outside_git_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    score = git_diff(tmp_path, changed=["x"])
    assert score.error is not None and "cannot diff the workspace" in score.error


def test_params_are_validated_at_load() -> None:
    with pytest.raises(ConfigError, match=r"params\.max_files"):
        build_evaluator(EvaluatorSpec(type="git_diff", params={"max_files": -1}))
    with pytest.raises(ConfigError, match=r"params\.changes"):
        build_evaluator(EvaluatorSpec(type="git_diff", params={"changes": ["x"]}))


def test_use_workspace_restores_the_previous_value(tmp_path: Path) -> None:
    with use_workspace(tmp_path):
        assert current_workspace.get() == tmp_path
        with use_workspace(None):
            assert current_workspace.get() is None
        assert current_workspace.get() == tmp_path
    assert current_workspace.get() is None


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.py", "src/app.py", True),
        ("app.py", "src/app.py", True),
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/pkg/app.py", False),
        ("src/**/*.py", "src/app.py", True),
        ("src/**/*.py", "src/pkg/deep/app.py", True),
        ("src/**", "src/pkg/app.py", True),
        ("docs/**", "src/docs/x.md", False),
        ("**/test_*.py", "test_a.py", True),
        ("./src/app.py", "src/app.py", True),
        ("src/app.p?", "src/app.py", True),
        ("src/[ab]pp.py", "src/app.py", True),
        ("src/[!a]pp.py", "src/app.py", False),
        ("src/app.py", "src/app.pyc", False),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert path_matches(pattern, path) is matches


# --- command in the workspace -----------------------------------------------------------------


CHECK = (
    "import os, pathlib, sys; "
    "src = pathlib.Path('src/app.py').read_text(); "
    "print('cwd', os.getcwd() == os.environ['TRACESCORE_WORKSPACE'] == sys.argv[1]); "
    "sys.exit(0 if 'a + b' in src else 1)"
)


def test_command_runs_in_the_workspace(workspace: Path) -> None:
    evaluator = build_evaluator(
        EvaluatorSpec(type="command", params={"command": ["{python}", "-c", CHECK, "{workspace}"]})
    )
    with use_workspace(workspace):
        before = evaluator.safe_score(TRACE, CASE)
        fix_the_bug(workspace)
        after = evaluator.safe_score(TRACE, CASE)
    assert (before.passed, before.explanation) == (False, "exit code 1: cwd True")
    assert (after.passed, after.explanation) == (True, "cwd True")


def test_command_cwd_is_relative_to_the_workspace(workspace: Path) -> None:
    script = "import os; print(os.path.basename(os.getcwd()))"
    evaluator = build_evaluator(
        EvaluatorSpec(
            type="command", params={"command": [sys.executable, "-c", script], "cwd": "src"}
        )
    )
    with use_workspace(workspace):
        score = evaluator.safe_score(TRACE, CASE)
    assert (score.passed, score.explanation) == (True, "src")
    with use_workspace(workspace):
        missing = build_evaluator(
            EvaluatorSpec(type="command", params={"command": ["true"], "cwd": "nope"})
        ).safe_score(TRACE, CASE)
    assert missing.error is not None and "is not a directory" in missing.error


def test_a_worktree_subfolder_sees_only_its_own_paths(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "fixtures" / "proj").mkdir(parents=True)
    (repo / "fixtures" / "proj" / "app.py").write_text(APP)
    (repo / "top.txt").write_text("outside the fixture\n")
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=0"]
    run_git(repo, "init", "-q")
    run_git(repo, "add", "-A")
    run_git(repo, *identity, "commit", "-q", "-m", "initial")
    spec = WorkspaceSpec.model_validate({"fixture": "repo/fixtures/proj", "mode": "worktree"})
    with Workspaces(spec, tmp_path) as workspaces, workspaces.case("sub") as path:
        (path / "app.py").write_text(APP.replace("a - b", "a + b"))
        (path / "new.py").write_text("Z = 1\n")
        (path.parent.parent / "top.txt").write_text("changed outside\n")
        score = git_diff(path, changed=["app.py", "new.py"], max_files=2)
    assert score.passed is True, score.explanation
    assert "2 files changed (+2 -1): M app.py, A new.py" in score.explanation
