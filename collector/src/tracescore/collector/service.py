"""The long-running collector: OTLP/gRPC + OTLP/HTTP in, spool, store, and a query port.

Start-up opens the store and applies migrations, recovers the spool (requests
acknowledged before a crash are loaded first), then opens the listeners.
Shutdown runs in the reverse order: listeners stop accepting and finish the
requests in flight, the pipeline loads everything accepted, the store closes.
"""

import logging
import signal
import threading
import time
from types import FrameType

from tracescore.collector.config import CollectorConfig
from tracescore.collector.grpc_receiver import GrpcReceiver
from tracescore.collector.http_receiver import HttpOptions, HttpReceiver
from tracescore.collector.metrics import CollectorMetrics
from tracescore.collector.otlp_checks import Limits
from tracescore.collector.pipeline import (
    IngestPipeline,
    PipelineSettings,
    Signal,
    default_spool_dir,
)
from tracescore.collector.server_thread import ServerThread
from tracescore.collector.store import open_store
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.errors import ConfigError

log = logging.getLogger("tracescore.collector")


class Collector:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.metrics = CollectorMetrics()
        self.token = config.auth.token() if config.auth is not None else None
        if config.auth is not None and self.token is None:
            raise ConfigError(
                f"auth is configured but ${config.auth.token_env} is not set (and no token_file)"
            )
        self.store = open_store(config.store)
        self._started = False
        self._closed = False
        self._stopped = threading.Event()
        self.http: HttpReceiver | None = None
        self.grpc: GrpcReceiver | None = None
        self.query: ServerThread | None = None
        try:
            self.store.migrate()
            spool = config.spool
            limits = config.limits
            self.pipeline = IngestPipeline(
                self.store,
                PipelineSettings(
                    spool_dir=spool.dir or default_spool_dir(self.store),
                    max_spool_bytes=spool.max_bytes,
                    fsync=spool.fsync,
                    flush_interval_s=spool.flush_interval_s,
                    batch_bytes=spool.batch_bytes,
                    engine_min_spans=spool.engine_min_spans,
                    limits=Limits(
                        max_items_per_request=limits.max_items_per_request,
                        max_attribute_value_length=limits.max_attribute_value_length,
                    ),
                ),
                metrics=self.metrics,
            )
        except BaseException:
            self.store.close()
            raise

    def start(self) -> "Collector":
        config = self.config
        tls_cert = str(config.tls.cert_file) if config.tls else None
        tls_key = str(config.tls.key_file) if config.tls else None
        try:
            if config.grpc.enabled:
                self.grpc = GrpcReceiver(
                    self.pipeline,
                    host=config.grpc.host,
                    port=config.grpc.port,
                    max_message_bytes=config.limits.max_decompressed_bytes,
                    max_concurrent_rpcs=config.limits.max_concurrent_requests,
                    auth_token=self.token,
                    tls_cert=tls_cert,
                    tls_key=tls_key,
                ).start()
            if config.http.enabled:
                self.http = HttpReceiver(
                    self.pipeline,
                    host=config.http.host,
                    port=config.http.port,
                    options=HttpOptions(
                        max_body_bytes=config.limits.max_request_bytes,
                        max_decompressed_bytes=config.limits.max_decompressed_bytes,
                        max_concurrent_requests=config.limits.max_concurrent_requests,
                        auth_token=self.token,
                    ),
                    tls_cert=tls_cert,
                    tls_key=tls_key,
                ).start()
            if config.query.enabled and isinstance(self.store, ChdbStore):
                from tracescore.collector.query_server import QueryServer

                self.query = QueryServer(
                    self.store,
                    host=config.query.host,
                    port=config.query.port,
                    auth_token=self.token,
                ).start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        log.info(
            "started grpc=%s http=%s query=%s store=%s spool=%s",
            self.grpc.endpoint if self.grpc else "off",
            self.http.endpoint if self.http else "off",
            self.query.endpoint if self.query else "off",
            self.store.location,
            self.pipeline.settings.spool_dir,
        )
        return self

    def stats_line(self) -> str:
        m = self.metrics
        parts = []
        for sig in Signal:
            received = sum(
                m.value("tracescore_collector_received_items_total", signal=sig.value, protocol=p)
                for p in ("grpc", "http/protobuf", "http/json")
            )
            rejected = sum(
                m.value("tracescore_collector_rejected_items_total", signal=sig.value, reason=r)
                for r in ("invalid", "backpressure")
            )
            written = m.value("tracescore_collector_written_items_total", signal=sig.value)
            queued = m.value("tracescore_collector_queue_items", signal=sig.value)
            parts.append(
                f"{sig.value}.received={received:.0f} {sig.value}.written={written:.0f} "
                f"{sig.value}.rejected={rejected:.0f} {sig.value}.queued={queued:.0f}"
            )
        return "stats " + " ".join(parts)

    def handle_signals(self) -> None:
        """SIGINT/SIGTERM end ``serve_forever`` gracefully; install before ``start``."""

        def on_signal(signum: int, _: FrameType | None) -> None:
            if not self._stopped.is_set():
                log.info("received %s; shutting down", signal.Signals(signum).name)
            self._stopped.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def serve_forever(self) -> None:
        """Run until stopped (see ``handle_signals``), then shut down gracefully."""
        interval = self.config.stats_interval_s
        last = time.monotonic()
        while not self._stopped.wait(0.5):
            if interval and time.monotonic() - last >= interval:
                log.info(self.stats_line())
                last = time.monotonic()
        self.stop()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Listeners first, so nothing new is accepted while the pipeline drains.
        if self.grpc is not None:
            self.grpc.stop()
            self.grpc = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.pipeline.close()
        query = self.query
        if query is not None:
            query.stop()
            self.query = None
        if self._started:
            log.info("stopped; %s", self.stats_line())
            self._started = False
        self.store.close()

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
