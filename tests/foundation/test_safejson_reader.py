"""``safejson.loads_salvaging`` reads export files with pydantic-core's reader first and
falls back to ``json`` for what that reader refuses. The answer must be the one the
``json`` path alone gives (values, limits counted, errors), for any text: generated
JSON values, hand-picked edges, and text that is not JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketlint import safejson

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates, U+2028, quotes, control characters
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=25,
)


def _json_path(text: str, **kwargs: Any) -> tuple[Any, safejson.Limits]:
    """What ``loads_salvaging`` answered before it tried pydantic-core's reader."""
    limits = safejson.Limits()
    original = pydantic_core.from_json
    try:
        pydantic_core.from_json = _refuse  # type: ignore[assignment]
        return safejson.loads_salvaging(text, limits=limits, **kwargs), limits
    finally:
        pydantic_core.from_json = original


REFUSED: list[str] = []


def _refuse(text: Any) -> Any:
    REFUSED.append(text)
    raise ValueError("refused")


def _fast_path(text: str, **kwargs: Any) -> tuple[Any, safejson.Limits]:
    limits = safejson.Limits()
    return safejson.loads_salvaging(text, limits=limits, **kwargs), limits


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and the type of every number kept (1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=500, deadline=None)
@given(VALUES, st.sampled_from([None, 2]))
def test_generated_json_reads_as_json_reads_it(value: Any, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=bool(indent))
    fast, fast_limits = _fast_path(text)
    REFUSED.clear()
    slow, slow_limits = _json_path(text)
    assert [text] == REFUSED, "the reference answer came from the json path"
    assert _same(fast, slow)
    assert fast_limits == slow_limits


DEEP = "[" * 300 + "]" * 300
EDGES = [
    '{"a": 1, "b": 2, "a": 3}',  # a duplicate key: the last value, the first place
    '"\\ud800"',  # lone surrogate escapes: U+FFFD, as the json path fixes them
    '["\\udc80x", "\\ud800\\u0041", "\\ud83d\\ude00"]',
    "[NaN, Infinity, -Infinity, 1e400, -0, -0.0, 5e-324]",
    "[" + "9" * 4300 + ", -" + "9" * 4300 + "]",  # the longest integers read
    "[" + "9" * 4301 + "]",  # one digit more: unknown, counted
    "[1" + "0" * 4400 + "e-4400]",  # a float of a long mantissa
    DEEP,  # past pydantic-core's nesting: json reads it
    "[" * 5000 + "]" * 5000,  # past json's too: cut at the depth, counted
    ' \n\t{"a": [1, 2, {"b": null}]}\r\n ',
    '{"\\u00e9t\\u00e9": "\\u2028\\u0000\\"\\\\/"}',
]


@pytest.mark.parametrize("text", EDGES)
def test_edge_texts_read_as_json_reads_them(text: str) -> None:
    fast, fast_limits = _fast_path(text)
    slow, slow_limits = _json_path(text)
    assert _same(fast, slow)
    assert fast_limits == slow_limits


@pytest.mark.parametrize(
    "text", ["", "[1] x", "\ufeff[1]", "[1,]", "{'a': 1}", '"\x01"', "[01]", "{", '{"a" 1}']
)
def test_text_that_is_not_json_raises_json_s_own_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as fast:
        _fast_path(text)
    with pytest.raises(json.JSONDecodeError) as slow:
        _json_path(text)
    assert (fast.value.msg, fast.value.pos) == (slow.value.msg, slow.value.pos)


def test_a_smaller_integer_limit_is_kept_by_the_json_path() -> None:
    value, limits = _fast_path("[123456, 12]", max_int_digits=3)
    assert value == [None, 12] and limits.big_integers == 1


# --- response bodies (connectors.http) ---------------------------------------------------


def _json_body(content: bytes) -> Any:
    """What the HTTP client answered before: json.loads, lone surrogates fixed."""
    return safejson.lone_surrogates_fixed(json.loads(content), content)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]), st.booleans())
def test_a_body_reads_as_json_loads_reads_it(value: Any, encoding: str, ascii_only: bool) -> None:
    content = json.dumps(value, ensure_ascii=ascii_only).encode(encoding, "surrogatepass")
    assert _same(safejson.loads_body(content), _json_body(content))


@pytest.mark.parametrize("text", [*EDGES[:8], "[1] x", "<html>502</html>", ""])
def test_edge_bodies_read_or_fail_as_json_loads(text: str) -> None:
    content = text.encode("utf-8")
    try:
        expected = _json_body(content)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            safejson.loads_body(content)
        return
    assert _same(safejson.loads_body(content), expected)
