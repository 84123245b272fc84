"""An instrumented HTTP agent for tests: ``python http_sut.py PORT``.

``POST /answer`` with ``{"question": ...}`` joins the caller's trace from its
``traceparent``/``baggage`` headers, records an ``invoke_agent`` span with a ``chat``
span inside (GenAI attributes, token usage, messages) and answers ``{"output": ...}``.
``GET /health`` answers 200. ``HTTP_SUT_SKILL=bad`` makes it answer wrongly.
``HTTP_SUT_PID_DIR`` gets a file named after the process id, so a test can check
that the server is gone afterwards. Spans go wherever the OTel environment says.
"""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from tracescore.instrumentation import attached, case_baggage, configure, extract_headers

AGENT = "http-agent"
MODEL = "stand-in-model-1"
ANSWERS = {"capital of france": "Paris", "2 + 3": "5"}


def answer(question: str, skill: str) -> str:
    if skill == "bad":
        return "I am not sure."
    for key, value in ANSWERS.items():
        if key in question.lower():
            return f"The answer is {value}."
    return "I do not know that one."


def _message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def run_agent(question: str, skill: str) -> str:
    tracer = trace.get_tracer("http-sut", "0.1.0")
    asked = [_message("user", question)]
    with tracer.start_as_current_span(f"invoke_agent {AGENT}") as agent:
        agent.set_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": AGENT,
                "gen_ai.request.model": MODEL,
                "gen_ai.input.messages": json.dumps(asked),
                **case_baggage(),
            }
        )
        final = answer(question, skill)
        replied = [{**_message("assistant", final), "finish_reason": "stop"}]
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "stand-in",
                    "gen_ai.request.model": MODEL,
                    "gen_ai.response.model": MODEL,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.usage.input_tokens": 5 + len(question) // 4,
                    "gen_ai.usage.output_tokens": 3 + len(final) // 4,
                    "gen_ai.input.messages": json.dumps(asked),
                    "gen_ai.output.messages": json.dumps(replied),
                }
            )
        agent.set_attribute("gen_ai.output.messages", json.dumps(replied))
    return final


def make_handler(provider: TracerProvider, skill: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(200 if self.path == "/health" else 404, {"ok": self.path == "/health"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with attached(extract_headers(dict(self.headers.items()))):
                final = run_agent(str(body["question"]), skill)
            # Exported before the reply, so the trace is complete when the caller
            # stops waiting for the request.
            provider.force_flush()
            self._reply(200, {"output": final})

    return Handler


def main(argv: list[str]) -> int:
    provider = configure(service_name="http-sut")
    pid_dir = os.environ.get("HTTP_SUT_PID_DIR")
    if pid_dir:
        (Path(pid_dir) / str(os.getpid())).write_text(sys.argv[1])
    server = ThreadingHTTPServer(
        ("127.0.0.1", int(argv[1])),
        make_handler(provider, os.environ.get("HTTP_SUT_SKILL", "good")),
    )
    # shutdown() blocks until serve_forever returns, so not from the loop's own thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
