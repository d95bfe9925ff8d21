"""Jira issues -> records: field resolution, bodies, people, times, history, approvals,
reviews, statuses, priorities, errors and config overrides (docs/mapping.md: Jira defaults and readings)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ticketlint.mapping.adf import adf_to_text
from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper, load_search_export
from ticketlint.mapping.model import (
    ChangeRecord,
    IncidentRecord,
    ProblemRecord,
    ServiceRequestRecord,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "jira"
FIXTURES = ROOT / "tests" / "fixtures" / "jira"
UTC = timezone.utc

NAMES = {
    "summary": "Summary",
    "status": "Status",
    "issuetype": "Issue Type",
    "priority": "Priority",
    "created": "Created",
    "updated": "Updated",
    "resolution": "Resolution",
    "resolutiondate": "Resolved",
    "reporter": "Reporter",
    "assignee": "Assignee",
    "labels": "Labels",
    "issuelinks": "Linked Issues",
    "comment": "Comment",
    "customfield_10005": "Change type",
    "customfield_10044": "Backout plan",
    "customfield_10045": "Test plan",
    "customfield_10060": "Resolution notes",
    "customfield_10061": "Major incident",
    "customfield_10027": "Approvals",
    "customfield_10029": "Time to resolution",
    "customfield_10070": "Rollback plan",
    "customfield_10071": "Made SLA",
    "customfield_10072": "PIR done",
    "customfield_10065": "Affected hardware",
    "customfield_10080": "Customer site",
    "customfield_10062": "Root cause",
    "customfield_10063": "Workaround",
}
SCHEMA = {
    "customfield_10027": {
        "type": "sd-approvals",
        "custom": "com.atlassian.servicedesk.approvals-plugin:sd-approvals",
    },
    "customfield_10065": {
        "type": "array",
        "custom": "com.atlassian.jira.plugins.cmdb:cmdb-object-cftype",
    },
    "customfield_10080": {
        "type": "array",
        "custom": "com.atlassian.jira.plugins.cmdb:cmdb-object-cftype",
    },
}
CATEGORY = {
    "Open": "new",
    "Work in progress": "indeterminate",
    "Resolved": "done",
    "Closed": "done",
    "Implementing": "indeterminate",
    "Awaiting implementation": "indeterminate",
    "Review": "indeterminate",
    "Done": "done",
    "Failed": "done",
}


def adf(*paragraphs: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": p}] if p else []}
            for p in paragraphs
        ],
    }


def issue(
    key: str, itype: str, status: str, category: str | None = None, **fields: Any
) -> dict[str, Any]:
    st: dict[str, Any] = {"name": status}
    cat = category or CATEGORY.get(status)
    if cat:
        st["statusCategory"] = {"key": cat}
    base = {
        "summary": f"{itype} {key}",
        "issuetype": {"name": itype},
        "status": st,
        "priority": {"name": "Medium"},
        "created": "2026-03-02T14:10:05.123-0700",
        "updated": "2026-03-02T14:10:05.123-0700",
    }
    base.update(fields)
    return {"id": str(abs(hash(key)) % 100000), "key": key, "fields": base}


def mapper(**options: Any) -> JiraMapper:
    deployment = options.pop("deployment", "Cloud")
    statuses = options.pop("statuses", None)
    catalog = options.pop("catalog", None) or JiraFieldCatalog.from_names(NAMES, SCHEMA)
    return JiraMapper(
        MappingOptions(source="jira-test", base_url="https://acme.atlassian.net/", **options),
        catalog,
        statuses=statuses,
        deployment=deployment,
    )


def map_one(m: JiraMapper, data: dict[str, Any], **kwargs: Any):
    records, report = m.map_issues([data], **kwargs)
    assert not report.errors, report.errors
    assert len(records) == 1
    return records[0], report


# --- catalog and export loading ----------------------------------------------------------


def test_catalog_from_names_resolves_names_case_insensitively_and_known_ids() -> None:
    cat = JiraFieldCatalog.from_names(NAMES, SCHEMA)
    assert cat.resolve("backout PLAN") == "customfield_10044"
    assert cat.resolve("customfield_10044") == "customfield_10044"
    assert cat.resolve("customfield_99999") is None
    assert cat.resolve("Change risk") is None
    assert cat.by_custom_type("com.atlassian.jira.plugins.cmdb:cmdb-object-cftype") == [
        "customfield_10065",
        "customfield_10080",
    ]


def test_catalog_from_field_list_reads_schema_and_flags_duplicate_names() -> None:
    fields = json.loads((EXAMPLE / "field.json").read_text())
    fields.append(
        {
            "id": "customfield_19999",
            "name": "Backout Plan",
            "custom": True,
            "schema": {"type": "string", "custom": "x:textarea"},
        }
    )
    cat = JiraFieldCatalog.from_field_list(fields)
    assert cat.resolve("Backout plan") == "customfield_10044"  # the first listed wins
    assert cat.ambiguous == {"backout plan": ["customfield_10044", "customfield_19999"]}
    assert cat.by_custom_type("com.atlassian.servicedesk.approvals-plugin:sd-approvals") == [
        "customfield_10027"
    ]
    assert cat.resolve("status") == "status" and cat.resolve("Resolved") == "resolutiondate"


def test_load_search_export_merges_pages() -> None:
    page1 = {
        "issues": [{"id": "1", "key": "A-1", "fields": {}}],
        "names": {"summary": "Summary"},
        "schema": {"summary": {"type": "string"}},
        "nextPageToken": "x",
    }
    page2 = {
        "issues": [{"id": "2", "key": "A-2", "fields": {}}],
        "names": {"customfield_1": "Team"},
        "isLast": True,
    }
    issues, names, schema = load_search_export([page1, page2])
    assert [i["key"] for i in issues] == ["A-1", "A-2"]
    assert names == {"summary": "Summary", "customfield_1": "Team"}
    assert schema == {"summary": {"type": "string"}}
    assert load_search_export(page2)[0][0]["key"] == "A-2"
    with pytest.raises(ValueError):
        load_search_export([{"issues": "nope"}])


def test_search_fields_lists_only_system_and_mapped_ids() -> None:
    fields = mapper().search_fields()
    assert fields[:3] == ["summary", "status", "issuetype"]
    for fid in (
        "customfield_10044",
        "customfield_10027",
        "customfield_10065",
        "customfield_10080",
        "customfield_10029",
    ):
        assert fid in fields
    assert "customfield_10070" not in fields  # "Rollback plan" is not mapped by default
    assert len(fields) == len(set(fields))


# --- bodies, people, times ---------------------------------------------------------------


def test_adf_to_text_walks_nodes_and_empty_paragraphs_are_empty() -> None:
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 2},
                "content": [{"type": "text", "text": "Steps"}],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "drain"}]}
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": "ask "},
                                    {"type": "mention", "attrs": {"id": "1", "text": "@Ravi"}},
                                    {"type": "hardBreak"},
                                    {
                                        "type": "text",
                                        "text": "then deploy",
                                        "marks": [{"type": "strong"}],
                                    },
                                ],
                            }
                        ],
                    },
                ],
            },
            {"type": "paragraph", "content": []},
        ],
    }
    assert adf_to_text(doc) == "Steps\ndrain\nask @Ravi\nthen deploy"
    assert adf_to_text(adf("", "", "")) == ""


def test_v3_adf_and_v2_plain_bodies_and_cloud_vs_dc_people() -> None:
    cloud = map_one(
        mapper(),
        issue(
            "OPS-1",
            "Change",
            "Open",
            customfield_10044=adf("Redeploy 4.1", "Flush CDN"),
            customfield_10045=adf(""),
            reporter={
                "accountId": "712020:abc",
                "displayName": "Dana",
                "emailAddress": "d@x",
                "key": "",
                "name": "",
            },
        ),
    )[0]
    assert cloud.backout_plan == "Redeploy 4.1\nFlush CDN"
    assert cloud.test_plan == ""
    assert cloud.requester.id == "712020:abc" and cloud.requester.email == "d@x"

    issues, names, schema = load_search_export(
        json.loads((FIXTURES / "datacenter_search.json").read_text())
    )
    dc = mapper(deployment="DataCenter", catalog=JiraFieldCatalog.from_names(names, schema))
    rec, _ = map_one(dc, issues[0])
    assert isinstance(rec, ChangeRecord)
    assert rec.requester.id == "JIRAUSER10100" and rec.requester.name == "Jane Doe"
    assert rec.assignee.id == "mmeyer"
    assert rec.backout_plan == "Re-flash firmware 9.3 from the vendor image."
    assert rec.test_plan == ""  # present but blank ("   "): empty
    assert rec.close_notes == "Firmware 9.4 applied to both controllers.\nNo path failovers seen."
    assert rec.change_type == "normal" and rec.risk == "Medium" and rec.impact == "High - Storage"
    assert rec.priority == 2
    assert rec.url == "https://acme.atlassian.net/browse/CHG-77"


def test_offsets_are_normalised_to_utc() -> None:
    rec, _ = map_one(
        mapper(),
        issue(
            "OPS-2",
            "Incident",
            "Resolved",
            created="2026-03-02T14:10:05.123-0700",
            updated="2026-03-03T09:15:00.000+0530",
            resolutiondate="2026-03-03T10:00:00.000+0530",
        ),
    )
    assert rec.created_at == datetime(2026, 3, 2, 21, 10, 5, 123000, tzinfo=UTC)
    assert rec.updated_at == datetime(2026, 3, 3, 3, 45, tzinfo=UTC)
    assert rec.resolved_at == datetime(2026, 3, 3, 4, 30, tzinfo=UTC)


# --- None versus empty -------------------------------------------------------------------


def test_field_missing_on_instance_is_none_but_missing_on_issue_is_empty() -> None:
    rec, _ = map_one(mapper(), issue("OPS-3", "Change", "Open"))
    assert rec.backout_plan == ""  # catalog has it, the issue omits it
    assert rec.change_type == ""  # catalog has it: null is empty (settled reading 2)
    assert rec.risk is None  # "Change risk" is not on this instance
    assert rec.planned_start is None
    inc, _ = map_one(
        mapper(), issue("OPS-4", "Incident", "Open", customfield_10061=None, priority=None)
    )
    assert inc.major is False and inc.priority == ""
    bare = mapper(catalog=JiraFieldCatalog.from_names({"summary": "Summary"}))
    inc2, _ = map_one(bare, issue("OPS-5", "Incident", "Open"))
    assert (
        inc2.major is None
        and inc2.sla_breached is None
        and inc2.group is None
        and inc2.ci_refs is None
    )


# --- history -----------------------------------------------------------------------------


def _hist(hid: str, created: str, frm: str, to: str) -> dict[str, Any]:
    return {
        "id": hid,
        "created": created,
        "author": {"accountId": "u1", "displayName": "Ravi"},
        "items": [{"field": "status", "fieldtype": "jira", "fromString": frm, "toString": to}],
    }


HISTORY = [
    _hist("3", "2026-03-05T12:00:00.000+0530", "Implementing", "Review"),
    _hist("1", "2026-03-03T10:00:00.000-0700", "Open", "Awaiting implementation"),
    _hist("2", "2026-03-04T22:00:00.000-0700", "Awaiting implementation", "Implementing"),
    _hist("4", "2026-03-06T09:00:00.000-0700", "Review", "Closed"),
    {
        "id": "5",
        "created": "2026-03-06T09:05:00.000-0700",
        "items": [{"field": "assignee", "fieldtype": "jira", "toString": "x"}],
    },
]


def test_transitions_and_history_derived_actual_start_end_and_closed_at() -> None:
    m = mapper()
    data = issue(
        "CHG-1",
        "Change",
        "Closed",
        resolution={"name": "Done"},
        resolutiondate="2026-03-07T00:00:00.000+0000",
    )
    assert m.needs_history(data)
    rec, _ = map_one(m, data, changelogs={data["id"]: HISTORY})
    assert [t.to_raw for t in rec.transitions] == [
        "Awaiting implementation",
        "Implementing",
        "Review",
        "Closed",
    ]
    assert [t.to_state for t in rec.transitions] == ["scheduled", "implement", "review", "closed"]
    assert rec.transitions[0].by.id == "u1"
    assert rec.actual_start == datetime(2026, 3, 5, 5, 0, tzinfo=UTC)
    assert rec.actual_end == datetime(2026, 3, 5, 6, 30, tzinfo=UTC)
    assert rec.closed_at == datetime(2026, 3, 6, 16, 0, tzinfo=UTC)  # last transition into closed
    assert rec.outcome == "successful"


def test_truncated_embedded_changelog_is_never_complete() -> None:
    m = mapper()
    data = issue(
        "CHG-2",
        "Change",
        "Closed",
        resolution={"name": "Done"},
        resolutiondate="2026-03-07T00:00:00.000+0000",
    )
    data["changelog"] = {"startAt": 0, "maxResults": 2, "total": 5, "histories": HISTORY[2:4]}
    assert m.needs_history(data)
    rec, _ = map_one(m, data)
    assert rec.transitions is None and rec.actual_start is None and rec.actual_end is None
    assert rec.closed_at == datetime(2026, 3, 7, tzinfo=UTC)  # falls back on resolutiondate
    rec2, _ = map_one(m, data, changelogs={data["key"]: HISTORY})
    assert len(rec2.transitions) == 4
    data["changelog"] = {"startAt": 0, "maxResults": 100, "total": 4, "histories": HISTORY[:4]}
    assert not m.needs_history(data)
    assert map_one(m, data)[0].actual_start == datetime(2026, 3, 5, 5, 0, tzinfo=UTC)


def test_history_statuses_map_through_the_instance_status_list() -> None:
    m = mapper(statuses=[{"name": "Vendor hold", "statusCategory": {"key": "indeterminate"}}])
    data = issue("OPS-9", "Incident", "Open")
    rec, report = map_one(
        m,
        data,
        changelogs={
            data["id"]: [
                _hist("1", "2026-03-03T10:00:00.000-0700", "Open", "Vendor hold"),
                _hist("2", "2026-03-04T10:00:00.000-0700", "Vendor hold", "Mystery"),
            ]
        },
    )
    assert [t.to_state for t in rec.transitions] == ["in_progress", None]
    assert report.warnings["history status Mystery not in the status list"] == 1


# --- approvals ---------------------------------------------------------------------------


def _approval(
    decisions: list[tuple[str, str]], final: str, completed: str | None
) -> dict[str, Any]:
    out = {
        "id": "7",
        "name": "CAB",
        "finalDecision": final,
        "canAnswerApproval": False,
        "approvers": [
            {"approver": {"accountId": a, "displayName": a.upper()}, "approverDecision": d}
            for a, d in decisions
        ],
        "createdDate": {"iso8601": "2026-03-01T09:00:00+0530", "epochMillis": 1772335800000},
    }
    if completed:
        out["completedDate"] = {"iso8601": completed, "epochMillis": 0}
    return out


def test_approvals_from_the_jsm_field() -> None:
    m = mapper()
    data = issue(
        "CHG-3",
        "Change",
        "Open",
        customfield_10027=[
            _approval(
                [("cab", "approved"), ("sam", "pending")], "approved", "2026-03-02T10:00:00-0700"
            ),
            _approval([("ops", "declined")], "declined", "2026-03-02T11:00:00-0700"),
        ],
    )
    assert not m.needs_approvals(data)
    rec, _ = map_one(m, data)
    assert [(a.approver.id, a.decision) for a in rec.approvals] == [
        ("cab", "approved"),
        ("sam", "pending"),
        ("ops", "rejected"),
    ]
    assert rec.approvals[0].decided_at == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    assert rec.approvals[1].decided_at is None


def test_approvals_from_servicedeskapi_and_approval_required() -> None:
    m = mapper(
        catalog=JiraFieldCatalog.from_names(
            {k: v for k, v in NAMES.items() if k != "customfield_10027"}
        )
    )
    data = issue("REQ-1", "Service request with approvals", "Resolved")
    plain = issue("REQ-2", "Service request", "Resolved")
    assert m.needs_approvals(data) and not m.needs_approvals(plain)
    assert m.needs_approvals(issue("CHG-4", "Change", "Open"))
    records, _report = m.map_issues(
        [data, plain],
        approvals={
            "REQ-1": [_approval([("boss", "approved")], "approved", "2026-03-02T10:00:00+0530")]
        },
    )
    req, req2 = records
    assert isinstance(req, ServiceRequestRecord) and req.approval_required is True
    assert req.approvals[0].decided_at == datetime(2026, 3, 2, 4, 30, tzinfo=UTC)
    assert req2.approvals is None and req2.approval_required is False
    # a plain request whose Approvals field is filled requires approval too
    with_field = issue(
        "REQ-3",
        "Service request",
        "Open",
        customfield_10027=[_approval([("b", "pending")], "pending", None)],
    )
    assert map_one(mapper(), with_field)[0].approval_required is True


# --- reviews and links ---------------------------------------------------------------------


def _link(
    key: str, itype: str, status: str, category: str, direction: str = "outwardIssue"
) -> dict[str, Any]:
    return {
        "id": "1",
        "type": {"name": "Relates"},
        direction: {
            "key": key,
            "fields": {
                "issuetype": {"name": itype},
                "status": {"name": status, "statusCategory": {"key": category}},
            },
        },
    }


def test_review_issue_in_batch_marks_linked_records_reviewed() -> None:
    m = mapper()
    inc = issue("INC-1", "Incident", "Resolved")
    chg = issue("CHG-5", "Change", "Closed")
    pir = issue(
        "PIR-1",
        "Post-incident review",
        "Done",
        resolution={"name": "Done"},
        resolutiondate="2026-03-10T12:00:00.000+0530",
        issuelinks=[
            _link("INC-1", "Incident", "Resolved", "done"),
            _link("CHG-5", "Change", "Closed", "done", "inwardIssue"),
        ],
    )
    cancelled = issue(
        "PIR-2",
        "Post-incident review",
        "Done",
        resolution={"name": "Won't Do"},
        issuelinks=[_link("INC-2", "Incident", "Resolved", "done")],
    )
    inc2 = issue(
        "INC-2",
        "Incident",
        "Resolved",
        issuelinks=[_link("PIR-2", "Post-incident review", "Done", "done")],
    )
    records, report = m.map_issues([inc, pir, chg, cancelled, inc2])
    by_key = {r.key: r for r in records}
    assert set(by_key) == {"INC-1", "CHG-5", "INC-2"} and report.rows == 5 and report.mapped == 3
    assert by_key["INC-1"].review.completed and by_key["INC-1"].review.at == datetime(
        2026, 3, 10, 6, 30, tzinfo=UTC
    )
    assert by_key["CHG-5"].review.completed
    assert by_key["INC-2"].review.completed is False  # its review was cancelled (Won't Do)
    assert m.process_of(pir) == "review"


def test_review_issue_outside_batch_falls_back_on_link_status() -> None:
    m = mapper()
    done = issue(
        "INC-3",
        "Incident",
        "Resolved",
        issuelinks=[_link("PIR-9", "Post-incident review", "Done", "done")],
    )
    open_ = issue(
        "INC-4",
        "Incident",
        "Resolved",
        issuelinks=[_link("PIR-8", "Post-incident review", "Open", "new")],
    )
    problem = issue("PRB-1", "Problem", "Open")
    a, b, c = m.map_issues([done, open_, problem])[0]
    assert a.review.completed is True and a.review.at is None
    assert b.review.completed is False
    assert c.review is None
    assert [(link.kind, link.key) for link in a.links] == [("review", "PIR-9")]


def test_links_by_linked_issue_type() -> None:
    data = issue(
        "INC-5",
        "Incident",
        "Open",
        issuelinks=[
            _link("PRB-2", "Problem", "Open", "new"),
            _link("CHG-9", "Change", "Closed", "done", "inwardIssue"),
            _link("TASK-1", "Task", "Open", "new"),
        ],
    )
    rec, _ = map_one(mapper(), data)
    assert [(link.kind, link.key) for link in rec.links] == [
        ("problem", "PRB-2"),
        ("change", "CHG-9"),
        ("other", "TASK-1"),
    ]


def test_review_disabled_when_no_review_issue_type() -> None:
    rec, _ = map_one(mapper(issue_types={"review": []}), issue("INC-6", "Incident", "Resolved"))
    assert rec.review is None


# --- statuses and priorities -----------------------------------------------------------------


def test_status_fallback_on_category_is_counted_and_cancelling_resolution() -> None:
    m = mapper(statuses=[{"name": "Parked", "statusCategory": {"key": "new"}}])
    records, report = m.map_issues(
        [
            issue("I-1", "Incident", "Vendor hold", "indeterminate"),
            issue("I-2", "Incident", "Abandoned", "done", resolution={"name": "Won't Do"}),
            issue("I-3", "Incident", "Closed", resolution={"name": "Duplicate"}),  # the map wins
            issue("C-1", "Change", "Deploying", "indeterminate"),
            {
                "id": "9",
                "key": "I-4",
                "fields": {"issuetype": {"name": "Incident"}, "status": {"name": "Parked"}},
            },
            issue("I-5", "Incident", "Limbo", None),
        ]
    )
    assert [r.state for r in records] == [
        "in_progress",
        "cancelled",
        "closed",
        "implement",
        "new",
        None,
    ]
    assert report.unknown_statuses[("incident", "Vendor hold")] == 1
    assert report.unknown_statuses[("change", "Deploying")] == 1
    assert ("incident", "Closed") not in report.unknown_statuses
    assert sum(report.unknown_statuses.values()) == 5


def test_status_map_override_is_case_insensitive() -> None:
    m = mapper(status_map={"change": {"awaiting cab": "authorize", "Bogus": "flying"}})
    rec, report = map_one(m, issue("C-2", "Change", "Awaiting CAB", "new"))
    assert rec.state == "authorize" and not report.unknown_statuses
    assert any("flying" in w for w in report.warnings)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Highest", 1),
        ("blocker", 1),
        ("Critical", 1),
        ("High", 2),
        ("Major", 2),
        ("Medium", 3),
        ("Low", 4),
        ("Minor", 4),
        ("Lowest", 5),
        ("Trivial", 5),
        ("P2 - Urgent", 2),
    ],
)
def test_priority_names(name: str, expected: int) -> None:
    rec, _ = map_one(
        mapper(priority_map={"p2 - urgent": 2}),
        issue("I-6", "Incident", "Open", priority={"name": name}),
    )
    assert rec.priority == expected


def test_unknown_priority_is_none_with_a_warning() -> None:
    rec, report = map_one(mapper(), issue("I-7", "Incident", "Open", priority={"name": "Sev 0"}))
    assert rec.priority is None
    assert report.warnings["unknown priority Sev 0"] == 1


# --- process-specific readings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "status, resolution, state, outcome",
    [
        ("Failed", "Done", "closed", "unsuccessful"),
        ("Closed", "Rolled back", "closed", "unsuccessful"),
        ("Closed", "Completed with issues", "closed", "successful_with_issues"),
        ("Done", "Done", "closed", "successful"),
        ("Implementing", None, "implement", None),
    ],
)
def test_change_outcome(
    status: str, resolution: str | None, state: str, outcome: str | None
) -> None:
    rec, _ = map_one(
        mapper(),
        issue("C-3", "Change", status, resolution={"name": resolution} if resolution else None),
    )
    assert (rec.state, rec.outcome) == (state, outcome)
    assert rec.close_code == (resolution or "")


def test_notes_prefer_resolution_notes_then_last_comment_and_truncation_is_unknown() -> None:
    comments = {
        "comments": [{"body": adf("first")}, {"body": adf("fixed by restarting")}],
        "total": 7,
        "maxResults": 2,
        "startAt": 0,
    }
    m = mapper()
    a = map_one(
        m,
        issue(
            "I-8",
            "Incident",
            "Resolved",
            customfield_10060=adf("Root fix deployed"),
            comment=comments,
        ),
    )[0]
    b, report = map_one(
        m, issue("I-9", "Incident", "Resolved", customfield_10060=adf(""), comment=comments)
    )
    c = map_one(m, issue("I-10", "Incident", "Resolved", comment={"comments": [], "total": 0}))[0]
    assert a.resolution_notes == "Root fix deployed"
    # settled reading 6: the last comment of a truncated list is not known -> unknown
    assert b.resolution_notes is None
    assert b.unreadable is not None and "truncated" in b.unreadable["resolution_notes"]
    assert any("truncated" in w for w in report.warnings)
    assert ("incident.resolution_notes", "comment list truncated") in report.unreadable
    assert c.resolution_notes == ""
    # with the full comment list read by the connector, the real last comment decides
    full = [{"body": adf("first")}, *({"body": adf(f"c{i}")} for i in range(5)), {"body": adf("")}]
    records, _ = m.map_issues(
        [issue("I-9", "Incident", "Resolved", customfield_10060=adf(""), comment=comments)],
        comments={"I-9": full},
    )
    assert records[0].resolution_notes == ""
    assert m.needs_comments(
        issue("I-9", "Incident", "Resolved", customfield_10060=adf(""), comment=comments)
    )
    assert not m.needs_comments(
        issue("I-9", "Incident", "Resolved", customfield_10060=adf("x"), comment=comments)
    )
    assert not m.needs_comments(issue("I-9", "Incident", "Open", comment=comments))


def test_known_error_from_status_or_label_and_group_and_cis() -> None:
    m = mapper(
        catalog=JiraFieldCatalog.from_names(
            {
                **NAMES,
                "customfield_10001": "Team",
                "customfield_10002": "Assignment group",
                "customfield_10037": "Affected services",
            },
            SCHEMA,
        )
    )
    a = map_one(m, issue("P-1", "Problem", "Known error", "indeterminate"))[0]
    b = map_one(
        m,
        issue(
            "P-2",
            "Problem",
            "Open",
            labels=["Known-Error"],
            customfield_10002={"name": "dba"},
            customfield_10037=[{"id": "ari:1", "name": "Payments API"}],
            customfield_10065=[{"workspaceId": "w", "id": "w:88", "objectId": "88"}],
            customfield_10080=[
                {"workspaceId": "w", "id": "w:89", "objectId": "89", "objectKey": "SITE-89"}
            ],
        ),
    )[0]
    c = map_one(
        m,
        issue(
            "P-3",
            "Problem",
            "Open",
            customfield_10001={"id": "t", "name": "Platform Ops"},
            customfield_10002={"name": "dba"},
        ),
    )[0]
    assert isinstance(a, ProblemRecord) and a.known_error and a.state == "in_progress"
    assert b.known_error and b.group == "dba" and b.ci_refs == ["Payments API", "w:88", "SITE-89"]
    assert c.known_error is False and c.group == "Platform Ops" and c.ci_refs == []


def test_major_incident_and_sla_breached() -> None:
    sla_ok = {"completedCycles": [{"breached": False}], "ongoingCycle": {"breached": False}}
    sla_bad = {"completedCycles": [{"breached": False}, {"breached": True}]}
    m = mapper()
    a = map_one(
        m,
        issue(
            "I-11",
            "Incident",
            "Open",
            customfield_10061=[{"value": "Major incident", "id": "1"}],
            customfield_10029=sla_ok,
        ),
    )[0]
    b = map_one(m, issue("I-12", "Incident", "Open", customfield_10029=sla_bad))[0]
    c = map_one(m, issue("I-13", "Incident", "Open", customfield_10029=None))[0]
    assert isinstance(a, IncidentRecord) and a.major is True and a.sla_breached is False
    assert b.major is False and b.sla_breached is True
    assert c.sla_breached is None  # no SLA cycle: no verdict


# --- config overrides ---------------------------------------------------------------------------


def test_field_overrides_negation_and_review_field() -> None:
    m = mapper(
        fields={
            "change.backout_plan": "Rollback plan",
            "incident.sla_breached": "!Made SLA",
            "incident.review": "PIR done",
            "change.test_plan": "No such field",
            "incident.resolution_code": "customfield_10080",
            "incident.nonsense": "Summary",
        }
    )
    chg = map_one(
        m,
        issue(
            "C-4",
            "Change",
            "Open",
            customfield_10044=adf("ignored"),
            customfield_10070="Restore snapshot",
        ),
    )[0]
    assert chg.backout_plan == "Restore snapshot" and chg.test_plan is None
    inc, report = map_one(
        m,
        issue(
            "I-14",
            "Incident",
            "Resolved",
            customfield_10071=[{"value": "Yes"}],
            customfield_10072="2026-03-09T10:00:00.000-0700",
            customfield_10080=[{"workspaceId": "w", "id": "w:1"}],
        ),
    )
    assert (
        inc.sla_breached is False
        and inc.review.completed
        and inc.review.at == datetime(2026, 3, 9, 17, 0, tzinfo=UTC)
    )
    # mapped field holding objects without text: unknown, never empty (settled reading 17)
    assert inc.resolution_code is None and "resolution_code" in (inc.unreadable or {})
    inc2 = map_one(
        m, issue("I-15", "Incident", "Resolved", customfield_10071=None, customfield_10072=None)
    )[0]
    assert inc2.sla_breached is True and inc2.review.completed is False
    assert any("nonsense" in w for w in report.warnings) and any(
        "No such field" in w for w in report.warnings
    )


def test_issue_type_overrides() -> None:
    m = mapper(issue_types={"incident": ["Outage"], "release": ["Release"]})
    assert m.process_of(issue("X-1", "Outage", "Open")) == "incident"
    assert m.process_of(issue("X-2", "Incident", "Open")) is None
    assert m.process_of(issue("X-3", "Release", "Open")) == "release"
    records, report = m.map_issues(
        [issue("X-2", "Incident", "Open"), issue("X-3", "Release", "Done")]
    )
    assert [r.process for r in records] == ["release"] and records[0].state == "closed"
    assert report.warnings["unmapped issue type Incident"] == 1


# --- errors ----------------------------------------------------------------------------------


def test_malformed_issues_are_reported_never_raised_or_dropped() -> None:
    issues, names, _ = load_search_export(
        json.loads((FIXTURES / "malformed_search.json").read_text())
    )
    m = mapper(catalog=JiraFieldCatalog.from_names(names))
    records, report = m.map_issues([*issues, "not an issue"])
    # settled reading 17: a bad date or a missing status costs that field, not the record
    assert [r.key for r in records] == ["OPS-1", "OPS-2", "OPS-3"]
    assert report.rows == 8 and report.mapped == 3 and report.skipped_empty == 1
    bad_date, no_status = records[1], records[2]
    assert bad_date.created_at is None and "yesterday at noon" in bad_date.unreadable["created_at"]
    assert no_status.state is None and "state" in no_status.unreadable
    assert report.unreadable[("incident.created_at", "not a date or time")] == 1
    reasons = {e.key: e.reason for e in report.errors}
    assert set(reasons) == {"OPS-4", None}
    assert "fields" in reasons["OPS-4"]
    assert all(e.source == "jira-test" for e in report.errors) and len(report.errors) == 3
    assert report.warnings["unmapped issue type Story"] == 1
    assert [(e.key, e.reason) for e in report.skipped] == [
        ("OPS-6", "issue type Story maps to no process")
    ]


# --- the example export ------------------------------------------------------------------------


def _example_records():
    issues, names, _ = load_search_export(json.loads((EXAMPLE / "search.json").read_text()))
    catalog = JiraFieldCatalog.from_field_list(json.loads((EXAMPLE / "field.json").read_text()))
    bulk = json.loads((EXAMPLE / "changelog.json").read_text())
    changelogs = {e["issueId"]: e["changeHistories"] for e in bulk["issueChangeLogs"]}
    m = JiraMapper(
        MappingOptions(source="jira-example", base_url="https://acme-itsm.atlassian.net"),
        catalog,
        statuses=json.loads((EXAMPLE / "status.json").read_text()),
    )
    return m.map_issues(issues, changelogs=changelogs), names


def test_example_export_maps_cleanly() -> None:
    (records, report), names = _example_records()
    assert report.rows == 38 and report.mapped == 36 and not report.errors
    assert dict(report.unknown_statuses) == {("incident", "Awaiting vendor"): 1}
    by_key = {r.key: r for r in records}
    chg = by_key["ITSM-203"]
    assert chg.actual_start == datetime(2026, 10, 16, 15, 40, tzinfo=UTC)
    assert chg.approvals[0].decided_at == datetime(2026, 10, 17, 15, 0, tzinfo=UTC)
    assert chg.requester.id.startswith("712020:") and chg.ci_refs == ["Identity Provider"]
    assert by_key["ITSM-202"].ci_refs == ["Corporate VPN", "HW-1187"]
    assert by_key["ITSM-206"].backout_plan == "" and by_key["ITSM-206"].review.completed
    assert by_key["ITSM-214"].outcome == "unsuccessful" and by_key["ITSM-214"].review.at is None
    assert by_key["ITSM-101"].resolution_notes.startswith("Refund worker restarted")
    assert by_key["ITSM-102"].closed_at == datetime(2026, 11, 6, 16, 0, tzinfo=UTC)
    assert by_key["ITSM-108"].group == "it-desktop-support"
    # the same export read with only its names map resolves the same fields by name
    catalog = JiraFieldCatalog.from_names(names)
    assert catalog.resolve("Backout plan") == "customfield_10044"


def test_example_export_fails_exactly_the_rules_in_expected_md() -> None:
    from ticketlint.rules.engine import Engine
    from ticketlint.rules.packs.iso20000 import PACK

    (records, _), _ = _example_records()
    table = (EXAMPLE / "EXPECTED.md").read_text()
    expected = {
        (m.group(1).strip(), m.group(2))
        for m in re.finditer(r"^\| ([^|]+?) \| ([A-Z]{3}\d{3}) \|", table, re.MULTILINE)
    }
    assert len(expected) == 24
    result = Engine(PACK.rules).evaluate(records, as_of=datetime(2026, 11, 20, tzinfo=UTC))
    assert not result.rule_errors
    assert {(f.key, f.code) for f in result.findings} == expected


def test_constructed_records_survive_validation_round_trip() -> None:
    """The mapper builds records without validation (speed); prove they are valid."""
    from ticketlint.mapping.model import record_from_dict

    (records, _), _ = _example_records()
    for rec in records:
        again = record_from_dict(rec.model_dump())
        assert again == rec, rec.key


def test_review_targets_are_the_linked_incidents_and_changes_of_a_review_issue() -> None:
    m = mapper()
    pir = issue(
        "PIR-3",
        "Post-incident review",
        "In progress",
        "indeterminate",
        issuelinks=[
            _link("INC-7", "Incident", "Resolved", "done"),
            _link("CHG-2", "Change", "Closed", "done", "inwardIssue"),
            _link("PRB-4", "Problem", "Open", "new"),
            _link("PIR-1", "Post-incident review", "Done", "done"),
            _link("INC-7", "Incident", "Resolved", "done", "inwardIssue"),
            {"id": "2", "type": {"name": "Relates"}, "outwardIssue": {"key": "OPS-9"}},
        ],
    )  # no embedded fields
    # open or done alike: a reopened review takes its completion back
    assert m.review_targets(pir) == ["INC-7", "CHG-2", "OPS-9"]
    assert (
        m.review_targets(
            issue(
                "INC-7",
                "Incident",
                "Resolved",
                issuelinks=[_link("PIR-3", "Post-incident review", "Done", "done")],
            )
        )
        == []
    )
    assert (
        m.review_targets(issue("PIR-4", "Post-incident review", "Done", issuelinks=["not a link"]))
        == []
    )
    assert mapper(issue_types={"review": []}).review_targets(pir) == []


def test_notes_skip_ticketlints_own_write_back_comments() -> None:
    """Our comment lists the missing notes; it must never be read as those notes."""
    ours = adf("[ticketlint-writeback r1 0123456789ab] ticketlint: 1 open finding: INC001 ...")
    m = mapper()
    only_ours = map_one(
        m, issue("I-20", "Incident", "Resolved", comment={"comments": [{"body": ours}], "total": 1})
    )[0]
    team_then_ours = map_one(
        m,
        issue(
            "I-21",
            "Incident",
            "Resolved",
            comment={"comments": [{"body": adf("rebooted the node")}, {"body": ours}], "total": 2},
        ),
    )[0]
    assert only_ours.resolution_notes == ""
    assert team_then_ours.resolution_notes == "rebooted the node"


def test_an_unreadable_field_costs_only_itself_and_warnings_count_once() -> None:
    """Settled reading 17 on the hot path's fallback: the fields read before and after
    the unreadable one keep their values, and a warning is not counted twice."""
    m = mapper()
    record, report = map_one(
        m,
        issue(
            "I-77",
            "Incident",
            "Open",
            priority={"name": "P0"},
            assignee=42,
            customfield_10060=adf("notes"),
        ),
    )
    assert record.assignee is None and "assignee" in record.unreadable
    assert record.title == "Incident I-77" and record.priority is None
    assert record.created_at is not None and record.resolution_notes == "notes"
    assert report.warnings["unknown priority P0"] == 1
    assert report.unreadable[("incident.assignee", "not a user object")] == 1


def test_unknown_history_status_leaves_history_times_unknown_not_empty() -> None:
    """A status the history names but neither the status map nor the status list knows
    could be the implement step: actual start and end are unknown (None), never "" (which
    would read as "work never started" and make CHG002 / CHG010 NOT_APPLICABLE)."""
    histories = [
        {
            "id": "1",
            "created": "2026-03-02T10:00:00.000+0000",
            "items": [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fromString": "Scheduled",
                    "toString": "Rolling out",
                }
            ],
        },
        {
            "id": "2",
            "created": "2026-03-02T12:00:00.000+0000",
            "items": [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fromString": "Rolling out",
                    "toString": "Closed",
                }
            ],
        },
    ]
    data = issue("C-70", "Change", "Closed")
    data["changelog"] = {"startAt": 0, "total": 2, "histories": histories}
    record, report = map_one(mapper(), data)
    assert record.actual_start is None and record.actual_end is None
    assert record.closed_at == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert any("Rolling out" in w for w in report.warnings)
    known = [dict(h) for h in histories]
    known[0] = {**histories[0], "items": [{**histories[0]["items"][0], "toString": "Implementing"}]}
    known[1] = {
        **histories[1],
        "items": [{**histories[1]["items"][0], "fromString": "Implementing"}],
    }
    data = issue("C-71", "Change", "Closed")
    data["changelog"] = {"startAt": 0, "total": 2, "histories": known}
    record, _ = map_one(mapper(), data)
    assert record.actual_start == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert record.actual_end == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_missing_comment_field_leaves_notes_unknown_and_inc001_not_evaluated() -> None:
    from ticketlint.rules.engine import Engine
    from ticketlint.rules.selection import load_registry

    data = issue("I-80", "Incident", "Resolved", resolution={"name": "Done"})
    data["fields"].pop("comment", None)
    record, _ = map_one(mapper(), data)
    assert record.resolution_notes is None
    assert "comment field not in the issue" in record.unreadable["resolution_notes"]
    rule = load_registry().rules["INC001"]
    ev = Engine([rule]).evaluate([record], as_of=datetime(2026, 3, 31, tzinfo=UTC))
    assert ev.counts["INC001"]["NOT_EVALUATED"] == 1 and not ev.findings
    assert list(ev.not_evaluated["INC001"]) == [
        "could not read incident.resolution_notes (comment field not in the issue)"
    ]
