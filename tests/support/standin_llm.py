"""A local stand-in for the OpenAI Chat Completions and Anthropic Messages HTTP APIs.

Real SDK clients talk to it over real HTTP, so their own request building, response
parsing, error mapping and tracing run unchanged; only the model is scripted. The
``reply`` callable decides what each request gets back.
"""

import itertools
import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

Reply = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

# The providers' own error types per status: the SDKs map the status to an exception
# class, and tests that read ``err.body``/``err.type`` see what production would send.
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}

_created = itertools.count(1_700_000_000)


def anthropic_message(
    content: list[dict[str, Any]],
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str = "end_turn",
    cache_read_input_tokens: int = 0,
    message_id: str | None = None,
) -> dict[str, Any]:
    return {
        "id": message_id or f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cache_read_input_tokens,
        },
    }


def anthropic_text(
    text: str,
    *,
    model: str,
    input_tokens: int,
    output_tokens: int,
    stop_reason: str = "end_turn",
    cache_read_input_tokens: int = 0,
    message_id: str | None = None,
) -> dict[str, Any]:
    return anthropic_message(
        [{"type": "text", "text": text}],
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        stop_reason=stop_reason,
        cache_read_input_tokens=cache_read_input_tokens,
        message_id=message_id,
    )


def anthropic_error(status: int, message: str = "") -> tuple[int, dict[str, Any]]:
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return status, {"type": "error", "error": {"type": kind, "message": message or kind}}


def openai_completion(
    message: dict[str, Any],
    *,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str,
    cached_tokens: int = 0,
    completion_id: str | None = None,
) -> dict[str, Any]:
    full_message = {"role": "assistant", "content": None, "refusal": None, **message}
    return {
        "id": completion_id or f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": next(_created),
        "model": model,
        "system_fingerprint": "fp_standin",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": full_message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def openai_error(status: int, message: str = "") -> tuple[int, dict[str, Any]]:
    kind = _OPENAI_ERROR_TYPES.get(status, "server_error")
    return status, {
        "error": {"message": message or kind, "type": kind, "param": None, "code": None}
    }


def _error_for(path: str, status: int, message: str) -> dict[str, Any]:
    if path.startswith(ANTHROPIC_PATH):
        return anthropic_error(status, message)[1]
    return openai_error(status, message)[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: "StandinLLM") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Keep-alive, as the SDKs' httpx pools expect of a real API.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        path = self.path.split("?", 1)[0]
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            self._send(path, *openai_error(400, f"bad JSON: {exc}"))
            return
        if path not in (OPENAI_PATH, ANTHROPIC_PATH):
            self._send(path, 404, _error_for(path, 404, f"no route {path}"))
            return
        owner._record(path, body)
        try:
            status, payload = owner.reply(path, body)
        except Exception as exc:  # a broken script must surface as a 500, not a hang
            status, payload = 500, _error_for(path, 500, f"stand-in reply raised: {exc!r}")
        if status >= 400 and "error" not in payload:
            payload = _error_for(path, status, "")
        self._send(path, status, payload)

    def _send(self, path: str, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        if path.startswith(ANTHROPIC_PATH):
            self.send_header("request-id", request_id)
        else:
            self.send_header("x-request-id", request_id)
        # Without this the SDKs would honour their default backoff on 429/5xx; tests
        # asking for retries should not sleep.
        if status in (408, 409, 429) or status >= 500:
            self.send_header("retry-after-ms", "1")
        self.end_headers()
        self.wfile.write(data)


class StandinLLM:
    """``with StandinLLM(reply) as llm:`` serves on ``llm.base_url`` until the block ends."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="standin-llm", daemon=True
        )

    def _record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append((path, body))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
