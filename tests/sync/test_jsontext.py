"""``store.jsontext.serialize``, the store's JSON encoder: for every value a JSON parser
can return it writes ASCII JSON text of the same value as the reference encoder
(``json``, compact), the same text but for the spelling of some floats and of U+007F,
and it falls back to the reference encoder for what the fast one refuses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketlint.store.jsontext import EncodedJSON, serialize

REFERENCE = json.JSONEncoder(separators=(",", ":")).encode
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**60)  # beyond 64 bits
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates, U+2028, quotes, control characters and all
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(map(_has_float, value))
    return isinstance(value, dict) and any(map(_has_float, value.values()))


def _respelt(text: str) -> str:
    """U+007F as the reference spells it (the fast encoder writes it as is)."""
    return text.replace("\x7f", "\\u007f")


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_same_value_as_the_reference_in_ascii(value: Any) -> None:
    text = serialize(value)
    assert text.isascii()
    assert _same(json.loads(text), value)
    if not _has_float(value):  # 1e-7 vs 1e-07, 0.00001 vs 1e-05: the same numbers
        assert _respelt(text) == REFERENCE(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": "\ud800"}, '{"a":"\\ud800"}'),  # refused by the fast encoder: the reference
        ({"a": ["x\udfffy", 1]}, '{"a":["x\\udfffy",1]}'),
        ({"a": 10**30}, '{"a":1000000000000000000000000000000}'),
        ({"a": "é€😀"}, '{"a":"\\u00e9\\u20ac\\ud83d\\ude00"}'),
        ({"a": float("nan"), "b": float("-inf")}, '{"a":NaN,"b":-Infinity}'),
        ({"a": 1e-7, "b": 1e16}, '{"a":1e-7,"b":1e+16}'),
        ([], "[]"),
        ("text", '"text"'),
    ],
)
def test_edges(value: Any, expected: str) -> None:
    assert serialize(value) == expected


def test_pre_encoded_text_passes_unchanged() -> None:
    assert serialize(EncodedJSON('{"a": 1}')) == '{"a": 1}'


def test_a_value_of_no_json_type_still_raises() -> None:
    with pytest.raises(TypeError):
        serialize({"a": object()})
    with pytest.raises(TypeError):
        serialize(object())
