"""OTLP/JSON to protobuf: the spec's examples, equivalence with json_format, errors."""

import base64
import json
import math
import random
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracescore.collector import otlp_json
from tracescore.collector.otlp_json import (
    logs_json_to_protobuf,
    response_json,
    status_json,
    traces_json_to_protobuf,
)
from tracescore.schemas.errors import OtlpDecodeError

# opentelemetry-proto examples/trace.json and examples/logs.json, verbatim.
SPEC_TRACE_EXAMPLE = """{
  "resourceSpans": [
    {
      "resource": {
        "attributes": [
          {
            "key": "service.name",
            "value": {
              "stringValue": "my.service"
            }
          }
        ]
      },
      "scopeSpans": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              {
                "key": "my.scope.attribute",
                "value": {
                  "stringValue": "some scope attribute"
                }
              }
            ]
          },
          "spans": [
            {
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "name": "I'm a server span",
              "startTimeUnixNano": 1544712660000000000,
              "endTimeUnixNano": 1544712661000000000,
              "kind": 2,
              "attributes": [
                {
                  "key": "my.span.attr",
                  "value": {
                    "stringValue": "some value"
                  }
                }
              ]
            }
          ]
        }
      ]
    }
  ]
}"""

SPEC_LOGS_EXAMPLE = """{
  "resourceLogs": [
    {
      "resource": {
        "attributes": [
          {
            "key": "service.name",
            "value": {
              "stringValue": "my.service"
            }
          }
        ]
      },
      "scopeLogs": [
        {
          "scope": {
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              {
                "key": "my.scope.attribute",
                "value": {
                  "stringValue": "some scope attribute"
                }
              }
            ]
          },
          "logRecords": [
            {
              "timeUnixNano": 1544712660300000000,
              "observedTimeUnixNano": 1544712660300000000,
              "severityText": "Information",
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "body": {
                "stringValue": "Example log record"
              },
              "attributes": [
                {
                  "key": "string.attribute",
                  "value": {
                    "stringValue": "some string"
                  }
                },
                {
                  "key": "boolean.attribute",
                  "value": {
                    "boolValue": true
                  }
                },
                {
                  "key": "int.attribute",
                  "value": {
                    "intValue": 10
                  }
                },
                {
                  "key": "double.attribute",
                  "value": {
                    "doubleValue": 637.704
                  }
                },
                {
                  "key": "array.attribute",
                  "value": {
                    "arrayValue": {
                      "values": [
                        {
                          "stringValue": "many"
                        },
                        {
                          "stringValue": "values"
                        }
                      ]
                    }
                  }
                },
                {
                  "key": "map.attribute",
                  "value": {
                    "kvlistValue": {
                      "values": [
                        {
                          "key": "some.map.key",
                          "value": {
                            "stringValue": "some value"
                          }
                        }
                      ]
                    }
                  }
                }
              ]
            }
          ]
        }
      ]
    }
  ]
}"""


def traces(document: Any) -> ExportTraceServiceRequest:
    body = json.dumps(document).encode()
    return ExportTraceServiceRequest.FromString(traces_json_to_protobuf(body))


def logs(document: Any) -> ExportLogsServiceRequest:
    body = json.dumps(document).encode()
    return ExportLogsServiceRequest.FromString(logs_json_to_protobuf(body))


def one_span(**fields: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [fields]}]}]}


def span_of(request: ExportTraceServiceRequest) -> Span:
    span: Span = request.resource_spans[0].scope_spans[0].spans[0]
    return span


def attribute(value: dict[str, Any]) -> dict[str, Any]:
    return one_span(attributes=[{"key": "k", "value": value}])


def attribute_value(value: dict[str, Any]) -> AnyValue:
    any_value: AnyValue = span_of(traces(attribute(value))).attributes[0].value
    return any_value


# --- the specification's examples -------------------------------------------------


def test_spec_trace_example() -> None:
    request = ExportTraceServiceRequest.FromString(
        traces_json_to_protobuf(SPEC_TRACE_EXAMPLE.encode())
    )
    resource_spans = request.resource_spans[0]
    assert resource_spans.resource.attributes[0].key == "service.name"
    assert resource_spans.resource.attributes[0].value.string_value == "my.service"
    scope_spans = resource_spans.scope_spans[0]
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("my.library", "1.0.0")
    assert scope_spans.scope.attributes[0].value.string_value == "some scope attribute"
    span = scope_spans.spans[0]
    assert span.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert span.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert span.parent_span_id == bytes.fromhex("eee19b7ec3c1b173")
    assert span.name == "I'm a server span"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 1544712661000000000
    assert [(a.key, a.value.string_value) for a in span.attributes] == [
        ("my.span.attr", "some value")
    ]


def test_spec_logs_example() -> None:
    request = ExportLogsServiceRequest.FromString(logs_json_to_protobuf(SPEC_LOGS_EXAMPLE))
    scope_logs = request.resource_logs[0].scope_logs[0]
    assert request.resource_logs[0].resource.attributes[0].value.string_value == "my.service"
    assert scope_logs.scope.name == "my.library"
    record = scope_logs.log_records[0]
    assert record.time_unix_nano == record.observed_time_unix_nano == 1544712660300000000
    assert record.severity_text == "Information"
    assert record.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert record.span_id == bytes.fromhex("eee19b7ec3c1b174")
    assert record.body.string_value == "Example log record"
    values = {a.key: a.value for a in record.attributes}
    assert values["string.attribute"].string_value == "some string"
    assert values["boolean.attribute"].bool_value is True
    assert values["int.attribute"].int_value == 10
    assert values["double.attribute"].double_value == 637.704
    assert [v.string_value for v in values["array.attribute"].array_value.values] == [
        "many",
        "values",
    ]
    entry = values["map.attribute"].kvlist_value.values[0]
    assert (entry.key, entry.value.string_value) == ("some.map.key", "some value")


# --- equivalence with json_format on generated payloads -------------------------

_HEX_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
_INT64_KEYS = {
    "timeUnixNano",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "observedTimeUnixNano",
    "intValue",
    "time_unix_nano",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "observed_time_unix_nano",
    "int_value",
}


class Generator:
    """Random but valid OTLP requests that exercise every field and value kind."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self) -> str:
        return self.rng.choice(
            ["", "chat", "gen_ai.usage.input_tokens", 'héllo ✓ "quoted" \\ \n', "x" * 300]
        )

    def id(self, size: int) -> bytes:
        return b"" if self.rng.random() < 0.1 else self.rng.randbytes(size)

    def time(self) -> int:
        return self.rng.choice([0, 1_700_000_000_123_456_789, 2**64 - 1, self.rng.getrandbits(64)])

    def any_value(self, depth: int = 0) -> AnyValue:
        kinds = ["string", "bool", "int", "double", "bytes", "empty"]
        if depth < 2:
            kinds += ["array", "kvlist"]
        kind = self.rng.choice(kinds)
        value = AnyValue()
        if kind == "string":
            value.string_value = self.text()
        elif kind == "bool":
            value.bool_value = self.rng.random() < 0.5
        elif kind == "int":
            value.int_value = self.rng.choice([0, 40, -7, 2**63 - 1, -(2**63)])
        elif kind == "double":
            value.double_value = self.rng.choice(
                [0.0, -0.0, 0.2, -1e300, 5e-324, math.inf, -math.inf, 3.0]
            )
        elif kind == "bytes":
            value.bytes_value = self.rng.randbytes(self.rng.randrange(0, 7))
        elif kind == "array":
            value.array_value.SetInParent()
            value.array_value.values.extend(
                self.any_value(depth + 1) for _ in range(self.rng.randrange(0, 3))
            )
        elif kind == "kvlist":
            value.kvlist_value.SetInParent()
            value.kvlist_value.values.extend(self.attributes(depth + 1))
        return value

    def attributes(self, depth: int = 0) -> list[KeyValue]:
        return [
            KeyValue(key=self.text(), value=self.any_value(depth))
            for _ in range(self.rng.randrange(0, 4))
        ]

    def dropped(self) -> int:
        return self.rng.choice([0, 0, 3, 2**32 - 1])

    def fill_resource_and_scope(self, resource: Any, scope: Any) -> None:
        resource.attributes.extend(self.attributes())
        resource.dropped_attributes_count = self.dropped()
        scope.name = self.text()
        scope.version = self.rng.choice(["", "1.0.0"])
        scope.attributes.extend(self.attributes())
        scope.dropped_attributes_count = self.dropped()

    def traces(self) -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        for _ in range(self.rng.randrange(1, 3)):
            resource_spans = request.resource_spans.add(schema_url=self.text())
            for _ in range(self.rng.randrange(1, 3)):
                scope_spans = resource_spans.scope_spans.add(schema_url=self.text())
                self.fill_resource_and_scope(resource_spans.resource, scope_spans.scope)
                for _ in range(self.rng.randrange(0, 4)):
                    self.span(scope_spans.spans.add())
        return request

    def span(self, span: Span) -> None:
        span.trace_id = self.id(16)
        span.span_id = self.id(8)
        span.parent_span_id = self.id(8)
        span.trace_state = self.rng.choice(["", "rojo=00f067aa0ba902b7"])
        span.flags = self.rng.choice([0, 1, 0x301, 2**32 - 1])
        span.name = self.text()
        span.kind = self.rng.choice(Span.SpanKind.values())
        span.start_time_unix_nano = self.time()
        span.end_time_unix_nano = self.time()
        span.attributes.extend(self.attributes())
        span.dropped_attributes_count = self.dropped()
        for _ in range(self.rng.randrange(0, 3)):
            event = span.events.add(time_unix_nano=self.time(), name=self.text())
            event.attributes.extend(self.attributes())
            event.dropped_attributes_count = self.dropped()
        span.dropped_events_count = self.dropped()
        for _ in range(self.rng.randrange(0, 3)):
            link = span.links.add(
                trace_id=self.id(16),
                span_id=self.id(8),
                trace_state=self.rng.choice(["", "congo=t61rcWkgMzE"]),
                flags=self.rng.choice([0, 1, 0x101]),
            )
            link.attributes.extend(self.attributes())
            link.dropped_attributes_count = self.dropped()
        span.dropped_links_count = self.dropped()
        if self.rng.random() < 0.7:
            span.status.SetInParent()
            span.status.code = self.rng.choice(Status.StatusCode.values())
            span.status.message = self.text()

    def logs(self) -> ExportLogsServiceRequest:
        request = ExportLogsServiceRequest()
        for _ in range(self.rng.randrange(1, 3)):
            resource_logs = request.resource_logs.add(schema_url=self.text())
            for _ in range(self.rng.randrange(1, 3)):
                scope_logs = resource_logs.scope_logs.add(schema_url=self.text())
                self.fill_resource_and_scope(resource_logs.resource, scope_logs.scope)
                for _ in range(self.rng.randrange(0, 4)):
                    self.log_record(scope_logs.log_records.add())
        return request

    def log_record(self, record: LogRecord) -> None:
        record.time_unix_nano = self.time()
        record.observed_time_unix_nano = self.time()
        record.severity_number = self.rng.choice(
            [
                SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED,
                SeverityNumber.SEVERITY_NUMBER_INFO,
                SeverityNumber.SEVERITY_NUMBER_ERROR,
                SeverityNumber.SEVERITY_NUMBER_FATAL4,
            ]
        )
        record.severity_text = self.rng.choice(["", "INFO", "ERROR"])
        if self.rng.random() < 0.8:
            record.body.CopyFrom(self.any_value())
        record.attributes.extend(self.attributes())
        record.dropped_attributes_count = self.dropped()
        record.flags = self.rng.choice([0, 1])
        record.trace_id = self.id(16)
        record.span_id = self.id(8)
        record.event_name = self.rng.choice(["", "gen_ai.client.inference.operation.details"])

    def variant(self, document: Any, hex_ids: bool) -> Any:
        """``document`` with int64 randomly as numbers, plus unknown and null keys.

        With ``hex_ids`` the ids become hex of random case (OTLP's form);
        without, they stay base64 for json_format.
        """
        if isinstance(document, list):
            return [self.variant(item, hex_ids) for item in document]
        if not isinstance(document, dict):
            return document
        out: dict[str, Any] = {}
        for key, value in document.items():
            if key in _HEX_KEYS:
                # Drawn either way, so both forms make the same later choices.
                upper = self.rng.random() < 0.5
                text = base64.b64decode(value).hex()
                out[key] = (text.upper() if upper else text) if hex_ids else value
            elif key in _INT64_KEYS and self.rng.random() < 0.5:
                out[key] = int(value)
            else:
                out[key] = self.variant(value, hex_ids)
        return out


def with_extras(document: Any, rng: random.Random) -> Any:
    """Unknown keys (with values of every JSON type) and null-valued unknown keys."""
    if isinstance(document, list):
        return [with_extras(item, rng) for item in document]
    if not isinstance(document, dict):
        return document
    out = {key: with_extras(value, rng) for key, value in document.items()}
    if rng.random() < 0.3:
        out["futureField"] = rng.choice([None, 1, "x", [1, {"a": None}], {"b": [2]}, True])
    return out


def reference_and_otlp(message: Message, seed: int, snake_case: bool) -> tuple[str, str]:
    generator = Generator(seed)
    document = json_format.MessageToDict(
        message,
        preserving_proto_field_name=snake_case,
        use_integers_for_enums=generator.rng.random() < 0.5,
    )
    # Both bodies share every random choice but the ids' encoding.
    reference = Generator(seed + 1000).variant(document, hex_ids=False)
    otlp = Generator(seed + 1000).variant(document, hex_ids=True)
    extras = random.Random(seed)
    return json.dumps(reference), json.dumps(with_extras(otlp, extras))


@pytest.mark.parametrize("snake_case", [False, True], ids=["lowerCamelCase", "snake_case"])
@pytest.mark.parametrize("seed", range(40))
def test_traces_match_json_format(seed: int, snake_case: bool) -> None:
    message = Generator(seed).traces()
    reference_body, otlp_body = reference_and_otlp(message, seed, snake_case)
    reference = json_format.Parse(reference_body, ExportTraceServiceRequest())
    ours = ExportTraceServiceRequest.FromString(traces_json_to_protobuf(otlp_body.encode()))
    assert ours == reference == message


@pytest.mark.parametrize("snake_case", [False, True], ids=["lowerCamelCase", "snake_case"])
@pytest.mark.parametrize("seed", range(40))
def test_logs_match_json_format(seed: int, snake_case: bool) -> None:
    message = Generator(seed).logs()
    reference_body, otlp_body = reference_and_otlp(message, seed, snake_case)
    reference = json_format.Parse(reference_body, ExportLogsServiceRequest())
    ours = ExportLogsServiceRequest.FromString(logs_json_to_protobuf(otlp_body.encode()))
    assert ours == reference == message


def test_key_spellings_mix_within_one_request() -> None:
    camel = one_span(
        traceId="5b8efff798038103d269b633813fc60c",
        parentSpanId="eee19b7ec3c1b173",
        startTimeUnixNano="5",
        droppedAttributesCount=2,
        attributes=[{"key": "a", "value": {"kvlistValue": {"values": []}}}],
        status={"code": 2},
    )
    snake = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": "5b8efff798038103d269b633813fc60c",
                                "parent_span_id": "eee19b7ec3c1b173",
                                "start_time_unix_nano": "5",
                                "dropped_attributes_count": 2,
                                "attributes": [
                                    {"key": "a", "value": {"kvlist_value": {"values": []}}}
                                ],
                                "status": {"code": 2},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    assert traces(camel) == traces(snake)
    assert span_of(traces(snake)).attributes[0].value.HasField("kvlist_value")


# --- values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "expected"),
    [
        pytest.param({"stringValue": "héllo ✓"}, "string_value", "héllo ✓", id="string"),
        pytest.param({"stringValue": ""}, "string_value", "", id="empty-string"),
        pytest.param({"boolValue": True}, "bool_value", True, id="bool"),
        pytest.param({"boolValue": False}, "bool_value", False, id="bool-false"),
        pytest.param({"intValue": "-9223372036854775808"}, "int_value", -(2**63), id="int-min"),
        pytest.param({"intValue": 9223372036854775807}, "int_value", 2**63 - 1, id="int-max"),
        pytest.param({"intValue": "0"}, "int_value", 0, id="int-zero"),
        pytest.param({"intValue": 12.0}, "int_value", 12, id="int-integral-float"),
        pytest.param({"intValue": "1e3"}, "int_value", 1000, id="int-exponent-string"),
        pytest.param({"doubleValue": 637.704}, "double_value", 637.704, id="double"),
        pytest.param({"doubleValue": 3}, "double_value", 3.0, id="double-from-int"),
        pytest.param({"doubleValue": "2.5"}, "double_value", 2.5, id="double-string"),
        pytest.param({"doubleValue": 0}, "double_value", 0.0, id="double-zero"),
        pytest.param({"doubleValue": "Infinity"}, "double_value", math.inf, id="infinity"),
        pytest.param({"doubleValue": "-Infinity"}, "double_value", -math.inf, id="-infinity"),
        pytest.param({"bytesValue": "AAEC/w=="}, "bytes_value", b"\x00\x01\x02\xff", id="bytes"),
        pytest.param({"bytesValue": "AAEC_w"}, "bytes_value", b"\x00\x01\x02\xff", id="bytes-url"),
        pytest.param({"bytesValue": ""}, "bytes_value", b"", id="bytes-empty"),
    ],
)
def test_scalar_any_values(value: dict[str, Any], field: str, expected: object) -> None:
    decoded = attribute_value(value)
    assert decoded.WhichOneof("value") == field
    assert getattr(decoded, field) == expected


def test_nan_double() -> None:
    decoded = attribute_value({"doubleValue": "NaN"})
    assert decoded.WhichOneof("value") == "double_value"
    assert math.isnan(decoded.double_value)


def test_nested_array_and_kvlist_values() -> None:
    value = {
        "arrayValue": {
            "values": [
                {"stringValue": "a"},
                {"intValue": "7"},
                {"arrayValue": {"values": []}},
                {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}},
                {},
            ]
        }
    }
    decoded = attribute_value(value).array_value.values
    assert decoded[0].string_value == "a"
    assert decoded[1].int_value == 7
    assert decoded[2].HasField("array_value") and not decoded[2].array_value.values
    assert decoded[3].kvlist_value.values[0].value.bool_value is True
    assert decoded[4].WhichOneof("value") is None


def test_empty_and_missing_values() -> None:
    span = span_of(traces(one_span(attributes=[{"key": "k", "value": {}}, {"key": "bare"}])))
    assert span.attributes[0].HasField("value")
    assert span.attributes[0].value.WhichOneof("value") is None
    assert not span.attributes[1].HasField("value")


@pytest.mark.parametrize(
    "time",
    [1544712660000000000, "1544712660000000000", 1.5447126600000000e18, "1.5447126600e18"],
    ids=["number", "string", "float", "exponent-string"],
)
def test_int64_as_string_or_number(time: object) -> None:
    span = span_of(traces(one_span(startTimeUnixNano=time, endTimeUnixNano="18446744073709551615")))
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 2**64 - 1


@pytest.mark.parametrize(
    ("kind", "expected"),
    [(2, 2), ("SPAN_KIND_SERVER", 2), ("3", 3), (0, 0), ("SPAN_KIND_UNSPECIFIED", 0), (42, 42)],
)
def test_enum_numbers_and_names(kind: object, expected: int) -> None:
    span = span_of(traces(one_span(kind=kind, status={"code": "STATUS_CODE_ERROR"})))
    assert span.kind == expected
    assert span.status.code == Status.STATUS_CODE_ERROR


def test_log_severity_names_and_event_name() -> None:
    document = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "severityNumber": "SEVERITY_NUMBER_WARN",
                                "eventName": "gen_ai.client.inference.operation.details",
                                "body": {"kvlistValue": {"values": []}},
                                "flags": 1,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    record = logs(document).resource_logs[0].scope_logs[0].log_records[0]
    assert record.severity_number == 13
    assert record.event_name == "gen_ai.client.inference.operation.details"
    assert record.body.HasField("kvlist_value")
    assert record.flags == 1


def test_ids_are_case_insensitive_hex_and_may_be_empty() -> None:
    lower = span_of(traces(one_span(traceId="5b8efff798038103d269b633813fc60c", spanId="")))
    upper = span_of(traces(one_span(traceId="5B8EFFF798038103D269B633813FC60C", spanId="")))
    assert lower.trace_id == upper.trace_id == bytes.fromhex("5b8efff798038103d269b633813fc60c")
    assert lower.span_id == b""


def test_hex_ids_of_another_size_pass_through_for_the_span_checks() -> None:
    # The protobuf path cuts such spans out per item (partial success), so JSON
    # hands them on rather than failing the whole request.
    span = span_of(traces(one_span(traceId="abcd", spanId="00", parentSpanId="0102030405")))
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        b"\xab\xcd",
        b"\x00",
        bytes.fromhex("0102030405"),
    )


def test_null_means_absent_and_unknown_fields_are_ignored() -> None:
    document = one_span(
        name=None,
        traceId=None,
        status=None,
        attributes=None,
        somethingNew={"nested": [1, 2]},
        kind=1,
    )
    document["resourceSpans"][0]["resource"] = None
    document["futureTopLevel"] = "x"
    span = span_of(traces(document))
    assert span == Span(kind=Span.SPAN_KIND_INTERNAL)
    assert not traces(document).resource_spans[0].HasField("resource")


def test_present_empty_message_is_kept() -> None:
    span = span_of(traces(one_span(status={})))
    assert span.HasField("status")


def test_empty_request() -> None:
    assert traces_json_to_protobuf(b"{}") == b""
    assert logs_json_to_protobuf(b'{"resourceLogs": []}') == b""


def test_attribute_cache_keeps_kinds_apart() -> None:
    # The same key and text as a string and as an int must not share an encoding.
    document = one_span(
        attributes=[
            {"key": "n", "value": {"stringValue": "40"}},
            {"key": "n", "value": {"intValue": "40"}},
            {"key": "n", "value": {"intValue": 40}},
            {"key": "n", "value": {"stringValue": "40"}},
        ]
    )
    kinds = [a.value.WhichOneof("value") for a in span_of(traces(document)).attributes]
    assert kinds == ["string_value", "int_value", "int_value", "string_value"]


def test_repeated_strings_in_resource_entity_refs() -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "entityRefs": [
                        {"type": "service", "idKeys": ["service.name", ""], "descriptionKeys": []}
                    ]
                }
            }
        ]
    }
    reference = json_format.Parse(json.dumps(document), ExportTraceServiceRequest())
    assert traces(document) == reference
    ref = traces(document).resource_spans[0].resource.entity_refs[0]
    assert list(ref.id_keys) == ["service.name", ""]


def all_scalar_types() -> tuple[Descriptor, type[Message]]:
    """A message with every scalar type, singular and repeated (packed), built at run time.

    OTLP traces and logs use only some protobuf types; the walker supports all
    of them so a new OTLP field cannot break decoding, and this checks them.
    """
    file = descriptor_pb2.FileDescriptorProto(
        name="tracescore_test_all_scalars.proto", package="tracescore.test", syntax="proto3"
    )
    message = file.message_type.add(name="AllScalars")
    enum = file.enum_type.add(name="Color")
    for number, name in enumerate(["COLOR_UNSPECIFIED", "COLOR_RED"]):
        enum.value.add(name=name, number=number)
    kinds = {
        "f_double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
        "f_float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
        "f_int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        "f_uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
        "f_int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
        "f_fixed64": descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64,
        "f_fixed32": descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32,
        "f_bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
        "f_string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        "f_bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        "f_uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
        "f_sfixed32": descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32,
        "f_sfixed64": descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64,
        "f_sint32": descriptor_pb2.FieldDescriptorProto.TYPE_SINT32,
        "f_sint64": descriptor_pb2.FieldDescriptorProto.TYPE_SINT64,
        "f_enum": descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
    }
    number = 0
    for repeated in (False, True):
        for name, kind in kinds.items():
            number += 1
            field = message.field.add(
                name=f"r_{name}" if repeated else name,
                number=number,
                type=kind,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
            if kind == descriptor_pb2.FieldDescriptorProto.TYPE_ENUM:
                field.type_name = ".tracescore.test.Color"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tracescore.test.AllScalars")
    return descriptor, message_factory.GetMessageClass(descriptor)


def test_every_scalar_type_matches_json_format() -> None:
    descriptor, all_scalars = all_scalar_types()
    extremes: dict[str, list[Any]] = {
        "double": [0.0, -2.5, 1e300, math.inf],
        "float": [0.0, 1.5, -3.25],
        "int64": [0, -1, -(2**63), 2**63 - 1],
        "uint64": [0, 1, 2**64 - 1],
        "int32": [0, -1, -(2**31), 2**31 - 1],
        "fixed64": [0, 2**64 - 1],
        "fixed32": [0, 2**32 - 1],
        "bool": [False, True],
        "string": ["", "héllo"],
        "bytes": [b"", b"\x00\xff"],
        "uint32": [0, 2**32 - 1],
        "sfixed32": [0, -(2**31), 2**31 - 1],
        "sfixed64": [0, -(2**63), 2**63 - 1],
        "sint32": [0, -1, -(2**31), 2**31 - 1],
        "sint64": [0, -1, -(2**63), 2**63 - 1],
        "enum": [0, 1],
    }
    encoder = otlp_json._build(descriptor, {})
    for index in range(4):
        message = all_scalars()
        for kind, values in extremes.items():
            setattr(message, f"f_{kind}", values[index % len(values)])
            getattr(message, f"r_f_{kind}").extend(values)
        document = json.loads(json_format.MessageToJson(message))
        ours = all_scalars.FromString(otlp_json._encode_message(document, encoder))
        assert ours == message


# --- malformed input --------------------------------------------------------------

SPAN_PATH = "resourceSpans[0].scopeSpans[0].spans[0]"
ATTRIBUTE_PATH = f"{SPAN_PATH}.attributes[0].value"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param([], "request body: expected a JSON object, got an array", id="top-array"),
        pytest.param(
            {"resourceSpans": {}}, "resourceSpans: expected an array, got an object", id="rs-obj"
        ),
        pytest.param(
            {"resourceSpans": [{"scopeSpans": [{"spans": [None]}]}]},
            f"{SPAN_PATH}: null is not allowed in an array",
            id="null-span",
        ),
        pytest.param(
            {"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]},
            f"{SPAN_PATH}: expected an object, got a string",
            id="span-string",
        ),
        pytest.param(
            one_span(traceId="5b8efff798038103d269b633813fc60"),
            f"{SPAN_PATH}.traceId: expected 32 hex characters,"
            " got '5b8efff798038103d269b633813fc60'",
            id="trace-id-odd-length",
        ),
        pytest.param(
            one_span(traceId="5b8efff798038103d269b633813fc6zz"),
            f"{SPAN_PATH}.traceId: expected 32 hex characters,"
            " got '5b8efff798038103d269b633813fc6zz'",
            id="trace-id-not-hex",
        ),
        pytest.param(
            one_span(traceId="W47/95gDgQPSabYzgT/GDA=="),
            f"{SPAN_PATH}.traceId: expected 32 hex characters, got 'W47/95gDgQPSabYzgT/GDA=='",
            id="trace-id-base64",
        ),
        pytest.param(
            one_span(spanId="eee19b7e c3c1b17"),
            f"{SPAN_PATH}.spanId: expected 16 hex characters, got 'eee19b7e c3c1b17'",
            id="span-id-space",
        ),
        pytest.param(
            one_span(parent_span_id=7),
            f"{SPAN_PATH}.parent_span_id: expected a string of 16 hex characters, got a number",
            id="parent-id-number",
        ),
        pytest.param(
            one_span(links=[{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "abc"}]),
            f"{SPAN_PATH}.links[0].spanId: expected 16 hex characters, got 'abc'",
            id="link-span-id",
        ),
        pytest.param(
            one_span(spanId="eee19b7e c3c1b174"),
            f"{SPAN_PATH}.spanId: expected 16 hex characters, got 'eee19b7e c3c1b174'",
            id="span-id-inner-space",
        ),
        pytest.param(
            one_span(traceId="é" * 32),
            f"{SPAN_PATH}.traceId: expected 32 hex characters, got '{'é' * 32}'",
            id="trace-id-non-ascii",
        ),
        pytest.param(
            one_span(traceId="g" * 100),
            f"{SPAN_PATH}.traceId: expected 32 hex characters, got '{'g' * 40}'...",
            id="long-value-cut-in-message",
        ),
        pytest.param(
            one_span(name=5), f"{SPAN_PATH}.name: expected a string, got a number", id="name"
        ),
        pytest.param(
            one_span(startTimeUnixNano="9" * 5000),
            f"{SPAN_PATH}.startTimeUnixNano: integer '{'9' * 40}'... out of range",
            id="time-huge-digits",
        ),
        pytest.param(
            one_span(startTimeUnixNano="1e999999999"),
            f"{SPAN_PATH}.startTimeUnixNano: integer '1e999999999' out of range"
            " [0, 18446744073709551615]",
            id="time-huge-exponent",
        ),
        pytest.param(
            attribute({"intValue": "1" * 5000}),
            f"{ATTRIBUTE_PATH}.intValue: integer '{'1' * 40}'... out of range",
            id="int-value-huge-digits",
        ),
        pytest.param(
            one_span(name="\ud800"),
            f"{SPAN_PATH}.name: string contains an unpaired surrogate",
            id="surrogate",
        ),
        pytest.param(
            one_span(startTimeUnixNano="soon"),
            f"{SPAN_PATH}.startTimeUnixNano: expected an integer, got 'soon'",
            id="time-text",
        ),
        pytest.param(
            one_span(startTimeUnixNano=-1),
            f"{SPAN_PATH}.startTimeUnixNano: integer -1 out of range [0, 18446744073709551615]",
            id="time-negative",
        ),
        pytest.param(
            one_span(endTimeUnixNano=1.5),
            f"{SPAN_PATH}.endTimeUnixNano: expected an integer, got 1.5",
            id="time-fraction",
        ),
        pytest.param(
            one_span(endTimeUnixNano="18446744073709551616"),
            f"{SPAN_PATH}.endTimeUnixNano: integer 18446744073709551616 out of range"
            " [0, 18446744073709551615]",
            id="time-overflow",
        ),
        pytest.param(
            one_span(kind="SPAN_KIND_BOGUS"),
            f"{SPAN_PATH}.kind: expected an integer or a SpanKind value name,"
            " got 'SPAN_KIND_BOGUS'",
            id="kind-name",
        ),
        pytest.param(
            one_span(kind=True), f"{SPAN_PATH}.kind: expected an integer, got a boolean", id="kind"
        ),
        pytest.param(
            one_span(flags=2**32),
            f"{SPAN_PATH}.flags: integer 4294967296 out of range [0, 4294967295]",
            id="flags",
        ),
        pytest.param(
            one_span(droppedAttributesCount=-1),
            f"{SPAN_PATH}.droppedAttributesCount: integer -1 out of range [0, 4294967295]",
            id="dropped",
        ),
        pytest.param(
            one_span(status={"code": [2]}),
            f"{SPAN_PATH}.status.code: expected an integer, got an array",
            id="status-code",
        ),
        pytest.param(
            one_span(attributes={"k": "v"}),
            f"{SPAN_PATH}.attributes: expected an array, got an object",
            id="attributes-object",
        ),
        pytest.param(
            one_span(attributes=["k"]),
            f"{SPAN_PATH}.attributes[0]: expected an object, got a string",
            id="attribute-string",
        ),
        pytest.param(
            one_span(attributes=[{"key": 1, "value": {"stringValue": "v"}}]),
            f"{SPAN_PATH}.attributes[0].key: expected a string, got a number",
            id="attribute-key",
        ),
        pytest.param(
            attribute({"stringValue": 5}),
            f"{ATTRIBUTE_PATH}.stringValue: expected a string, got a number",
            id="string-value",
        ),
        pytest.param(
            attribute({"stringValue": "\udc00"}),
            f"{ATTRIBUTE_PATH}.stringValue: string contains an unpaired surrogate",
            id="string-value-surrogate",
        ),
        pytest.param(
            attribute({"intValue": "12x"}),
            f"{ATTRIBUTE_PATH}.intValue: expected an integer, got '12x'",
            id="int-value",
        ),
        pytest.param(
            attribute({"intValue": "9223372036854775808"}),
            f"{ATTRIBUTE_PATH}.intValue: integer 9223372036854775808 out of range"
            " [-9223372036854775808, 9223372036854775807]",
            id="int-value-overflow",
        ),
        pytest.param(
            attribute({"boolValue": "true"}),
            f"{ATTRIBUTE_PATH}.boolValue: expected true or false, got a string",
            id="bool-value",
        ),
        pytest.param(
            attribute({"doubleValue": "nan"}),
            f'{ATTRIBUTE_PATH}.doubleValue: expected a number, "NaN", "Infinity" or'
            " \"-Infinity\", got 'nan'",
            id="double-value",
        ),
        pytest.param(
            attribute({"bytesValue": "!!!!"}),
            f"{ATTRIBUTE_PATH}.bytesValue: invalid base64",
            id="bytes-value",
        ),
        pytest.param(
            attribute({"stringValue": "a", "intValue": 1}),
            f"{ATTRIBUTE_PATH}.intValue: another member of oneof 'value' is already set",
            id="two-kinds",
        ),
        pytest.param(
            attribute({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "x"}]}}),
            f"{ATTRIBUTE_PATH}.arrayValue.values[1].intValue: expected an integer, got 'x'",
            id="nested-array",
        ),
        pytest.param(
            attribute({"arrayValue": {"values": [None]}}),
            f"{ATTRIBUTE_PATH}.arrayValue.values[0]: null is not allowed in an array",
            id="array-null",
        ),
        pytest.param(
            attribute({"kvlistValue": {"values": [{"key": "k", "value": {"intValue": []}}]}}),
            f"{ATTRIBUTE_PATH}.kvlistValue.values[0].value.intValue: expected an integer,"
            " got an array",
            id="nested-kvlist",
        ),
        pytest.param(
            one_span(events=[{}, {"attributes": [{"key": "k", "value": "v"}]}]),
            f"{SPAN_PATH}.events[1].attributes[0].value: expected an object, got a string",
            id="event-attribute",
        ),
        pytest.param(
            {"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": []}]}}]},
            "resourceSpans[0].resource.attributes[0].value: expected an object, got an array",
            id="resource-attribute",
        ),
    ],
)
def test_malformed_traces(document: Any, message: str) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        traces_json_to_protobuf(json.dumps(document).encode())
    assert str(caught.value) == message


LOG_PATH = "resourceLogs[0].scopeLogs[0].logRecords[0]"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        pytest.param(
            {"traceId": "abc"},
            f"{LOG_PATH}.traceId: expected 32 hex characters, got 'abc'",
            id="id",
        ),
        pytest.param(
            {"body": "text"}, f"{LOG_PATH}.body: expected an object, got a string", id="body"
        ),
        pytest.param(
            {"severityNumber": "LOUD"},
            f"{LOG_PATH}.severityNumber: expected an integer or a SeverityNumber value name,"
            " got 'LOUD'",
            id="severity",
        ),
        pytest.param(
            {"observedTimeUnixNano": {}},
            f"{LOG_PATH}.observedTimeUnixNano: expected an integer, got an object",
            id="time",
        ),
    ],
)
def test_malformed_logs(record: dict[str, Any], message: str) -> None:
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    with pytest.raises(OtlpDecodeError) as caught:
        logs_json_to_protobuf(json.dumps(document))
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"resourceSpans": [', b"\xff\xfe\x00", b'{"a": NaN}', b'{"a": 1} x'],
    ids=["empty", "text", "truncated", "bad-utf8", "bare-nan", "trailing"],
)
def test_invalid_json(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError, match=r"^request body is not valid JSON: "):
        traces_json_to_protobuf(body)


@pytest.mark.parametrize(
    ("opening", "closing", "depth"),
    [
        # Deeper than json.loads goes.
        ('{"arrayValue":{"values":[', "]}}", 2000),
        # Shallow enough for json.loads, too deep for the encoder's recursion.
        ('{"kvlistValue":{"values":[{"key":"k","value":', "}]}}", 240),
    ],
    ids=["arrays", "kvlists"],
)
def test_deep_nesting_is_an_error_not_a_crash(opening: str, closing: str, depth: int) -> None:
    value = opening * depth + '{"stringValue":"leaf"}' + closing * depth
    body = '{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":' + value + "}]}}]}"
    with pytest.raises(OtlpDecodeError, match="nested too deeply"):
        traces_json_to_protobuf(body)


# --- responses ---------------------------------------------------------------------


def test_success_responses_are_empty_objects() -> None:
    assert response_json(0, "", "traces") == b"{}"
    assert response_json(0, "", "logs") == b"{}"


def test_partial_success_responses_parse_as_the_response_messages() -> None:
    traces_body = response_json(3, "3 spans had no trace id", "traces")
    parsed = json_format.Parse(traces_body, ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 3
    assert parsed.partial_success.error_message == "3 spans had no trace id"
    logs_body = response_json(2, "", "logs")
    assert json.loads(logs_body) == {"partialSuccess": {"rejectedLogRecords": "2"}}
    parsed_logs = json_format.Parse(logs_body, ExportLogsServiceResponse())
    assert parsed_logs.partial_success.rejected_log_records == 2
    warning_body = response_json(0, "deprecated field", "traces")
    warning = json_format.Parse(warning_body, ExportTraceServiceResponse())
    assert warning.HasField("partial_success")
    assert warning.partial_success.rejected_spans == 0


def test_status_json_parses_as_google_rpc_status() -> None:
    body = status_json(3, 'invalid OTLP trace export: bad "id" ✓')
    parsed = json_format.Parse(body, status_pb2.Status())
    assert (parsed.code, parsed.message) == (3, 'invalid OTLP trace export: bad "id" ✓')
    assert json.loads(status_json(0, "")) == {}
