"""Ingest-path benchmark: OTLP protobuf → columns → Arrow → chDB, and over HTTP.

    .venv/bin/python bench/ingest.py [--spans 20000] [--per-request 500]

Prints spans/s for each stage on a synthetic agent-like workload (GenAI
attributes, an event on every span, a link on every tenth). Not a test: the
figures go into closing notes and are compared before and after changes.
"""

import argparse
import json
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.spans_decode import decode_spans, parse_export_request
from tracescore.collector.store.chdb_store import ChdbStore


def build_request(spans: int, seed: int = 0) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("service.name", "bench-agent"), ("tracescore.variant", "v1")):
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "x" * 200}]}])
    for i in range(spans):
        n = seed * spans + i
        span = scope.spans.add(
            trace_id=(n // 10 + 1).to_bytes(16, "big"),
            span_id=(n + 1).to_bytes(8, "big"),
            parent_span_id=(n if i % 10 else 0).to_bytes(8, "big"),
            name="chat model" if i % 3 else "execute_tool search",
            kind=3,
            start_time_unix_nano=1_700_000_000_000_000_000 + n * 1000,
            end_time_unix_nano=1_700_000_000_000_000_000 + n * 1000 + 5000,
        )
        attributes = span.attributes
        attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 120 + i
        attributes.add(key="gen_ai.usage.output_tokens").value.int_value = 40
        attributes.add(key="gen_ai.input.messages").value.string_value = messages
        finish = attributes.add(key="gen_ai.response.finish_reasons").value.array_value
        finish.values.add().string_value = "stop"
        event = span.events.add(time_unix_nano=span.start_time_unix_nano + 10, name="log")
        event.attributes.add(key="n").value.int_value = i
        if i % 10 == 0:
            span.links.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8)
    return request.SerializeToString()


def rate(label: str, spans: int, fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<44} {spans / best:>12,.0f} spans/s   ({best * 1000:,.1f} ms for {spans:,})")
    return spans / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--per-request", type=int, default=500)
    args = parser.parse_args()
    total, per_request = args.spans, args.per_request

    body = build_request(total)
    print(f"workload: {total:,} spans, {len(body) / total:.0f} bytes/span on the wire")
    rate("protobuf ParseFromString", total, lambda: parse_export_request(body))
    parsed = parse_export_request(body)
    rate("decode → column lists (Python loop)", total, lambda: decode_spans(parsed))
    columns = decode_spans(parsed)
    rate("column lists → Arrow table", total, columns.to_arrow)

    with tempfile.TemporaryDirectory() as folder:
        store = ChdbStore(Path(folder), database="bench")
        store.migrate()
        rate("chDB insert (one Arrow batch)", total, lambda: store.insert_spans(columns), 1)

        bodies = [build_request(per_request, seed) for seed in range(total // per_request)]
        with HttpReceiver(store) as receiver:
            url = f"{receiver.endpoint}/v1/traces"

            def post_all() -> None:
                for payload in bodies:
                    request = urllib.request.Request(
                        url, data=payload, headers={"Content-Type": "application/x-protobuf"}
                    )
                    with urllib.request.urlopen(request, timeout=30) as response:
                        response.read()

            rate(
                f"HTTP receiver end to end ({per_request}/request)",
                per_request * len(bodies),
                post_all,
                1,
            )
        stored = store.count_spans()
        print(f"stored rows: {stored:,}")
        store.close()


if __name__ == "__main__":
    main()
