"""``tracescore watch``: sealed traces scored exactly once across restarts, one re-score per
late span, sampling, ``when`` filters and the lag metric, over spans sent with the OTel
SDK through the collector's HTTP receiver into a chDB store.

The quiet period is 0.2 s; tests wait it out once and call ``poll`` themselves."""

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, set_span_in_context

from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store import Store
from tracescore.scoring.cli import main
from tracescore.scoring.scoring_config import scoring_config_from
from tracescore.scoring.watch import Watcher, sampled
from tracescore.scoring.watch_metrics import MetricsServer, WatchMetrics

QUIET_S = 0.2


class Sender:
    """Sends agent-like traces (a root and children) per variant through the receiver."""

    def __init__(self, pipeline: IngestPipeline, endpoint: str) -> None:
        self.pipeline = pipeline
        self.endpoint = endpoint
        self.providers: dict[str, TracerProvider] = {}
        self.roots: dict[str, Span] = {}

    def _tracer(self, variant: str, service: str) -> Any:
        key = f"{variant}/{service}"
        if key not in self.providers:
            provider = TracerProvider(
                resource=Resource.create({"service.name": service, "tracescore.variant": variant})
            )
            provider.add_span_processor(
                SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{self.endpoint}/v1/traces"))
            )
            self.providers[key] = provider
        return self.providers[key].get_tracer("test")

    def trace(
        self, variant: str = "a", *, children: int = 1, error: bool = False, service: str = "agent"
    ) -> str:
        tracer = self._tracer(variant, service)
        with tracer.start_as_current_span("invoke_agent") as root:
            for i in range(children):
                with tracer.start_as_current_span(f"execute_tool t{i}") as child:
                    if error and i == 0:
                        child.set_status(Status(StatusCode.ERROR, "tool failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        self.roots[trace_id] = root
        return trace_id

    def late_span(self, trace_id: str, variant: str = "a") -> None:
        tracer = self._tracer(variant, "agent")
        with tracer.start_as_current_span(
            "feedback", context=set_span_in_context(self.roots[trace_id])
        ):
            pass

    def land(self) -> None:
        """Every span sent is in the store, and the quiet period has passed."""
        assert self.pipeline.flush()
        time.sleep(QUIET_S * 1.5)

    def close(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()


@pytest.fixture
def sender(pipeline: IngestPipeline) -> Iterator[Sender]:
    with HttpReceiver(pipeline) as receiver:
        sending = Sender(pipeline, receiver.endpoint)
        yield sending
        sending.close()


def _config(name: str = "prod", **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": name,
        "evaluators": [
            {"type": "span_count", "params": {"min": 1}},
            {"type": "no_error_spans"},
        ],
        "watch": {"quiet_period_s": QUIET_S, "poll_interval_s": 0.05},
    }
    config.update(overrides)
    return config


def _watcher(store: Store, config: dict[str, Any], **kwargs: Any) -> Watcher:
    return Watcher(store, scoring_config_from(config), **kwargs)


def _score_rows(store: Store, run_id: str = "watch:prod") -> list[dict[str, Any]]:
    """Every row written, not merged: a duplicate would show."""
    return store.query(
        "SELECT TraceId, Evaluator, Value, Passed, Variant, CaseId "
        f"FROM {store.db}.tracescore_scores "
        "WHERE RunId = {run:String} ORDER BY TraceId, Evaluator, Timestamp",
        {"run": run_id},
    )


def _counts(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["TraceId"], row["Evaluator"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_restart_neither_skips_nor_repeats_and_a_late_span_rescores_once(
    store: Store, sender: Sender
) -> None:
    first = [sender.trace("a" if i % 2 else "b", children=1) for i in range(5)]
    sender.land()

    # A watcher that handles only part of the backlog, then goes away (a restart).
    partial = _watcher(store, _config(batch_size=2), max_per_poll=3)
    result = partial.poll()
    assert (result.due, result.scored, result.rescored) == (3, 3, 0)
    handled_first = result.scored_ids
    del partial

    second = [sender.trace("a") for _ in range(2)]
    sender.land()
    resumed = _watcher(store, _config(batch_size=2))
    result = resumed.poll()
    assert (result.scored, result.rescored) == (4, 0)
    assert sorted(result.scored_ids) == sorted(set(first + second) - set(handled_first))
    assert resumed.poll().due == 0

    # Yet another process: nothing left, nothing repeated.
    assert _watcher(store, _config()).poll().due == 0
    rows = _score_rows(store)
    expected = {(t, e) for t in first + second for e in ("span_count", "no_error_spans")}
    assert _counts(rows) == dict.fromkeys(expected, 1)
    assert {r["CaseId"] for r in rows} == {""}
    variants = {r["TraceId"]: r["Variant"] for r in rows}
    assert [variants[t] for t in first] == ["b", "a", "b", "a", "b"]
    assert {r["Value"] for r in rows if r["Evaluator"] == "span_count"} == {2.0}

    # A late span after scoring: exactly one re-score, which sees it, even across a restart.
    late = first[0]
    sender.late_span(late, variant="b")
    sender.land()
    result = _watcher(store, _config()).poll()
    assert (result.due, result.scored, result.rescored) == (1, 0, 1)
    assert result.scored_ids == [late]
    again = _watcher(store, _config())
    assert again.poll().due == 0
    rows = _score_rows(store)
    counts = _counts(rows)
    assert counts[(late, "span_count")] == 2 and counts[(late, "no_error_spans")] == 2
    assert all(n == 1 for key, n in counts.items() if key[0] != late)
    latest = store.query(
        f"SELECT Value FROM {store.db}.tracescore_scores FINAL "
        "WHERE TraceId = {t:String} AND Evaluator = 'span_count'",
        {"t": late},
    )
    assert latest == [{"Value": 3.0}]
    state = store.query(
        f"SELECT SpanCount FROM {store.db}.tracescore_watch_state FINAL "
        "WHERE Watcher = 'watch:prod' AND TraceId = {t:String}",
        {"t": late},
    )
    assert state == [{"SpanCount": 3}]


def test_unsealed_traces_wait_and_a_stopped_poll_keeps_its_watermark(
    store: Store, sender: Sender
) -> None:
    config = _config(watch={"quiet_period_s": 30, "poll_interval_s": 0.05})
    trace_id = sender.trace()
    assert sender.pipeline.flush()
    waiting = _watcher(store, config)
    # Spans arrived well within the 30 s quiet period: not sealed yet.
    assert waiting.poll().due == 0
    assert _score_rows(store) == []

    sender.land()
    watcher = _watcher(store, _config())
    before = watcher.watermark_ms
    assert before is not None  # the first watcher's poll checkpointed (nothing due)
    watcher.stop()
    stopped = watcher.poll()
    assert stopped.due == 1 and not stopped.complete and stopped.scored == 0
    assert watcher.watermark_ms == before
    assert _watcher(store, _config()).watermark_ms == before
    result = _watcher(store, _config()).poll()
    assert result.scored_ids == [trace_id]


def test_run_stops_cleanly_when_asked(store: Store, sender: Sender) -> None:
    trace_id = sender.trace()
    sender.land()
    watcher = _watcher(store, _config())
    thread = threading.Thread(target=watcher.run)
    thread.start()
    deadline = time.monotonic() + 30
    while not _score_rows(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert {r["TraceId"] for r in _score_rows(store)} == {trace_id}
    assert watcher.metrics.value("tracescore_watch_polls_total") >= 1


def test_sampling_is_deterministic_by_trace_id(store: Store, sender: Sender) -> None:
    traces = [sender.trace() for _ in range(16)]
    sender.land()
    config = _config(
        sample=0.5,
        evaluators=[
            {"type": "span_count", "params": {"min": 1}},
            {"type": "no_error_spans", "sample": 0.5},
        ],
    )
    result = _watcher(store, config).poll()
    # The config's sample is the one `rescore` takes, by cityHash64 of the trace id.
    kept = {
        r["TraceId"]
        for r in store.query(
            "SELECT arrayJoin({ids:Array(String)}) AS TraceId WHERE cityHash64(TraceId) % 10000 "
            "< 5000",
            {"ids": traces},
        )
    }
    assert 0 < len(kept) < len(traces)  # 16 random ids: both outcomes, all but surely
    assert set(result.scored_ids) == kept
    assert result.skipped == len(traces) - len(kept)
    rows = _score_rows(store)
    assert {r["TraceId"] for r in rows if r["Evaluator"] == "span_count"} == kept
    assert {r["TraceId"] for r in rows if r["Evaluator"] == "no_error_spans"} == {
        t for t in kept if sampled("no_error_spans", t, 0.5)
    }
    # Another watcher (another name, another process) picks the very same traces.
    again = _watcher(store, {**config, "name": "other"}).poll()
    assert set(again.scored_ids) == kept
    # Skipped traces are handled too: no second look on the next poll.
    assert _watcher(store, config).poll().due == 0


def test_when_filter_service_and_variant(store: Store, sender: Sender) -> None:
    failing = [sender.trace("a", error=True), sender.trace("b", error=True)]
    fine = [sender.trace("a"), sender.trace("b")]
    elsewhere = sender.trace("a", service="billing")
    sender.land()
    config = _config(
        service="agent",
        evaluators=[
            {"type": "span_count", "params": {"min": 1}},
            {"type": "no_error_spans", "name": "errors_judged", "when": "span.status = error"},
        ],
    )
    result = _watcher(store, config).poll()
    assert set(result.scored_ids) == set(failing + fine)
    assert result.skipped == 1
    rows = _score_rows(store)
    assert {r["TraceId"] for r in rows if r["Evaluator"] == "span_count"} == set(failing + fine)
    judged = [r for r in rows if r["Evaluator"] == "errors_judged"]
    assert sorted(r["TraceId"] for r in judged) == sorted(failing)
    assert all(r["Passed"] is False for r in judged)
    assert elsewhere not in {r["TraceId"] for r in rows}
    assert {r["TraceId"]: r["Variant"] for r in judged} == dict(
        zip(failing, ["a", "b"], strict=True)
    )


def test_lag_metric_follows_the_checkpoint(store: Store, sender: Sender) -> None:
    metrics = WatchMetrics()
    fresh = _watcher(store, _config(), metrics=metrics)
    assert math.isnan(metrics.value("tracescore_watch_lag_seconds"))
    sender.trace()
    sender.land()
    fresh.poll()
    watermark_ms = store.query(
        f"SELECT toUnixTimestamp64Milli(max(Watermark)) AS Ms "
        f"FROM {store.db}.tracescore_watch_checkpoints WHERE Watcher = 'watch:prod'"
    )[0]["Ms"]
    assert fresh.watermark_ms == watermark_ms
    now_ms = store.query("SELECT toUnixTimestamp64Milli(now64(3, 'UTC')) AS Ms")[0]["Ms"]
    lag = metrics.value("tracescore_watch_lag_seconds")
    expected = (now_ms - watermark_ms) / 1000 - QUIET_S
    assert abs(lag - expected) < 0.5
    assert metrics.value("tracescore_watch_watermark_seconds") == watermark_ms / 1000
    assert metrics.value("tracescore_watch_traces_total", outcome="scored") == 1
    assert metrics.value("tracescore_watch_scores_total") == 2

    # No polls for a while: the lag grows, for this watcher and for a restarted one.
    time.sleep(0.4)
    later = metrics.value("tracescore_watch_lag_seconds")
    assert later >= lag + 0.35
    restarted = WatchMetrics()
    _watcher(store, _config(), metrics=restarted)
    assert restarted.value("tracescore_watch_lag_seconds") >= later

    server = MetricsServer(metrics, 0, host="127.0.0.1")
    try:
        page = httpx2.get(f"http://127.0.0.1:{server.port}/metrics").text
    finally:
        server.close()
    assert "tracescore_watch_lag_seconds " in page
    assert 'tracescore_watch_traces_total{outcome="scored"} 1.0' in page


def test_cli_watch_once(
    store: Store, sender: Sender, chdb_path: Path, tmp_path: Path, capsys: Any
) -> None:
    trace_id = sender.trace()
    sender.land()
    config = tmp_path / "scoring.yaml"
    config.write_text(
        "name: cli\n"
        "evaluators:\n"
        "  - type: span_count\n"
        "    params: {min: 1}\n"
        f"watch: {{quiet_period_s: {QUIET_S}}}\n"
    )
    url = f"chdb:{chdb_path}?database={store.database}"
    assert main(["watch", "--config", str(config), "--store", url, "--once"]) == 0
    assert [r["TraceId"] for r in _score_rows(store, "watch:cli")] == [trace_id]
    assert "1 scored" in capsys.readouterr().out
    assert main(["watch", "--config", str(config), "--store", url, "--once"]) == 0
    assert len(_score_rows(store, "watch:cli")) == 1
