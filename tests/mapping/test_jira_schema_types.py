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
