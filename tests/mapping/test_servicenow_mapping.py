"""mapping/servicenow.py: Table API rows -> records (docs/mapping.md: ServiceNow defaults, readings 1-3, 12-14)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.model import Approval, Link, Person, Review, record_from_dict
from ticketlint.mapping.servicenow import (
    APPROVAL_FIELDS,
    DEFAULT_TABLES,
    TASK_CI_FIELDS,
    ServiceNowMapper,
    load_table_export,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "servicenow"
BASE = "https://acme.service-now.com"

CHG_ID = "70ad699e47410200e90d87e8dee4907d"
INC_ID = "46cebb88a9fe198101aee93734f9768b"
USER_ID = "5137153cc611227c000bbd1bd8cd2007"
GROUP_ID = "8a4dde73c6112278017a6a4baf547aa7"
CI_ID = "b4fd7c8437201000deeabfc8bcbe5dc1"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def mapper(**kw) -> ServiceNowMapper:
    return ServiceNowMapper(MappingOptions(source="snow", base_url=BASE, **kw))


def one(process: str, row: dict, m: ServiceNowMapper | None = None, **kw):
    records, report = (m or mapper()).map_rows(process, [row], **kw)
    assert report.errors == [], report.errors
    assert len(records) == 1
    # the mapper constructs without validation for speed: prove the values are valid
    record_from_dict(records[0].model_dump())
    return records[0], report


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def change_row(**over) -> dict:
    row = load("change_request_record.json")
    row.update(over)
    return row


def incident_row(**over) -> dict:
    row = load("incident_record.json")
    row.update(over)
    return row


# --- shapes, keys, common fields -------------------------------------------------------


def test_interface_constants():
    assert DEFAULT_TABLES == {
        "incident": "incident",
        "change": "change_request",
        "problem": "problem",
        "service_request": "sc_req_item",
        "ci": "cmdb_ci",
    }
    assert {
        "sys_id",
        "sysapproval",
        "approver",
        "approver.name",
        "approver.email",
        "state",
        "sys_updated_on",
    } <= set(APPROVAL_FIELDS)
    assert {"task", "ci_item", "ci_item.name", "sys_id"} <= set(TASK_CI_FIELDS)


def test_change_record_from_a_real_shaped_row():
    record, report = one("change", change_row(), approvals=[])
    assert record.key == "CHG0000023"
    assert record.native_id == CHG_ID
    assert record.system == "servicenow" and record.source == "snow"
    assert record.url == f"{BASE}/nav_to.do?uri=change_request.do?sys_id={CHG_ID}"
    assert record.state == "closed" and record.raw_state == "3"
    assert record.priority == 4
    assert record.created_at == utc(2015, 7, 6, 18, 17, 21)
    assert record.updated_at == utc(2015, 7, 6, 18, 18, 53)
    assert record.closed_at == utc(2015, 7, 6, 18, 18, 53)
    assert record.resolved_at is None  # change_request has no resolved_at column
    assert record.requester == Person(
        id="6816f79cc0a8016401c5a33be04be441",
        name="System Administrator",
        email="admin@example.com",
    )
    assert record.assignee is None  # present but empty reference
    assert record.group == "Change Management"
    assert record.change_type == "standard"
    assert record.risk == "moderate" and record.impact == "low"
    assert record.implementation_plan == "Implementation plan"
    assert record.backout_plan == "" and record.test_plan == "Test plan"
    assert record.planned_start == "" and record.planned_end == ""
    assert record.actual_start == utc(2015, 7, 6, 18, 17, 41)
    assert record.actual_end == utc(2015, 7, 6, 18, 18, 34)
    assert record.close_code == "successful" and record.outcome == "successful"
    assert record.close_notes == "Completed successfully"
    assert record.cab_required is False and record.cab_date == ""
    assert record.review == Review(completed=False, at="", notes="")
    assert record.ci_refs == [] and record.approvals == []
    assert record.raw["number"] == "CHG0000023"
    assert report.rows == 1 and report.mapped == 1


def test_incident_record_fields():
    record, _ = one("incident", incident_row())
    assert record.key == "INC0000013"
    assert record.state == "closed" and record.priority == 1
    assert record.requester.id == "681ccaf9c0a8016400b98a06818d57c7"  # caller_id
    assert record.assignee == Person(
        id=USER_ID, name="Beth Anglin", email="beth.anglin@example.com"
    )
    assert record.group == "Service Desk"
    assert record.resolved_at == utc(2020, 9, 24, 19, 54, 48)
    assert record.resolution_code == "Solved (Work Around)"
    assert record.resolution_notes == "Gave workaround"
    assert record.category == "inquiry"
    assert record.major is False  # major_incident_state absent -> False
    assert record.sla_breached is None and record.review is None  # not mapped by default
    assert record.links == []
    assert record.approvals is None  # approvals not read


def test_reference_value_shapes_all_three():
    plain = incident_row(assigned_to=USER_ID)
    linked = incident_row(
        assigned_to={"link": f"{BASE}/api/now/table/sys_user/{USER_ID}", "value": USER_ID}
    )
    display_all = incident_row(
        assigned_to={
            "display_value": "Beth Anglin",
            "value": USER_ID,
            "link": f"{BASE}/api/now/table/sys_user/{USER_ID}",
        },
        state={"display_value": "Closed", "value": "7"},
        opened_at={"display_value": "2020-07-06 16:15:58", "value": "2020-07-06 23:15:58"},
    )
    del display_all["assigned_to.name"]
    for row in (plain, linked, display_all):
        record, _ = one("incident", row)
        assert record.assignee.id == USER_ID
        assert record.assignee.name == "Beth Anglin"
        assert record.state == "closed"
        assert record.created_at == utc(2020, 7, 6, 23, 15, 58)


def test_reference_without_dotwalk_or_display_keeps_sys_id():
    row = incident_row()
    del row["assigned_to.name"], row["assigned_to.email"], row["assignment_group.name"]
    record, _ = one("incident", row)
    assert record.assignee == Person(id=USER_ID)
    assert record.group == GROUP_ID


def test_requester_falls_back_on_opened_by():
    row = change_row(requested_by="")
    row["opened_by"] = USER_ID
    row["opened_by.name"] = "Beth Anglin"
    record, _ = one("change", row)
    assert record.requester == Person(id=USER_ID, name="Beth Anglin")


def test_url_empty_base_and_ci_class_table():
    m = ServiceNowMapper(MappingOptions(source="file"))
    record, _ = one("change", change_row(), m)
    assert record.url is None
    ci, _ = one(
        "ci",
        {
            "sys_id": CI_ID,
            "name": "lnux100",
            "sys_class_name": "cmdb_ci_linux_server",
            "install_status": "1",
        },
    )
    assert ci.url == f"{BASE}/nav_to.do?uri=cmdb_ci_linux_server.do?sys_id={CI_ID}"


# --- {} rows, malformed rows ------------------------------------------------------------


def test_acl_filtered_empty_rows_are_counted_and_skipped():
    records, report = mapper().map_rows("incident", [{}, incident_row(), {}])
    assert [r.key for r in records] == ["INC0000013"]
    assert report.skipped_empty == 2 and report.rows == 1 and report.mapped == 1


@pytest.mark.parametrize(
    ("over", "field", "reason"),
    [
        ({"closed_at": "2020-13-45 10:00:00"}, "closed_at", "not a date or time"),
        ({"sys_updated_on": "yesterday"}, "updated_at", "not a date or time"),
        ({"priority": "urgent"}, "priority", "not a number"),
        ({"priority": "9"}, "priority", "priority outside 1..5"),
        ({"short_description": ["not", "text"]}, "title", "unexpected value shape"),
        ({"assignment_group": {"display_value": "Network", "link": "x"}}, "group", "display"),
    ],
)
def test_unreadable_value_makes_that_field_unknown_and_the_record_is_still_checked(
    over, field, reason
):
    """Settled reading 17: one unreadable column costs that field only (None), named in
    the record's own list and counted per field and reason."""
    bad = incident_row(number="INC0000099", **over)
    records, report = mapper().map_rows("incident", [bad, incident_row()])
    assert [r.key for r in records] == ["INC0000099", "INC0000013"]
    assert report.rows == 2 and report.mapped == 2 and not report.errors
    record = records[0]
    assert getattr(record, field) is None
    assert record.unreadable is not None and reason in record.unreadable[field]
    assert [n for (f, r), n in report.unreadable.items() if f == f"incident.{field}"] == [1]
    assert records[1].unreadable is None
    # everything else of the record was read
    assert record.state == records[1].state and record.created_at == records[1].created_at


def test_iso_time_with_offset_is_read_not_refused():
    record, _ = one("incident", incident_row(opened_at="2020-07-06T23:15:58Z"))
    assert record.created_at == utc(2020, 7, 6, 23, 15, 58) and record.unreadable is None


def test_row_with_number_but_no_sys_id_is_checked_and_without_either_is_not():
    records, report = mapper().map_rows(
        "incident",
        [incident_row(number="INC0000099", sys_id=""), incident_row(number="", sys_id="")],
    )
    assert [r.key for r in records] == ["INC0000099"] and records[0].native_id is None
    (error,) = report.errors
    assert "neither number nor sys_id" in error.reason


def test_non_object_row_is_an_error_not_a_crash():
    records, report = mapper().map_rows("incident", ["oops", incident_row()])
    assert len(records) == 1 and len(report.errors) == 1 and report.errors[0].key is None


def test_row_without_number_is_keyed_by_sys_id():
    row = incident_row(number="")
    record, report = one("incident", row)
    assert record.key == INC_ID
    assert sum(report.warnings.values()) == 1


def test_datetimes_are_utc_and_opened_at_falls_back_on_sys_created_on():
    record, _ = one("incident", incident_row(opened_at=""))
    assert record.created_at == utc(2020, 7, 7, 23, 18, 7)
    assert record.created_at.tzinfo is not None
    row = incident_row()
    del row["opened_at"]
    record, _ = one("incident", row)
    assert record.created_at == utc(2020, 7, 7, 23, 18, 7)
    record, _ = one("incident", incident_row(opened_at="", sys_created_on=""))
    assert record.created_at == ""


# --- None versus empty (settled 2, 3) ----------------------------------------------------


def test_absent_column_is_none_present_blank_is_empty():
    row = change_row(backout_plan=" \t\u00a0", priority="", risk="", start_date="")
    del row["test_plan"], row["impact"], row["end_date"], row["cab_required"]
    record, _ = one("change", row)
    assert record.backout_plan.strip() == ""  # empty (settled 3), not None
    assert record.test_plan is None
    assert record.priority == ""
    assert record.risk == "" and record.impact is None
    assert record.planned_start == "" and record.planned_end is None
    assert record.cab_required is None
    row = change_row()
    del row["review_date"], row["review_comments"], row["cmdb_ci"]
    record, _ = one("change", row)
    assert record.review is None and record.ci_refs is None


def test_incident_links_and_major():
    row = incident_row(
        major_incident_state="accepted",
        problem_id="9d3a266ac6112287004e58b5b38b8bd5",
        rfc="a9e30c7dc61122760116894de7bcc7bd",
        caused_by="",
    )
    row["problem_id.number"] = "PRB0000007"
    record, _ = one("incident", row)
    assert record.major is True
    assert record.links == [
        Link(kind="problem", key="PRB0000007"),
        Link(kind="change", key="a9e30c7dc61122760116894de7bcc7bd"),
    ]
    record, _ = one("incident", incident_row(major_incident_state="proposed"))
    assert record.major is False


# --- state maps (incl. settled 14) -------------------------------------------------------


@pytest.mark.parametrize(
    ("process", "code", "state"),
    [
        *[
            ("incident", c, s)
            for c, s in [
                ("1", "new"),
                ("2", "in_progress"),
                ("3", "on_hold"),
                ("6", "resolved"),
                ("7", "closed"),
                ("8", "cancelled"),
            ]
        ],
        *[
            ("change", c, s)
            for c, s in [
                ("-5", "new"),
                ("-4", "assess"),
                ("-3", "authorize"),
                ("-2", "scheduled"),
                ("-1", "implement"),
                ("0", "review"),
                ("3", "closed"),
                ("4", "cancelled"),
            ]
        ],
        *[
            ("problem", c, s)
            for c, s in [
                ("101", "new"),
                ("102", "in_progress"),
                ("103", "in_progress"),
                ("104", "in_progress"),
                ("106", "resolved"),
                ("107", "closed"),
                ("1", "new"),
                ("2", "in_progress"),
                ("3", "in_progress"),
                ("4", "closed"),
            ]
        ],
        *[
            ("service_request", c, s)
            for c, s in [
                ("-5", "new"),
                ("1", "new"),
                ("2", "in_progress"),
                ("3", "closed"),
                ("4", "closed"),
                ("7", "cancelled"),
            ]
        ],
    ],
)
def test_state_maps(process, code, state):
    row = {"sys_id": CHG_ID, "number": "X1", "state": code}
    record, report = one(process, row)
    assert record.state == state and record.raw_state == code
    assert not report.unknown_statuses


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("1", "installed"),
        ("2", "planned"),
        ("4", "planned"),
        ("6", "planned"),
        ("3", "in_maintenance"),
        ("5", "in_maintenance"),
        ("7", "retired"),
        ("8", "retired"),
    ],
)
def test_ci_install_status_map(code, status):
    record, report = one("ci", {"sys_id": CI_ID, "name": "lnux100", "install_status": code})
    assert record.status == status and record.state is None
    assert not report.unknown_statuses


def test_ci_other_install_status_is_other_and_counted():
    record, report = one("ci", {"sys_id": CI_ID, "name": "lnux100", "install_status": "100"})
    assert record.status == "other"
    assert report.unknown_statuses == {("ci", "100"): 1}


@pytest.mark.parametrize("process", ["incident", "change", "problem", "service_request"])
def test_unknown_state_code_is_none_and_counted(process):
    rows = [{"sys_id": CHG_ID, "number": f"X{i}", "state": "42"} for i in range(2)]
    records, report = mapper().map_rows(process, rows)
    assert [r.state for r in records] == [None, None]
    assert [r.raw_state for r in records] == ["42", "42"]
    assert report.unknown_statuses == {(process, "42"): 2}


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("canceled", "cancelled"),
        ("duplicate", "cancelled"),
        ("fix_applied", "closed"),
        ("risk_accepted", "closed"),
    ],
)
def test_problem_closed_with_cancelling_resolution_code(code, state):
    row = {"sys_id": CHG_ID, "number": "PRB0040001", "state": "107", "resolution_code": code}
    record, _ = one("problem", row)
    assert record.state == state and record.resolution_code == code


def test_status_map_override_and_invalid_value_warned():
    m = mapper(status_map={"incident": {"42": "on_hold", "43": "bogus"}})
    records, report = m.map_rows(
        "incident",
        [
            {"sys_id": INC_ID, "number": "I", "state": "42"},
            {"sys_id": INC_ID, "number": "J", "state": "43"},
        ],
    )
    assert [r.state for r in records] == ["on_hold", None]
    assert report.unknown_statuses == {("incident", "43"): 1}
    assert any("bogus" in w for w in report.warnings)


# --- approvals (settled 13) --------------------------------------------------------------


def test_approvals_states_matching_and_decided_at():
    rows = load_table_export(load("sysapproval_approver.json"))
    record, report = one("change", change_row(), approvals=rows)
    assert record.approvals == [
        Approval(
            approver=Person(
                id="46d44a23a9fe19810012d100cca80666",
                name="Beth Anglin",
                email="beth.anglin@example.com",
            ),
            decision="approved",
            decided_at=utc(2015, 7, 6, 18, 17, 30),
        ),
        Approval(
            approver=Person(id="46ca0887a9fe19810191e08e51927ebf", name="Bud Richman"),
            decision="rejected",
            decided_at=utc(2015, 7, 6, 18, 17, 35),
        ),
        Approval(
            approver=Person(id="6816f79cc0a8016401c5a33be04be441", name="System Administrator"),
            decision="pending",
            decided_at=None,
        ),
        Approval(
            approver=Person(id="a8f98bb0eb32010045e1a5115206fe3a", name="Abel Tuter"),
            decision="cancelled",
            decided_at=None,
        ),
    ]  # not requested / not_required / duplicate rows skipped; other task's row not matched
    assert not report.warnings


def test_approvals_none_when_not_read_empty_when_none_match():
    record, _ = one("change", change_row())
    assert record.approvals is None
    record, _ = one(
        "change",
        change_row(),
        approvals=[{"sysapproval": "f" * 32, "state": "approved", "approver": USER_ID}],
    )
    assert record.approvals == []


def test_approval_reference_as_link_object():
    row = {
        "sysapproval": {"link": "x", "value": CHG_ID},
        "approver": {"link": "y", "value": USER_ID},
        "state": "approved",
        "sys_updated_on": "2015-07-06 18:00:00",
    }
    record, _ = one("change", change_row(), approvals=[row])
    assert record.approvals[0].approver.id == USER_ID


def test_request_approval_required():
    base = {
        "sys_id": "aeed229047801200e0ef563dbb9a71c2",
        "number": "RITM0010001",
        "state": "3",
        "close_notes": "Delivered",
    }
    for approval, required in [
        ("requested", True),
        ("approved", True),
        ("rejected", True),
        ("not requested", False),
        ("not_required", False),
        ("duplicate", False),
        ("", False),
    ]:
        record, _ = one("service_request", {**base, "approval": approval})
        assert record.approval_required is required, approval
    record, _ = one("service_request", base)
    assert record.approval_required is None
    assert record.resolution_notes == "Delivered"


# --- ci_refs: cmdb_ci + task_ci, names (settled 12) ----------------------------------------


def test_ci_refs_merge_task_ci_and_resolve_names():
    row = incident_row(cmdb_ci=CI_ID)
    row.pop("cmdb_ci.name", None)
    task_ci = [
        {"sys_id": "1" * 32, "task": INC_ID, "ci_item": "2" * 32, "ci_item.name": "sap-prod-db"},
        {"sys_id": "3" * 32, "task": INC_ID, "ci_item": "4" * 32},  # via ci_names
        {"sys_id": "5" * 32, "task": INC_ID, "ci_item": "6" * 32},  # unresolvable
        {"sys_id": "7" * 32, "task": INC_ID, "ci_item": CI_ID},  # duplicate of cmdb_ci
        {"sys_id": "8" * 32, "task": "9" * 32, "ci_item": "a" * 32, "ci_item.name": "other"},
        {},
    ]
    names = {CI_ID: "lnux100", "4" * 32: "exchange-01"}
    record, _ = one("incident", row, task_ci=task_ci, ci_names=names)
    assert record.ci_refs == ["lnux100", "sap-prod-db", "exchange-01", "6" * 32]


def test_ci_ref_dotwalked_name_wins_and_unknown_keeps_sys_id():
    row = incident_row(cmdb_ci=CI_ID)
    row["cmdb_ci.name"] = "lnux100"
    record, _ = one("incident", row)
    assert record.ci_refs == ["lnux100"]
    row = incident_row(cmdb_ci=CI_ID)
    record, _ = one("incident", row)
    assert record.ci_refs == [CI_ID]


def test_ci_record_fields():
    row = {
        "sys_id": CI_ID,
        "name": "lnux100",
        "sys_class_name": "cmdb_ci_linux_server",
        "install_status": "1",
        "owned_by": "",
        "managed_by": USER_ID,
        "managed_by.name": "Beth Anglin",
        "support_group": GROUP_ID,
        "support_group.name": "Linux Ops",
        "last_discovered": "2026-10-01 03:00:00",
        "sys_created_on": "2024-01-01 00:00:00",
        "sys_updated_on": "2026-10-01 03:00:00",
    }
    record, _ = one("ci", row)
    assert record.key == "lnux100" and record.ci_class == "cmdb_ci_linux_server"
    assert record.owner == Person(id=USER_ID, name="Beth Anglin")  # owned_by empty -> managed_by
    assert record.support_group == "Linux Ops"
    assert record.last_verified_at == utc(2026, 10, 1, 3)
    record, _ = one("ci", {**row, "support_group": "", "managed_by": "", "last_discovered": ""})
    assert record.owner is None and record.support_group == "" and record.last_verified_at == ""


# --- change specifics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("successful", "successful"),
        ("successful_issues", "successful_with_issues"),
        ("unsuccessful", "unsuccessful"),
        ("", None),
    ],
)
def test_change_outcome(code, outcome):
    record, _ = one("change", change_row(close_code=code))
    assert record.outcome == outcome


def test_change_risk_impact_names_and_unknown_text_kept():
    record, _ = one("change", change_row(risk="1", impact="2"))
    assert (record.risk, record.impact) == ("very high", "medium")
    record, _ = one("change", change_row(risk="Elevated", impact="4"))
    assert (record.risk, record.impact) == ("Elevated", "4")


def test_change_review_from_date_or_comments():
    record, _ = one("change", change_row(review_date="2015-07-08 10:00:00"))
    assert record.review.completed and record.review.at == utc(2015, 7, 8, 10)
    record, _ = one("change", change_row(review_comments="Went fine"))
    assert record.review.completed and record.review.notes == "Went fine"
    record, _ = one("change", change_row(review_comments="  "))
    assert record.review.completed is False


# --- overrides -----------------------------------------------------------------------------


def test_field_overrides_negation_and_review_column():
    m = mapper(
        fields={
            "incident.sla_breached": "!made_sla",
            "incident.review": "u_pir_completed",
            "change.review": "u_pir_date",
            "change.backout_plan": "u_rollback",
        }
    )
    record, _ = one("incident", incident_row(made_sla="false", u_pir_completed="true"), m)
    assert record.sla_breached is True and record.review == Review(completed=True)
    record, _ = one("incident", incident_row(made_sla="true", u_pir_completed="false"), m)
    assert record.sla_breached is False and record.review.completed is False
    record, _ = one("incident", incident_row(made_sla="", u_pir_completed="Held with vendor"), m)
    assert record.sla_breached is None and record.review.completed is True
    row = incident_row()
    del row["made_sla"]
    record, _ = one("incident", row, m)  # columns absent on the instance
    assert record.sla_breached is None and record.review is None
    record, _ = one(
        "change", change_row(u_pir_date="2015-07-09 09:00:00", u_rollback="Restore VM"), m
    )
    assert record.review == Review(completed=True, at=utc(2015, 7, 9, 9))
    assert record.backout_plan == "Restore VM"
    assert {"made_sla", "u_pir_completed"} <= set(m.fields_for("incident"))
    assert "u_rollback" in m.fields_for("change") and "backout_plan" not in m.fields_for("change")


def test_unknown_field_override_is_warned_not_fatal():
    m = mapper(fields={"incident.nonsense": "u_x", "incident.category": "!u_cat"})
    record, report = one("incident", incident_row(u_cat="network"), m)
    assert record.category == "network"
    assert len(report.warnings) == 2


def test_state_column_override():
    m = mapper(fields={"incident.state": "incident_state"})
    record, _ = one("incident", incident_row(state="2", incident_state="7"), m)
    assert record.state == "closed"


def test_table_overrides():
    m = mapper(tables={"incident": "u_incident", "service_request": "sc_request"})
    assert m.table("incident") == "u_incident" and m.table("change") == "change_request"
    assert m.process_for_table("u_incident") == "incident"
    assert m.process_for_table("incident") is None
    assert m.process_for_table("sc_request") == "service_request"
    record, _ = one("incident", incident_row(), m)
    assert record.url == f"{BASE}/nav_to.do?uri=u_incident.do?sys_id={INC_ID}"
    with pytest.raises(ValueError):
        m.table("release")


# --- fields_for ----------------------------------------------------------------------------


def test_fields_for_lists_only_mapped_columns():
    m = mapper()
    inc = m.fields_for("incident")
    assert inc[:3] == ["sys_id", "sys_updated_on", "number"]
    assert len(inc) == len(set(inc))
    for col in (
        "assigned_to.name",
        "assigned_to.email",
        "assigned_to.user_name",
        "assignment_group.name",
        "caller_id.name",
        "opened_by.name",
        "cmdb_ci.name",
        "problem_id",
        "rfc",
        "caused_by",
        "major_incident_state",
        "close_code",
        "close_notes",
        "resolved_at",
        "priority",
        "state",
    ):
        assert col in inc
    assert "made_sla" not in inc and "description" not in inc
    chg = m.fields_for("change")
    for col in (
        "requested_by.name",
        "type",
        "risk",
        "impact",
        "backout_plan",
        "test_plan",
        "start_date",
        "end_date",
        "work_start",
        "work_end",
        "cab_required",
        "cab_date",
        "review_date",
        "review_comments",
    ):
        assert col in chg
    ci = m.fields_for("ci")
    assert ci[:3] == ["sys_id", "sys_updated_on", "name"]
    for col in (
        "install_status",
        "sys_class_name",
        "owned_by.name",
        "managed_by.name",
        "support_group.name",
        "last_discovered",
    ):
        assert col in ci
    assert "resolution_code" in m.fields_for("problem") and "approval" in m.fields_for(
        "service_request"
    )


# --- exports -------------------------------------------------------------------------------


def test_load_table_export_shapes():
    rows = [{"sys_id": "a"}, {}]
    assert load_table_export({"result": rows}) == rows
    assert load_table_export([{"result": rows[:1]}, {"result": rows[1:]}]) == rows
    assert load_table_export(rows) == rows
    assert load_table_export({"result": {"sys_id": "a"}}) == [{"sys_id": "a"}]
    assert load_table_export({"records": rows}) == rows
    for bad in ({"error": {"message": "User Not Authenticated"}}, {"result": "x"}, [1, 2], "text"):
        with pytest.raises(ValueError):
            load_table_export(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("<p><br></p>", ""),
        ("<p>&nbsp;</p>", ""),
        ("<P>Pool <b>exhausted</b></P>", "Pool exhausted"),
        ("<div>Line one</div><div>Line two</div>", "Line one\nLine two"),
        ("Use <none> as the value", "Use <none> as the value"),
        ("a < b and c > d", "a < b and c > d"),
    ],
)
def test_html_is_made_text_before_the_emptiness_test_and_plain_text_is_kept(value, text):
    """Settled reading 19: HTML notes are read as their text; text that only uses angle
    brackets is not HTML."""
    record, _ = one("incident", incident_row(close_notes=value))
    assert record.resolution_notes == text
