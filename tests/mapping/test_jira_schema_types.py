"""Jira custom fields read by their ``schema.type`` from the field list (issue 19,
item 1): a ``date`` field is a date, a ``datetime`` field a time, a ``string`` field text;
a value that contradicts its schema is unreadable; without a schema (an export without
``names``/``schema``) the value's shape decides, as before."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper

UNREADABLE = object()
_CF = "com.atlassian.jira.plugin.system.customfieldtypes:"
FIELD_LIST = [  # as GET /rest/api/2/field lists them
    {
        "id": "customfield_10043",
        "name": "Planned start",
        "custom": True,
        "schema": {"type": "datetime", "custom": f"{_CF}datetime", "customId": 10043},
    },
    {
        "id": "customfield_10090",
        "name": "CAB date",
        "custom": True,
        "schema": {"type": "date", "custom": f"{_CF}datepicker", "customId": 10090},
    },
    {
        "id": "customfield_10044",
        "name": "Backout plan",
        "custom": True,
        "schema": {"type": "string", "custom": f"{_CF}textarea", "customId": 10044},
    },
]
OPTIONS = MappingOptions(source="jira", fields={"change.cab_date": "CAB date"})
ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Restore"}]}],
}


def _issue(field_id: str, value: Any) -> dict[str, Any]:
    return {
        "id": "10001",
        "key": "CHG-1",
        "fields": {
            "summary": "Patch",
            "issuetype": {"name": "Change"},
            "status": {"name": "Scheduled", "statusCategory": {"key": "indeterminate"}},
            "created": "2026-03-01T10:00:00.000+0000",
            "updated": "2026-03-01T10:00:00.000+0000",
            field_id: value,
        },
    }


def _read(catalog: JiraFieldCatalog, field_id: str, value: Any, field: str) -> tuple[Any, Any]:
    mapper = JiraMapper(OPTIONS, catalog, deployment="Cloud")
    records, report = mapper.map_issues([_issue(field_id, value)])
    assert not report.errors and len(records) == 1
    return getattr(records[0], field), (records[0].unreadable or {}).get(field)


# (field id, record field, value, read by the schema, read without one)
CASES = [
    ("customfield_10090", "cab_date", "2026-03-03", date(2026, 3, 3), date(2026, 3, 3)),
    (
        "customfield_10090",
        "cab_date",
        "2026-03-03T10:00:00.000+0000",
        UNREADABLE,
        datetime(2026, 3, 3, 10, tzinfo=timezone.utc),
    ),
    ("customfield_10090", "cab_date", None, "", ""),
    ("customfield_10090", "cab_date", 20260303, UNREADABLE, UNREADABLE),
    (
        "customfield_10043",
        "planned_start",
        "2026-03-03T22:00:00.000-0200",
        datetime(2026, 3, 4, 0, tzinfo=timezone.utc),
        datetime(2026, 3, 4, 0, tzinfo=timezone.utc),
    ),
    ("customfield_10043", "planned_start", "2026-03-03", UNREADABLE, date(2026, 3, 3)),
    ("customfield_10043", "planned_start", "next week", UNREADABLE, UNREADABLE),
    (
        "customfield_10044",
        "backout_plan",
        "Restore the snapshot",
        "Restore the snapshot",
        "Restore the snapshot",
    ),
    ("customfield_10044", "backout_plan", ADF, "Restore", "Restore"),
    ("customfield_10044", "backout_plan", {"value": "Restore"}, UNREADABLE, "Restore"),
    ("customfield_10044", "backout_plan", 42, UNREADABLE, "42"),
]


@pytest.mark.parametrize(
    "field_id, field, value, typed, guessed", CASES, ids=[f"{c[1]}-{c[2]!r}" for c in CASES]
)
def test_a_custom_field_reads_as_its_schema_type_and_as_before_without_one(
    field_id: str, field: str, value: Any, typed: Any, guessed: Any
) -> None:
    with_schema = JiraFieldCatalog.from_field_list(FIELD_LIST)
    names_only = JiraFieldCatalog.from_names({f["id"]: f["name"] for f in FIELD_LIST})
    for catalog, expected in ((with_schema, typed), (names_only, guessed)):
        read, reason = _read(catalog, field_id, value, field)
        if expected is UNREADABLE:
            assert read is None and reason is not None
            if catalog is with_schema:
                kind = with_schema.schema_of(field_id)["type"]
                assert f"not a {kind} (field schema)" in reason
        else:
            assert read == expected and reason is None
            assert type(read) is type(expected)


def test_a_search_exports_schema_map_types_the_fields_too() -> None:
    schema = {f["id"]: f["schema"] for f in FIELD_LIST}
    catalog = JiraFieldCatalog.from_names({f["id"]: f["name"] for f in FIELD_LIST}, schema)
    read, reason = _read(catalog, "customfield_10090", "2026-03-03T10:00:00.000+0000", "cab_date")
    assert read is None and "not a date (field schema)" in reason


# --- option, number, array and user fields (issue 19 follow-up) ----------------------------

SHAPE_FIELDS = [  # as GET /rest/api/2/field lists them
    {
        "id": "customfield_10006",
        "name": "Change risk",
        "custom": True,
        "schema": {"type": "option", "custom": f"{_CF}select", "customId": 10006},
    },
    {
        "id": "customfield_10004",
        "name": "Impact",
        "custom": True,
        "schema": {"type": "number", "custom": f"{_CF}float", "customId": 10004},
    },
    {
        "id": "customfield_10070",
        "name": "CAB required",
        "custom": True,
        "schema": {
            "type": "array",
            "items": "option",
            "custom": f"{_CF}multicheckboxes",
            "customId": 10070,
        },
    },
    {
        "id": "customfield_10071",
        "name": "Change tags",
        "custom": True,
        "schema": {"type": "array", "items": "string", "custom": f"{_CF}labels", "customId": 10071},
    },
    {
        "id": "customfield_10072",
        "name": "Change manager",
        "custom": True,
        "schema": {"type": "user", "custom": f"{_CF}userpicker", "customId": 10072},
    },
]
SHAPE_OPTIONS = MappingOptions(
    source="jira",
    fields={
        "change.cab_required": "CAB required",
        "change.change_type": "Change tags",
        "change.group": "Change manager",
    },
)
HIGH = {
    "self": "https://acme.atlassian.net/rest/api/2/customFieldOption/10021",
    "value": "High",
    "id": "10021",
}
YES = {"value": "Yes", "id": "10030"}
NO = {"value": "No", "id": "10031"}
ANA = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ana Lima", "active": True}
DC_USER = {"name": "alima", "key": "JIRAUSER10100", "displayName": "Ana Lima"}

# (field id, record field, value, read by the schema, read without one)
SHAPE_CASES: list[tuple[str, str, Any, Any, Any]] = [
    # option: {value, id}
    ("customfield_10006", "risk", HIGH, "High", "High"),
    ("customfield_10006", "risk", None, "", ""),
    ("customfield_10006", "risk", "High", UNREADABLE, "High"),
    ("customfield_10006", "risk", [HIGH], UNREADABLE, "High"),
    ("customfield_10006", "risk", {"id": "10021"}, UNREADABLE, UNREADABLE),
    ("customfield_10006", "risk", 2, UNREADABLE, "2"),
    # number: 4, 4.0 and "4" are the number 4
    ("customfield_10004", "impact", 4, "4", "4"),
    ("customfield_10004", "impact", 4.0, "4", "4.0"),
    ("customfield_10004", "impact", "4", "4", "4"),
    ("customfield_10004", "impact", "4.0", "4", "4.0"),
    ("customfield_10004", "impact", 2.5, "2.5", "2.5"),
    ("customfield_10004", "impact", None, "", ""),
    ("customfield_10004", "impact", "high", UNREADABLE, "high"),
    ("customfield_10004", "impact", True, UNREADABLE, "True"),
    ("customfield_10004", "impact", {"value": "4"}, UNREADABLE, "4"),
    # array of option, read as a flag
    ("customfield_10070", "cab_required", [YES], True, True),
    ("customfield_10070", "cab_required", [NO], False, False),
    ("customfield_10070", "cab_required", [], False, False),
    ("customfield_10070", "cab_required", None, False, False),
    ("customfield_10070", "cab_required", YES, UNREADABLE, True),
    ("customfield_10070", "cab_required", ["Yes"], UNREADABLE, True),
    ("customfield_10070", "cab_required", "yes", UNREADABLE, True),
    # array of string, read as text
    ("customfield_10071", "change_type", ["standard"], "standard", "standard"),
    ("customfield_10071", "change_type", [], "", ""),
    ("customfield_10071", "change_type", "standard", UNREADABLE, "standard"),
    ("customfield_10071", "change_type", [{"value": "standard"}], UNREADABLE, "standard"),
    # user: Cloud accountId or Data Center name/key
    ("customfield_10072", "group", ANA, "Ana Lima", "Ana Lima"),
    ("customfield_10072", "group", DC_USER, "Ana Lima", "alima"),
    (
        "customfield_10072",
        "group",
        {"accountId": "5b10ac8d82e05b22cc7d4ef5"},
        "5b10ac8d82e05b22cc7d4ef5",
        UNREADABLE,
    ),
    ("customfield_10072", "group", None, "", ""),
    ("customfield_10072", "group", "alima", UNREADABLE, "alima"),
    ("customfield_10072", "group", {"displayName": "Ana Lima"}, UNREADABLE, "Ana Lima"),
    ("customfield_10072", "group", [ANA], UNREADABLE, "Ana Lima"),
]


def _read_shape(
    catalog: JiraFieldCatalog, field_id: str, value: Any, field: str
) -> tuple[Any, Any]:
    mapper = JiraMapper(SHAPE_OPTIONS, catalog, deployment="Cloud")
    records, report = mapper.map_issues([_issue(field_id, value)])
    assert not report.errors and len(records) == 1
    reason = (records[0].unreadable or {}).get(field)
    if reason is not None:
        assert report.unreadable[(f"change.{field}", reason.split(":")[0])] == 1
    return getattr(records[0], field), reason


@pytest.mark.parametrize(
    "field_id, field, value, typed, guessed",
    SHAPE_CASES,
    ids=[f"{c[1]}-{c[2]!r}"[:60] for c in SHAPE_CASES],
)
def test_option_number_array_and_user_fields_read_as_their_schema(
    field_id: str, field: str, value: Any, typed: Any, guessed: Any
) -> None:
    with_schema = JiraFieldCatalog.from_field_list(SHAPE_FIELDS)
    names_only = JiraFieldCatalog.from_names({f["id"]: f["name"] for f in SHAPE_FIELDS})
    for catalog, expected in ((with_schema, typed), (names_only, guessed)):
        read, reason = _read_shape(catalog, field_id, value, field)
        if expected is UNREADABLE:
            assert read is None and reason is not None
            if catalog is with_schema:
                kind = with_schema.schema_of(field_id)["type"]
                article = "an" if kind in ("option", "array") else "a"
                assert reason.startswith(f"not {article} {kind}")
                assert "(field schema)" in reason
        else:
            assert (read, reason) == (expected, None)


def test_a_contradicting_value_costs_only_its_field() -> None:
    catalog = JiraFieldCatalog.from_field_list(SHAPE_FIELDS)
    issue = _issue("customfield_10006", "High")  # an option field holding a bare string
    issue["fields"]["customfield_10004"] = "3"
    issue["fields"]["customfield_10072"] = ANA
    records, _ = JiraMapper(SHAPE_OPTIONS, catalog).map_issues([issue])
    (record,) = records
    assert record.unreadable is not None
    assert record.unreadable["risk"] == (
        "not an option (field schema): field 'customfield_10006': 'High'"
    )
    assert {"impact", "group"}.isdisjoint(record.unreadable)
    assert (record.risk, record.impact, record.group) == (None, "3", "Ana Lima")
    assert record.title == "Patch" and record.state is not None


def test_an_array_without_items_only_has_to_be_a_list() -> None:
    fields = [{**SHAPE_FIELDS[2], "schema": {"type": "array", "custom": f"{_CF}multicheckboxes"}}]
    catalog = JiraFieldCatalog.from_field_list(fields)
    assert _read_shape(catalog, "customfield_10070", [YES], "cab_required") == (True, None)
    read, reason = _read_shape(catalog, "customfield_10070", YES, "cab_required")
    assert read is None and reason is not None and reason.startswith("not an array (field schema)")
