"""Encoded-query semantics: ^ / ^OR precedence, ^NQ, operators, ORDERBY, unknown fields."""

import pytest

from ticketlint.sandbox.encoded_query import QueryError, parse

ROWS = [
    {
        "state": "1",
        "priority": "1",
        "short_description": "Email down",
        "assigned_to": "",
        "n": "10",
    },
    {
        "state": "2",
        "priority": "3",
        "short_description": "VPN slow",
        "assigned_to": "abc",
        "n": "9",
    },
    {
        "state": "7",
        "priority": "1",
        "short_description": "Disk full",
        "assigned_to": "abc",
        "n": "100",
    },
    {
        "state": "7",
        "priority": "4",
        "short_description": "email quota",
        "assigned_to": "",
        "n": "2",
    },
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


@pytest.mark.parametrize(
    "query, expected",
    [
        ("stateIN1,2", [0, 1]),
        ("stateNOTIN1,2", [2, 3]),
        ("state!=7", [0, 1]),
        ("n>9", [0, 2]),  # numeric, not text comparison
        ("n>=10", [0, 2]),
        ("n<10", [1, 3]),
        ("n<=9", [1, 3]),
        ("short_descriptionSTARTSWITHemail", [0, 3]),
        ("short_descriptionLIKEfull", [2]),
        ("assigned_toISEMPTY", [0, 3]),
        ("assigned_toISNOTEMPTY", [1, 2]),
    ],
)
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


def test_instanceof_matches_a_table_and_the_tables_that_extend_it():
    from ticketlint.sandbox.encoded_query import instance_of

    q = parse("sys_class_nameINSTANCEOFcmdb_ci_server")
    assert q.groups[0][0][0].op == "INSTANCEOF"  # not "IN" with the value "STANCEOF..."
    assert q.matches({"sys_class_name": "cmdb_ci_linux_server"}.get)
    assert not q.matches({"sys_class_name": "cmdb_ci_netgear"}.get)
    assert instance_of("incident", "task") and instance_of("incident", "incident")
    assert not instance_of("incident", "change_request")


def test_dot_walked_conditions_use_the_getter_and_keep_or_precedence():
    rows = {
        "p1": {"sys_class_name": "change_request", "sys_updated_on": "2026-02-02 00:00:00"},
        "p2": {"sys_class_name": "sc_req_item", "sys_updated_on": "2026-01-01 00:00:00"},
    }

    def getter(row):
        def get(field):
            head, _, rest = field.partition(".")
            return rows[row[head]].get(rest) if rest else row.get(field)

        return get

    q = parse(
        "sysapproval.sys_class_nameINSTANCEOFchange_request^sysapproval.sys_updated_on>=2026-02-01 00:00:00"
        "^NQsysapproval.sys_class_nameINSTANCEOFsc_req_item^sys_id>b^ORDERBYsys_id"
    )
    assert q.order == [("sys_id", True)]
    assert q.matches(getter({"sysapproval": "p1", "sys_id": "a"}))
    assert not q.matches(
        getter({"sysapproval": "p2", "sys_id": "a"})
    )  # second part: sys_id>b fails
    assert q.matches(getter({"sysapproval": "p2", "sys_id": "c"}))
