"""``formats.indented_json``: ``-f json``'s own indenting writer must write exactly what
``json.dumps(indent=2, ensure_ascii=False)`` writes, for any value a finding can hold."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketlint.report.formats import (
    FINDING_KEYS,
    FindingTexts,
    _finding_json,
    finding_dict,
    indented_json,
)
from ticketlint.rules.engine import Finding

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates, U+2028, quotes, control characters and all
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(VALUES, st.sampled_from(["\n", "\n    ", "\n  "]))
def test_writes_what_json_dumps_writes(value: Any, newline: str) -> None:
    expected = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", newline)
    assert indented_json(value, newline) == expected


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        (),
        {"a": {}, "b": [[]], "c": [{}]},
        {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "tiny": 5e-324, "big": 1e300},
        {"big int": 10**40, "negative": -7, "zero": 0.0, "minus zero": -0.0},
        {"line\u2028break": 'quote " backslash \\ tab \t nul \x00', "lone": "\ud800"},
        True,
        None,
        "text",
    ],
)
def test_edge_values(value: Any) -> None:
    assert indented_json(value) == json.dumps(value, indent=2, ensure_ascii=False)


class _Label(str):
    """A str subclass: json.dumps writes its text; the writer must not treat it as str
    by class and must still agree (by falling back)."""


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key", None: "none key", False: "bool key", 2.5: "float key"},
        {"label": _Label("sub")},
        {_Label("key"): 1},
        [1, {"nested": {3: "x"}}],
    ],
)
def test_values_it_does_not_write_itself_fall_back_to_json_dumps(value: Any) -> None:
    assert indented_json(value, "\n    ") == json.dumps(
        value, indent=2, ensure_ascii=False
    ).replace("\n", "\n    ")


def test_unencodable_values_raise_as_json_dumps_does() -> None:
    with pytest.raises(TypeError):
        indented_json({"when": object()})


FINDING_VALUES = st.one_of(SCALARS, VALUES, st.builds(_Label, st.text(max_size=5)))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries(dict.fromkeys(FINDING_KEYS, FINDING_VALUES)))
def test_a_finding_is_written_as_its_dict_is(values: dict[str, Any]) -> None:
    """``-f json`` writes each finding with its keys' text made once
    (``_finding_json``): the same text as the dict written by ``indented_json``."""
    finding = Finding(**{f.name: None for f in dataclasses.fields(Finding)})
    for key, value in values.items():
        object.__setattr__(finding, key, value)
    assert _finding_json(finding) == indented_json(finding_dict(finding), "\n    ")


def _finding(key: str) -> Finding:
    return Finding(
        code="CHG003",
        name="change-self-approved",
        title="Change approved by its own requester or assignee",
        severity="high",
        clause="8.5.1.3",
        source="jira",
        key=key,
        process="change",
        url=None,
        message=f"change {key} was approved by its own assignee",
        assignee="Daniel Iyer",
        group=None,
        fingerprint=f"fp-{key}",
        remediation="Have the change re-authorised.",
        evidence={"approver_id": "a", "unknown": [key]},
    )


def test_finding_texts_give_each_finding_its_own_text() -> None:
    """``FindingTexts`` (``-f json``'s findings written while workers still check): a
    finding written ahead is taken once, one never added is written then, and a text is
    never given to another object that took the id of the finding it was written for."""
    ahead, later = _finding("CHG-1"), _finding("CHG-2")
    texts = FindingTexts()
    texts.add([ahead])
    assert texts.take(ahead) == _finding_json(ahead)
    assert texts.take(later) == _finding_json(later)
    texts.add([ahead])
    # As if `ahead` were gone and `later` had been given its id.
    texts._texts[id(later)] = texts._texts.pop(id(ahead))
    assert texts.take(later) == _finding_json(later)
