"""OTLP protobuf decoded by the ClickHouse engine itself: ``INSERT ... SELECT FROM file()``.

A Python loop from protobuf into columns tops out around 30k spans/s on one
core; the engine reads the same bytes with a schema (``wire/otlp_wire.proto``)
and flattens them with ARRAY JOIN about twice as fast, on both cores. So the
collector spools validated request bytes and loads them in large batches with
the statements built here.

Attribute values are rendered in SQL exactly as the Collector's pdata
``AsString()`` does (see ``anyvalue.py``, the Python reference): scalars as
text, doubles in Go's shortest fixed notation, bytes as base64, arrays and maps
as Go-style JSON with sorted keys and HTML characters escaped. The schema
unrolls ``AnyValue`` two levels deep (arrays and maps of scalars, all that
the OTel SDKs' span attributes allow); anything nested deeper is kept as the
base64 of its protobuf bytes rather than dropped.
"""

from importlib import resources
from pathlib import Path

from tracescore.schemas.ddl import TRACES_TABLE

_SCALARS = (
    "string_value String, bool_value Bool, int_value Int64, double_value Float64, "
    "bytes_value String"
)
_ONEOF = (
    "value Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, "
    "'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)"
)
_VALUE1 = f"Tuple({_ONEOF}, {_SCALARS}, array_value String, kvlist_value String)"
_VALUE0 = (
    f"Tuple({_ONEOF}, {_SCALARS}, array_value Tuple(values Array({_VALUE1})), "
    f"kvlist_value Tuple(values Array(Tuple(key String, value {_VALUE1}))))"
)
_KEY_VALUES = f"Array(Tuple(key String, value {_VALUE0}))"
_SCOPE = f"Tuple(name String, version String, attributes {_KEY_VALUES})"
_RESOURCE = f"Tuple(attributes {_KEY_VALUES})"

TRACES_STRUCTURE = (
    f"resource_spans Array(Tuple(resource {_RESOURCE}, scope_spans Array(Tuple(scope {_SCOPE}, "
    "spans Array(Tuple(trace_id String, span_id String, trace_state String, "
    "parent_span_id String, name String, kind Int32, start_time_unix_nano UInt64, "
    f"end_time_unix_nano UInt64, attributes {_KEY_VALUES}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KEY_VALUES})), "
    "links Array(Tuple(trace_id String, span_id String, trace_state String, "
    f"attributes {_KEY_VALUES})), status Tuple(message String, code Int32)))))))"
)

SPAN_KINDS = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
STATUS_CODES = "['Unset', 'Ok', 'Error']"


def schema_file() -> Path:
    """The .proto on disk; the engine needs a real path, not package data in a zip."""
    return Path(str(resources.files("tracescore.collector").joinpath("wire/otlp_wire.proto")))


def _float_parts(x: str) -> tuple[str, str]:
    """(sign, shortest digits as the engine prints them) of a Float64 expression."""
    text = f"toString({x})"
    return f"if(startsWith({text}, '-'), '-', '')", f"trimLeft({text}, '-')"


def _go_fixed(x: str) -> str:
    """Go's ``strconv.FormatFloat(x, 'f', -1, 64)``: shortest digits, never an exponent.

    The engine prints shortest round-trip digits like Go but switches to an
    exponent outside [1e-6, 1e21); those cases are expanded here by moving the point.
    """
    sign, text = _float_parts(x)
    mantissa = f"splitByChar('e', {text})[1]"
    exponent = f"toInt32OrZero(splitByChar('e', {text})[2])"
    digits = f"replaceOne({mantissa}, '.', '')"
    # Digits before the point once the exponent is applied; the mantissa has one.
    point = f"(1 + {exponent})"
    # Total functions (no throwing casts, no negative repeats): they stay correct even
    # where the engine evaluates a branch for rows it does not select.
    expanded = (
        f"multiIf({point} >= length({digits}), "
        f"concat({digits}, repeat('0', toUInt32(greatest(0, {point} - length({digits}))))), "
        f"{point} <= 0, concat('0.', repeat('0', toUInt32(greatest(0, -{point}))), {digits}), "
        f"concat(substring({digits}, 1, {point}), '.', substring({digits}, {point} + 1)))"
    )
    return (
        f"multiIf(isNaN({x}), 'NaN', isInfinite({x}), if({x} > 0, '+Inf', '-Inf'), "
        f"position({text}, 'e') > 0, concat({sign}, {expanded}), concat({sign}, {text}))"
    )


def _go_json_float(x: str) -> str:
    """A double inside a JSON array or map, as Go's encoding/json writes it.

    Go uses an exponent exactly where the engine does (below 1e-6, from 1e21),
    but writes ``e+21`` where the engine writes ``e21``. NaN and infinities have
    no JSON form; the reference keeps them readable as strings.
    """
    sign, text = _float_parts(x)
    return (
        f"multiIf(isNaN({x}), '\"NaN\"', isInfinite({x}), if({x} > 0, '\"+Inf\"', '\"-Inf\"'), "
        f"concat({sign}, replaceRegexpOne({text}, 'e([0-9])', 'e+\\\\1')))"
    )


def _json_string(s: str) -> str:
    # The engine escapes as Go does, except that Go also escapes <, > and & (HTML
    # safety) and writes the rare \\u00XX control escapes in lowercase hex; both
    # spellings decode to the same string, so only the HTML characters are fixed.
    return (
        f"replaceAll(replaceAll(replaceAll(toJSONString({s}), '<', '\\\\u003c'), "
        f"'>', '\\\\u003e'), '&', '\\\\u0026')"
    )


def _value(v: str, depth: int, as_json: bool) -> str:
    """SQL rendering one AnyValue tuple expression ``v`` at nesting ``depth``."""
    string = _json_string(f"{v}.string_value") if as_json else f"{v}.string_value"
    double = _go_json_float(f"{v}.double_value") if as_json else _go_fixed(f"{v}.double_value")
    b64 = f"base64Encode({v}.bytes_value)"
    # pdata renders an empty value as "" on its own and as null inside JSON.
    empty = "'null'" if as_json else "''"
    if depth < 1:
        array = _json_array(f"{v}.array_value.values", depth + 1)
        kvlist = _json_object(f"{v}.kvlist_value.values", depth + 1)
    else:
        # Deeper than the schema unrolls: keep the message bytes, losslessly.
        array = _json_string(f"base64Encode({v}.array_value)")
        kvlist = _json_string(f"base64Encode({v}.kvlist_value)")
    return (
        f"multiIf({v}.value = 'string_value', {string}, "
        f"{v}.value = 'int_value', toString({v}.int_value), "
        f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
        f"{v}.value = 'double_value', {double}, "
        f"{v}.value = 'array_value', {array}, "
        f"{v}.value = 'kvlist_value', {kvlist}, "
        f"{v}.value = 'bytes_value', {_json_string(b64) if as_json else b64}, "
        f"{empty})"
    )


def _json_array(values: str, depth: int) -> str:
    item = f"x{depth}"
    return (
        f"concat('[', arrayStringConcat(arrayMap({item} -> {_value(item, depth, True)}, "
        f"{values}), ','), ']')"
    )


def _json_object(pairs: str, depth: int) -> str:
    # pdata builds a Go map (the last duplicate key wins) and encoding/json sorts its keys.
    kv, i = f"kv{depth}", f"i{depth}"
    last = (
        f"arrayFilter(({kv}, {i}) -> NOT has(arraySlice(arrayMap(p -> p.key, {pairs}), {i} + 1), "
        f"{kv}.key), {pairs}, arrayEnumerate({pairs}))"
    )
    member = f"concat({_json_string(f'{kv}.key')}, ':', {_value(f'{kv}.value', depth, True)})"
    return (
        f"concat('{{', arrayStringConcat(arrayMap({kv} -> {member}, "
        f"arraySort({kv} -> {kv}.key, {last})), ','), '}}')"
    )


def attributes_map(key_values: str) -> str:
    """``Map(LowCardinality(String), String)`` from an array of KeyValue tuples."""
    return (
        f"CAST(mapFromArrays(arrayMap(a -> a.key, {key_values}), "
        f"arrayMap(a -> {_value('a.value', 0, False)}, {key_values})), "
        "'Map(LowCardinality(String), String)')"
    )


def _hex_id(raw: str) -> str:
    # The exporter writes an absent or all-zero id as the empty string.
    return f"if(replaceAll({raw}, '\\0', '') = '', '', lower(hex({raw})))"


# A spooled batch may span many days (a backfill, a replay): never refuse it for that.
# Every branch of the value renderer is a total function, so evaluating all of them
# for every value is safe, and measured 10-25 % faster than short-circuit masking.
SETTINGS = (
    "input_format_protobuf_oneof_presence = 1, max_partitions_per_insert_block = 0, "
    "output_format_json_escape_forward_slashes = 0, short_circuit_function_evaluation = 'disable'"
)


def traces_insert_sql(database: str, paths: list[Path]) -> str:
    """``INSERT`` into ``otel_traces`` from spool segments of length-delimited requests."""
    source, settings = _file_source(paths, "ExportTraceServiceRequest", TRACES_STRUCTURE)
    # Every attribute list of a span (resource, span, events, links) goes through one
    # copy of the value renderer: the renderer is large, and the engine's analysis time
    # grows with the size of the statement, a fixed cost paid on every batch.
    return f"""
INSERT INTO {database}.{TRACES_TABLE} (Timestamp, TraceId, SpanId, ParentSpanId, TraceState,
    SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
    Duration, StatusCode, StatusMessage, `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
    `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`)
SELECT
    fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano), 'UTC'),
    lower(hex(sp.trace_id)),
    lower(hex(sp.span_id)),
    {_hex_id("sp.parent_span_id")},
    sp.trace_state,
    sp.name,
    if(sp.kind BETWEEN 0 AND 5, {SPAN_KINDS}[sp.kind + 1], ''),
    attribute_sets[1]['service.name'],
    attribute_sets[1],
    ss.scope.name,
    ss.scope.version,
    attribute_sets[2],
    if(sp.end_time_unix_nano > sp.start_time_unix_nano,
       sp.end_time_unix_nano - sp.start_time_unix_nano, 0),
    if(sp.status.code BETWEEN 0 AND 2, {STATUS_CODES}[sp.status.code + 1], ''),
    sp.status.message,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano), 'UTC'), sp.events),
    arrayMap(e -> e.name, sp.events),
    arraySlice(attribute_sets, 3, length(sp.events)),
    arrayMap(l -> {_hex_id("l.trace_id")}, sp.links),
    arrayMap(l -> {_hex_id("l.span_id")}, sp.links),
    arrayMap(l -> l.trace_state, sp.links),
    arraySlice(attribute_sets, 3 + length(sp.events), length(sp.links))
FROM (
    SELECT rs, ss, sp,
        arrayMap(kvs -> {attributes_map("kvs")},
                 arrayConcat([rs.resource.attributes, sp.attributes],
                             arrayMap(e -> e.attributes, sp.events),
                             arrayMap(l -> l.attributes, sp.links))) AS attribute_sets
    FROM {source}
    ARRAY JOIN resource_spans AS rs
    ARRAY JOIN rs.scope_spans AS ss
    ARRAY JOIN ss.spans AS sp
)
SETTINGS {settings}"""


def _file_source(paths: list[Path], message: str, structure: str) -> tuple[str, str]:
    """A ``file()`` call over spool segments and the settings to read them.

    Paths are the spool's own names, never user text; they are still checked so
    a quote in a configured directory fails loudly instead of breaking the SQL.
    """
    if not paths:
        raise ValueError("no spool segments to load")
    for path in paths:
        if "'" in str(path) or "\\" in str(path) or "," in path.name:
            raise ValueError(f"spool path {path} contains a quote, backslash or comma")
    # A brace list reads several files as one source, in parallel across threads.
    folder = paths[0].parent
    pattern = f"{folder}/{{{','.join(p.name for p in paths)}}}" if len(paths) > 1 else str(paths[0])
    quoted_structure = structure.replace("'", "\\'")
    source = f"file('{pattern}', 'Protobuf', '{quoted_structure}')"
    settings = f"{SETTINGS}, format_schema = '{schema_file()}:{message}'"
    return source, settings
