"""OTLP ``AnyValue`` to the string the Collector's pdata ``AsString()`` produces.

The official clickhouseexporter stores every attribute value as that string, so
tracescore does the same: scalars as text, arrays and maps as Go-style JSON
(sorted keys, HTML characters escaped), bytes as base64.
"""

import base64
import json
import math
import re
from collections.abc import Callable
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
    # Strings are by far the most common attribute type: test them first.
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    return _CONVERTERS[kind](value)


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


def _json_text(value: Any) -> str:
    # Array and map values repeat heavily (finish reasons, tags), so conversions are
    # memoized by their wire bytes; the cache is bounded by clearing it when full.
    key = value.SerializeToString()
    cached = _JSON_CACHE.get(key)
    if cached is not None:
        return cached
    floats: list[float] = []
    raw = _raw(value, floats)
    if floats:
        text = _go_json(raw)
    else:
        # No floats: the C encoder writes what Go's encoding/json writes, bar HTML escaping.
        text = _escape_html(
            json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        )
    if len(_JSON_CACHE) >= _JSON_CACHE_SIZE:
        _JSON_CACHE.clear()
    if len(key) <= _JSON_CACHE_MAX_KEY:
        _JSON_CACHE[key] = text
    return text


_JSON_CACHE: dict[bytes, str] = {}
_JSON_CACHE_SIZE = 4096
_JSON_CACHE_MAX_KEY = 1024
_HTML_TABLE = str.maketrans(_HTML_ESCAPES)
_HTML_CHARS = re.compile("[<>&\u2028\u2029]")


def _escape_html(text: str) -> str:
    return text.translate(_HTML_TABLE) if _HTML_CHARS.search(text) else text


def _raw(value: Any, floats: list[float]) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return int(value.int_value)
    if kind == "bool_value":
        return bool(value.bool_value)
    if kind == "double_value":
        floats.append(value.double_value)
        return float(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "array_value":
        return [_raw(v, floats) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value, floats) for kv in value.kvlist_value.values}
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
        return _escape_html(json.dumps(raw, ensure_ascii=False))
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


_CONVERTERS: dict[str, Callable[[Any], str]] = {
    "int_value": lambda v: str(v.int_value),
    "bool_value": lambda v: "true" if v.bool_value else "false",
    "double_value": lambda v: format_float(v.double_value),
    "bytes_value": lambda v: base64.b64encode(v.bytes_value).decode("ascii"),
    "array_value": _json_text,
    "kvlist_value": _json_text,
}
