"""OTLP/JSON request bodies to the protobuf bytes the rest of the collector consumes.

``google.protobuf.json_format.Parse`` manages ~3k agent spans/s here and does not
speak OTLP's JSON dialect (hex ids), so this module walks the ``json.loads``
result once and writes the protobuf wire format directly; building upb messages
from Python measured slower. Field numbers, wire types and JSON names all come
from the generated descriptors, so the encoding follows opentelemetry-proto as
it evolves; attribute lists and ``AnyValue`` get hand-written fast paths, which
the descriptor-driven walker backs for every shape they do not handle. About
half the time is ``json.loads`` itself (see bench/otlp_json.py).

The JSON mapping is OTLP's (opentelemetry-proto ``docs/specification.md``, "JSON
Protobuf Encoding"): ``traceId``/``spanId``/``parentSpanId`` are hex, enums are
integers, unknown keys are ignored, null means absent. Like protobuf's own JSON
parsers, the receiver is lenient where the spec is strict: proto (snake_case)
field names and enum value names are accepted too. Output bytes may order
fields differently from ``SerializeToString`` (they follow the JSON), which
every protobuf parser accepts.
"""

import base64
import binascii
import gc
import json
import math
import re
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

from tracescore.collector.spool import varint
from tracescore.schemas.errors import OtlpDecodeError

Signal = Literal["traces", "logs"]

__all__ = [
    "Signal",
    "logs_json_to_protobuf",
    "response_json",
    "status_json",
    "traces_json_to_protobuf",
]


def traces_json_to_protobuf(body: bytes | str) -> bytes:
    """An OTLP/JSON ``ExportTraceServiceRequest`` as serialized protobuf."""
    return _convert(body, _TRACES)


def logs_json_to_protobuf(body: bytes | str) -> bytes:
    """An OTLP/JSON ``ExportLogsServiceRequest`` as serialized protobuf."""
    return _convert(body, _LOGS)


def response_json(rejected: int, message: str, signal: Signal) -> bytes:
    """The JSON ``Export{Trace,Logs}ServiceResponse`` for a handled request.

    The spec requires ``partial_success`` to stay unset on full success, so
    nothing rejected and no message is ``{}``. Proto3 JSON omits default
    values and writes int64 as a decimal string.
    """
    partial: dict[str, str] = {}
    if rejected:
        partial["rejectedSpans" if signal == "traces" else "rejectedLogRecords"] = str(rejected)
    if message:
        partial["errorMessage"] = message
    return _dump({"partialSuccess": partial} if partial else {})


def status_json(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` error body in JSON, as OTLP/HTTP requires for 4xx/5xx."""
    status: dict[str, int | str] = {}
    if code:
        status["code"] = code
    if message:
        status["message"] = message
    return _dump(status)


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("ascii")


# --- errors ---------------------------------------------------------------------


class _PathError(Exception):
    """A decoding failure; callers add their path segment as it propagates out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # Innermost segment first: "traceId", "[3]", "spans", ...
        self.path: list[str] = []

    def where(self) -> str:
        text = ""
        for segment in reversed(self.path):
            text += segment if segment.startswith("[") or not text else "." + segment
        return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _position(items: list[Any], item: Any) -> int:
    """Where ``item`` sits in ``items``; only called once decoding has failed.

    Hot loops iterate without ``enumerate``: the failing item is the first
    occurrence of that object, as an identical earlier one would have failed first.
    """
    return next(index for index, candidate in enumerate(items) if candidate is item)


def _preview(text: str) -> str:
    """``text`` for an error message, cut so a hostile value cannot bloat it."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


def _expected(what: str, value: Any) -> _PathError:
    return _PathError(f"expected {what}, got {_json_type(value)}")


# --- wire format ----------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_INT32 = (-(1 << 31), (1 << 31) - 1)
_UINT32 = (0, (1 << 32) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64 = (0, _MASK64)


# Every value below 16 Ki (the one- and two-byte varints) is precomputed: length
# prefixes are written for every string and nested message, and a table index is
# several times cheaper than building the varint.
_LEN_TABLE_SIZE = 1 << 14
_LEN = tuple(varint(n) for n in range(_LEN_TABLE_SIZE))


def _varint(number: int) -> bytes:
    """Base-128 varint of a non-negative int (callers mask negatives to 64 bits)."""
    return _LEN[number] if number < _LEN_TABLE_SIZE else varint(number)


_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_sfixed64 = struct.Struct("<q").pack
_pack_sfixed32 = struct.Struct("<i").pack
_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise _PathError("string contains an unpaired surrogate") from None


# --- JSON scalars ---------------------------------------------------------------

_DECIMAL_INT = re.compile(r"-?[0-9]+")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _integer(value: Any, bounds: tuple[int, int]) -> int:
    """A JSON number or decimal string, as proto3 JSON allows for every integer type."""
    low, high = bounds
    if type(value) is int:
        number = value
    elif type(value) is str:
        if _DECIMAL_INT.fullmatch(value):
            try:
                number = int(value)
            except ValueError:  # beyond int()'s digit limit: far out of range anyway
                raise _PathError(f"integer {_preview(value)} out of range") from None
        elif _JSON_NUMBER.fullmatch(value):
            # "1e3" and "5.0" name integers too; Decimal keeps 64-bit values exact,
            # and is range-checked before int() so "1e999999999" stays cheap.
            exact = Decimal(value)
            if exact != exact.to_integral_value():
                raise _PathError(f"expected an integer, got {_preview(value)}")
            if not low <= exact <= high:
                raise _PathError(f"integer {_preview(value)} out of range [{low}, {high}]")
            number = int(exact)
        else:
            raise _PathError(f"expected an integer, got {_preview(value)}")
    elif type(value) is float:
        if not value.is_integer():
            raise _PathError(f"expected an integer, got {value!r}")
        number = int(value)
    else:
        raise _expected("an integer", value)
    if not low <= number <= high:
        raise _PathError(f"integer {number} out of range [{low}, {high}]")
    return number


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise _PathError(f"number {value} out of range for a double") from None
    if type(value) is str:
        special = _SPECIAL_FLOATS.get(value)
        if special is not None:
            return special
        if _JSON_NUMBER.fullmatch(value):
            number = float(value)
            if math.isinf(number):
                raise _PathError(f"number {value} out of range for a double")
            return number
        raise _PathError(
            f'expected a number, "NaN", "Infinity" or "-Infinity", got {_preview(value)}'
        )
    raise _expected("a number", value)


def _bytes_base64(value: Any) -> bytes:
    if type(value) is not str:
        raise _expected("a base64 string", value)
    # Proto3 JSON accepts standard and URL-safe alphabets, with or without padding.
    text = value.rstrip("=").replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1:
        raise _PathError("invalid base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _PathError("invalid base64") from None


# --- field encoders -------------------------------------------------------------
#
# A handler turns one JSON value into the complete encoded field (key, length and
# payload), or b"" when proto3 would not serialize it. Handlers never see null:
# the message walker skips it, as "null means absent" in proto3 JSON.

Handler = Callable[[Any], bytes]
Fields = dict[str, Handler]


class _Message:
    """How to encode one message type: handlers by JSON key, both spellings."""

    __slots__ = ("fields", "oneofs")

    def __init__(self) -> None:
        self.fields: Fields = {}
        # JSON key -> oneof name, for rejecting two members set at once.
        self.oneofs: dict[str, str] = {}


def _encode_message(obj: Any, message: _Message) -> bytes:
    if type(obj) is not dict:
        raise _expected("an object", obj)
    fields = message.fields
    parts: list[bytes] = []
    key = ""
    try:
        if message.oneofs:
            seen: set[str] = set()
            for key, value in obj.items():
                handler = fields.get(key)
                if value is None or handler is None:
                    continue
                oneof = message.oneofs.get(key)
                if oneof is not None:
                    if oneof in seen:
                        raise _PathError(f"another member of oneof {oneof!r} is already set")
                    seen.add(oneof)
                parts.append(handler(value))
        else:
            for key, value in obj.items():
                handler = fields.get(key)
                if value is not None and handler is not None:
                    parts.append(handler(value))
    except _PathError as exc:
        exc.path.append(key)
        raise
    return b"".join(parts)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    size = len(payload)
    return tag + (_LEN[size] if size < _LEN_TABLE_SIZE else _varint(size)) + payload


def _string_field(tag: bytes, presence: bool) -> Handler:
    def handle(value: Any) -> bytes:
        if type(value) is not str:
            raise _expected("a string", value)
        if not value and not presence:
            return b""
        raw = _utf8(value)
        size = len(raw)
        return tag + (_LEN[size] if size < _LEN_TABLE_SIZE else varint(size)) + raw

    return handle


def _hex_id_field(tag: bytes, size: int) -> Handler:
    digits = 2 * size

    def handle(value: Any) -> bytes:
        if type(value) is not str:
            raise _expected(f"a string of {digits} hex characters", value)
        if not value:
            return b""
        if len(value) == digits:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = b""
            # fromhex skips whitespace between bytes, which would shorten the id.
            if len(raw) == size:
                return tag + _LEN[size] + raw
        # Well-formed hex of another size passes through: the span and log checks
        # downstream reject such ids per item (partial success), exactly as for a
        # protobuf request, instead of failing the whole request here.
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if 2 * len(raw) != len(value):
            raise _PathError(f"expected {digits} hex characters, got {_preview(value)}")
        return _length_delimited(tag, raw)

    return handle


def _bytes_field(tag: bytes, presence: bool) -> Handler:
    def handle(value: Any) -> bytes:
        raw = _bytes_base64(value)
        if not raw and not presence:
            return b""
        return _length_delimited(tag, raw)

    return handle


def _bool_field(tag: bytes, presence: bool) -> Handler:
    true, false = tag + b"\x01", (tag + b"\x00" if presence else b"")

    def handle(value: Any) -> bytes:
        if value is True:
            return true
        if value is False:
            return false
        raise _expected("true or false", value)

    return handle


def _varint_field(
    tag: bytes, presence: bool, bounds: tuple[int, int], zigzag: bool = False
) -> Handler:
    def handle(value: Any) -> bytes:
        number = value if type(value) is int and value >= 0 else _integer(value, bounds)
        if number > bounds[1]:
            raise _PathError(f"integer {number} out of range [{bounds[0]}, {bounds[1]}]")
        if not number and not presence:
            return b""
        if zigzag:
            number = (number << 1) ^ (number >> 63)
        return tag + _varint(number & _MASK64)

    return handle


def _enum_field(tag: bytes, presence: bool, names: dict[str, int], enum: str) -> Handler:
    def handle(value: Any) -> bytes:
        if type(value) is str and not _DECIMAL_INT.fullmatch(value):
            if value not in names:
                raise _PathError(
                    f"expected an integer or a {enum} value name, got {_preview(value)}"
                )
            number = names[value]
        else:
            # Proto3 enums are open: an unknown number is kept, as protobuf does.
            number = _integer(value, _INT32)
        if not number and not presence:
            return b""
        return tag + _varint(number & _MASK64)

    return handle


def _fixed_field(
    tag: bytes, presence: bool, bounds: tuple[int, int], pack: Callable[[int], bytes]
) -> Handler:
    def handle(value: Any) -> bytes:
        # Timestamps dominate: a plain decimal string or int skips the general parser.
        if type(value) is str and len(value) <= 20 and value.isdigit() and value.isascii():
            number = int(value)
            if number > bounds[1]:
                raise _PathError(f"integer {number} out of range [{bounds[0]}, {bounds[1]}]")
        else:
            number = _integer(value, bounds)
        if not number and not presence:
            return b""
        return tag + pack(number)

    return handle


def _float_field(tag: bytes, presence: bool, pack: Callable[[float], bytes]) -> Handler:
    def handle(value: Any) -> bytes:
        number = _float(value)
        # -0.0 has a non-zero bit pattern, so proto3 serializes it.
        if number == 0.0 and math.copysign(1.0, number) > 0 and not presence:
            return b""
        try:
            return tag + pack(number)
        except OverflowError:
            raise _PathError(f"number {number} out of range for a float") from None

    return handle


def _message_field(tag: bytes, message: _Message) -> Handler:
    def handle(value: Any) -> bytes:
        # A present message is serialized even when empty: it has presence.
        return _length_delimited(tag, _encode_message(value, message))

    return handle


def _repeated_message_field(tag: bytes, message: _Message) -> Handler:
    def handle(values: Any) -> bytes:
        if type(values) is not list:
            raise _expected("an array", values)
        parts: list[bytes] = []
        try:
            for item in values:
                if item is None:
                    raise _PathError("null is not allowed in an array")
                body = _encode_message(item, message)
                size = len(body)
                parts += (tag, _LEN[size] if size < _LEN_TABLE_SIZE else varint(size), body)
        except _PathError as exc:
            exc.path.append(f"[{_position(values, item)}]")
            raise
        return b"".join(parts)

    return handle


def _repeated_scalar_field(field: FieldDescriptor, element: Handler) -> Handler:
    # Numeric repeated fields are packed in proto3; strings and bytes never are.
    packed = field.is_packed
    tag = _key(field.number, 2)

    def handle(values: Any) -> bytes:
        if type(values) is not list:
            raise _expected("an array", values)
        parts: list[bytes] = []
        try:
            for item in values:
                if item is None:
                    raise _PathError("null is not allowed in an array")
                parts.append(element(item))
        except _PathError as exc:
            exc.path.append(f"[{_position(values, item)}]")
            raise
        if not packed:
            return b"".join(parts)
        # The element handler wrote "key + value"; a packed run wants values only.
        key_size = len(_key(field.number, 0))
        payload = b"".join(part[key_size:] for part in parts)
        return _length_delimited(tag, payload) if payload else b""

    return handle


# --- fast paths: attributes and AnyValue ----------------------------------------
#
# Attribute lists are most of a span's bytes and fields. The common shape,
# {"key": "...", "value": {"stringValue": "..."}}, is encoded inline; every other
# shape (snake_case keys, nulls, other value kinds, strindex fields) goes through
# the descriptor-driven walker, which encodes identically.

_ANY_VALUE = AnyValue.DESCRIPTOR.full_name
_KEY_VALUE = KeyValue.DESCRIPTOR.full_name

_ANY_FIELDS = AnyValue.DESCRIPTOR.fields_by_name
_STRING_VALUE_TAG = _key(_ANY_FIELDS["string_value"].number, 2)
_INT_VALUE_TAG = _key(_ANY_FIELDS["int_value"].number, 0)
_DOUBLE_VALUE_TAG = _key(_ANY_FIELDS["double_value"].number, 1)
_ARRAY_VALUE_TAG = _key(_ANY_FIELDS["array_value"].number, 2)
_ARRAY_ITEM_TAG = _key(ArrayValue.DESCRIPTOR.fields_by_name["values"].number, 2)
_INT64_MAX = _INT64[1]
_KEY_FIELDS = KeyValue.DESCRIPTOR.fields_by_name
_KEY_TAG = _key(_KEY_FIELDS["key"].number, 2)
_VALUE_TAG = _key(_KEY_FIELDS["value"].number, 2)


def _any_value_fast(value: Any, generic: _Message) -> bytes:
    """An ``AnyValue`` message body; common shapes skip the descriptor walker."""
    if type(value) is dict and len(value) == 1:
        text = value.get("stringValue")
        if type(text) is str:
            try:
                raw = _utf8(text)
            except _PathError as exc:
                exc.path.append("stringValue")
                raise
            size = len(raw)
            return (
                _STRING_VALUE_TAG + (_LEN[size] if size < _LEN_TABLE_SIZE else varint(size)) + raw
            )
        number = value.get("intValue")
        if type(number) is str and len(number) <= 19 and number.isdigit() and number.isascii():
            number = int(number)
        if type(number) is int and 0 <= number <= _INT64_MAX:
            return _INT_VALUE_TAG + _varint(number)
        real = value.get("doubleValue")
        if type(real) is float:
            return _DOUBLE_VALUE_TAG + _pack_double(real)
        array = value.get("arrayValue")
        if type(array) is dict and len(array) == 1:
            items = array.get("values")
            if type(items) is list:
                # GenAI attributes such as finish_reasons are short arrays.
                parts: list[bytes] = []
                try:
                    for item in items:
                        if item is None:
                            raise _PathError("null is not allowed in an array")
                        encoded = _any_value_fast(item, generic)
                        size = len(encoded)
                        parts += (_ARRAY_ITEM_TAG, _varint(size), encoded)
                except _PathError as exc:
                    exc.path += [f"[{_position(items, item)}]", "values", "arrayValue"]
                    raise
                return _length_delimited(_ARRAY_VALUE_TAG, b"".join(parts))
    return _encode_message(value, generic)


def _any_value_field(tag: bytes, repeated: bool, generic: _Message) -> Handler:
    def handle_one(value: Any) -> bytes:
        return _length_delimited(tag, _any_value_fast(value, generic))

    def handle_many(values: Any) -> bytes:
        if type(values) is not list:
            raise _expected("an array", values)
        parts: list[bytes] = []
        try:
            for item in values:
                if item is None:
                    raise _PathError("null is not allowed in an array")
                parts.append(_length_delimited(tag, _any_value_fast(item, generic)))
        except _PathError as exc:
            exc.path.append(f"[{_position(values, item)}]")
            raise
        return b"".join(parts)

    return handle_many if repeated else handle_one


# Encoded attributes are cached by (list tag, key, value) when the value is a
# short string or an integer: GenAI spans repeat most of theirs (operation,
# provider, model, token counts) across a batch, and a hit costs a fraction of
# encoding. Long values (messages, tool arguments) rarely repeat and are not
# kept. Caches are shared by all attribute lists and emptied when full, which
# bounds them to a few MB even for hostile input. One cache per value kind,
# since "40" may be a stringValue or an intValue.
_CACHED_CHARS = 128
_CACHE_ENTRIES = 4096
_STRING_ATTRIBUTES: dict[tuple[bytes, str, str], bytes] = {}
_INT_ATTRIBUTES: dict[tuple[bytes, str, str | int], bytes] = {}
_KEYS: dict[str, bytes] = {}


def _attributes_field(tag: bytes, key_value: _Message, any_value: _Message) -> Handler:
    strings, integers, keys = _STRING_ATTRIBUTES, _INT_ATTRIBUTES, _KEYS
    lengths, table_size = _LEN, _LEN_TABLE_SIZE
    key_tag, value_tag, string_tag = _KEY_TAG, _VALUE_TAG, _STRING_VALUE_TAG
    double_tag, double_size = _DOUBLE_VALUE_TAG, len(_DOUBLE_VALUE_TAG) + 8

    def key_field(key: str) -> bytes:
        try:
            key_bytes = _length_delimited(key_tag, _utf8(key)) if key else b""
        except _PathError as exc:
            exc.path.append("key")
            raise
        if len(key) <= _CACHED_CHARS:
            if len(keys) >= _CACHE_ENTRIES:
                keys.clear()
            keys[key] = key_bytes
        return key_bytes

    def encode(key: str, value: Any) -> bytes:
        key_bytes = keys.get(key) or key_field(key)
        try:
            encoded = _any_value_fast(value, any_value)
        except _PathError as exc:
            exc.path.append("value")
            raise
        return _length_delimited(tag, key_bytes + _length_delimited(value_tag, encoded))

    def handle(values: Any) -> bytes:
        if type(values) is not list:
            raise _expected("an array", values)
        parts: list[bytes] = []
        try:
            for item in values:
                # The common shape, {"key": "...", "value": {<one kind>: ...}}, is
                # encoded inline; anything else (snake_case, nulls, strindex) walks.
                if type(item) is dict and len(item) == 2:
                    key = item.get("key")
                    value = item.get("value")
                    if type(key) is str and type(value) is dict:
                        if len(value) == 1:
                            text = value.get("stringValue")
                            if type(text) is str:
                                cacheable = len(text) <= _CACHED_CHARS >= len(key)
                                attribute = strings.get((tag, key, text)) if cacheable else None
                                if attribute is None:
                                    key_bytes = keys.get(key) or key_field(key)
                                    raw = text.encode()
                                    size = len(raw)
                                    # Lengths are computed up front so the attribute is
                                    # one join, not three nested concatenations.
                                    size_prefix = (
                                        lengths[size] if size < table_size else varint(size)
                                    )
                                    inner = len(string_tag) + len(size_prefix) + size
                                    inner_prefix = (
                                        lengths[inner] if inner < table_size else varint(inner)
                                    )
                                    outer = len(key_bytes) + 1 + len(inner_prefix) + inner
                                    attribute = b"".join(
                                        (
                                            tag,
                                            lengths[outer] if outer < table_size else varint(outer),
                                            key_bytes,
                                            value_tag,
                                            inner_prefix,
                                            string_tag,
                                            size_prefix,
                                            raw,
                                        )
                                    )
                                    if cacheable:
                                        if len(strings) >= _CACHE_ENTRIES:
                                            strings.clear()
                                        strings[tag, key, text] = attribute
                                parts.append(attribute)
                                continue
                            real = value.get("doubleValue")
                            if type(real) is float:
                                # Not cached: -0.0 == 0.0 and NaN != NaN as dict keys.
                                key_bytes = keys.get(key) or key_field(key)
                                outer = len(key_bytes) + 2 + double_size
                                parts.append(
                                    b"".join(
                                        (
                                            tag,
                                            lengths[outer] if outer < table_size else varint(outer),
                                            key_bytes,
                                            value_tag,
                                            lengths[double_size],
                                            double_tag,
                                            _pack_double(real),
                                        )
                                    )
                                )
                                continue
                            number = value.get("intValue")
                            if len(key) <= _CACHED_CHARS and (
                                type(number) is int
                                or (type(number) is str and len(number) <= _CACHED_CHARS)
                            ):
                                attribute = integers.get((tag, key, number))
                                if attribute is None:
                                    attribute = encode(key, value)
                                    if len(integers) >= _CACHE_ENTRIES:
                                        integers.clear()
                                    integers[tag, key, number] = attribute
                                parts.append(attribute)
                                continue
                        parts.append(encode(key, value))
                        continue
                if item is None:
                    raise _PathError("null is not allowed in an array")
                parts.append(_length_delimited(tag, _encode_message(item, key_value)))
        except _PathError as exc:
            exc.path.append(f"[{_position(values, item)}]")
            raise
        except UnicodeEncodeError:
            error = _PathError("string contains an unpaired surrogate")
            error.path += ["stringValue", "value", f"[{_position(values, item)}]"]
            raise error from None
        return b"".join(parts)

    return handle


# --- handlers from descriptors --------------------------------------------------

# OTLP's JSON deviation: these bytes fields are hex, with their sizes in bytes.
_HEX_IDS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}

_INT_FIELDS: dict[int, tuple[tuple[int, int], bool]] = {
    FieldDescriptor.TYPE_INT32: (_INT32, False),
    FieldDescriptor.TYPE_INT64: (_INT64, False),
    FieldDescriptor.TYPE_UINT32: (_UINT32, False),
    FieldDescriptor.TYPE_UINT64: (_UINT64, False),
    FieldDescriptor.TYPE_SINT32: (_INT32, True),
    FieldDescriptor.TYPE_SINT64: (_INT64, True),
}
# type -> (bounds, wire type, packer)
_FIXED_FIELDS: dict[int, tuple[tuple[int, int], int, Callable[[int], bytes]]] = {
    FieldDescriptor.TYPE_FIXED64: (_UINT64, 1, _pack_fixed64),
    FieldDescriptor.TYPE_FIXED32: (_UINT32, 5, _pack_fixed32),
    FieldDescriptor.TYPE_SFIXED64: (_INT64, 1, _pack_sfixed64),
    FieldDescriptor.TYPE_SFIXED32: (_INT32, 5, _pack_sfixed32),
}


def _scalar_handler(field: FieldDescriptor, presence: bool) -> Handler:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _string_field(_key(field.number, 2), presence)
    if kind == FieldDescriptor.TYPE_BYTES:
        size = _HEX_IDS.get(field.name)
        if size is not None:
            return _hex_id_field(_key(field.number, 2), size)
        return _bytes_field(_key(field.number, 2), presence)
    if kind == FieldDescriptor.TYPE_BOOL:
        return _bool_field(_key(field.number, 0), presence)
    if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        names = {value.name: value.number for value in field.enum_type.values}
        return _enum_field(_key(field.number, 0), presence, names, field.enum_type.name)
    if kind in _INT_FIELDS:
        bounds, zigzag = _INT_FIELDS[kind]
        return _varint_field(_key(field.number, 0), presence, bounds, zigzag)
    if kind in _FIXED_FIELDS:
        bounds, wire_type, pack = _FIXED_FIELDS[kind]
        return _fixed_field(_key(field.number, wire_type), presence, bounds, pack)
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _float_field(_key(field.number, 1), presence, _pack_double)
    if kind == FieldDescriptor.TYPE_FLOAT:
        return _float_field(_key(field.number, 5), presence, _pack_float)
    raise TypeError(f"unsupported protobuf field type {kind} for {field.full_name}")


def _build(descriptor: Descriptor, built: dict[str, _Message]) -> _Message:
    existing = built.get(descriptor.full_name)
    if existing is not None:
        return existing
    # Registered before its fields so recursive types (AnyValue) can refer to it.
    message = built[descriptor.full_name] = _Message()
    for field in descriptor.fields:
        handler: Handler
        if field.message_type is not None:
            tag = _key(field.number, 2)
            nested = _build(field.message_type, built)
            name = field.message_type.full_name
            if name == _ANY_VALUE:
                handler = _any_value_field(tag, field.is_repeated, nested)
            elif name == _KEY_VALUE and field.is_repeated:
                any_value = _build(AnyValue.DESCRIPTOR, built)
                handler = _attributes_field(tag, nested, any_value)
            elif field.is_repeated:
                handler = _repeated_message_field(tag, nested)
            else:
                handler = _message_field(tag, nested)
        elif field.is_repeated:
            handler = _repeated_scalar_field(field, _scalar_handler(field, presence=True))
        else:
            handler = _scalar_handler(field, field.has_presence)
        # Proto3 JSON parsers accept the proto field name as well as the JSON name.
        message.fields[field.json_name] = handler
        message.fields[field.name] = handler
        if field.containing_oneof is not None:
            message.oneofs[field.json_name] = field.containing_oneof.name
            message.oneofs[field.name] = field.containing_oneof.name
    return message


_BUILT: dict[str, _Message] = {}
_TRACES = _build(ExportTraceServiceRequest.DESCRIPTOR, _BUILT)
_LOGS = _build(ExportLogsServiceRequest.DESCRIPTOR, _BUILT)


def _reject_constant(name: str) -> Any:
    # Bare NaN/Infinity are not JSON; proto3 JSON spells them as strings.
    raise ValueError(f"{name} is not valid JSON (write it as the string {name!r})")


def _convert(body: bytes | str, request: _Message) -> bytes:
    # A parse tree is tens of thousands of fresh dicts and lists, and it cannot
    # hold a cycle, so the cyclic GC passes its allocations trigger are pure
    # cost: with a collector's worth of live objects they took a third of the
    # time. Pause GC for the conversion; only the caller that paused it
    # resumes it, so concurrent conversions cannot leave it disabled.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        # The tree is freed when _decode returns, before GC resumes.
        return _decode(body, request)
    finally:
        if paused:
            gc.enable()


def _decode(body: bytes | str, request: _Message) -> bytes:
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise OtlpDecodeError("request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise OtlpDecodeError(f"request body is not valid JSON: {exc}") from None
    if type(document) is not dict:
        raise OtlpDecodeError(f"request body: expected a JSON object, got {_json_type(document)}")
    try:
        return _encode_message(document, request)
    except _PathError as exc:
        raise OtlpDecodeError(f"{exc.where()}: {exc.message}") from None
    except RecursionError:
        raise OtlpDecodeError("request body is nested too deeply") from None
