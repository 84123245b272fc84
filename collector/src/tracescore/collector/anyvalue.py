"""OTLP ``AnyValue`` to the string the Collector's pdata ``AsString()`` produces.

The official clickhouseexporter stores every attribute value as that string, so
tracescore does the same: scalars as text, arrays and maps as Go-style JSON
(sorted keys, HTML characters escaped), bytes as base64.
"""

import base64
import json
import math
from decimal import Decimal
from typing import Any

_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def any_value_to_str(value: Any) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return format_float(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "array_value" or kind == "kvlist_value":
        return _go_json(_raw(value))
    return ""


def format_float(number: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f', -1, 64)``: shortest digits, never an exponent."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    text = repr(number)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def _raw(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return int(value.int_value)
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "array_value":
        return [_raw(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    return None


def _go_json(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return _go_json_float(raw)
    if isinstance(raw, str):
        text = json.dumps(raw, ensure_ascii=False)
        for char, escaped in _HTML_ESCAPES.items():
            text = text.replace(char, escaped)
        return text
    if isinstance(raw, list):
        return "[" + ",".join(_go_json(v) for v in raw) + "]"
    items = sorted(raw.items())
    return "{" + ",".join(f"{_go_json(k)}:{_go_json(v)}" for k, v in items) + "}"


def _go_json_float(number: float) -> str:
    # encoding/json rejects NaN/Inf; pdata then yields no JSON. Keep text readable instead.
    if math.isnan(number) or math.isinf(number):
        return json.dumps(format_float(number))
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        # Go uses the shortest 'e' form here and trims "e-07" to "e-7".
        text = repr(number)
        mantissa, exponent = text.split("e")
        if exponent.startswith("-0"):
            exponent = "-" + exponent[2:]
        return f"{mantissa}e{exponent}"
    return format_float(number)
