"""OTLP/HTTP receiver: ``POST /v1/traces`` with a protobuf ``ExportTraceServiceRequest``.

A request is acknowledged only after its spans are written to the store.
"""

import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable

import uvicorn
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracescore.collector.spans_decode import SpanColumns, decode_spans, parse_export_request
from tracescore.collector.store import Store
from tracescore.schemas.errors import OtlpDecodeError, StoreError, TracescoreError

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

SpanListener = Callable[[SpanColumns], None]


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _status_response(
    http_status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    # OTLP/HTTP: error bodies are a google.rpc.Status in the request's encoding.
    body = status_pb2.Status(code=_grpc_code(http_status), message=message).SerializeToString()
    return Response(body, status_code=http_status, media_type=PROTOBUF, headers=headers)


def _grpc_code(http_status: int) -> int:
    return {400: 3, 413: 8, 415: 3, 503: 14}.get(http_status, 2)


async def _read_body(request: Request, max_body: int, max_decompressed: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _BodyError(413, f"request body of {declared} bytes exceeds the {max_body}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise _BodyError(413, f"request body exceeds the {max_body}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise _BodyError(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    # Inflate with a cap so a small compressed bomb cannot exhaust memory.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_decompressed + 1)
    except zlib.error as exc:
        raise _BodyError(400, f"gzip body is corrupt: {exc}") from exc
    if len(data) > max_decompressed or inflater.unconsumed_tail:
        raise _BodyError(413, f"decompressed body exceeds the {max_decompressed}-byte limit")
    return data


def create_app(
    store: Store,
    *,
    on_spans: SpanListener | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> Starlette:
    """The ASGI app; ``on_spans`` hears about every batch after it is stored."""

    async def export_traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, "application/protobuf"):
            return PlainTextResponse(
                f"unsupported Content-Type {content_type or '(none)'!r}; "
                f"send {PROTOBUF} (OTLP/HTTP binary protobuf)",
                status_code=415,
            )
        try:
            body = await _read_body(request, max_body_bytes, max_decompressed_bytes)
            spans = decode_spans(parse_export_request(body))
        except _BodyError as exc:
            return _status_response(exc.status, exc.message)
        except OtlpDecodeError as exc:
            return _status_response(400, f"invalid OTLP trace export: {exc}")
        try:
            await run_in_threadpool(store.insert_spans, spans)
        except StoreError as exc:
            log.error("span write failed: %s", exc)
            return _status_response(503, "spans could not be stored; retry", {"Retry-After": "1"})
        if on_spans is not None:
            on_spans(spans)
        return Response(
            ExportTraceServiceResponse().SerializeToString(), status_code=200, media_type=PROTOBUF
        )

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/v1/traces", export_traces, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


class HttpReceiver:
    """Runs the receiver on a background thread; port 0 picks a free port."""

    def __init__(
        self,
        store: Store,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_spans: SpanListener | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    ) -> None:
        self._app = create_app(
            store,
            on_spans=on_spans,
            max_body_bytes=max_body_bytes,
            max_decompressed_bytes=max_decompressed_bytes,
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT expects it."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "HttpReceiver":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise TracescoreError(f"the OTLP receiver did not start on {self.endpoint}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> "HttpReceiver":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
