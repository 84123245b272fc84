"""The embedded store passes query parameters through unchanged, whatever they contain."""

import pytest

from tracescore.collector.store import Store


@pytest.mark.parametrize(
    "value", ["plain", "a\\tb", "back\\\\slash\\", "tab\tnew\nline\r", "nul\0byte", "qu'ote\""]
)
def test_string_parameters_round_trip_byte_for_byte(store: Store, value: str) -> None:
    rows = store.query("SELECT {v:String} AS v, length({v:String}) AS n", {"v": value})
    assert rows == [{"v": value, "n": len(value.encode())}]


def test_list_parameters_bind_as_arrays(store: Store) -> None:
    values = ["a", "it's", "back\\slash", "tab\t"]
    rows = store.query("SELECT {v:Array(String)} AS v", {"v": values})
    assert rows == [{"v": values}]
