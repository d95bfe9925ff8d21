"""Encoded-query semantics: ^ / ^OR precedence, ^NQ, operators, ORDERBY, unknown fields."""

import pytest

from sandbox.encoded_query import QueryError, parse

ROWS = [
    {"state": "1", "priority": "1", "short_description": "Email down", "assigned_to": "", "n": "10"},
    {"state": "2", "priority": "3", "short_description": "VPN slow", "assigned_to": "abc", "n": "9"},
    {"state": "7", "priority": "1", "short_description": "Disk full", "assigned_to": "abc", "n": "100"},
    {"state": "7", "priority": "4", "short_description": "email quota", "assigned_to": "", "n": "2"},
]


def hits(query: str) -> list[int]:
    q = parse(query)
    return [i for i, row in enumerate(ROWS) if q.matches(row.get)]


def test_or_binds_tighter_than_and():
    # state=7 AND (priority=1 OR priority=4)
    assert hits("state=7^priority=1^ORpriority=4") == [2, 3]
    # (state=1 OR state=2) AND priority=3
    assert hits("state=1^ORstate=2^priority=3") == [1]


def test_nq_is_or_of_whole_queries():
    assert hits("state=1^priority=3^NQstate=7^priority=4") == [3]
    assert hits("state=1^NQstate=2") == [0, 1]


@pytest.mark.parametrize("query, expected", [
    ("stateIN1,2", [0, 1]),
    ("stateNOTIN1,2", [2, 3]),
    ("state!=7", [0, 1]),
    ("n>9", [0, 2]),            # numeric, not text comparison
    ("n>=10", [0, 2]),
    ("n<10", [1, 3]),
    ("n<=9", [1, 3]),
    ("short_descriptionSTARTSWITHemail", [0, 3]),
    ("short_descriptionLIKEfull", [2]),
    ("assigned_toISEMPTY", [0, 3]),
    ("assigned_toISNOTEMPTY", [1, 2]),
])
def test_operators(query, expected):
    assert hits(query) == expected


def test_datetimes_compare_as_text():
    q = parse("sys_updated_on>2026-03-02 14:10:05")
    assert q.matches({"sys_updated_on": "2026-03-02 14:10:06"}.get)
    assert not q.matches({"sys_updated_on": "2026-03-02 14:10:05"}.get)


def test_orderby_terms_are_collected_not_conditions():
    q = parse("active=true^ORDERBYsys_updated_on^ORDERBYDESCsys_id")
    assert q.order == [("sys_updated_on", True), ("sys_id", False)]
    assert q.fields() == {"active"}


def test_unknown_field_is_ignored_like_servicenow():
    assert hits("u_no_such_field=1^state=7") == [2, 3]


def test_unreadable_condition_is_an_error():
    with pytest.raises(QueryError):
        parse("STATE==1")
