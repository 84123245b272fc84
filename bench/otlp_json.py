"""OTLP/JSON decoding benchmark: tracescore's converter vs ``json_format.Parse``.

    .venv/bin/python bench/otlp_json.py [--spans 10000] [--per-request 500]

The workload is ``ingest.build_request`` (agent-like spans with GenAI
attributes) rendered as JSON twice: as OTLP exporters send it (hex ids) for the
converter, and as ``json_format`` writes it (base64 ids) for
``json_format.Parse``, which cannot read hex ids. Both end in the serialized
``ExportTraceServiceRequest`` the collector consumes. Timings are CPU time of
this process (best of several runs), so other load on the machine skews them
less. Not a test: record the figures in the closing note of the change that
moved them.
"""

import argparse
import base64
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

# A sibling script: run as bench/otlp_json.py, so mypy (which names it bench.ingest)
# cannot resolve it.
from ingest import build_request  # type: ignore[import-not-found]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracescore.collector.otlp_json import traces_json_to_protobuf

_HEX_IDS = {"traceId", "spanId", "parentSpanId"}


def otlp_form(value: Any) -> Any:
    """``MessageToDict`` output with ids in hex, as OTLP/JSON exporters write them."""
    if isinstance(value, dict):
        return {
            key: base64.b64decode(item).hex() if key in _HEX_IDS else otlp_form(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [otlp_form(item) for item in value]
    return value


def rate(label: str, spans: int, fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    print(f"{label:<44} {spans / best:>10,.0f} spans/s   ({best * 1e6 / spans:,.1f} µs/span)")
    return spans / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--per-request", type=int, default=500)
    args = parser.parse_args()
    per_request = args.per_request
    requests = max(1, args.spans // per_request)
    total = requests * per_request

    protobuf_bodies = [build_request(per_request, seed) for seed in range(requests)]
    messages = [ExportTraceServiceRequest.FromString(body) for body in protobuf_bodies]
    documents = [
        json_format.MessageToDict(message, use_integers_for_enums=True) for message in messages
    ]
    reference_bodies = [json.dumps(document).encode() for document in documents]
    otlp_bodies = [json.dumps(otlp_form(document)).encode() for document in documents]

    # The figures mean nothing if the converter is wrong, so check first.
    for body, message in zip(otlp_bodies, messages, strict=True):
        if ExportTraceServiceRequest.FromString(traces_json_to_protobuf(body)) != message:
            raise SystemExit("converter output differs from the source request")

    # Live parse trees make every cyclic-GC pass slower; keep only the bodies,
    # as a receiver would.
    del messages, documents
    gc.collect()

    size = sum(len(body) for body in otlp_bodies) / total
    print(f"workload: {total:,} spans in {requests} requests, {size:,.0f} JSON bytes/span")

    def parse_reference() -> None:
        for body in reference_bodies:
            json_format.Parse(body, ExportTraceServiceRequest()).SerializeToString()

    def convert() -> None:
        for body in otlp_bodies:
            traces_json_to_protobuf(body)

    def loads_only() -> None:
        # Under the same GC pause as the converter, so the bound is fair.
        gc.disable()
        try:
            for body in otlp_bodies:
                json.loads(body)
        finally:
            gc.enable()

    floor = rate("json.loads alone (lower bound)", total, loads_only)
    ours = rate("otlp_json.traces_json_to_protobuf", total, convert)
    reference = rate("json_format.Parse + SerializeToString", total, parse_reference, 2)
    print(f"converter vs json_format: {ours / reference:.1f}x faster")
    print(f"share of converter time spent in json.loads: {ours / floor:.0%}")


if __name__ == "__main__":
    main()
