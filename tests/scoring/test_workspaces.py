"""Per-case workspaces: copies and git worktrees of a fixture folder."""

import subprocess
import threading
from pathlib import Path

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import WorkspaceSpec
from tracescore.scoring.evaluators.workspace import workspace_diff
from tracescore.scoring.workspaces import (
    BASE_REF,
    Workspaces,
    run_git,
    sanitize_label,
    workspace_base,
    workspace_for,
)

IDENTITY = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]


def git(cwd: Path, *args: str) -> str:
    return run_git(cwd, *IDENTITY, *args)


def make_fixture(folder: Path) -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (folder / "README.txt").write_text("fixture\n")
    return folder


def make_repo(folder: Path) -> Path:
    make_fixture(folder)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "initial")
    return folder


def worktrees(repo: Path) -> list[str]:
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.removeprefix("worktree ") for line in lines if line.startswith("worktree ")]


def spec(fixture: str, mode: str = "copy", keep: bool = False) -> WorkspaceSpec:
    return WorkspaceSpec.model_validate({"fixture": fixture, "mode": mode, "keep": keep})


# --- copy -------------------------------------------------------------------------------------


def test_copy_gives_each_case_a_fresh_git_checkout(tmp_path: Path) -> None:
    make_fixture(tmp_path / "proj")
    workspaces = Workspaces(spec("proj"), tmp_path)
    with workspaces.case("c1-base-r0") as one, workspaces.case("c1-base-r1") as two:
        assert one != two
        assert one.name.startswith("c1-base-r0-")
        assert (one / "src" / "app.py").read_text() == "def add(a, b):\n    return a - b\n"
        (one / "src" / "app.py").write_text("changed\n")
        (one / "new.txt").write_text("new\n")
        assert (two / "src" / "app.py").read_text().startswith("def add")
        assert not (two / "new.txt").exists()
        # Not a git repo in the fixture, so the copy got one whose commit is the start.
        assert (one / ".git").is_dir()
        assert workspace_base(one) == run_git(one, "rev-parse", "HEAD").strip()
        assert workspace_base(one) == workspace_base(two)
        assert run_git(one, "status", "--porcelain").strip() != ""
        assert run_git(two, "status", "--porcelain").strip() == ""
    assert not one.exists() and not two.exists()
    assert not (tmp_path / "proj" / ".git").exists()
    assert (tmp_path / "proj" / "src" / "app.py").read_text().startswith("def add")
    assert workspaces.root.exists()
    workspaces.close()
    assert not workspaces.root.exists()
    workspaces.close()  # idempotent


def test_copy_of_a_repo_keeps_its_history_and_starts_from_its_dirty_state(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "README.txt").write_text("edited, not committed\n")
    (repo / "notes.txt").write_text("untracked\n")
    with workspace_for(spec("repo"), tmp_path, "case") as path:
        assert git(path, "rev-parse", "HEAD").strip() == head
        assert git(path, "log", "--format=%s").strip() == "initial"
        assert (path / "README.txt").read_text() == "edited, not committed\n"
        base = workspace_base(path)
        # The base is the state the SUT was given, so the fixture's edits are not "changes".
        assert base != head
        assert workspace_diff(path).changes == []
        assert git(path, "rev-parse", BASE_REF).strip() == base
    assert not path.exists()
    # The fixture repository itself is left exactly as it was.
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert "notes.txt" in git(repo, "status", "--porcelain")


def test_copy_of_a_clean_repo_uses_head_as_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with workspace_for(spec("repo"), tmp_path, "case") as path:
        assert workspace_base(path) == git(repo, "rev-parse", "HEAD").strip()


def test_copy_keeps_symlinks_as_links(tmp_path: Path) -> None:
    fixture = make_fixture(tmp_path / "proj")
    (fixture / "link.py").symlink_to("src/app.py")
    with workspace_for(spec("proj"), tmp_path, "case") as path:
        assert (path / "link.py").is_symlink()
        assert (path / "link.py").readlink() == Path("src/app.py")


def test_keep_leaves_workspaces_after_the_run(tmp_path: Path) -> None:
    make_fixture(tmp_path / "proj")
    workspaces = Workspaces(spec("proj", keep=True), tmp_path)
    with workspaces.case("kept") as path:
        (path / "out.txt").write_text("result\n")
    workspaces.close()
    assert (path / "out.txt").read_text() == "result\n"
    assert path.parent == workspaces.root
    assert [p.name for p in workspaces.root.iterdir()] == [path.name]


def test_workspace_is_removed_when_the_case_raises(tmp_path: Path) -> None:
    make_fixture(tmp_path / "proj")
    with Workspaces(spec("proj"), tmp_path) as workspaces:
        with pytest.raises(RuntimeError, match="SUT crashed"), workspaces.case("boom") as path:
            assert path.exists()
            raise RuntimeError("SUT crashed")
        assert not path.exists()
    assert not workspaces.root.exists()


def test_close_removes_workspaces_still_in_use(tmp_path: Path) -> None:
    make_fixture(tmp_path / "proj")
    workspaces = Workspaces(spec("proj"), tmp_path)
    context = workspaces.case("abandoned")
    path = context.__enter__()
    workspaces.close()
    assert not path.exists() and not workspaces.root.exists()
    with pytest.raises(RuntimeError, match="after close"), workspaces.case("late"):
        pass


def test_missing_or_non_folder_fixture_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"workspace\.fixture") as missing:
        Workspaces(spec("nope"), tmp_path)
    assert str(tmp_path / "nope") in str(missing.value)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"workspace\.fixture: .*file\.txt is not a directory"):
        Workspaces(spec("file.txt"), tmp_path)


def test_labels_are_made_safe_for_folder_names() -> None:
    assert sanitize_label("case 1/variant:a-r0") == "case-1-variant-a-r0"
    assert sanitize_label("../..") == "case"
    assert len(sanitize_label("x" * 500)) == 80


# --- worktree ---------------------------------------------------------------------------------


def test_worktree_checks_out_head_without_uncommitted_changes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / "README.txt").write_text("dirty\n")
    (repo / "untracked.txt").write_text("u\n")
    workspaces = Workspaces(spec("repo", mode="worktree"), tmp_path)
    with workspaces.case("a") as one, workspaces.case("b") as two:
        assert one != two
        assert (one / "README.txt").read_text() == "fixture\n"
        assert not (one / "untracked.txt").exists()
        (one / "src" / "app.py").write_text("changed\n")
        assert (two / "src" / "app.py").read_text().startswith("def add")
        assert workspace_base(one) == head == workspace_base(two)
        assert len(worktrees(repo)) == 3
    assert not one.exists() and not two.exists()
    assert worktrees(repo) == [str(repo.resolve())]
    assert (repo / "README.txt").read_text() == "dirty\n"
    workspaces.close()
    assert not workspaces.root.exists()


def test_worktree_of_a_subfolder_yields_that_subfolder(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with workspace_for(spec("repo/src", mode="worktree"), tmp_path, "sub") as path:
        assert path.name == "src"
        assert (path / "app.py").exists()
        assert (path.parent / "README.txt").exists()
    assert worktrees(repo) == [str(repo.resolve())]


def test_worktree_needs_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fixture(tmp_path / "plain")
    # Stop git from finding a repository above the test's folder.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with pytest.raises(ConfigError, match="not inside a git repository") as error:
        Workspaces(spec("plain", mode="worktree"), tmp_path)
    assert "workspace.fixture" in str(error.value)
    assert "mode: copy" in str(error.value)


def test_worktree_of_an_uncommitted_subfolder_is_a_config_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "later").mkdir()
    (repo / "later" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="later is not committed"):
        Workspaces(spec("repo/later", mode="worktree"), tmp_path)


def test_keep_leaves_worktrees_registered(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    workspaces = Workspaces(spec("repo", mode="worktree", keep=True), tmp_path)
    with workspaces.case("kept") as path:
        pass
    workspaces.close()
    assert path.exists()
    assert str(path) in worktrees(repo)
    git(repo, "worktree", "remove", "--force", str(path))


def test_concurrent_worktrees_from_threads(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    workspaces = Workspaces(spec("repo", mode="worktree"), tmp_path)
    seen: dict[int, Path] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def one_case(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            with workspaces.case(f"case{index}") as path:
                (path / "mine.txt").write_text(str(index))
                seen[index] = path
                barrier.wait(timeout=60)  # all eight exist at once
                assert (path / "mine.txt").read_text() == str(index)
                assert (path / "src" / "app.py").exists()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_case, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(set(seen.values())) == 8
    assert not any(path.exists() for path in seen.values())
    assert worktrees(repo) == [str(repo.resolve())]
    workspaces.close()


def test_git_needs_no_global_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine with no ~/.gitconfig (CI containers) must still get a base commit.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_AUTHOR_NAME", raising=False)
    monkeypatch.delenv("GIT_COMMITTER_NAME", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    make_fixture(tmp_path / "proj")
    with workspace_for(spec("proj"), tmp_path, "c") as path:
        author = subprocess.run(
            ["git", "log", "-1", "--format=%an <%ae>"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert author == "tracescore <tracescore@localhost>"
