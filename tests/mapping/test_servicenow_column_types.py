"""ServiceNow columns read by their declared sys_dictionary types (issue 19, item 1).

One table per question: for each internal_type, what a value reads as with the type
declared, and what the same value read as without any dictionary (the value's shape
decides, exactly as before)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.model import record_from_dict
from ticketlint.mapping.servicenow import ServiceNowMapper
from ticketlint.mapping.servicenow_types import ColumnTypes, parents_of

SYS_ID = "1f157609c5da01f988a72c9cfabedd89"
UNREADABLE = object()
"""The expected value when the field is None and listed in the record's ``unreadable``."""

BASE_ROW = {
    "sys_id": SYS_ID,
    "number": "CHG0030001",
    "state": "-2",
    "sys_updated_on": "2026-02-05 12:00:00",
}


def _link(kind: str) -> dict[str, str]:
    """``internal_type`` as the Table API returns it without sysparm_exclude_reference_link."""
    return {
        "link": f"https://snow.example.com/api/now/table/sys_glide_object?name={kind}",
        "value": kind,
    }


def _map(
    process: str, row: dict[str, Any], types: dict[tuple[str, str], str] | None
) -> tuple[Any, dict[str, str]]:
    mapper = ServiceNowMapper(
        MappingOptions(source="snow"), None if types is None else ColumnTypes(types)
    )
    records, report = mapper.map_rows(process, [{**BASE_ROW, **row}])
    assert not report.errors and len(records) == 1
    record = records[0]
    record_from_dict(record.model_dump(mode="json"))  # the model accepts what was built
    return record, dict(record.unreadable or {})


# (process, field, column, declared type (on the table or on task), value,
#  read with the type, read without a dictionary)
CASES = [
    # glide_date: a whole day; a time there contradicts the type
    (
        "change",
        "cab_date",
        "cab_date",
        "glide_date",
        "2026-03-03",
        date(2026, 3, 3),
        date(2026, 3, 3),
    ),
    (
        "change",
        "cab_date",
        "cab_date",
        "glide_date",
        "2026-03-03 10:00:00",
        UNREADABLE,
        datetime(2026, 3, 3, 10, tzinfo=timezone.utc),
    ),
    ("change", "cab_date", "cab_date", "glide_date", "", "", ""),
    # glide_date_time: a UTC time; a date alone contradicts the type
    (
        "change",
        "planned_start",
        "start_date",
        "glide_date_time",
        "2026-03-03 22:00:00",
        datetime(2026, 3, 3, 22, tzinfo=timezone.utc),
        datetime(2026, 3, 3, 22, tzinfo=timezone.utc),
    ),
    (
        "change",
        "planned_start",
        "start_date",
        "glide_date_time",
        "2026-03-03",
        UNREADABLE,
        date(2026, 3, 3),
    ),
    ("change", "planned_start", "start_date", "glide_date_time", "soon", UNREADABLE, UNREADABLE),
    # integer / decimal: "4", "4.0" and 4 are numbers; a display value contradicts the type
    ("incident", "priority", "priority", "integer", "4", 4, 4),
    ("incident", "priority", "priority", "integer", "4.0", 4, 4),
    ("incident", "priority", "priority", "integer", 4, 4, 4),
    ("incident", "priority", "priority", "decimal", "2.0", 2, 2),
    ("incident", "priority", "priority", "integer", "2 - High", UNREADABLE, 2),
    ("incident", "priority", "priority", "integer", "4.5", UNREADABLE, UNREADABLE),
    ("incident", "priority", "priority", "integer", "", "", ""),
    # boolean: true / false; anything else contradicts the type
    ("change", "cab_required", "cab_required", "boolean", "true", True, True),
    ("change", "cab_required", "cab_required", "boolean", "false", False, False),
    ("change", "cab_required", "cab_required", "boolean", "yes", UNREADABLE, True),
    # html / journal: made text; a plain string holding tags is literal text
    ("problem", "root_cause", "cause_notes", "html", "<p><br></p>", "", ""),
    (
        "problem",
        "root_cause",
        "cause_notes",
        "html",
        "<p>Pool &amp; queue</p>",
        "Pool & queue",
        "Pool & queue",
    ),
    ("problem", "root_cause", "cause_notes", "html", "A &amp; B", "A & B", "A &amp; B"),
    ("change", "close_notes", "close_notes", "journal", "<p>Done</p>", "Done", "Done"),
    ("change", "close_notes", "close_notes", "string", "<p>Done</p>", "<p>Done</p>", "Done"),
    ("change", "title", "short_description", "string", "<p><br></p>", "<p><br></p>", ""),
    ("change", "close_code", "close_code", "choice", "successful", "successful", "successful"),
    # reference: read as before (sys_id, dot-walked name)
    (
        "change",
        "group",
        "assignment_group",
        "reference",
        "bcdb1a1da5836955aa38ff5d5428f365",
        "bcdb1a1da5836955aa38ff5d5428f365",
        "bcdb1a1da5836955aa38ff5d5428f365",
    ),
]
IDS = [f"{c[3]}-{c[1]}-{c[4]!r}" for c in CASES]


@pytest.mark.parametrize("process, field, column, declared, value, typed, guessed", CASES, ids=IDS)
def test_a_column_reads_as_its_declared_type_and_as_before_without_one(
    process: str, field: str, column: str, declared: str, value: Any, typed: Any, guessed: Any
) -> None:
    table = ServiceNowMapper(MappingOptions(source="snow")).table(process)
    for types, expected in (
        ({(table, column): declared}, typed),
        ({("task", column): declared}, typed),  # inherited from task
        (None, guessed),
    ):
        record, unreadable = _map(process, {column: value}, types)
        if expected is UNREADABLE:
            assert getattr(record, field) is None and field in unreadable
            if types is not None:
                assert f"not a {declared} (sys_dictionary type)" in unreadable[field]
        else:
            assert getattr(record, field) == expected and field not in unreadable
            assert type(getattr(record, field)) is type(expected)


def test_an_unreadable_value_costs_only_its_field() -> None:
    types = {("change_request", "cab_date"): "glide_date", ("task", "priority"): "integer"}
    record, unreadable = _map(
        "change", {"cab_date": "2026-03-03 10:00", "priority": "2", "close_notes": "ok"}, types
    )
    assert set(unreadable) == {"cab_date"} and record.priority == 2
    assert record.close_notes == "ok" and record.key == "CHG0030001"


def test_an_absent_column_is_not_provided_whatever_its_type() -> None:
    record, unreadable = _map("change", {}, {("change_request", "cab_date"): "glide_date"})
    assert record.cab_date is None and not unreadable


def test_column_types_from_raw_sys_dictionary_rows() -> None:
    rows: list[object] = [
        {"name": "change_request", "element": "cab_date", "internal_type": _link("glide_date")},
        {"name": "task", "element": "close_notes", "internal_type": "string", "max_length": "4000"},
        {"name": "problem", "element": "cause_notes", "internal_type": _link("html")},
        {},  # a row an ACL hides
        {"name": "incident", "element": "u_flag", "internal_type": {"link": "x", "value": ""}},
        {"name": "incident", "element": "", "internal_type": _link("collection")},  # the table
        "not a row",
    ]
    types, unusable = ColumnTypes.from_rows(rows)
    assert unusable == 4 and len(types) == 3
    assert types.declared("change_request", "cab_date") == "glide_date"
    assert types.declared("change_request", "close_notes") == "string"  # from task
    assert types.declared("incident", "cab_date") is None
    assert types.declared("change_request", "assigned_to.name") is None


@pytest.mark.parametrize(
    "table, parents",
    [
        ("incident", ("task",)),
        ("u_custom_change", ("task",)),
        ("task", ()),
        ("cmdb_ci", ("cmdb",)),
        ("cmdb_ci_linux_server", ("cmdb_ci", "cmdb")),
    ],
)
def test_parents(table: str, parents: tuple[str, ...]) -> None:
    assert parents_of(table) == parents


def test_types_the_mapper_cannot_use_are_listed_and_read_by_their_values() -> None:
    types = ColumnTypes(
        {
            ("change_request", "cab_date"): "string",  # a custom instance: text dates
            ("task", "assignment_group"): "reference",
            ("task", "priority"): "integer",
        }
    )
    mapper = ServiceNowMapper(MappingOptions(source="snow"), types)
    problems = [str(p) for p in mapper.type_problems()]
    expected = (
        "change.cab_date: change_request.cab_date is declared 'string', which the "
        "cab_date field cannot use"
    )
    assert problems == [expected]
    records, _ = mapper.map_rows("change", [{**BASE_ROW, "cab_date": "2026-03-03 10:00:00"}])
    assert records[0].cab_date == datetime(2026, 3, 3, 10, tzinfo=timezone.utc)


def test_the_dictionary_columns_are_the_mapped_ones_without_dot_walks() -> None:
    columns = ServiceNowMapper(MappingOptions(source="snow")).dictionary_columns()
    assert set(columns) == {"incident", "change_request", "problem", "sc_req_item", "cmdb_ci"}
    assert {"cab_date", "close_notes", "start_date", "priority"} <= set(columns["change_request"])
    assert not any("." in c for cols in columns.values() for c in cols)


def test_use_column_types_respecialises_the_readers_and_none_restores_guessing() -> None:
    mapper = ServiceNowMapper(MappingOptions(source="snow"))
    row = {**BASE_ROW, "start_date": "2026-03-03"}
    assert mapper.map_rows("change", [row])[0][0].planned_start == date(2026, 3, 3)
    mapper.use_column_types(ColumnTypes({("task", "start_date"): "glide_date_time"}))
    assert mapper.map_rows("change", [row])[0][0].planned_start is None
    mapper.use_column_types(None)
    assert mapper.map_rows("change", [row])[0][0].planned_start == date(2026, 3, 3)
