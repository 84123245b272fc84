"""The benchmark's SUT: a fast instrumented HTTP agent, ``python fast_sut.py PORT``.

``POST /run`` with ``{"input": ...}`` joins the caller's trace from its headers, records
an ``invoke_agent`` span with a ``chat`` and an ``execute_tool`` span inside and answers
``{"output": ...}``. The spans go out through a batch processor with a 10 ms delay, so
one export carries the spans of all requests that finished meanwhile (the suite's
quiet period must outlast that delay). No model is called: the SUT's own time is near
zero, so what the benchmark measures is the harness.

The OTel SDK reads the collector address and the variant from the environment
``tracescore run`` gives a SUT server.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from tracescore.instrumentation import attached, extract_headers

provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
provider.add_span_processor(
    BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=10, max_export_batch_size=2048)
)
tracer = provider.get_tracer("bench-agent")


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = str(body["input"])
        answer = f"The answer to {question!r} is 42."
        with (
            attached(extract_headers(dict(self.headers))),
            tracer.start_as_current_span("invoke_agent bench") as agent,
        ):
            agent.set_attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "bench",
                    "gen_ai.input.messages": _messages("user", question),
                    "gen_ai.output.messages": _messages("assistant", answer),
                }
            )
            with tracer.start_as_current_span("execute_tool lookup") as tool:
                tool.set_attributes(
                    {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "lookup",
                        "gen_ai.tool.call.arguments": json.dumps({"q": question}),
                        "gen_ai.tool.call.result": "42",
                    }
                )
            with tracer.start_as_current_span("chat bench-model", kind=SpanKind.CLIENT) as chat:
                chat.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "bench",
                        "gen_ai.request.model": "bench-model",
                        "gen_ai.usage.input_tokens": 120,
                        "gen_ai.usage.output_tokens": 30,
                        "gen_ai.output.messages": _messages("assistant", answer),
                    }
                )
        payload = json.dumps({"output": answer}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        provider.shutdown()
