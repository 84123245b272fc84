"""The engine-decoded load path writes the same rows as the Python reference decoder.

Large span batches are decoded by ClickHouse itself from the spooled protobuf
(``engine_decode``); small ones by ``spans_decode`` in Python. Both must store
exactly what the official clickhouseexporter would, so random requests go
through each path into its own database and the rows are compared.
"""

import base64
import json
import random
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList
from opentelemetry.proto.trace.v1 import trace_pb2

from tracescore.collector.pipeline import IngestPipeline, PipelineSettings, Signal
from tracescore.collector.store import Store
from tracescore.collector.store.chdb_store import ChdbStore

_TEXT = "ab<>&\"\\/\n\t\r\x01\x7fé\u2028\u2029😀 '"
_FLOATS = (
    0.0,
    -0.0,
    1.5,
    0.1,
    -2.25,
    1e21,
    1e20,
    9.999999e20,
    1e-6,
    1e-7,
    1.2345e-6,
    123456789.123,
    1e300,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
)


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_TEXT) for _ in range(rng.randint(0, 10)))


def _float(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return rng.choice(_FLOATS)
    return rng.choice((-1, 1)) * 10 ** rng.uniform(-30, 30)


def _fill(value: AnyValue, rng: random.Random, nested: bool) -> None:
    kind = rng.randint(0, 4 if nested else 7)
    if kind == 0:
        value.string_value = _text(rng)
    elif kind == 1:
        value.bool_value = rng.random() < 0.5
    elif kind == 2:
        value.int_value = rng.randint(-(2**63), 2**63 - 1)
    elif kind == 3:
        value.double_value = _float(rng)
    elif kind == 4:
        value.bytes_value = rng.randbytes(rng.randint(0, 6))
    elif kind == 5:
        array = value.array_value
        for _ in range(rng.randint(0, 4)):
            _fill(array.values.add(), rng, nested=True)
    elif kind == 6:
        kvlist = value.kvlist_value
        for _ in range(rng.randint(0, 4)):
            # Repeated keys: pdata keeps the last one, and JSON keys come out sorted.
            _fill(kvlist.values.add(key=rng.choice(["b", "a", "<k>", "a"])).value, rng, True)
    # kind 7: an empty value


def _request(rng: random.Random, spans: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for r in range(2):
        resource_spans = request.resource_spans.add()
        attrs = resource_spans.resource.attributes
        attrs.add(key="service.name").value.string_value = f"svc-{r}"
        _fill(attrs.add(key="extra").value, rng, nested=False)
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = _text(rng)
        scope_spans.scope.version = "1.0"
        for _ in range(spans // 2):
            start = 1_700_000_000_000_000_000 + rng.randint(0, 10**12)
            span = scope_spans.spans.add(
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                parent_span_id=rng.choice([b"", bytes(8), rng.randbytes(8)]),
                name=_text(rng),
                kind=rng.randint(0, 5),
                trace_state=rng.choice(["", "k=v,a=b"]),
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randint(-1000, 10**9),
            )
            for index in range(rng.randint(0, 5)):
                _fill(span.attributes.add(key=f"k{index}").value, rng, nested=False)
            span.status.code = trace_pb2.Status.StatusCode.ValueType(rng.randint(0, 2))
            span.status.message = _text(rng)
            for _ in range(rng.randint(0, 2)):
                event = span.events.add(time_unix_nano=start + 5, name=_text(rng))
                _fill(event.attributes.add(key="e").value, rng, nested=False)
            for _ in range(rng.randint(0, 2)):
                link = span.links.add(
                    trace_id=rng.choice([rng.randbytes(16), bytes(16)]),
                    span_id=rng.randbytes(8),
                    trace_state="x=1",
                )
                _fill(link.attributes.add(key="l").value, rng, nested=False)
    return request


@pytest.fixture
def other_store(chdb_path: Path) -> Iterator[Store]:
    opened = ChdbStore(chdb_path, database=f"test_{secrets.token_hex(4)}")
    opened.migrate()
    yield opened
    opened.command(f"DROP DATABASE IF EXISTS {opened.db}")
    opened.close()


def _load(store: Store, spool: Path, engine: bool, bodies: list[bytes]) -> list[dict[str, Any]]:
    settings = PipelineSettings(
        spool_dir=spool, fsync=False, engine_min_spans=0 if engine else 10**9
    )
    with IngestPipeline(store, settings) as pipeline:
        for body in bodies:
            pipeline.export(Signal.TRACES, body, "test")
        assert pipeline.flush()
    return store.query(
        f"SELECT *, toUnixTimestamp64Nano(Timestamp) AS ns, "
        f"arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS event_ns "
        f"FROM {store.db}.otel_traces ORDER BY TraceId, SpanId"
    )


# The engine spells the rare \u000B-style control escapes in upper-case hex where Go
# writes lower case; both decode to the same string (documented in engine_decode).
_HEX_ESCAPE = re.compile(r"\\u00[0-9A-F]{2}")


def _lower_escapes(row: dict[str, Any]) -> str:
    return _HEX_ESCAPE.sub(lambda m: m.group(0).lower(), repr(row))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_and_python_paths_store_identical_rows(
    store: Store, other_store: Store, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    bodies = [_request(rng, 60).SerializeToString() for _ in range(3)]
    engine_rows = _load(store, tmp_path / "engine", True, bodies)
    python_rows = _load(other_store, tmp_path / "python", False, bodies)
    assert len(engine_rows) == len(python_rows) == 180
    for engine_row, python_row in zip(engine_rows, python_rows, strict=True):
        assert _lower_escapes(engine_row) == _lower_escapes(python_row)


def test_engine_path_renders_go_style_values(store: Store, tmp_path: Path) -> None:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    span = resource_spans.scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="values"
    )
    cases: dict[str, AnyValue] = {
        "big": AnyValue(double_value=1e21),
        "tiny": AnyValue(double_value=1.5e-7),
        "int": AnyValue(int_value=-(2**63)),
        "flag": AnyValue(bool_value=True),
        "raw": AnyValue(bytes_value=b"\xff\x00"),
        "reasons": AnyValue(
            array_value=ArrayValue(
                values=[AnyValue(string_value="stop<&>"), AnyValue(double_value=1e21)]
            )
        ),
    }
    for key, value in cases.items():
        span.attributes.add(key=key).value.CopyFrom(value)
    rows = _load(store, tmp_path, True, [request.SerializeToString()])
    attributes = dict(rows[0]["SpanAttributes"])
    assert attributes == {
        "big": "1000000000000000000000",
        "tiny": "0.00000015",
        "int": "-9223372036854775808",
        "flag": "true",
        "raw": "/wA=",
        "reasons": '["stop\\u003c\\u0026\\u003e",1e+21]',
    }


def test_values_nested_past_the_engine_schema_are_kept_as_base64_protobuf(
    store: Store, tmp_path: Path
) -> None:
    inner = KeyValueList()
    inner.values.add(key="deep").value.string_value = "kept"
    nested = AnyValue()
    nested.array_value.values.add().kvlist_value.CopyFrom(inner)
    request = ExportTraceServiceRequest()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="deep")
    )
    span.attributes.add(key="nested").value.CopyFrom(nested)
    rows = _load(store, tmp_path, True, [request.SerializeToString()])
    (encoded,) = json.loads(dict(rows[0]["SpanAttributes"])["nested"])
    assert KeyValueList.FromString(base64.b64decode(encoded)) == inner
