"""Property tests of settled reading 17 (Hypothesis): any mapped value replaced by null,
"", whitespace, a wrong type, a date-only value, a float string, a display-value object or
HTML never raises, never costs the record, and never decides a rule by itself.

For every mapped column of every process (ServiceNow rows of the Table API fixtures, Jira
issues of the example export, and every field of normalised records read from JSON lines),
one value is replaced. Then:

- the row still maps to exactly one record, without a mapping error;
- every field the record could not read is None and named in ``record.unreadable``;
- for every record rule and every field the record could not read, a PASS or FAIL does
  not depend on that field: setting the field to an empty value and to a real value
  gives the same verdict (so the verdict did not come from the unreadable value).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketlint.mapping.common import MappingOptions, MappingReport
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper, load_search_export
from ticketlint.mapping.model import (
    RECORD_CLASSES,
    Approval,
    BaseRecord,
    Link,
    Person,
    Review,
)
from ticketlint.mapping.normalised import IDENTITY_FIELDS, read_record
from ticketlint.mapping.servicenow import DEFAULT_TABLES, ServiceNowMapper
from ticketlint.rules.engine import RecordIndex
from ticketlint.rules.outcome import Status
from ticketlint.rules.registry import RuleContext
from ticketlint.rules.selection import load_registry

ROOT = Path(__file__).resolve().parents[2]
SNOW = ROOT / "tests" / "fixtures" / "servicenow_api"
JIRA = ROOT / "examples" / "jira"
AS_OF = datetime(2026, 3, 31, tzinfo=timezone.utc)
WHEN = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)

REPLACEMENTS: list[Any] = [
    None,
    "",
    "   \t",
    "\u00a0",
    ["not", "a", "scalar"],
    {"unexpected": 1},
    True,
    3.5,
    42,
    "2026-03-03",
    "4.0",
    "not a value",
    {"display_value": "Network", "link": "https://example.service-now.com/api/now/x/1"},
    {"display_value": "2 - High", "value": "2", "link": ""},
    "<p><br></p>",
    "<p>&nbsp;</p>",
    "<div><b>Restarted</b> the pool</div>",
]

RULES = [r for r in load_registry().rules.values() if r.kind == "record"]
INDEX = RecordIndex()

# One empty and one real value per canonical field, to probe what a verdict depends on.
_PERSON = Person(id="u-1", name="Ann Example", email="ann@example.com")
PROBES: dict[str, tuple[Any, Any]] = {
    "title": ("", "A title"),
    "priority": ("", 2),
    "created_at": ("", WHEN),
    "updated_at": ("", WHEN),
    "resolved_at": ("", WHEN),
    "closed_at": ("", WHEN),
    "requester": (None, _PERSON),
    "assignee": (None, _PERSON),
    "owner": (None, _PERSON),
    "group": ("", "Network"),
    "support_group": ("", "Network"),
    "ci_refs": ([], ["web-01"]),
    "links": ([], [Link(kind="problem", key="PRB1")]),
    "approvals": ([], [Approval(approver=_PERSON, decision="approved", decided_at=WHEN)]),
    "review": (Review(completed=False), Review(completed=True, at=WHEN)),
    "transitions": ([], []),
    "major": (False, True),
    "sla_breached": (False, True),
    "known_error": (False, True),
    "approval_required": (False, True),
    "cab_required": (False, True),
    "last_verified_at": ("", WHEN),
    "cab_date": ("", WHEN),
    "planned_start": ("", WHEN),
    "planned_end": ("", WHEN),
    "actual_start": ("", WHEN),
    "actual_end": ("", WHEN),
    "status": ("other", "installed"),
    "outcome": (None, "successful"),
}
_TEXT_DEFAULT = ("", "Some text")


def _probe(record: BaseRecord, name: str) -> tuple[Any, Any]:
    if name == "state":
        return ("new", "closed")  # both ladders have these two
    return PROBES.get(name, _TEXT_DEFAULT)


def _verdicts(record: BaseRecord) -> dict[str, Status]:
    out: dict[str, Status] = {}
    for r in RULES:
        if record.process in r.applies_to:
            ctx = RuleContext(as_of=AS_OF, params=r.resolve_params(None), index=INDEX)
            out[r.code] = r.func(record, ctx).status
    return out


def assert_unreadable_decides_nothing(record: BaseRecord) -> None:
    unreadable = record.unreadable or {}
    for name in unreadable:
        assert getattr(record, name) is None, (record.key, name)
    verdicts = _verdicts(record)
    for name in unreadable:
        empty, value = _probe(record, name)
        with_empty = _verdicts(record.model_copy(update={name: empty}))
        with_value = _verdicts(record.model_copy(update={name: value}))
        for code, status in verdicts.items():
            if status in (Status.PASS, Status.FAIL) and with_empty[code] != with_value[code]:
                raise AssertionError(
                    f"{code} says {status.value} on {record.key} although {name} could not "
                    f"be read ({unreadable[name]}) and decides it"
                )


# --- ServiceNow ------------------------------------------------------------------------

SNOW_ROWS: dict[str, list[dict[str, Any]]] = {
    process: json.loads((SNOW / f"{table}.json").read_text())["result"]
    for process, table in DEFAULT_TABLES.items()
}
SNOW_MAPPER = ServiceNowMapper(
    MappingOptions(source="snow", base_url="https://example.service-now.com")
)
_IDENTITY = {"sys_id", "number", "name"}
SNOW_CASES = [
    (process, index, column)
    for process, rows in SNOW_ROWS.items()
    for index in range(len(rows))
    for column in SNOW_MAPPER.fields_for(process)
    if column not in _IDENTITY
]


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(SNOW_CASES), value=st.sampled_from(REPLACEMENTS))
def test_servicenow_any_value_of_any_column(case: tuple[str, int, str], value: Any) -> None:
    process, index, column = case
    row = copy.deepcopy(SNOW_ROWS[process][index])
    row[column] = value
    records, report = SNOW_MAPPER.map_rows(process, [row])
    assert not report.errors, report.errors
    assert len(records) == 1 and records[0].key == row.get("number", row.get("name"))
    assert_unreadable_decides_nothing(records[0])


def test_servicenow_cases_cover_every_process_and_many_columns() -> None:
    assert {p for p, _, _ in SNOW_CASES} == set(DEFAULT_TABLES)
    assert len({c for _, _, c in SNOW_CASES}) > 40


# --- Jira ------------------------------------------------------------------------------

_ISSUES, _NAMES, _ = load_search_export(json.loads((JIRA / "search.json").read_text()))
JIRA_MAPPER = JiraMapper(
    MappingOptions(source="jira", base_url="https://acme-itsm.atlassian.net"),
    JiraFieldCatalog.from_field_list(json.loads((JIRA / "field.json").read_text())),
    statuses=json.loads((JIRA / "status.json").read_text()),
)
_MAPPED = [
    i
    for i in _ISSUES
    if JIRA_MAPPER.process_of(i) not in (None, "review") and not (i["fields"].get("issuelinks"))
]
JIRA_CASES = [
    (index, field_id)
    for index, issue in enumerate(_MAPPED[:40])
    for field_id in JIRA_MAPPER.search_fields()
    if field_id not in ("issuetype", "project")
]


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(JIRA_CASES), value=st.sampled_from(REPLACEMENTS))
def test_jira_any_value_of_any_field(case: tuple[int, str], value: Any) -> None:
    index, field_id = case
    issue = copy.deepcopy(_MAPPED[index])
    issue["fields"][field_id] = value
    records, report = JIRA_MAPPER.map_issues([issue])
    assert not report.errors, report.errors
    assert len(records) == 1 and records[0].key == issue["key"]
    assert_unreadable_decides_nothing(records[0])


def test_jira_cases_cover_every_process() -> None:
    processes = {JIRA_MAPPER.process_of(_MAPPED[i]) for i, _ in JIRA_CASES}
    assert processes == {"incident", "change", "problem", "service_request"}


# --- JSON lines of normalised records ----------------------------------------------------

_JSONL_BASES: list[dict[str, Any]] = [
    SNOW_MAPPER.map_rows(process, rows)[0][0].model_dump(mode="json", exclude={"raw"})
    for process, rows in SNOW_ROWS.items()
]
JSONL_CASES = [
    (index, name)
    for index, base in enumerate(_JSONL_BASES)
    for name in RECORD_CLASSES[base["process"]].model_fields
    if name not in (*IDENTITY_FIELDS, "raw", "unreadable")
]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(JSONL_CASES), value=st.sampled_from(REPLACEMENTS))
def test_jsonl_any_value_of_any_field(case: tuple[int, str], value: Any) -> None:
    index, name = case
    data = {**copy.deepcopy(_JSONL_BASES[index]), name: value}
    report = MappingReport()
    record = read_record(json.loads(json.dumps(data)), report)
    assert record.key == data["key"] and not report.warnings
    assert set(record.unreadable or {}) <= {name}
    assert_unreadable_decides_nothing(record)


def test_jsonl_cases_cover_every_process() -> None:
    assert {_JSONL_BASES[i]["process"] for i, _ in JSONL_CASES} == set(DEFAULT_TABLES)
