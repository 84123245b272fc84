"""``tracescore promote`` and ``ci --baseline promoted|git:REF``, on runs written into the
store and a real git repository."""

import subprocess
from pathlib import Path

import pytest

from tests.scoring.test_compare_ci import T0, _case, _record
from tracescore.collector.store import Store
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.baselines import (
    current_promotion,
    git_commit,
    promote,
    promoted_run,
    promotion_history,
    resolve_baseline,
)
from tracescore.scoring.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tracescore.scoring.results import write_case, write_run
from tracescore.scoring.runs import load_run


def _store_run(
    store: Store,
    run_id: str,
    verdicts: dict[str, bool],
    *,
    started_ns: int = T0,
    git_sha: str = "0" * 40,
    dirty: bool = False,
    status: str = "finished",
    suite: str = "demo",
) -> None:
    run = _record(run_id, started_ns, "data1", ["main"])
    run.suite, run.git_sha, run.git_dirty, run.status = suite, git_sha, dirty, status
    run.cases = [_case(c, "main", p, 100, 50) for c, p in sorted(verdicts.items())]
    for case in run.cases:
        write_case(store, run, case)
    write_run(store, run)


S = 10**9  # runs are ordered by start time, stored in microseconds
GOOD = {f"c{i:02d}": True for i in range(40)}
# A real regression: a quarter of the cases now fail.
BAD = {c: i % 4 != 0 for i, c in enumerate(sorted(GOOD))}


@pytest.fixture
def url(store: Store, chdb_path: Path) -> str:
    return f"chdb:{chdb_path}?database={store.database}"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with two commits, as the current directory."""
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    for n in (1, 2):
        (path / "agent.py").write_text(f"VERSION = {n}\n")
        _git(path, "add", "agent.py")
        _git(
            path,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            f"v{n}",
        )
    monkeypatch.chdir(path)
    return path


def test_promote_then_gate_against_the_promoted_baseline(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_run(store, "r-base", GOOD)
    _store_run(store, "r-other", GOOD, started_ns=T0 + 1 * S)
    _store_run(store, "r-cand", BAD, started_ns=T0 + 2 * S)

    args = ["promote", "r-base", "--note", "release 1.2", "--store", url]
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "Promoted run r-base at commit 000000000000 as the baseline of suite demo" in out
    assert "Previous baseline: none" in out
    promotion = current_promotion(store, "demo")
    assert promotion is not None
    assert (promotion.run_id, promotion.note, promotion.git_sha) == (
        "r-base",
        "release 1.2",
        "0" * 40,
    )

    # The newest run is r-cand; the baseline is still the promoted r-base, not r-other.
    assert main(["ci", "--baseline", "promoted", "--store", url]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "Baseline: run r-base, the promoted baseline of suite demo" in out
    assert "A r-base (baseline) vs B r-cand (candidate)" in out
    assert "CI gate: REGRESSED" in out

    # compare takes the same forms for RUN_A.
    assert main(["compare", "promoted", "r-other", "--store", url]) == EXIT_OK
    assert "A r-base (baseline) vs B r-other (candidate)" in capsys.readouterr().out


def test_promoting_again_replaces_the_baseline_and_keeps_the_history(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_run(store, "r-1", GOOD)
    _store_run(store, "r-2", BAD, started_ns=T0 + 1 * S)
    _store_run(store, "r-3", BAD, started_ns=T0 + 2 * S)
    assert main(["promote", "r-1", "--store", url]) == EXIT_OK
    capsys.readouterr()
    assert main(["promote", "latest", "--store", url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Promoted run r-3" in out and "Previous baseline: run r-1 (promoted " in out

    assert promoted_run(store, "demo").run_id == "r-3"
    assert [p.run_id for p in promotion_history(store, "demo")] == ["r-3", "r-1"]
    # Against the promoted r-3, r-2 did not regress; against the replaced r-1 it would have.
    assert main(["ci", "--baseline", "promoted", "--candidate", "r-2", "--store", url]) == EXIT_OK
    assert main(["ci", "--baseline", "r-1", "--candidate", "r-2", "--store", url]) == EXIT_FAILED

    # Promotions are per suite.
    _store_run(store, "s-1", GOOD, suite="other")
    promote(store, load_run(store, "s-1"), promoted_by="someone")
    assert promoted_run(store, "demo").run_id == "r-3"
    assert promoted_run(store, "other").run_id == "s-1"


def test_only_finished_runs_are_promoted_unless_forced(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_run(store, "r-stopped", GOOD, status="stopped: cost limit")
    assert main(["promote", "r-stopped", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "run 'r-stopped' has status 'stopped: cost limit', not 'finished'" in err
    assert "--force" in err
    assert current_promotion(store, "demo") is None
    assert main(["promote", "r-stopped", "--force", "--store", url]) == EXIT_OK
    assert promoted_run(store, "demo").run_id == "r-stopped"


def test_no_promoted_baseline_is_a_clear_error(
    store: Store, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_run(store, "r-cand", GOOD)
    assert main(["ci", "--baseline", "promoted", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no promoted baseline for suite 'demo'" in err and "tracescore promote" in err
    with pytest.raises(ConfigError, match="no promoted baseline for suite 'demo'"):
        promoted_run(store, "demo")


def test_baseline_by_git_ref(
    store: Store, url: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    assert git_commit("HEAD~1") == first and git_commit("main") == second
    _store_run(store, "at-first-old", GOOD, git_sha=first, started_ns=T0)
    _store_run(store, "at-first", GOOD, git_sha=first, started_ns=T0 + 1 * S)
    # Newer, but from a dirty tree or unfinished: a clean finished run is preferred.
    _store_run(store, "at-first-dirty", BAD, git_sha=first, started_ns=T0 + 2 * S, dirty=True)
    _store_run(
        store, "at-first-stopped", BAD, git_sha=first, started_ns=T0 + 3 * S, status="stopped"
    )
    _store_run(store, "at-second", BAD, git_sha=second, started_ns=T0 + 4 * S)

    assert main(["ci", "--baseline", "git:HEAD~1", "--store", url]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert f"Baseline: run at-first at commit {first[:12]} (HEAD~1)" in out
    assert "A at-first (baseline) vs B at-second (candidate)" in out
    assert "CI gate: REGRESSED" in out

    # Not a stored run id, but a ref: read as the ref.
    assert main(["ci", "--baseline", "HEAD~1", "--store", url]) == EXIT_FAILED
    assert "Baseline: run at-first at commit" in capsys.readouterr().out
    # An abbreviated SHA is a ref too.
    baseline = resolve_baseline(store, first[:10], "demo")
    assert baseline.run.run_id == "at-first" and baseline.notes == []


def test_a_dirty_run_is_used_when_no_clean_one_exists_with_a_note(
    store: Store, url: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _git(repo, "rev-parse", "HEAD~1")
    _store_run(store, "dirty-old", GOOD, git_sha=first, started_ns=T0, dirty=True)
    _store_run(store, "dirty-new", GOOD, git_sha=first, started_ns=T0 + 1 * S, dirty=True)
    _store_run(store, "cand", GOOD, started_ns=T0 + 2 * S)
    assert main(["ci", "--baseline", "git:HEAD~1", "--store", url]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Baseline: run dirty-new at commit" in out
    assert "note: baseline dirty-new was run with uncommitted changes" in out


def test_git_ref_errors(
    store: Store, url: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_run(store, "cand", GOOD, git_sha=_git(repo, "rev-parse", "HEAD"))
    first = _git(repo, "rev-parse", "HEAD~1")

    assert main(["ci", "--baseline", "git:no-such-branch", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--baseline git:no-such-branch: 'no-such-branch' names no commit" in err
    assert str(repo.resolve()) in err

    assert main(["ci", "--baseline", "git:HEAD~1", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"no finished run of suite demo at commit {first[:12]} (HEAD~1)" in err

    _store_run(store, "half", GOOD, git_sha=first, status="interrupted")
    assert main(["ci", "--baseline", "git:HEAD~1", "--store", url]) == EXIT_USAGE
    assert "runs there that did not finish: half (interrupted)" in capsys.readouterr().err

    # Neither a run nor a ref.
    assert main(["ci", "--baseline", "nothing-here", "--store", url]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no run 'nothing-here'" in err and "not a git ref" in err
    # Values git would read as options are never passed to it.
    assert git_commit("--all") is None


def test_a_stored_run_id_wins_over_a_git_ref_of_the_same_name(
    store: Store, url: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store_run(store, "main", GOOD, git_sha="f" * 40)
    _store_run(
        store, "at-main", BAD, git_sha=_git(repo, "rev-parse", "main"), started_ns=T0 + 1 * S
    )
    _store_run(store, "cand", GOOD, started_ns=T0 + 2 * S)
    assert main(["ci", "--baseline", "main", "--store", url]) == EXIT_OK
    assert "Baseline: run main\n" in capsys.readouterr().out
    assert main(["ci", "--baseline", "git:main", "--store", url]) == EXIT_OK
    assert "Baseline: run at-main at commit" in capsys.readouterr().out


def test_git_refs_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    assert git_commit("HEAD") is None
