"""report/json_text.py writes exactly what ``json.dumps(indent=2, ensure_ascii=False)``
writes (``check -f json`` output is compared byte for byte by its snapshot tests too)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ticketlint.report.json_text import dumps_indent2

CASES: list[Any] = [
    {},
    [],
    "",
    None,
    True,
    0,
    -0.0,
    1.5,
    1e300,
    float("nan"),
    float("-inf"),
    10**40,
    'é\u2028"\\\x00\n',
    {"a": [1, {"b": None}], "c": {}, "d": []},
    {7: "int key", 2.5: "float key", True: "bool key", False: "no", None: "null key"},
    {"flat": 1, "then": [1, 2], "after": "x", 3: {"nested": ()}},
    [1, "a", None, True, 2.5, [], {}],
    (1, (2, (3,))),
]


@pytest.mark.parametrize("value", CASES, ids=range(len(CASES)))
def test_same_text_as_json_dumps(value: Any) -> None:
    assert dumps_indent2(value) == json.dumps(value, indent=2, ensure_ascii=False)


def _value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return rnd.choice(["", "a", 'é"\\\n', "\u2028", "\udc80"])
    if kind == 1:
        return rnd.choice([None, True, False])
    if kind == 2:
        return rnd.randrange(-(10**20), 10**20)
    if kind == 3:
        return rnd.choice([0.1, -0.0, 1e300, float("nan"), float("inf")])
    if kind == 4:
        return rnd.choice(["s", 1, None])
    if kind == 5:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if kind == 6:
        return tuple(_value(rnd, depth + 1) for _ in range(rnd.randrange(3)))
    if kind == 7:
        keys = ["k", "l", "é", 1, 2.5, None, True]
        return {rnd.choice(keys): _value(rnd, depth + 1) for _ in range(rnd.randrange(4))}
    return {rnd.choice("klmn"): _value(rnd, depth + 1) for _ in range(rnd.randrange(5))}


def test_same_text_as_json_dumps_on_random_data() -> None:
    rnd = random.Random(18)
    for _ in range(3000):
        value = _value(rnd)
        assert dumps_indent2(value) == json.dumps(value, indent=2, ensure_ascii=False), value


def test_what_json_refuses_it_refuses_alike() -> None:
    for value in ({"a": object()}, {(1, 2): "tuple key"}, [{1, 2}]):
        with pytest.raises(TypeError):
            json.dumps(value, indent=2)
        with pytest.raises(TypeError):
            dumps_indent2(value)


def test_circular_data_is_refused_like_json() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_indent2(loop)
