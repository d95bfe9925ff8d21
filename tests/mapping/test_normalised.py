"""mapping/normalised.py: a normalised record read from JSON field by field (settled
reading 17): an unreadable value costs its field, never the record; only a record without
identity is refused."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ticketlint.connectors.files import load_inputs
from ticketlint.mapping.common import MappingOptions, MappingReport
from ticketlint.mapping.normalised import read_record

BASE: dict[str, Any] = {"source": "s", "system": "file", "key": "CHG-1", "process": "change"}

# (field, value, what the field reads as) for values that ARE readable
READABLE: list[tuple[str, Any, Any]] = [
    ("priority", "4.0", 4),
    ("priority", 4.0, 4),
    ("priority", "4", 4),
    ("priority", "", ""),
    ("priority", None, None),
    ("cab_date", "2026-03-03", date(2026, 3, 3)),
    ("created_at", "2026-03-03T10:00:00+02:00", datetime(2026, 3, 3, 8, tzinfo=timezone.utc)),
    ("created_at", "", ""),
    ("title", "", ""),
    ("cab_required", "true", True),
    ("ci_refs", [], []),
]

# (field, value, reason counted in the summary) for values that are NOT readable
UNREADABLE: list[tuple[str, Any, str]] = [
    ("title", {"display_value": "x"}, "not text"),
    ("title", 42, "not text"),
    ("group", ["Network"], "not text"),
    ("priority", "2 - High", "not a number"),
    ("priority", 4.5, "not a number"),
    ("priority", True, "not a number"),
    ("created_at", "yesterday", "not a date or time"),
    ("created_at", "2026-03-03T10:00:00", "not a date or time"),
    ("cab_date", 12, "not a date or time"),
    ("created_at", 1772532000.0, "not a date or time"),
    (
        "approvals",
        [{"approver": {}, "decision": "approved", "decided_at": 5}],
        "not a date or time",
    ),
    ("cab_required", "maybe", "not a boolean"),
    ("ci_refs", "web-01", "not a list"),
    ("outcome", "great", "not an allowed value"),
    ("approvals", [{"approver": {}, "decision": "perhaps"}], "not an allowed value"),
    ("approvals", [{"decision": "approved"}], "required part missing"),
    ("review", "done", "not an object"),
    ("requester", {"id": "u1", "shoe_size": 44}, "unexpected part"),
]


@pytest.mark.parametrize(("name", "value", "expected"), READABLE)
def test_readable_values_are_read(name: str, value: Any, expected: Any) -> None:
    report = MappingReport()
    record = read_record({**BASE, name: value}, report)
    assert getattr(record, name) == expected
    assert record.unreadable is None
    assert not report.unreadable and not report.warnings


@pytest.mark.parametrize(("name", "value", "reason"), UNREADABLE)
def test_an_unreadable_value_costs_its_field_only(name: str, value: Any, reason: str) -> None:
    report = MappingReport()
    record = read_record(
        {**BASE, name: value, "title": "kept", "risk": "high"} | {name: value}, report
    )
    assert record.key == "CHG-1"
    assert getattr(record, name) is None
    assert record.unreadable is not None and record.unreadable[name].startswith(reason + ":")
    assert report.unreadable == {(f"change.{name}", reason): 1}
    assert record.risk == "high"
    if name != "title":
        assert record.title == "kept"


def test_several_unreadable_fields_each_counted() -> None:
    report = MappingReport()
    data = {**BASE, "created_at": "soon", "priority": {"x": 1}, "risk": 3, "title": "T"}
    record = read_record(data, report)
    assert record.title == "T"
    assert record.unreadable is not None and set(record.unreadable) == {
        "created_at",
        "priority",
        "risk",
    }
    assert report.unreadable == {
        ("change.created_at", "not a date or time"): 1,
        ("change.priority", "not a number"): 1,
        ("change.risk", "not text"): 1,
    }


def test_the_records_own_unreadable_list_is_kept_extended_and_counted() -> None:
    report = MappingReport()
    data = {
        **BASE,
        "unreadable": {"cab_date": "not a date or time: x", "actual_start": "x"},
        "cab_date": "2026-03-03",
        "risk": 3,
    }
    record = read_record(data, report)
    assert record.unreadable == {
        "cab_date": "not a date or time: x",
        "actual_start": "x",
        "risk": "not text: Input should be a valid string",
    }
    assert record.cab_date is None  # a field listed as unreadable is unknown
    assert report.unreadable == {
        ("change.cab_date", "not a date or time"): 1,
        ("change.actual_start", "x"): 1,
        ("change.risk", "not text"): 1,
    }


def test_a_mapped_record_written_out_reads_back_the_same() -> None:
    report = MappingReport()
    mapped = read_record({**BASE, "created_at": "soon", "risk": "low"}, MappingReport())
    again = read_record(mapped.model_dump(mode="json"), report)
    assert again == mapped
    assert report.unreadable == {("change.created_at", "not a date or time"): 1}


@pytest.mark.parametrize(
    ("extra", "warning"),
    [
        ({"shoe_size": 44}, "f: unknown field 'shoe_size' ignored"),
        ({"raw": [1]}, "f: raw is not an object: ignored"),
        ({"unreadable": ["x"]}, "f: unreadable is not a map of field to reason: ignored"),
    ],
)
def test_what_is_not_a_field_is_ignored_and_counted(extra: dict[str, Any], warning: str) -> None:
    report = MappingReport()
    record = read_record({**BASE, "title": "T", **extra}, report, where="f: ")
    assert record.title == "T" and record.unreadable is None
    assert report.warnings == {warning: 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": None}, "key: Input should be a valid string"),
        ({"key": "  "}, "key: blank (a record without a key is not checked)"),
        ({"key": {"id": 1}}, "key: Input should be a valid string"),
        ({"process": "bogus"}, "unknown process 'bogus'"),
        ({"process": None}, "unknown process None"),
        ({"system": "excel"}, "system: Input should be 'jira', 'servicenow' or 'file'"),
        ({"source": 7}, "source: Input should be a valid string"),
    ],
)
def test_a_record_without_identity_is_refused(change: dict[str, Any], message: str) -> None:
    report = MappingReport()
    with pytest.raises(ValueError) as err:
        read_record({**BASE, "title": "T", "created_at": "later", **change}, report)
    assert str(err.value).startswith(message)
    assert not report.unreadable


def test_missing_key_is_refused() -> None:
    data = {k: v for k, v in BASE.items() if k != "key"}
    with pytest.raises(ValueError, match=r"^key: Field required"):
        read_record(data, MappingReport())


def test_jsonl_file_lists_lines_without_identity_and_checks_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        json.dumps({**BASE, "key": "CHG-1", "created_at": "yesterday", "risk": "high"}),
        "not json",
        "[1]",
        json.dumps({**BASE, "key": ""}),
        json.dumps({**BASE, "key": "CHG-2", "priority": "4.0", "cab_date": "2026-03-03"}),
        json.dumps({**BASE, "key": "CHG-3", "title": {"display_value": "x"}, "zz": 1}),
    ]
    path.write_text("\n".join(lines) + "\n")
    result = load_inputs([path], MappingOptions(source="file"))
    by_key = {r.key: r for r in result.records}
    assert list(by_key) == ["CHG-1", "CHG-2", "CHG-3"]
    assert by_key["CHG-1"].created_at is None and by_key["CHG-1"].risk == "high"
    assert by_key["CHG-2"].priority == 4 and by_key["CHG-2"].unreadable is None
    assert by_key["CHG-3"].title is None
    assert result.report.rows == 6 and result.report.mapped == 3
    assert [(e.key, e.reason.split(":")[1]) for e in result.report.errors] == [
        (None, "2"),
        (None, "3"),
        ("", "4"),
    ]
    assert result.report.unreadable == {
        ("change.created_at", "not a date or time"): 1,
        ("change.title", "not text"): 1,
    }
    assert result.report.warnings == {"r.jsonl: unknown field 'zz' ignored": 1}
