"""The ServiceNow connector reads sys_dictionary once per run (issue 19, item 1), with
``responses`` and realistic raw rows: ``internal_type`` as a reference to
sys_glide_object (``{"link", "value"}``), ``{}`` rows an ACL hides, and a 403 when the
API user may not read the dictionary (warned once, types guessed, nothing lost)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import responses
from test_servicenow_connector import (
    FIX,
    FakeTableAPI,
    all_tables,
    connector,
    read_all,
    rows_of,
)

from ticketlint.connectors.servicenow.dictionary import (
    DICTIONARY_FIELDS,
    ROLE_HINT,
    dictionary_query,
)


def _dictionary_calls(fake: FakeTableAPI) -> list[dict[str, str]]:
    return [c for c in fake.calls if c["table"] == "sys_dictionary"]


def _change_with(**values: str) -> dict[str, list[dict[str, Any]]]:
    tables = all_tables()
    tables["change_request"] = [{**rows_of("change_request")[0], **values}]
    return tables


@responses.activate
def test_the_dictionary_is_read_once_per_run_in_one_request_restricted_to_mapped_columns() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector(page_size=2)
    for stream in conn.streams:
        read_all(conn, stream)
    calls = _dictionary_calls(fake)
    assert len(calls) == 1 and fake.calls[0]["table"] == "sys_dictionary"
    call = calls[0]
    assert call["sysparm_fields"] == ",".join(DICTIONARY_FIELDS)
    assert call["sysparm_limit"] == "1000" and call["sysparm_no_count"] == "false"
    query = call["sysparm_query"]
    tables, elements = query.split("^")[0], query.split("^")[1]
    assert tables == "nameINincident,task,change_request,problem,sc_req_item,cmdb_ci,cmdb"
    assert {"cab_date", "close_notes", "work_start", "last_discovered"} <= set(
        elements.removeprefix("elementIN").split(",")
    )
    assert "." not in elements and query.endswith("^ORDERBYsys_id")
    read = conn.dictionary()
    assert read.problem is None and read.types is not None
    assert read.types.declared("change_request", "cab_date") == "glide_date"
    assert read.types.declared("change_request", "close_notes") == "string"  # on task


def test_the_query_names_parents_once_and_leaves_dot_walks_out() -> None:
    query = dictionary_query(
        {"incident": ["number", "assigned_to", "assigned_to.name"], "cmdb_ci": ["name"]}
    )
    assert query == "nameINincident,task,cmdb_ci,cmdb^elementINassigned_to,name,number"


@pytest.mark.parametrize(
    "cab_date, expected, unreadable",
    [
        ("2026-03-03", "2026-03-03", None),
        ("2026-03-03 10:00:00", None, "not a glide_date (sys_dictionary type)"),
    ],
)
@responses.activate
def test_a_glide_date_cab_date_is_a_day_and_a_time_there_is_unreadable(
    cab_date: str, expected: str | None, unreadable: str | None
) -> None:
    FakeTableAPI(_change_with(cab_date=cab_date)).install()
    _, records = read_all(connector(), "change")
    assert len(records) == 1  # never dropped
    record = records[0]
    assert (record.cab_date.isoformat() if record.cab_date else None) == expected
    reason = (record.unreadable or {}).get("cab_date")
    assert (reason is None) if unreadable is None else unreadable in str(reason)


@responses.activate
def test_rows_an_acl_hides_are_counted_and_the_rest_is_used() -> None:
    tables = all_tables()
    for row in tables["sys_dictionary"][:5]:
        row["_acl"] = "hide"
    FakeTableAPI(tables).install()
    conn = connector()
    read_all(conn, "change")
    read = conn.dictionary()
    assert read.types is not None and read.unusable == 5
    assert read.rows == len(tables["sys_dictionary"])


@pytest.mark.parametrize("status", [403, 500])
@responses.activate
def test_a_refused_dictionary_warns_once_and_the_values_decide_the_types(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = (FIX / "errors" / "403.json").read_text() if status == 403 else '{"error": {}}'
    fake = FakeTableAPI(_change_with(cab_date="2026-03-03", start_date="2026-03-03")).install()
    fake.dictionary_faults = [(status, {}, body)] * 3  # 500: retried, then given up
    conn = connector(max_attempts=3)
    with caplog.at_level(logging.WARNING):
        batches = [b for stream in conn.streams for b in conn.read(stream)]
    records = [r for b in batches for r in b.records]
    every_row = ("incident", "problem", "sc_req_item", "cmdb_ci")
    assert len(records) == 1 + sum(len(rows_of(t)) for t in every_row)  # + the one change
    assert len(records) > 0 and len(_dictionary_calls(fake)) == (1 if status == 403 else 3)
    change = next(r for r in records if r.process == "change")
    # without types the value decides: a date-only start_date is a date, as before
    assert change.cab_date.isoformat() == "2026-03-03" == change.planned_start.isoformat()
    warnings = [w for b in batches for w in b.report.warnings if "sys_dictionary" in w]
    assert len(warnings) == 1 and "column types are guessed from the values" in warnings[0]
    if status == 403:
        assert "HTTP 403" in warnings[0] and ROLE_HINT in warnings[0]
        assert "personalize_dictionary" in warnings[0]
    logged = [r for r in caplog.records if r.name.endswith(".dictionary")]
    assert len(logged) == 1 and "pw-s3cret" not in logged[0].getMessage()


@responses.activate
def test_an_empty_dictionary_answer_is_a_refusal_in_disguise() -> None:
    tables = all_tables()
    tables["sys_dictionary"] = []
    FakeTableAPI(tables).install()
    conn = connector()
    batches, records = read_all(conn, "change")
    assert records and conn.dictionary().types is None
    assert any("returned no usable row" in w for b in batches for w in b.report.warnings)


@responses.activate
def test_doctor_says_whether_the_dictionary_was_read_and_what_the_mapper_cannot_use() -> None:
    tables = all_tables()
    for row in tables["sys_dictionary"]:
        if row["element"] == "cab_date":
            row["internal_type"] = {"link": "x", "value": "string"}
    FakeTableAPI(tables).install()
    rep = connector().doctor()
    check = next(c for c in rep.checks if c.name == "column types (sys_dictionary)")
    assert not check.ok and check.level == "warning"
    assert "change_request.cab_date is declared 'string'" in check.detail


@responses.activate
def test_doctor_names_the_role_when_the_dictionary_is_refused() -> None:
    fake = FakeTableAPI(all_tables()).install()
    fake.dictionary_faults = [(403, {}, (FIX / "errors" / "403.json").read_text())]
    rep = connector().doctor()
    check = next(c for c in rep.checks if c.name == "column types (sys_dictionary)")
    assert not check.ok and "personalize_dictionary" in check.detail
    assert rep.ok  # a warning: the source is still read


@responses.activate
def test_doctor_reports_a_readable_dictionary() -> None:
    FakeTableAPI(all_tables()).install()
    rep = connector().doctor()
    check = next(c for c in rep.checks if c.name == "column types (sys_dictionary)")
    assert check.ok and "read by their declared types" in check.detail
    assert rep.info["column_types"] == len(
        json.loads((FIX / "sys_dictionary.json").read_text())["result"]
    )
