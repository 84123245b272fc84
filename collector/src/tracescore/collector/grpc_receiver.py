"""OTLP/gRPC receiver (grpcio): ``TraceService/Export`` and ``LogsService/Export``.

Requests arrive as raw bytes (no deserializer), so each is parsed exactly once,
by the pipeline's checks. grpc core handles gzip and enforces the message size
limit on the decompressed message. Errors use the codes the OTLP spec names:
INVALID_ARGUMENT for bad data (not retried), UNAVAILABLE when the spool is full
(retried by exporters, with a RetryInfo delay), UNAUTHENTICATED for a missing
or wrong bearer token.
"""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from tracescore.collector.auth import bearer_ok
from tracescore.collector.pipeline import IngestPipeline, OverloadedError, Signal, export_response
from tracescore.schemas.errors import ConfigError, OtlpDecodeError, StoreError

log = logging.getLogger(__name__)

_TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def _identity(data: bytes) -> bytes:
    return data


class GrpcReceiver:
    def __init__(
        self,
        pipeline: IngestPipeline,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_message_bytes: int = 64 * 1024 * 1024,
        max_workers: int = 16,
        max_concurrent_rpcs: int = 64,
        auth_token: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._auth_token = auth_token
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="otlp-grpc"),
            # Beyond this many RPCs in flight grpc answers RESOURCE_EXHAUSTED itself,
            # which bounds the memory held by requests waiting for a worker.
            maximum_concurrent_rpcs=max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        handlers = {
            _TRACE_METHOD: self._handler(Signal.TRACES),
            _LOGS_METHOD: self._handler(Signal.LOGS),
        }
        self._server.add_generic_rpc_handlers((_Router(handlers),))
        address = f"{host}:{port}"
        _check_bindable(host, port)
        try:
            if tls_cert is not None:
                if tls_key is None:
                    raise ConfigError("gRPC TLS needs both a certificate and a key file")
                credentials = grpc.ssl_server_credentials(
                    [(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())]
                )
                self.port = self._server.add_secure_port(address, credentials)
            else:
                self.port = self._server.add_insecure_port(address)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"OTLP/gRPC receiver: cannot listen on {address}: {exc}") from exc
        if self.port == 0:
            raise ConfigError(f"OTLP/gRPC receiver: cannot listen on {address}")
        self.host = host
        self.tls = tls_cert is not None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def _handler(self, signal: Signal) -> grpc.RpcMethodHandler[bytes, bytes]:
        def export(body: bytes, context: grpc.ServicerContext) -> bytes:
            return self._export(signal, body, context)

        return grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=_identity, response_serializer=_identity
        )

    def _export(self, signal: Signal, body: bytes, context: grpc.ServicerContext) -> bytes:
        started = time.perf_counter()
        metrics = self._pipeline.metrics
        if self._auth_token is not None and not self._authorized(context):
            metrics.requests.labels(signal.value, "grpc", "unauthenticated").inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        try:
            checked = self._pipeline.export(signal, body, "grpc")
        except OtlpDecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid OTLP {signal.value}: {exc}")
        except OverloadedError as exc:
            _abort_retryable(context, str(exc), exc.retry_after_s)
        except StoreError as exc:
            log.error("spool write failed: %s", exc)
            _abort_retryable(context, "could not store the request; retry", 1)
        metrics.request_seconds.labels("grpc").observe(time.perf_counter() - started)
        return export_response(signal, checked)

    def _authorized(self, context: grpc.ServicerContext) -> bool:
        token = self._auth_token or ""
        return any(
            key == "authorization" and isinstance(value, str) and bearer_ok(value, token)
            for key, value in context.invocation_metadata()
        )

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        """Refuse new RPCs and let those in flight finish (up to ``grace_s``)."""
        self._server.stop(grace_s).wait(grace_s + 1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _check_bindable(host: str, port: int) -> None:
    # grpc's own bind failure says only "Failed to bind"; a plain socket says why.
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"OTLP/gRPC receiver: cannot listen on {host}:{port}: {exc.strerror}"
            ) from exc


def _abort_retryable(context: grpc.ServicerContext, message: str, retry_after_s: int) -> None:
    # OTLP exporters honour RetryInfo's delay on UNAVAILABLE; the status travels in the
    # grpc-status-details-bin trailer, as google.rpc.Status with the RetryInfo detail.
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after_s))
    status = status_pb2.Status(code=grpc.StatusCode.UNAVAILABLE.value[0], message=message)
    status.details.add().Pack(retry)
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(grpc.StatusCode.UNAVAILABLE, message)


class _Router(grpc.GenericRpcHandler):
    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]]) -> None:
        self._handlers = handlers

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method: str = handler_call_details.method
        return self._handlers.get(method)
