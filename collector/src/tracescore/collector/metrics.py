"""The collector's own counters, exposed in the Prometheus text format on ``/metrics``.

Each collector gets its own registry, so several can run in one process (tests).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "tracescore_collector_received_items",
            "Spans or log records received, valid or not",
            ["signal", "protocol"],
            registry=r,
        )
        self.accepted = Counter(
            "tracescore_collector_accepted_items",
            "Spans or log records durably spooled and acknowledged",
            ["signal", "protocol"],
            registry=r,
        )
        self.written = Counter(
            "tracescore_collector_written_items",
            "Spans or log records written to the store",
            ["signal"],
            registry=r,
        )
        self.rejected = Counter(
            "tracescore_collector_rejected_items",
            "Spans or log records refused (invalid, or backpressure when the spool is full)",
            ["signal", "reason"],
            registry=r,
        )
        self.requests = Counter(
            "tracescore_collector_requests",
            "Export requests by outcome",
            ["signal", "protocol", "outcome"],
            registry=r,
        )
        self.truncated = Counter(
            "tracescore_collector_truncated_values",
            "Attribute values cut to the configured maximum length",
            ["signal"],
            registry=r,
        )
        self.queue_bytes = Gauge(
            "tracescore_collector_queue_bytes",
            "Bytes accepted but not yet written to the store (the spool backlog)",
            ["signal"],
            registry=r,
        )
        self.queue_items = Gauge(
            "tracescore_collector_queue_items",
            "Spans or log records accepted but not yet written to the store",
            ["signal"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "tracescore_collector_load_seconds",
            "Time to write one batch from the spool to the store",
            ["signal"],
            registry=r,
        )
        self.load_failures = Counter(
            "tracescore_collector_load_failures",
            "Batches the store refused (retried)",
            registry=r,
        )
        self.quarantined = Counter(
            "tracescore_collector_quarantined_segments",
            "Spool segments set aside after repeated load failures (kept on disk)",
            registry=r,
        )
        self.request_seconds = Histogram(
            "tracescore_collector_request_seconds",
            "Time from receiving an export request to answering it",
            ["protocol"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 if absent); for logs and tests."""
        found = self.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0
