"""OTLP AnyValue to the string the Collector's pdata ``Value.AsString()`` produces."""

import math

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from tracescore.collector.anyvalue import any_value_to_str, format_float

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def s(text: str) -> AnyValue:
    return AnyValue(string_value=text)


def i(number: int) -> AnyValue:
    return AnyValue(int_value=number)


def d(number: float) -> AnyValue:
    return AnyValue(double_value=number)


def b(flag: bool) -> AnyValue:
    return AnyValue(bool_value=flag)


def arr(*values: AnyValue) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=list(values)))


def kv(*pairs: tuple[str, AnyValue]) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in pairs]))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(s("hello"), "hello", id="string"),
        pytest.param(s(""), "", id="empty-string"),
        pytest.param(s('a <b> & "c"\n'), 'a <b> & "c"\n', id="string-not-escaped"),
        pytest.param(s("héllo ✓"), "héllo ✓", id="string-unicode"),
        pytest.param(i(0), "0", id="int-zero"),
        pytest.param(i(42), "42", id="int"),
        pytest.param(i(-7), "-7", id="int-negative"),
        pytest.param(i(INT64_MAX), "9223372036854775807", id="int64-max"),
        pytest.param(i(INT64_MIN), "-9223372036854775808", id="int64-min"),
        pytest.param(b(True), "true", id="bool-true"),
        pytest.param(b(False), "false", id="bool-false"),
        pytest.param(d(1.5), "1.5", id="double"),
        pytest.param(d(2.0), "2", id="double-integral"),
        pytest.param(d(0.0), "0", id="double-zero"),
        pytest.param(d(-2.25), "-2.25", id="double-negative"),
        pytest.param(d(1e21), "1000000000000000000000", id="double-large"),
        pytest.param(d(1e-7), "0.0000001", id="double-small"),
        pytest.param(d(0.1 + 0.2), "0.30000000000000004", id="double-shortest-roundtrip"),
        pytest.param(d(math.nan), "NaN", id="double-nan"),
        pytest.param(d(math.inf), "+Inf", id="double-inf"),
        pytest.param(d(-math.inf), "-Inf", id="double-neg-inf"),
        pytest.param(AnyValue(bytes_value=b"hello"), "aGVsbG8=", id="bytes"),
        pytest.param(AnyValue(bytes_value=b"\xff\xfe\x00"), "//4A", id="bytes-binary"),
        pytest.param(AnyValue(bytes_value=b""), "", id="bytes-empty"),
        pytest.param(AnyValue(), "", id="empty-anyvalue"),
    ],
)
def test_scalars_match_pdata_as_string(value: AnyValue, expected: str) -> None:
    assert any_value_to_str(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(arr(), "[]", id="empty-array"),
        pytest.param(kv(), "{}", id="empty-kvlist"),
        pytest.param(
            arr(s("a"), i(1), b(True), d(1.5), AnyValue()),
            '["a",1,true,1.5,null]',
            id="mixed-array",
        ),
        pytest.param(
            kv(("b", i(2)), ("a", s("x")), ("c", b(False))),
            '{"a":"x","b":2,"c":false}',
            id="kvlist-sorted-keys",
        ),
        pytest.param(
            kv(("z", arr(i(1), kv(("y", s("deep")), ("x", arr())))), ("a", kv())),
            '{"a":{},"z":[1,{"x":[],"y":"deep"}]}',
            id="nested",
        ),
        pytest.param(arr(arr(), arr(i(1), i(2))), "[[],[1,2]]", id="nested-arrays"),
        pytest.param(
            arr(s("<b>&</b>")),
            '["\\u003cb\\u003e\\u0026\\u003c/b\\u003e"]',
            id="html-escaped",
        ),
        pytest.param(
            kv(("<k>", s("v&"))),
            '{"\\u003ck\\u003e":"v\\u0026"}',
            id="html-escaped-key",
        ),
        pytest.param(arr(s('say "hi"\n\t\\')), '["say \\"hi\\"\\n\\t\\\\"]', id="json-escapes"),
        pytest.param(arr(s("\u2028\u2029")), '["\\u2028\\u2029"]', id="line-separators"),
        pytest.param(arr(s("\x01")), '["\\u0001"]', id="control-char"),
        pytest.param(arr(s("héllo ✓")), '["héllo ✓"]', id="unicode-not-escaped"),
        pytest.param(arr(AnyValue(bytes_value=b"hello")), '["aGVsbG8="]', id="bytes-in-json"),
        pytest.param(arr(i(INT64_MAX), i(INT64_MIN)), f"[{INT64_MAX},{INT64_MIN}]", id="int64"),
        pytest.param(arr(d(2.0)), "[2]", id="float-integral"),
        pytest.param(arr(d(1.5), d(-0.25)), "[1.5,-0.25]", id="float"),
        pytest.param(arr(d(1e-7)), "[1e-7]", id="float-small-exponent"),
        pytest.param(arr(d(1.5e-7)), "[1.5e-7]", id="float-small-mantissa"),
        pytest.param(arr(d(1e-6)), "[0.000001]", id="float-small-threshold"),
        pytest.param(arr(d(1e21)), "[1e+21]", id="float-large-exponent"),
        pytest.param(arr(d(1e20)), "[100000000000000000000]", id="float-below-large-threshold"),
        pytest.param(arr(d(1e-100), d(1e100)), "[1e-100,1e+100]", id="float-3-digit-exponent"),
        pytest.param(kv(("f", d(0.0))), '{"f":0}', id="float-zero"),
    ],
)
def test_arrays_and_maps_are_go_json(value: AnyValue, expected: str) -> None:
    assert any_value_to_str(value) == expected


def test_duplicate_kvlist_keys_keep_the_last_value() -> None:
    # pdata's Map.AsRaw() builds a Go map, so a repeated key keeps the last value.
    assert any_value_to_str(kv(("k", i(1)), ("k", i(2)))) == '{"k":2}'


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (1.5, "1.5"),
        (2.0, "2"),
        (0.0, "0"),
        (-3.0, "-3"),
        (100.0, "100"),
        (123456789.0, "123456789"),
        (0.1, "0.1"),
        (1e16, "10000000000000000"),
        (1e21, "1000000000000000000000"),
        (1.2345678901234568e20, "123456789012345680000"),
        (1e-7, "0.0000001"),
        (1.5e-7, "0.00000015"),
        (-1e-7, "-0.0000001"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_format_float_is_go_format_float_f_minus_one(number: float, expected: str) -> None:
    assert format_float(number) == expected


def test_format_float_keeps_the_sign_of_negative_zero() -> None:
    # Go: strconv.FormatFloat(math.Copysign(0, -1), 'f', -1, 64) == "-0".
    assert format_float(-0.0) == "-0"
    assert any_value_to_str(d(-0.0)) == "-0"


def test_negative_zero_inside_json_keeps_its_sign() -> None:
    # Go's encoding/json formats -0 with AppendFloat(..., 'f', -1, 64) as well: "-0".
    assert any_value_to_str(arr(d(-0.0))) == "[-0]"
