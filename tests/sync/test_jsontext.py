"""``store.jsontext.serialize``, the store's JSON encoder: for every value a JSON parser
can return it writes JSON text of the same value as the reference encoder (``json``,
compact, non-ASCII as itself), the same text but for the spelling of some floats, and it
falls back to the reference encoder (ASCII, escapes) for what has no UTF-8 form."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketlint.store.jsontext import EncodedJSON, serialize

REFERENCE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
ASCII_REFERENCE = json.JSONEncoder(separators=(",", ":")).encode
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


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return any(map(_has_lone_surrogate, value))
    return isinstance(value, dict) and any(
        _has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items()
    )


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_same_value_as_the_reference(value: Any) -> None:
    text = serialize(value)
    text.encode("utf-8")  # what the database is sent: a lone surrogate would not encode
    assert _same(json.loads(text), value)
    if not _has_float(value):  # 1e-7 vs 1e-07, 0.00001 vs 1e-05: the same numbers
        # A lone surrogate has no UTF-8 form: that value is written escaped, all ASCII.
        reference = ASCII_REFERENCE if _has_lone_surrogate(value) else REFERENCE
        assert text == reference(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": "\ud800"}, '{"a":"\\ud800"}'),  # refused by the fast encoder: the reference
        ({"a": ["x\udfffy", 1]}, '{"a":["x\\udfffy",1]}'),
        ({"a": 10**30}, '{"a":1000000000000000000000000000000}'),
        ({"a": "é€😀\x7f\u2028"}, '{"a":"é€😀\x7f\u2028"}'),  # as the data column spells it
        ({"a": "é", "b": "\udc00"}, '{"a":"\\u00e9","b":"\\udc00"}'),  # no UTF-8 form: escaped
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
