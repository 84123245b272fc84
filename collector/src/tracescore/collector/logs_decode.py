"""OTLP ``ExportLogsServiceRequest`` to ``otel_logs`` columns, in the exporter's value formats.

Log records carry GenAI message content (the openai-v2 instrumentation's
``gen_ai.client.inference.operation.details`` events) as deeply nested bodies,
so they are decoded here, where ``AsString()`` is exact at any depth, rather
than by the engine's fixed-depth schema.
"""

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tracescore.collector.anyvalue import any_value_to_str
from tracescore.collector.spans_decode import attribute_pairs, hex_id

_ATTR_MAP: pa.DataType = pa.map_(pa.string(), pa.string())
_TS: pa.DataType = pa.timestamp("ns", tz="UTC")

LOG_SCHEMA = pa.schema(
    [
        ("Timestamp", _TS),
        ("TraceId", pa.string()),
        ("SpanId", pa.string()),
        ("TraceFlags", pa.uint8()),
        ("SeverityText", pa.string()),
        ("SeverityNumber", pa.uint8()),
        ("ServiceName", pa.string()),
        ("Body", pa.string()),
        ("ResourceSchemaUrl", pa.string()),
        ("ResourceAttributes", _ATTR_MAP),
        ("ScopeSchemaUrl", pa.string()),
        ("ScopeName", pa.string()),
        ("ScopeVersion", pa.string()),
        ("ScopeAttributes", _ATTR_MAP),
        ("LogAttributes", _ATTR_MAP),
        ("EventName", pa.string()),
    ]
)


def decode_logs(requests: Iterable[ExportLogsServiceRequest]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in LOG_SCHEMA.names}
    add = {name: values.append for name, values in columns.items()}
    for request in requests:
        for resource_logs in request.resource_logs:
            resource = attribute_pairs(resource_logs.resource.attributes)
            service = next((v for k, v in resource if k == "service.name"), "")
            for scope_logs in resource_logs.scope_logs:
                scope = scope_logs.scope
                scope_attrs = attribute_pairs(scope.attributes)
                for record in scope_logs.log_records:
                    # The exporter falls back to the observed time when the event time is unset.
                    add["Timestamp"](record.time_unix_nano or record.observed_time_unix_nano)
                    add["TraceId"](hex_id(record.trace_id))
                    add["SpanId"](hex_id(record.span_id))
                    add["TraceFlags"](record.flags & 0xFF)
                    add["SeverityText"](record.severity_text)
                    add["SeverityNumber"](record.severity_number & 0xFF)
                    add["ServiceName"](service)
                    add["Body"](any_value_to_str(record.body))
                    add["ResourceSchemaUrl"](resource_logs.schema_url)
                    add["ResourceAttributes"](resource)
                    add["ScopeSchemaUrl"](scope_logs.schema_url)
                    add["ScopeName"](scope.name)
                    add["ScopeVersion"](scope.version)
                    add["ScopeAttributes"](scope_attrs)
                    add["LogAttributes"](attribute_pairs(record.attributes))
                    add["EventName"](record.event_name)
    return pa.Table.from_pydict(columns, schema=LOG_SCHEMA)
