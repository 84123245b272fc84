"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``/v1/logs``, protobuf or JSON, gzip or not.

Also serves ``/health`` and the Prometheus ``/metrics``. A request is
acknowledged only once the pipeline has durably spooled it. Errors follow the
OTLP/HTTP spec: a ``google.rpc.Status`` body in the request's encoding, 400 for
bad data, 401 without a valid bearer token, 413 for oversized bodies, 415 for
unsupported content types, and 503 with ``Retry-After`` when the spool is full.
"""

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass

from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracescore.collector.auth import bearer_ok
from tracescore.collector.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tracescore.collector.otlp_checks import Checked
from tracescore.collector.otlp_json import (
    logs_json_to_protobuf,
    response_json,
    status_json,
    traces_json_to_protobuf,
)
from tracescore.collector.pipeline import IngestPipeline, OverloadedError, Signal, export_response
from tracescore.collector.server_thread import ServerThread
from tracescore.schemas.errors import OtlpDecodeError, StoreError

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

# google.rpc.Code values, for the Status bodies of errors.
# Oversized bodies up to this size (or 4x the limit) are read and dropped before the 413.
_DRAIN_BYTES = 16 * 1024 * 1024
_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


@dataclass(frozen=True)
class HttpOptions:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
    # Requests handled at once; more are answered 503 + Retry-After, which bounds memory.
    max_concurrent_requests: int = 16
    auth_token: str | None = None


class _RefusedError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _error(
    status: int, message: str, as_json: bool, headers: dict[str, str] | None = None
) -> Response:
    code = _CODES.get(status, 2)
    if as_json:
        return Response(status_json(code, message), status, headers, media_type=JSON)
    body = status_pb2.Status(code=code, message=message).SerializeToString()
    return Response(body, status, headers, media_type=PROTOBUF)


async def _drain(request: Request, cap: int) -> None:
    """Read and drop what the client is still sending, up to ``cap`` bytes in all.

    Answering 413 and closing while the client is mid-upload makes most clients
    (exporters included) report a reset connection instead of the 413; reading a
    bounded rest first lets them see why. Beyond the cap the connection is closed.
    """
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            return


async def _read_body(request: Request, max_body: int, max_decompressed: int) -> bytes:
    drain_cap = max(4 * max_body, _DRAIN_BYTES)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        if int(declared) <= drain_cap:
            await _drain(request, drain_cap)
        raise _RefusedError(
            413, f"request body of {declared} bytes exceeds the {max_body}-byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            await _drain(request, drain_cap - size)
            raise _RefusedError(413, f"request body exceeds the {max_body}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise _RefusedError(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    # Inflate with a cap so a small compressed bomb never expands in memory.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_decompressed + 1)
    except zlib.error as exc:
        raise _RefusedError(400, f"gzip body is corrupt: {exc}") from exc
    if len(data) > max_decompressed or inflater.unconsumed_tail:
        raise _RefusedError(413, f"decompressed body exceeds the {max_decompressed}-byte limit")
    return data


def create_app(pipeline: IngestPipeline, options: HttpOptions | None = None) -> Starlette:
    opts = options or HttpOptions()
    metrics = pipeline.metrics
    slots = asyncio.Semaphore(opts.max_concurrent_requests)

    async def export(request: Request, signal: Signal) -> Response:
        started = time.perf_counter()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = content_type == JSON
        if opts.auth_token is not None and not bearer_ok(
            request.headers.get("authorization"), opts.auth_token
        ):
            metrics.requests.labels(signal.value, "http", "unauthenticated").inc()
            return _error(
                401,
                "missing or invalid bearer token",
                as_json,
                {"WWW-Authenticate": 'Bearer realm="tracescore"'},
            )
        if content_type not in (PROTOBUF, "application/protobuf", JSON):
            return PlainTextResponse(
                f"unsupported Content-Type {content_type or '(none)'!r}; send {PROTOBUF} "
                f"or {JSON} (OTLP/HTTP)",
                status_code=415,
            )
        if slots.locked():
            metrics.requests.labels(signal.value, "http", "backpressure").inc()
            return _error(503, "too many concurrent requests; retry", as_json, {"Retry-After": "1"})
        async with slots:
            try:
                body = await _read_body(request, opts.max_body_bytes, opts.max_decompressed_bytes)
                checked = await run_in_threadpool(_export, pipeline, signal, body, as_json)
            except _RefusedError as exc:
                metrics.requests.labels(signal.value, "http", "refused").inc()
                return _error(exc.status, exc.message, as_json, exc.headers)
            except OtlpDecodeError as exc:
                return _error(400, f"invalid OTLP {signal.value} export: {exc}", as_json)
            except OverloadedError as exc:
                return _error(503, str(exc), as_json, {"Retry-After": str(exc.retry_after_s)})
            except StoreError as exc:
                log.error("spool write failed: %s", exc)
                return _error(
                    503, "could not store the request; retry", as_json, {"Retry-After": "1"}
                )
        metrics.request_seconds.labels("http").observe(time.perf_counter() - started)
        if as_json:
            return Response(
                response_json(checked.rejected, checked.message, signal.value),
                media_type=JSON,
            )
        return Response(export_response(signal, checked), media_type=PROTOBUF)

    async def traces(request: Request) -> Response:
        return await export(request, Signal.TRACES)

    async def logs(request: Request) -> Response:
        return await export(request, Signal.LOGS)

    async def health(_: Request) -> Response:
        # 503 while the store refuses writes: requests are still accepted into the
        # spool, but an orchestrator should know the data is not reaching the store.
        problem = pipeline.problem()
        if problem is not None:
            return PlainTextResponse(problem, status_code=503)
        return PlainTextResponse("ok")

    async def metrics_page(_: Request) -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/v1/traces", traces, methods=["POST"]),
            Route("/v1/logs", logs, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
        ]
    )


def _export(pipeline: IngestPipeline, signal: Signal, body: bytes, as_json: bool) -> Checked:
    if as_json:
        convert = traces_json_to_protobuf if signal is Signal.TRACES else logs_json_to_protobuf
        body = convert(body)
    return pipeline.export(signal, body, "http/json" if as_json else "http/protobuf")


class HttpReceiver(ServerThread):
    """The OTLP/HTTP receiver on a background thread; port 0 picks a free port."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: HttpOptions | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        super().__init__(
            create_app(pipeline, options),
            host=host,
            port=port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            name="OTLP/HTTP receiver",
        )
