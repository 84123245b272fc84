"""``tracescore watch``'s Prometheus metrics: lag, traces scored and re-scored, polls.

Each watcher gets its own registry, so several can run in one process (tests).
"""

import math
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server


class WatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._lag_source: Callable[[], float] = lambda: math.nan
        self.lag = Gauge(
            "tracescore_watch_lag_seconds",
            "How far scoring is behind: now - quiet_period - watermark, where the watermark "
            "is the arrival time up to which every sealed trace has been handled (0 to about "
            "poll_interval when keeping up; NaN before the first checkpoint)",
            registry=r,
        )
        self.lag.set_function(lambda: self._lag_source())
        self.watermark = Gauge(
            "tracescore_watch_watermark_seconds",
            "Arrival time (Unix seconds, store clock) up to which every sealed trace was handled",
            registry=r,
        )
        self.traces = Counter(
            "tracescore_watch_traces",
            "Sealed traces handled, by outcome: scored (first time), rescored (late spans), "
            "skipped (sampled out or not matching service/where), late_ignored (spans "
            "after the late-span window)",
            ["outcome"],
            registry=r,
        )
        self.scores = Counter(
            "tracescore_watch_scores", "Scores written (one per trace and evaluator)", registry=r
        )
        self.polls = Counter("tracescore_watch_polls", "Poll cycles completed", registry=r)

    def set_lag_source(self, source: Callable[[], float]) -> None:
        """Lag is computed when scraped, so it keeps growing while polls stall."""
        self._lag_source = source

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 if absent); for logs and tests."""
        found = self.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0


class MetricsServer:
    """``/metrics`` over HTTP on a port of its own, in a daemon thread."""

    def __init__(self, metrics: WatchMetrics, port: int, host: str = "0.0.0.0") -> None:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port = int(server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
