"""Baselines for ``tracescore ci``: promoted runs, and runs found by git ref.

``tracescore promote RUN`` appends a row to ``tracescore_baselines``; a suite's
baseline is its newest row. ``ci --baseline`` takes a run id, ``latest``, ``promoted``
or a git ref (``git:REF``, or any value that is not a stored run id but names a commit),
resolved here to a stored run.
"""

import getpass
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from tracescore.collector.store import Store
from tracescore.schemas.ddl import BASELINES_TABLE
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.results import RunRecord
from tracescore.scoring.runs import (
    LATEST,
    has_table,
    latest_run,
    load_run,
    run_exists,
    runs_at_commit,
)

PROMOTED = "promoted"
GIT_PREFIX = "git:"
FINISHED = "finished"

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Promotion:
    """One ``tracescore promote``: ``run_id`` became ``suite``'s baseline at ``promoted_at_us``."""

    suite: str
    run_id: str
    promoted_at_us: int
    git_sha: str
    git_dirty: bool
    promoted_by: str
    note: str

    @property
    def when(self) -> str:
        moment = datetime.fromtimestamp(self.promoted_at_us / 1e6, tz=UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Baseline:
    """The run ``ci``/``compare`` compare against, and how it was found."""

    run: RunRecord
    source: str
    """For messages, e.g. ``promoted baseline of suite demo (2025-... by ci)``."""
    notes: list[str] = field(default_factory=list)


# -- promotions -------------------------------------------------------------------


def promotion_history(store: Store, suite: str, limit: int = 20) -> list[Promotion]:
    """``suite``'s promotions, newest first; the first is its current baseline."""
    if not has_table(store, BASELINES_TABLE):
        return []
    rows = store.query(
        f"""
        SELECT Suite, RunId, toUnixTimestamp64Micro(PromotedAt) AS PromotedUs, GitSha,
               GitDirty, PromotedBy, Note
        FROM {store.db}.{BASELINES_TABLE}
        WHERE Suite = {{suite:String}}
        ORDER BY PromotedAt DESC LIMIT 1 BY PromotedAt
        LIMIT {{limit:UInt32}}
        """,
        {"suite": suite, "limit": max(0, limit)},
    )
    return [_promotion(row) for row in rows]


def current_promotion(store: Store, suite: str) -> Promotion | None:
    found = promotion_history(store, suite, limit=1)
    return found[0] if found else None


def promoted_run(store: Store, suite: str) -> RunRecord:
    """The run last promoted as ``suite``'s baseline, with its cases and scores."""
    return _promoted(store, suite)[1]


def _promoted(store: Store, suite: str) -> tuple[Promotion, RunRecord]:
    promotion = current_promotion(store, suite)
    if promotion is None:
        raise ConfigError(
            f"no promoted baseline for suite {suite!r} in {store.location}; "
            "promote a run with `tracescore promote RUN_ID`"
        )
    if not run_exists(store, promotion.run_id):
        raise ConfigError(
            f"the promoted baseline of suite {suite!r}, run {promotion.run_id!r} (promoted "
            f"{promotion.when}), is no longer in {store.location}; promote another run"
        )
    return promotion, load_run(store, promotion.run_id)


def promote(
    store: Store,
    run: RunRecord,
    *,
    note: str = "",
    promoted_by: str | None = None,
    force: bool = False,
) -> tuple[Promotion, Promotion | None]:
    """Make ``run`` its suite's baseline; returns the new promotion and the one it replaces.

    Only finished runs, unless ``force``: a stopped or partial run would make every later
    comparison look like an improvement.
    """
    if run.status != FINISHED and not force:
        raise ConfigError(
            f"run {run.run_id!r} has status {run.status!r}, not {FINISHED!r}; "
            "promote it anyway with --force"
        )
    store.migrate()
    previous = current_promotion(store, run.suite)
    now_us = time.time_ns() // 1000
    if previous is not None:
        # Newest row wins: keep the order even if this machine's clock is behind the one
        # that made the previous promotion.
        now_us = max(now_us, previous.promoted_at_us + 1)
    promotion = Promotion(
        suite=run.suite,
        run_id=run.run_id,
        promoted_at_us=now_us,
        git_sha=run.git_sha,
        git_dirty=run.git_dirty,
        promoted_by=promoted_by if promoted_by is not None else _who(),
        note=note,
    )
    store.insert_arrow(
        BASELINES_TABLE,
        pa.table(
            {
                "Suite": [promotion.suite],
                "RunId": [promotion.run_id],
                "PromotedAt": pa.array([promotion.promoted_at_us], _TS),
                "GitSha": [promotion.git_sha],
                "GitDirty": [promotion.git_dirty],
                "PromotedBy": [promotion.promoted_by],
                "Note": [promotion.note],
            }
        ),
    )
    return promotion, previous


def _who() -> str:
    # In GitHub Actions the actor is who pushed; elsewhere the local user.
    actor = os.environ.get("GITHUB_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def _promotion(row: dict[str, Any]) -> Promotion:
    return Promotion(
        suite=row["Suite"],
        run_id=row["RunId"],
        promoted_at_us=int(row["PromotedUs"]),
        git_sha=row["GitSha"],
        git_dirty=bool(row["GitDirty"]),
        promoted_by=row["PromotedBy"],
        note=row["Note"],
    )


# -- git refs ---------------------------------------------------------------------


def git_commit(ref: str, cwd: Path | None = None) -> str | None:
    """The full SHA of the commit ``ref`` names in the repository at ``cwd``, or None
    (not a repository, no such ref, or git not installed)."""
    if not ref or ref.startswith("-"):
        # Never let a value be read as an option of git.
        return None
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


def run_at_commit(store: Store, suite: str, sha: str, ref: str) -> Baseline:
    """The newest finished run of ``suite`` at commit ``sha`` (which ``ref`` named),
    preferring runs from a clean working tree."""
    found = runs_at_commit(store, suite, sha)
    finished = [s.run for s in found if s.run.status == FINISHED]
    where = f"commit {sha[:12]}" + (f" ({ref})" if not sha.startswith(ref.lower()) else "")
    if not finished:
        unfinished = ", ".join(f"{s.run.run_id} ({s.run.status})" for s in found[:5])
        detail = f"; runs there that did not finish: {unfinished}" if unfinished else ""
        raise ConfigError(
            f"no finished run of suite {suite} at {where} in {store.location}{detail}"
        )
    clean = [r for r in finished if not r.git_dirty]
    chosen = clean[0] if clean else finished[0]
    notes: list[str] = []
    if not clean:
        notes.append(
            f"baseline {chosen.run_id} was run with uncommitted changes on top of {where}: "
            "no run of that commit from a clean working tree is stored"
        )
    return Baseline(load_run(store, chosen.run_id), f"run {chosen.run_id} at {where}", notes)


# -- --baseline -------------------------------------------------------------------


def resolve_baseline(
    store: Store,
    spec: str,
    suite: str | None,
    *,
    cwd: Path | None = None,
    flag: str = "--baseline",
) -> Baseline:
    """The run ``spec`` names: a run id, ``latest``, ``promoted`` or a git ref.

    ``suite`` is the candidate's: ``promoted`` and git refs pick among its runs, and
    ``latest`` is its latest run (any suite's when None). A value that is both a
    stored run id and a git ref is the run; write ``git:REF`` for the ref. ``flag`` names
    the argument in messages.
    """
    if spec == LATEST:
        run = latest_run(store, suite)
        return Baseline(run, f"latest run {run.run_id}")
    if spec == PROMOTED:
        if suite is None:
            raise ConfigError(f"{flag} promoted: name the suite with --suite")
        promotion, run = _promoted(store, suite)
        by = f" by {promotion.promoted_by}" if promotion.promoted_by else ""
        source = f"run {run.run_id}, the promoted baseline of suite {suite} ({promotion.when}{by})"
        return Baseline(run, source)
    if spec.startswith(GIT_PREFIX):
        ref = spec[len(GIT_PREFIX) :]
        sha = git_commit(ref, cwd)
        if sha is None:
            folder = (cwd or Path.cwd()).resolve()
            raise ConfigError(
                f"{flag} {spec}: {ref!r} names no commit in the git repository at "
                f"{folder} (a shallow clone may lack it: fetch with fetch-depth: 0)"
            )
        return _at_commit(store, suite, sha, ref, f"{flag} {spec}")
    if run_exists(store, spec):
        return Baseline(load_run(store, spec), f"run {spec}")
    sha = git_commit(spec, cwd)
    if sha is not None:
        return _at_commit(store, suite, sha, spec, f"{flag} {spec}")
    raise ConfigError(
        f"{flag} {spec}: no run {spec!r} in {store.location}, and not a git ref here; "
        "give a run id (`tracescore runs`), `latest`, `promoted` or git:REF"
    )


def _at_commit(store: Store, suite: str | None, sha: str, ref: str, given: str) -> Baseline:
    if suite is None:
        raise ConfigError(f"{given}: name the suite with --suite")
    return run_at_commit(store, suite, sha, ref)
