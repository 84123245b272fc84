"""A coding agent run through the suite runner: a fresh workspace per case × variant ×
repeat, scored with ``git_diff`` and a ``command`` that runs a check in the workspace."""

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tracescore.collector.store import Store
from tracescore.scoring.config import suite_from
from tracescore.scoring.runner import SuiteRunner
from tracescore.scoring.workspaces import run_git

SUT = Path(__file__).resolve().parents[1] / "support" / "workspace_sut.py"

CALC = "def add(a, b):\n    return a - b\n"
CHECK = (
    "import sys\n"
    "from calc import add\n"
    "ok = add(2, 3) == 5\n"
    "print('add(2, 3) =', add(2, 3))\n"
    "sys.exit(0 if ok else 1)\n"
)


def make_fixture(folder: Path, mode: str) -> None:
    folder.mkdir()
    (folder / "calc.py").write_text(CALC)
    (folder / "check_calc.py").write_text(CHECK)
    if mode == "worktree":
        identity = ["-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=0"]
        run_git(folder, "init", "-q")
        run_git(folder, "add", "-A")
        run_git(folder, *identity, "commit", "-q", "-m", "fixture")


def config(mode: str, log: Path) -> dict[str, Any]:
    return {
        "suite": "workspace-e2e",
        "system": {
            "type": "command",
            "command": ["{python}", str(SUT), "{input}"],
            "env": {"WS_SUT_LOG": str(log)},
            "timeout_s": 60,
        },
        "workspace": {"fixture": "fixture", "mode": mode},
        "variants": [
            {"name": "good", "env": {"WS_SUT_SKILL": "good"}},
            {"name": "bad", "env": {"WS_SUT_SKILL": "bad"}},
        ],
        "evaluators": [
            {
                "type": "git_diff",
                "params": {
                    "changed": ["calc.py"],
                    "unchanged": ["check_*.py"],
                    "contains": ["+    return a + b"],
                },
            },
            {
                "name": "checks",
                "type": "command",
                "params": {"command": ["{python}", "check_calc.py"]},
            },
        ],
        "repeats": 2,
        "concurrency": 4,
        "seal_timeout_s": 10,
    }


@pytest.mark.parametrize("mode", ["copy", "worktree"])
def test_workspace_per_case_scored_by_git_diff_and_a_check(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    make_fixture(tmp_path / "fixture", mode)
    log = tmp_path / "log"
    log.mkdir()
    # The run's workspaces go here, so the test can see that none are left behind.
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))

    suite = suite_from(
        config(mode, log), [{"id": "fix-add", "input": "add() subtracts; fix it"}], tmp_path
    )
    run = SuiteRunner(suite, store).run()

    assert sorted((c.variant, c.repeat) for c in run.cases) == [
        ("bad", 0),
        ("bad", 1),
        ("good", 0),
        ("good", 1),
    ]
    for case in run.cases:
        assert case.error is None, case.error
        scores = {s.evaluator: s for s in case.scores}
        diff, checks = scores["git_diff"], scores["checks"]
        assert diff.error is None and checks.error is None, (diff, checks)
        if case.variant == "good":
            assert case.status == "passed"
            assert case.output == "Fixed add() in calc.py."
            assert (diff.passed, diff.value) == (True, 1.0)
            # Each workspace starts from the fixture: one edit and one new file, never
            # the other cells' edits.
            assert "2 files changed (+2 -1): A NOTES.md, M calc.py" in diff.explanation
            assert (checks.passed, checks.explanation) == (True, "add(2, 3) = 5")
        else:
            assert case.status == "failed"
            assert diff.passed is False
            assert diff.value == pytest.approx(0.0)
            assert "nothing changed matching 'calc.py'" in diff.explanation
            assert "check_calc.py changed (matches 'check_*.py')" in diff.explanation
            # The agent bent the check to fit the wrong code, so the check alone passes;
            # only the diff shows what it did.
            assert (checks.passed, checks.explanation) == (True, "add(2, 3) = -1")

    # Every cell ran in its own folder, none of which is left.
    folders = [Path(p.read_text()) for p in log.iterdir()]
    assert len(folders) == 4 and len(set(folders)) == 4
    assert not any(folder.exists() for folder in folders)
    assert list(temp_root.iterdir()) == []
    # The fixture is as it was.
    assert (tmp_path / "fixture" / "calc.py").read_text() == CALC
    assert not (tmp_path / "fixture" / "NOTES.md").exists()
    if mode == "worktree":
        listing = run_git(tmp_path / "fixture", "worktree", "list", "--porcelain")
        assert listing.count("worktree ") == 1
