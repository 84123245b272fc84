"""``tracescore watch`` stopped by a real signal, in a subprocess: SIGTERM or Ctrl-C while
idle or in the middle of a backlog exits 0 promptly, and the store keeps what it needs for
the next start to neither skip nor repeat a trace.

chDB locks a data path to one process, so this test never opens the watcher's store
itself: short-lived helper processes populate it (bench/score.py's 10-span agent traces)
and read it back between the CLI's runs.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATABASE = "watchsig"
EVALUATORS = ("no_error_spans", "span_count")
EXIT_WAIT_S = 30.0
"""Longer than any batch takes, far shorter than the idle tests' poll interval."""

_POPULATE = """
import sys
sys.path.insert(0, sys.argv[1])
from bench.score import populate
from tracescore.collector.store.chdb_store import ChdbStore
store = ChdbStore(sys.argv[2], database=sys.argv[3])
store.migrate()
populate(store, int(sys.argv[4]))
store.close()
"""

_QUERY = """
import json, sys
from tracescore.collector.store.chdb_store import ChdbStore
store = ChdbStore(sys.argv[1], database=sys.argv[2])
print(json.dumps([store.query(sql) for sql in sys.argv[3:]], default=str))
store.close()
"""

_WATCH = (sys.executable, "-m", "tracescore.scoring", "watch")
_POLL_LOG = re.compile(r"poll: (\d+) due, (\d+) scored, (\d+) re-scored, .*")
_ONCE_OUT = re.compile(r"watch:\S+: (\d+) due, (\d+) scored, (\d+) re-scored")


def _trace_id(n: int) -> str:
    # bench/score.py's generate() numbers traces from 1.
    return f"{n + 1:032x}"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TRACESCORE_STORE"}


def _succeeds(command: list[str], cwd: Path) -> str:
    """The stdout of a command that must exit 0 (its stderr is the failure message)."""
    done = subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _helper(script: str, *args: str) -> str:
    return _succeeds([sys.executable, "-c", script, *args], REPO)


@dataclass
class SubprocessStore:
    path: Path
    tmp: Path

    @property
    def url(self) -> str:
        return f"chdb:{self.path}?database={DATABASE}"

    def populate(self, traces: int) -> None:
        _helper(_POPULATE, str(REPO), str(self.path), DATABASE, str(traces))

    def query(self, *sqls: str) -> list[list[dict[str, object]]]:
        results: list[list[dict[str, object]]] = json.loads(
            _helper(_QUERY, str(self.path), DATABASE, *sqls)
        )
        return results

    def config(
        self, name: str, *, batch_size: int, poll_interval_s: float, workers: int = 2
    ) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(
            f"name: {name}\n"
            f"batch_size: {batch_size}\n"
            f"workers: {workers}\n"
            "evaluators:\n"
            "  - type: no_error_spans\n"
            "  - type: span_count\n"
            "    params: {min: 10, max: 10}\n"
            "watch:\n"
            "  quiet_period_s: 0.2\n"
            f"  poll_interval_s: {poll_interval_s}\n",
            encoding="utf-8",
        )
        return path

    def once(self, config: Path) -> tuple[int, int, int]:
        """One ``watch --once``: (due, scored, re-scored)."""
        out = _succeeds([*_WATCH, "--once", "--config", str(config), "--store", self.url], self.tmp)
        found = _ONCE_OUT.search(out)
        assert found, out
        due, scored, rescored = (int(g) for g in found.groups())
        return due, scored, rescored


@pytest.fixture
def chdb_store(tmp_path: Path) -> SubprocessStore:
    # Not the shared `chdb_path` fixture: this test process holds that path open.
    return SubprocessStore(tmp_path / "chdb", tmp_path)


class Watching:
    """``tracescore watch`` running in its own session (so a Ctrl-C is sent to its group,
    as a terminal would, and never reaches pytest)."""

    def __init__(self, store: SubprocessStore, config: Path, *extra: str) -> None:
        self.out = store.tmp / f"{config.stem}.stdout"
        self.err = store.tmp / f"{config.stem}.stderr"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*_WATCH, "--config", str(config), "--store", store.url, *extra],
                cwd=store.tmp,
                env=_env(),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def polls(self) -> list[re.Match[str]]:
        return list(_POLL_LOG.finditer(self.stderr()))

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(
                    f"watch exited ({self.proc.returncode}) before {what}:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout:g}s:\n{self.stderr()}")
            time.sleep(0.05)

    def started(self) -> None:
        # Printed after the signal handlers are installed: a signal before it is not ours.
        self.wait_for("start", lambda: "Ctrl-C stops" in self.stdout())

    def send(self, signum: int) -> None:
        if signum == signal.SIGINT:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def exit_code(self) -> int:
        try:
            return self.proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"watch still running {EXIT_WAIT_S:g}s after the signal:\n{self.stderr()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watching() -> Iterator[Callable[..., Watching]]:
    started: list[Watching] = []

    def start(store: SubprocessStore, config: Path, *extra: str) -> Watching:
        started.append(Watching(store, config, *extra))
        return started[-1]

    yield start
    for watch in started:
        watch.kill()


def _scored_so_far(port: str) -> float:
    """Traces the running watcher has scored and stored, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        text = response.read().decode()
    found = re.search(r'^tracescore_watch_traces_total\{outcome="scored"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _mid_backlog(
    store: SubprocessStore,
    watching: Callable[..., Watching],
    name: str,
    traces: int,
    batch: int,
    workers: int = 2,
) -> tuple[Watching, Path]:
    """A watcher started on ``traces`` stored traces, once its first batch is stored."""
    store.populate(traces)
    config = store.config(name, batch_size=batch, poll_interval_s=600, workers=workers)
    watch = watching(store, config, "--metrics-port", "0")
    watch.started()
    port = re.search(r"metrics on :(\d+)", watch.stdout())
    assert port, watch.stdout()
    watch.wait_for("the first scored batch", lambda: _scored_so_far(port.group(1)) > 0)
    return watch, config


def _assert_clean_exit(watch: Watching, code: int) -> None:
    err = watch.stderr()
    assert code == 0, err
    assert "Traceback" not in err and "interrupted" not in err, err


def _scores_per_pair(
    store: SubprocessStore, name: str
) -> tuple[dict[tuple[str, str], int], int, int]:
    """Raw score rows per (trace, evaluator), not merged, so a duplicate shows; with the
    watcher's state rows and checkpoints."""
    scores, state, checkpoints = store.query(
        "SELECT TraceId, toString(Evaluator) AS Evaluator, count() AS N "
        f"FROM {DATABASE}.tracescore_scores WHERE RunId = 'watch:{name}' "
        "GROUP BY TraceId, Evaluator",
        f"SELECT count() AS N FROM {DATABASE}.tracescore_watch_state "
        f"WHERE Watcher = 'watch:{name}'",
        f"SELECT count() AS N FROM {DATABASE}.tracescore_watch_checkpoints "
        f"WHERE Watcher = 'watch:{name}'",
    )
    pairs = {(str(r["TraceId"]), str(r["Evaluator"])): int(str(r["N"])) for r in scores}
    return pairs, int(str(state[0]["N"])), int(str(checkpoints[0]["N"]))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_idle_exits_0_and_keeps_the_checkpoint(
    chdb_store: SubprocessStore, watching: Callable[..., Watching], signum: int
) -> None:
    traces = 30
    chdb_store.populate(traces)
    name = f"idle-{signal.Signals(signum).name.lower()}"
    # A poll interval far beyond EXIT_WAIT_S: exiting in time means the signal cut the
    # wait between polls short.
    config = chdb_store.config(name, batch_size=7, poll_interval_s=600)
    watch = watching(chdb_store, config)
    watch.started()
    watch.wait_for("a first poll", lambda: bool(watch.polls()))
    first = watch.polls()[0]
    assert first.groups() == (str(traces), str(traces), "0"), first.group(0)

    watch.send(signum)
    _assert_clean_exit(watch, watch.exit_code())

    # The next start resumes from the checkpoint: nothing due, nothing scored again.
    assert chdb_store.once(config) == (0, 0, 0)
    pairs, state_rows, checkpoints = _scores_per_pair(chdb_store, name)
    expected = {(_trace_id(n), e) for n in range(traces) for e in EVALUATORS}
    assert pairs == dict.fromkeys(expected, 1)
    assert state_rows == traces
    assert checkpoints >= 1


def test_sigterm_during_a_backlog_finishes_the_batch_and_the_next_start_scores_the_rest(
    chdb_store: SubprocessStore, watching: Callable[..., Watching]
) -> None:
    traces, batch, name = 4_000, 100, "backlog"  # one poll of 40 batches takes seconds
    watch, config = _mid_backlog(chdb_store, watching, name, traces, batch)
    assert not watch.polls(), watch.stderr()
    watch.send(signal.SIGTERM)
    _assert_clean_exit(watch, watch.exit_code())

    polls = watch.polls()
    assert len(polls) == 1, watch.stderr()
    assert polls[0].group(0).endswith("(stopped before the end)"), polls[0].group(0)
    due, scored, rescored = (int(g) for g in polls[0].groups()[:3])
    assert due == traces and rescored == 0
    # Stopped between batches: every batch begun was finished and stored.
    assert 0 < scored < traces and scored % batch == 0, polls[0].group(0)

    # A restart picks up exactly what the stopped poll left: none skipped, none repeated.
    assert chdb_store.once(config) == (traces - scored, traces - scored, 0)
    assert chdb_store.once(config) == (0, 0, 0)
    pairs, state_rows, _ = _scores_per_pair(chdb_store, name)
    expected = {(_trace_id(n), e) for n in range(traces) for e in EVALUATORS}
    assert len(pairs) == traces * len(EVALUATORS)
    assert pairs == dict.fromkeys(expected, 1)
    assert state_rows == traces


def test_a_second_ctrl_c_quits_without_waiting_for_the_batch(
    chdb_store: SubprocessStore, watching: Callable[..., Watching]
) -> None:
    # One process scoring batches one after another, each about a second: the second
    # Ctrl-C lands in the second one. (Two workers would score two batches at once, and
    # the second could be stored before the signal.)
    traces, batch, name = 6_000, 2_000, "twice"
    watch, config = _mid_backlog(chdb_store, watching, name, traces, batch, workers=1)
    watch.send(signal.SIGINT)
    time.sleep(0.1)
    watch.send(signal.SIGINT)
    assert watch.exit_code() == 130, watch.stderr()
    err = watch.stderr()
    assert "interrupted; scored batches were stored; the next start resumes" in err, err
    assert not watch.polls(), err  # the poll never reached its end

    # Whatever the interrupted batch had written is scored again (and replaces), nothing
    # is lost: every pair has a score once the table is merged.
    due, scored, rescored = chdb_store.once(config)
    assert due == scored and 0 < scored <= traces - batch and rescored == 0
    pairs, state_rows, _ = _scores_per_pair(chdb_store, name)
    expected = {(_trace_id(n), e) for n in range(traces) for e in EVALUATORS}
    assert set(pairs) == expected
    [[merged]] = chdb_store.query(
        "SELECT count() AS N, uniqExact(TraceId, Evaluator) AS U "
        f"FROM {DATABASE}.tracescore_scores FINAL WHERE RunId = 'watch:{name}'"
    )
    assert int(str(merged["N"])) == int(str(merged["U"])) == traces * len(EVALUATORS)
    assert state_rows >= traces
