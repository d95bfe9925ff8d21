"""Regenerate the Jira Cloud example export in this directory.

    .venv/bin/python examples/jira/generate.py

Writes ``search.json`` (a ``/rest/api/3/search/jql`` response made with
``expand=names`` and the mapper's explicit field list), ``changelog.json`` (a
``/rest/api/3/changelog/bulkfetch`` response), ``field.json`` (``/rest/api/2/field``)
and ``status.json`` (``/rest/api/2/status``) for a fictitious JSM ITSM project "ITSM".
Which key breaks which rule at as_of 2026-11-20T00:00:00Z is listed in EXPECTED.md.
Timestamps carry the offsets of the people who made them (-0700 Denver, +0530 Pune).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BASE = "https://acme-itsm.atlassian.net"
WORKSPACE = "9f0c3b7e-1d2a-4c55-8e6f-2b7a9d1c4e30"

# --- instance: fields and statuses ---------------------------------------------------

CUSTOM = {
    "customfield_10005": (
        "Change type",
        "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "option",
    ),
    "customfield_10006": (
        "Change risk",
        "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "option",
    ),
    "customfield_10004": (
        "Impact",
        "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "option",
    ),
    "customfield_10043": (
        "Implementation plan",
        "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        "string",
    ),
    "customfield_10044": (
        "Backout plan",
        "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        "string",
    ),
    "customfield_10045": (
        "Test plan",
        "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        "string",
    ),
    "customfield_10046": (
        "Planned start",
        "com.atlassian.jira.plugin.system.customfieldtypes:datetime",
        "datetime",
    ),
    "customfield_10047": (
        "Planned end",
        "com.atlassian.jira.plugin.system.customfieldtypes:datetime",
        "datetime",
    ),
    "customfield_10060": (
        "Resolution notes",
        "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        "string",
    ),
    "customfield_10061": (
        "Major incident",
        "com.atlassian.jira.plugin.system.customfieldtypes:multicheckboxes",
        "array",
    ),
    "customfield_10062": (
        "Root cause",
        "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        "string",
    ),
    "customfield_10063": (
        "Workaround",
        "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
        "string",
    ),
    "customfield_10001": (
        "Team",
        "com.atlassian.jira.plugin.system.customfieldtypes:atlassian-team",
        "team",
    ),
    "customfield_10064": (
        "Assignment group",
        "com.atlassian.jira.plugin.system.customfieldtypes:grouppicker",
        "group",
    ),
    "customfield_10037": (
        "Affected services",
        "com.atlassian.jira.plugins.service-entity:service-entity-field-cftype",
        "array",
    ),
    "customfield_10065": (
        "Affected hardware",
        "com.atlassian.jira.plugins.cmdb:cmdb-object-cftype",
        "array",
    ),
    "customfield_10027": (
        "Approvals",
        "com.atlassian.servicedesk.approvals-plugin:sd-approvals",
        "sd-approvals",
    ),
    "customfield_10029": (
        "Time to resolution",
        "com.atlassian.servicedesk:sla-field",
        "sd-servicelevelagreement",
    ),
    "customfield_10030": (
        "Time to first response",
        "com.atlassian.servicedesk:sla-field",
        "sd-servicelevelagreement",
    ),
    "customfield_10010": (
        "Request Type",
        "com.atlassian.servicedesk:vp-origin",
        "sd-customerrequesttype",
    ),
}
SYSTEM = {
    "summary": ("Summary", "string"),
    "status": ("Status", "status"),
    "issuetype": ("Issue Type", "issuetype"),
    "priority": ("Priority", "priority"),
    "created": ("Created", "datetime"),
    "updated": ("Updated", "datetime"),
    "resolutiondate": ("Resolved", "datetime"),
    "resolution": ("Resolution", "resolution"),
    "reporter": ("Reporter", "user"),
    "assignee": ("Assignee", "user"),
    "labels": ("Labels", "array"),
    "issuelinks": ("Linked Issues", "array"),
    "comment": ("Comment", "comments-page"),
    "project": ("Project", "project"),
    "description": ("Description", "string"),
}
CATEGORIES = {
    "new": {"colorName": "blue-gray", "id": 2, "key": "new", "name": "To Do"},
    "indeterminate": {
        "colorName": "yellow",
        "id": 4,
        "key": "indeterminate",
        "name": "In Progress",
    },
    "done": {"colorName": "green", "id": 3, "key": "done", "name": "Done"},
}
STATUSES = {
    "Open": ("1", "new"),
    "Waiting for support": ("10010", "new"),
    "Waiting for approval": ("10011", "new"),
    "Work in progress": ("10012", "indeterminate"),
    "Waiting for customer": ("10013", "indeterminate"),
    "Pending": ("10014", "indeterminate"),
    "Escalated": ("10015", "indeterminate"),
    "Resolved": ("5", "done"),
    "Closed": ("6", "done"),
    "Canceled": ("10016", "done"),
    "Declined": ("10017", "done"),
    "Completed": ("10018", "done"),
    "Awaiting vendor": ("10019", "indeterminate"),
    "Under investigation": ("10020", "indeterminate"),
    "Root cause identified": ("10021", "indeterminate"),
    "Known error": ("10022", "indeterminate"),
    "Planning": ("10030", "new"),
    "Awaiting approval": ("10031", "new"),
    "Awaiting implementation": ("10032", "indeterminate"),
    "Implementing": ("10033", "indeterminate"),
    "Review": ("10034", "indeterminate"),
    "Failed": ("10035", "done"),
    "In Progress": ("3", "indeterminate"),
    "Done": ("10001", "done"),
}
TYPES = {
    "Incident": "10100",
    "Change": "10101",
    "Problem": "10102",
    "Service request": "10103",
    "Service request with approvals": "10104",
    "Post-incident review": "10105",
}
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
RESOLUTIONS = {
    "Done": "10000",
    "Won't Do": "10001",
    "Duplicate": "10002",
    "Declined": "10003",
    "Completed with issues": "10004",
    "Rolled back": "10005",
}

USERS = {
    "dana": (
        "712020:3c9f6a2e-5b1d-4e8a-9c7f-1a2b3c4d5e6f",
        "Dana Whitfield",
        "dana.whitfield@acme.example",
    ),
    "ravi": (
        "712020:8e1d4b7a-2c3f-4a9e-b6d5-7f8e9a0b1c2d",
        "Ravi Kulkarni",
        "ravi.kulkarni@acme.example",
    ),
    "marco": ("712020:5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d", "Marco Silva", None),
    "priya": (
        "712020:1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b",
        "Priya Nair",
        "priya.nair@acme.example",
    ),
    "jo": ("712020:9b8a7f6e-5d4c-4b3a-9f8e-7d6c5b4a3f2e", "Jo Becker", "jo.becker@acme.example"),
    "cab": (
        "712020:2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
        "Helen Okafor",
        "helen.okafor@acme.example",
    ),
    "sam": ("712020:7c6b5a4f-3e2d-4c1b-8a9f-0e1d2c3b4a5f", "Sam Ortega", "sam.ortega@acme.example"),
}
TEAMS = {
    "platform": {
        "id": "b1c2d3e4-0001-4a5b-8c9d-0e1f2a3b4c5d",
        "name": "Platform Operations",
        "title": "Platform Operations",
        "isShared": True,
        "isVisible": True,
        "isVerified": False,
    },
    "payments": {
        "id": "b1c2d3e4-0002-4a5b-8c9d-0e1f2a3b4c5d",
        "name": "Payments SRE",
        "title": "Payments SRE",
        "isShared": True,
        "isVisible": True,
        "isVerified": True,
    },
}
SERVICES = {
    "payments": {
        "id": "ari:cloud:graph::service/9f0c3b7e/0b1a2c3d-payments",
        "name": "Payments API",
    },
    "checkout": {
        "id": "ari:cloud:graph::service/9f0c3b7e/1c2d3e4f-checkout",
        "name": "Checkout Web",
    },
    "identity": {
        "id": "ari:cloud:graph::service/9f0c3b7e/2d3e4f5a-identity",
        "name": "Identity Provider",
    },
    "mail": {"id": "ari:cloud:graph::service/9f0c3b7e/3e4f5a6b-mail", "name": "Email Relay"},
    "vpn": {"id": "ari:cloud:graph::service/9f0c3b7e/4f5a6b7c-vpn", "name": "Corporate VPN"},
    "reporting": {
        "id": "ari:cloud:graph::service/9f0c3b7e/5a6b7c8d-reporting",
        "name": "Reporting Warehouse",
    },
}


def user(handle: str | None) -> dict[str, Any] | None:
    if handle is None:
        return None
    account, name, email = USERS[handle]
    out: dict[str, Any] = {
        "self": f"{BASE}/rest/api/3/user?accountId={account}",
        "accountId": account,
        "displayName": name,
        "active": True,
        "accountType": "atlassian",
        "timeZone": "Asia/Kolkata" if handle in ("ravi", "priya") else "America/Denver",
    }
    if email:
        out["emailAddress"] = email
    return out


def adf(*paragraphs: str) -> dict[str, Any]:
    content = [
        {"type": "paragraph", "content": [{"type": "text", "text": p}] if p else []}
        for p in paragraphs
    ]
    return {"type": "doc", "version": 1, "content": content}


def option(value: str | None, oid: str) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"self": f"{BASE}/rest/api/3/customFieldOption/{oid}", "value": value, "id": oid}


def status(name: str) -> dict[str, Any]:
    sid, cat = STATUSES[name]
    c = dict(CATEGORIES[cat], self=f"{BASE}/rest/api/3/statuscategory/{CATEGORIES[cat]['id']}")
    return {
        "self": f"{BASE}/rest/api/3/status/{sid}",
        "description": "",
        "iconUrl": f"{BASE}/images/icons/statuses/generic.png",
        "name": name,
        "id": sid,
        "statusCategory": c,
    }


def issuetype(name: str) -> dict[str, Any]:
    return {
        "self": f"{BASE}/rest/api/3/issuetype/{TYPES[name]}",
        "id": TYPES[name],
        "description": "",
        "name": name,
        "subtask": False,
        "hierarchyLevel": 0,
    }


def priority(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    return {
        "self": f"{BASE}/rest/api/3/priority/{PRIORITIES[name]}",
        "iconUrl": f"{BASE}/images/icons/priorities/{name.lower()}.svg",
        "name": name,
        "id": PRIORITIES[name],
    }


def resolution(name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    return {
        "self": f"{BASE}/rest/api/3/resolution/{RESOLUTIONS[name]}",
        "id": RESOLUTIONS[name],
        "description": "",
        "name": name,
    }


def sla(breached: bool | None, *, done: bool) -> dict[str, Any] | None:
    if breached is None:
        return None
    goal = {"millis": 28800000, "friendly": "8h"}
    cycle = {
        "startTime": {
            "iso8601": "2026-11-10T09:02:11-0700",
            "jira": "2026-11-10T09:02:11.000-0700",
            "friendly": "10/Nov/26 9:02 AM",
            "epochMillis": 1794326531000,
        },
        "breachTime": {
            "iso8601": "2026-11-10T17:02:11-0700",
            "jira": "2026-11-10T17:02:11.000-0700",
            "friendly": "10/Nov/26 5:02 PM",
            "epochMillis": 1794355331000,
        },
        "breached": breached,
        "goalDuration": goal,
        "elapsedTime": {
            "millis": 30600000 if breached else 9000000,
            "friendly": "8h 30m" if breached else "2h 30m",
        },
        "remainingTime": {
            "millis": -1800000 if breached else 19800000,
            "friendly": "-30m" if breached else "5h 30m",
        },
    }
    out: dict[str, Any] = {
        "id": "2",
        "name": "Time to resolution",
        "_links": {"self": f"{BASE}/rest/servicedeskapi/request/0/sla/2"},
        "completedCycles": [],
        "slaDisplayFormat": "NEW_SLA_FORMAT",
    }
    if done:
        out["completedCycles"] = [dict(cycle, stopTime=cycle["startTime"])]
    else:
        out["ongoingCycle"] = dict(cycle, paused=False, withinCalendarHours=True)
    return out


def approval(
    aid: str,
    handles_decisions: list[tuple[str, str]],
    final: str,
    created: str,
    completed: str | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": aid,
        "name": "Change manager approval" if aid.startswith("2") else "Line manager approval",
        "finalDecision": final,
        "canAnswerApproval": False,
        "approvers": [
            {
                "approver": {
                    k: v
                    for k, v in user(h).items()
                    if k in ("accountId", "displayName", "emailAddress")
                },
                "approverDecision": d,
            }
            for h, d in handles_decisions
        ],
        "createdDate": {
            "iso8601": created,
            "jira": created,
            "friendly": created[:16],
            "epochMillis": 0,
        },
        "_links": {"self": f"{BASE}/rest/servicedeskapi/request/0/approval/{aid}"},
    }
    if completed:
        out["completedDate"] = {
            "iso8601": completed,
            "jira": completed,
            "friendly": completed[:16],
            "epochMillis": 0,
        }
    return out


def link(
    kind: str, direction: str, key: str, lid: str, linked_type: str, linked_status: str
) -> dict[str, Any]:
    names = {
        "relates": ("Relates", "relates to", "relates to"),
        "causes": ("Causes", "is caused by", "causes"),
        "review": ("Post-Incident Reviews", "is reviewed by", "reviews"),
    }[kind]
    linked = {
        "id": str(20000 + int(key.split("-")[1])),
        "key": key,
        "self": f"{BASE}/rest/api/3/issue/{key}",
        "fields": {
            "summary": f"{linked_type} {key}",
            "status": status(linked_status),
            "priority": priority("Medium"),
            "issuetype": issuetype(linked_type),
        },
    }
    return {
        "id": lid,
        "self": f"{BASE}/rest/api/3/issueLink/{lid}",
        "type": {
            "id": "100" + lid[-2:],
            "name": names[0],
            "inward": names[1],
            "outward": names[2],
            "self": f"{BASE}/rest/api/3/issueLinkType/10000",
        },
        ("outwardIssue" if direction == "out" else "inwardIssue"): linked,
    }


def comments(*items: tuple[str, str, str]) -> dict[str, Any]:
    out = []
    for n, (who, when, text) in enumerate(items, 1):
        out.append(
            {
                "self": f"{BASE}/rest/api/3/issue/0/comment/{n}",
                "id": str(30000 + n),
                "author": user(who),
                "body": adf(text),
                "updateAuthor": user(who),
                "created": when,
                "updated": when,
                "jsdPublic": True,
            }
        )
    return {
        "comments": out,
        "self": f"{BASE}/rest/api/3/issue/0/comment",
        "maxResults": len(out),
        "total": len(out),
        "startAt": 0,
    }


def hardware(key: str | None, object_id: str) -> dict[str, Any]:
    out = {"workspaceId": WORKSPACE, "id": f"{WORKSPACE}:{object_id}", "objectId": object_id}
    if key:
        out["objectKey"] = key
    return out


ISSUES: list[dict[str, Any]] = []
HISTORIES: dict[str, list[dict[str, Any]]] = {}


def issue(
    key: str,
    itype: str,
    summary: str,
    st: str,
    *,
    created: str,
    updated: str,
    reporter: str,
    assignee: str | None,
    prio: str | None = "Medium",
    res: str | None = None,
    resolved: str | None = None,
    team: str | None = None,
    group: str | None = None,
    services: tuple[str, ...] = (),
    hw: tuple[dict, ...] = (),
    links: tuple[dict, ...] = (),
    labels: tuple[str, ...] = (),
    comment: dict | None = None,
    history: list[tuple[str, str, str, str]] | None = None,
    **custom: Any,
) -> None:
    num = int(key.split("-")[1])
    iid = str(20000 + num)
    fields: dict[str, Any] = {
        "summary": summary,
        "issuetype": issuetype(itype),
        "status": status(st),
        "priority": priority(prio),
        "created": created,
        "updated": updated,
        "resolutiondate": resolved,
        "resolution": resolution(res),
        "reporter": user(reporter),
        "assignee": user(assignee),
        "labels": list(labels),
        "issuelinks": list(links),
        "comment": comment or comments(),
        "project": {
            "self": f"{BASE}/rest/api/3/project/10020",
            "id": "10020",
            "key": "ITSM",
            "name": "IT Service Management",
            "projectTypeKey": "service_desk",
            "simplified": False,
        },
        "customfield_10001": TEAMS.get(team) if team else None,
        "customfield_10064": {
            "name": group,
            "groupId": "6f1e2d3c-" + group.lower().replace(" ", "-"),
        }
        if group
        else None,
        "customfield_10037": [SERVICES[s] for s in services] or None,
        "customfield_10065": list(hw) or None,
    }
    names = {
        "change_type": "customfield_10005",
        "risk": "customfield_10006",
        "impact": "customfield_10004",
        "impl": "customfield_10043",
        "backout": "customfield_10044",
        "test": "customfield_10045",
        "start": "customfield_10046",
        "end": "customfield_10047",
        "notes": "customfield_10060",
        "major": "customfield_10061",
        "root_cause": "customfield_10062",
        "workaround": "customfield_10063",
        "approvals": "customfield_10027",
        "ttr": "customfield_10029",
    }
    for field_id in names.values():
        fields.setdefault(field_id, None)
    for short, value in custom.items():
        fields[names[short]] = value
    for entry in fields["comment"]["comments"]:
        entry["self"] = f"{BASE}/rest/api/3/issue/{iid}/comment/{entry['id']}"
    ISSUES.append(
        {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": iid,
            "self": f"{BASE}/rest/api/3/issue/{iid}",
            "key": key,
            "fields": fields,
        }
    )
    if history:
        entries = []
        for n, (when, who, frm, to) in enumerate(history, 1):
            entries.append(
                {
                    "id": str(num * 100 + n),
                    "author": user(who),
                    "created": when,
                    "items": [
                        {
                            "field": "status",
                            "fieldtype": "jira",
                            "fieldId": "status",
                            "from": STATUSES[frm][0],
                            "fromString": frm,
                            "to": STATUSES[to][0],
                            "toString": to,
                        }
                    ],
                }
            )
        HISTORIES[iid] = entries


CHANGE_PATH = [
    "Open",
    "Planning",
    "Awaiting approval",
    "Awaiting implementation",
    "Implementing",
    "Review",
    "Closed",
]


def change_history(
    times: list[str], who: str, path: list[str] = CHANGE_PATH
) -> list[tuple[str, str, str, str]]:
    """times[i] is when path[i] -> path[i+1] happened."""
    return [(t, who, path[i], path[i + 1]) for i, t in enumerate(times)]


def build() -> None:
    good_plans = {
        "risk": option("Low", "10040"),
        "impact": option("Minor / Localized", "10052"),
        "impl": adf(
            "1. Drain node pool blue.", "2. Roll out build 4.18.2.", "3. Re-enable traffic."
        ),
        "backout": adf("Redeploy build 4.18.1 from the release registry and flush the CDN."),
        "test": adf(
            "Synthetic checkout journey and payment smoke tests in staging, then canary at 5%."
        ),
    }

    def approved_cab(aid, when):
        return [
            approval(aid, [("cab", "approved")], "approved", "2026-10-01T09:00:00.000-0700", when)
        ]

    # --- changes ---------------------------------------------------------------------
    issue(
        "ITSM-201",
        "Change",
        "Upgrade payments API to 4.18.2",
        "Closed",
        created="2026-10-01T08:12:40.511-0700",
        updated="2026-10-09T11:20:03.090-0700",
        reporter="dana",
        assignee="ravi",
        res="Done",
        resolved="2026-10-09T11:20:03.090-0700",
        team="payments",
        services=("payments",),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-10-08T22:00:00.000+0530",
        end="2026-10-09T02:00:00.000+0530",
        notes=adf("Rolled out to all nodes, error rate unchanged."),
        approvals=approved_cab("201", "2026-10-02T10:15:00.000-0700"),
        history=change_history(
            [
                "2026-10-01T08:30:00.000-0700",
                "2026-10-01T09:00:00.000-0700",
                "2026-10-02T10:15:00.000-0700",
                "2026-10-08T22:05:00.000+0530",
                "2026-10-09T01:40:00.000+0530",
                "2026-10-09T11:20:03.090-0700",
            ],
            "ravi",
        ),
    )
    issue(
        "ITSM-202",
        "Change",
        "Rotate TLS certificates on the VPN concentrators",
        "Awaiting implementation",
        created="2026-11-12T10:02:11.000-0700",
        updated="2026-11-17T16:44:00.000-0700",
        reporter="marco",
        assignee="jo",
        team="platform",
        services=("vpn",),
        hw=(hardware("HW-1187", "1187"),),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-11-24T22:00:00.000-0700",
        end="2026-11-24T23:30:00.000-0700",
        approvals=[
            approval(
                "202",
                [("cab", "pending"), ("sam", "pending")],
                "pending",
                "2026-11-13T09:00:00.000-0700",
                None,
            )
        ],
        history=change_history(
            [
                "2026-11-12T10:30:00.000-0700",
                "2026-11-13T09:00:00.000-0700",
                "2026-11-17T16:44:00.000-0700",
            ],
            "jo",
            CHANGE_PATH[:4],
        ),
    )
    issue(
        "ITSM-203",
        "Change",
        "Increase connection pool for Identity Provider",
        "Closed",
        created="2026-10-14T07:55:00.000-0700",
        updated="2026-10-20T09:10:00.000-0700",
        reporter="dana",
        assignee="priya",
        res="Done",
        resolved="2026-10-20T09:10:00.000-0700",
        team="platform",
        services=("identity",),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-10-16T21:00:00.000+0530",
        end="2026-10-16T23:00:00.000+0530",
        notes=adf("Pool raised to 400; p95 latency down 30%."),
        approvals=approved_cab("203", "2026-10-17T08:00:00.000-0700"),
        history=change_history(
            [
                "2026-10-14T08:00:00.000-0700",
                "2026-10-14T08:30:00.000-0700",
                "2026-10-15T09:00:00.000-0700",
                "2026-10-16T21:10:00.000+0530",
                "2026-10-16T22:30:00.000+0530",
                "2026-10-20T09:10:00.000-0700",
            ],
            "priya",
        ),
    )
    issue(
        "ITSM-204",
        "Change",
        "Add MX failover record for Email Relay",
        "Closed",
        created="2026-10-20T12:00:00.000-0700",
        updated="2026-10-28T10:00:00.000-0700",
        reporter="dana",
        assignee="sam",
        res="Done",
        resolved="2026-10-28T10:00:00.000-0700",
        team="platform",
        services=("mail",),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-10-27T18:00:00.000-0700",
        end="2026-10-27T19:00:00.000-0700",
        notes=adf("Secondary MX live; failover tested."),
        approvals=[
            approval(
                "204",
                [("sam", "approved")],
                "approved",
                "2026-10-21T09:00:00.000-0700",
                "2026-10-21T09:30:00.000-0700",
            )
        ],
        history=change_history(
            [
                "2026-10-20T12:10:00.000-0700",
                "2026-10-20T12:20:00.000-0700",
                "2026-10-21T09:30:00.000-0700",
                "2026-10-27T18:05:00.000-0700",
                "2026-10-27T18:50:00.000-0700",
                "2026-10-28T10:00:00.000-0700",
            ],
            "sam",
        ),
    )
    issue(
        "ITSM-205",
        "Change",
        "Migrate reporting warehouse to new storage tier",
        "Awaiting implementation",
        created="2026-11-10T09:00:00.000-0700",
        updated="2026-11-18T15:00:00.000-0700",
        reporter="marco",
        assignee="ravi",
        team="platform",
        services=("reporting",),
        change_type=option("Normal", "10031"),
        **{**good_plans, "impact": None},
        start="2026-11-26T20:00:00.000+0530",
        end="2026-11-27T02:00:00.000+0530",
        approvals=approved_cab("205", "2026-11-14T11:00:00.000-0700"),
        history=change_history(
            [
                "2026-11-10T09:30:00.000-0700",
                "2026-11-11T10:00:00.000-0700",
                "2026-11-14T11:00:00.000-0700",
            ],
            "ravi",
            CHANGE_PATH[:4],
        ),
    )
    issue(
        "ITSM-206",
        "Change",
        "Emergency: block credential-stuffing source ranges",
        "Closed",
        created="2026-11-03T02:10:00.000-0700",
        updated="2026-11-05T09:00:00.000-0700",
        reporter="jo",
        assignee="marco",
        res="Done",
        resolved="2026-11-05T09:00:00.000-0700",
        team="platform",
        services=("identity",),
        change_type=option("Emergency", "10032"),
        **{**good_plans, "backout": adf("", "")},
        start="2026-11-03T02:30:00.000-0700",
        end="2026-11-03T04:00:00.000-0700",
        notes=adf("Ranges blocked at the edge WAF; login failures back to baseline."),
        approvals=[
            approval(
                "206",
                [("cab", "approved")],
                "approved",
                "2026-11-03T02:15:00.000-0700",
                "2026-11-03T02:25:00.000-0700",
            )
        ],
        links=(link("review", "in", "ITSM-402", "40206", "Post-incident review", "Done"),),
        history=change_history(
            [
                "2026-11-03T02:25:00.000-0700",
                "2026-11-03T03:40:00.000-0700",
                "2026-11-05T09:00:00.000-0700",
            ],
            "marco",
            ["Awaiting implementation", "Implementing", "Review", "Closed"],
        ),
    )
    issue(
        "ITSM-207",
        "Change",
        "Patch kernel on checkout web nodes",
        "Implementing",
        created="2026-11-16T08:00:00.000-0700",
        updated="2026-11-19T22:05:00.000+0530",
        reporter="dana",
        assignee="priya",
        team="payments",
        services=("checkout",),
        change_type=option("Normal", "10031"),
        **{**good_plans, "test": None},
        start="2026-11-19T22:00:00.000+0530",
        end="2026-11-20T04:00:00.000+0530",
        approvals=approved_cab("207", "2026-11-17T09:00:00.000-0700"),
        history=change_history(
            [
                "2026-11-16T08:10:00.000-0700",
                "2026-11-16T09:00:00.000-0700",
                "2026-11-17T09:00:00.000-0700",
                "2026-11-19T22:05:00.000+0530",
            ],
            "priya",
            CHANGE_PATH[:5],
        ),
    )
    issue(
        "ITSM-208",
        "Change",
        "Resize identity database volume",
        "Closed",
        created="2026-10-05T10:00:00.000-0700",
        updated="2026-10-12T08:00:00.000-0700",
        reporter="marco",
        assignee="jo",
        res="Done",
        resolved="2026-10-12T08:00:00.000-0700",
        team="platform",
        services=("identity",),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-10-10T20:00:00.000-0700",
        end="2026-10-10T22:00:00.000-0700",
        approvals=approved_cab("208", "2026-10-06T10:00:00.000-0700"),
        history=change_history(
            [
                "2026-10-05T10:10:00.000-0700",
                "2026-10-05T11:00:00.000-0700",
                "2026-10-06T10:00:00.000-0700",
                "2026-10-10T20:05:00.000-0700",
                "2026-10-10T21:30:00.000-0700",
                "2026-10-12T08:00:00.000-0700",
            ],
            "jo",
        ),
    )
    issue(
        "ITSM-209",
        "Change",
        "Emergency: restart stuck payment settlement workers",
        "Closed",
        created="2026-11-01T23:40:00.000-0700",
        updated="2026-11-02T06:00:00.000-0700",
        reporter="ravi",
        assignee="jo",
        res="Done",
        resolved="2026-11-02T06:00:00.000-0700",
        team="payments",
        services=("payments",),
        change_type=option("Emergency", "10032"),
        **good_plans,
        start="2026-11-01T23:50:00.000-0700",
        end="2026-11-02T01:00:00.000-0700",
        notes=adf("Workers restarted, settlement backlog cleared by 01:10."),
        approvals=[
            approval(
                "209",
                [("cab", "approved")],
                "approved",
                "2026-11-01T23:45:00.000-0700",
                "2026-11-01T23:48:00.000-0700",
            )
        ],
        history=change_history(
            [
                "2026-11-01T23:48:00.000-0700",
                "2026-11-02T00:40:00.000-0700",
                "2026-11-02T06:00:00.000-0700",
            ],
            "jo",
            ["Awaiting implementation", "Implementing", "Review", "Closed"],
        ),
    )
    issue(
        "ITSM-210",
        "Change",
        "Enable HTTP/3 on the edge",
        "Closed",
        created="2026-10-22T09:00:00.000-0700",
        updated="2026-10-30T10:00:00.000-0700",
        reporter="dana",
        assignee="marco",
        res="Done",
        resolved="2026-10-30T10:00:00.000-0700",
        team="platform",
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-10-29T19:00:00.000-0700",
        end="2026-10-29T21:00:00.000-0700",
        notes=adf("HTTP/3 enabled for 100% of edge traffic."),
        approvals=approved_cab("210", "2026-10-23T09:00:00.000-0700"),
        history=change_history(
            [
                "2026-10-22T09:10:00.000-0700",
                "2026-10-22T10:00:00.000-0700",
                "2026-10-23T09:00:00.000-0700",
                "2026-10-29T19:10:00.000-0700",
                "2026-10-29T20:30:00.000-0700",
                "2026-10-30T10:00:00.000-0700",
            ],
            "marco",
        ),
    )
    issue(
        "ITSM-211",
        "Change",
        "Re-index reporting warehouse",
        "Closed",
        created="2026-10-26T09:00:00.000+0530",
        updated="2026-11-04T12:00:00.000+0530",
        reporter="priya",
        assignee="ravi",
        res="Done",
        resolved="2026-11-04T12:00:00.000+0530",
        team="platform",
        services=("reporting",),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-11-03T22:00:00.000+0530",
        end="2026-11-04T02:00:00.000+0530",
        notes=adf("Re-index complete; queries 4x faster."),
        approvals=approved_cab("211", "2026-10-27T09:00:00.000-0700"),
        history=change_history(
            [
                "2026-10-26T09:30:00.000+0530",
                "2026-10-26T10:00:00.000+0530",
                "2026-10-27T09:00:00.000-0700",
                "2026-11-03T19:45:00.000+0530",
                "2026-11-04T01:30:00.000+0530",
                "2026-11-04T12:00:00.000+0530",
            ],
            "ravi",
        ),
    )
    issue(
        "ITSM-212",
        "Change",
        "Decommission legacy FTP gateway",
        "Planning",
        created="2026-11-18T13:00:00.000-0700",
        updated="2026-11-18T13:30:00.000-0700",
        reporter="sam",
        assignee="marco",
        team="platform",
        history=change_history(["2026-11-18T13:30:00.000-0700"], "marco", ["Open", "Planning"]),
    )
    issue(
        "ITSM-213",
        "Change",
        "Standard: add DNS record for status page",
        "Closed",
        created="2026-11-09T10:00:00.000-0700",
        updated="2026-11-09T11:00:00.000-0700",
        reporter="jo",
        assignee="sam",
        res="Done",
        resolved="2026-11-09T11:00:00.000-0700",
        team="platform",
        services=("mail",),
        change_type=option("Standard", "10030"),
        notes=adf("Record added from the pre-approved template."),
        history=change_history(
            [
                "2026-11-09T10:30:00.000-0700",
                "2026-11-09T10:50:00.000-0700",
                "2026-11-09T11:00:00.000-0700",
            ],
            "sam",
            ["Awaiting implementation", "Implementing", "Review", "Closed"],
        ),
    )
    issue(
        "ITSM-214",
        "Change",
        "Upgrade checkout web framework",
        "Failed",
        created="2026-10-12T09:00:00.000-0700",
        updated="2026-10-19T10:00:00.000-0700",
        reporter="dana",
        assignee="priya",
        res="Rolled back",
        resolved="2026-10-19T10:00:00.000-0700",
        team="payments",
        services=("checkout",),
        change_type=option("Normal", "10031"),
        **good_plans,
        start="2026-10-18T21:00:00.000+0530",
        end="2026-10-18T23:59:00.000+0530",
        notes=adf("Session errors after rollout; rolled back to 7.2.1 at 23:20 IST."),
        approvals=approved_cab("214", "2026-10-13T09:00:00.000-0700"),
        links=(link("review", "in", "ITSM-399", "40214", "Post-incident review", "Done"),),
        history=change_history(
            [
                "2026-10-12T09:10:00.000-0700",
                "2026-10-12T10:00:00.000-0700",
                "2026-10-13T09:00:00.000-0700",
                "2026-10-18T21:05:00.000+0530",
                "2026-10-18T23:25:00.000+0530",
                "2026-10-19T10:00:00.000-0700",
            ],
            "priya",
            [
                "Open",
                "Planning",
                "Awaiting approval",
                "Awaiting implementation",
                "Implementing",
                "Review",
                "Failed",
            ],
        ),
    )

    # --- incidents -------------------------------------------------------------------
    ttr_ok, ttr_done = sla(False, done=False), sla(False, done=True)
    issue(
        "ITSM-101",
        "Incident",
        "Payments API returning 502 for card refunds",
        "Resolved",
        created="2026-11-10T09:02:11.000-0700",
        updated="2026-11-10T12:40:00.000-0700",
        prio="High",
        reporter="sam",
        assignee="ravi",
        res="Done",
        resolved="2026-11-10T12:35:00.000-0700",
        team="payments",
        services=("payments",),
        ttr=ttr_done,
        comment=comments(
            ("ravi", "2026-11-10T23:50:00.000+0530", "Looking at the refund worker logs."),
            (
                "ravi",
                "2026-11-11T01:05:00.000+0530",
                "Refund worker restarted with the corrected queue config; 502s gone.",
            ),
        ),
    )
    issue(
        "ITSM-102",
        "Incident",
        "Email relay delays for external recipients",
        "Closed",
        created="2026-11-04T08:00:00.000-0700",
        updated="2026-11-06T09:00:00.000-0700",
        prio="Medium",
        reporter="jo",
        assignee="marco",
        res="Done",
        resolved="2026-11-04T15:00:00.000-0700",
        team="platform",
        services=("mail",),
        ttr=ttr_done,
        history=[
            ("2026-11-04T08:30:00.000-0700", "marco", "Open", "Work in progress"),
            ("2026-11-04T15:00:00.000-0700", "marco", "Work in progress", "Resolved"),
            ("2026-11-06T09:00:00.000-0700", "marco", "Resolved", "Closed"),
        ],
    )
    issue(
        "ITSM-103",
        "Incident",
        "Reporting dashboards slow to load",
        "Work in progress",
        created="2026-11-17T10:00:00.000+0530",
        updated="2026-11-18T16:00:00.000+0530",
        prio=None,
        reporter="priya",
        assignee="ravi",
        team="platform",
        services=("reporting",),
        ttr=ttr_ok,
    )
    issue(
        "ITSM-104",
        "Incident",
        "VPN disconnects every 20 minutes",
        "Work in progress",
        created="2026-11-18T07:30:00.000-0700",
        updated="2026-11-19T08:00:00.000-0700",
        prio="Medium",
        reporter="sam",
        assignee=None,
        services=("vpn",),
        ttr=ttr_ok,
    )
    issue(
        "ITSM-105",
        "Incident",
        "Checkout unavailable in EU region",
        "Resolved",
        created="2026-11-05T03:00:00.000-0700",
        updated="2026-11-05T06:30:00.000-0700",
        prio="Highest",
        reporter="sam",
        assignee="priya",
        res="Done",
        resolved="2026-11-05T06:10:00.000-0700",
        team="payments",
        services=("payments",),
        major=[option("Major incident", "10070")],
        ttr=sla(False, done=True),
        notes=adf(
            "Failed over EU traffic to the secondary region; root cause tracked in ITSM-301."
        ),
        links=(link("causes", "in", "ITSM-301", "40105", "Problem", "Under investigation"),),
    )
    issue(
        "ITSM-106",
        "Incident",
        "Identity provider outage: all logins failing",
        "Resolved",
        created="2026-10-28T01:00:00.000-0700",
        updated="2026-11-02T10:00:00.000-0700",
        prio="Highest",
        reporter="jo",
        assignee="marco",
        res="Done",
        resolved="2026-10-28T03:30:00.000-0700",
        team="platform",
        services=("identity",),
        major=[option("Major incident", "10070")],
        ttr=ttr_done,
        notes=adf("Expired signing key replaced; logins restored at 03:25."),
        links=(link("review", "in", "ITSM-401", "40106", "Post-incident review", "Done"),),
    )
    issue(
        "ITSM-107",
        "Incident",
        "Payment settlement report missing transactions",
        "Resolved",
        created="2026-11-10T09:02:11.000-0700",
        updated="2026-11-11T11:00:00.000-0700",
        prio="High",
        reporter="dana",
        assignee="ravi",
        res="Done",
        resolved="2026-11-11T10:45:00.000-0700",
        team="payments",
        services=("reporting",),
        ttr=sla(True, done=True),
        notes=adf("Late-arriving batch re-imported; report regenerated."),
    )
    issue(
        "ITSM-108",
        "Incident",
        "Shared drive mapping fails for new laptops",
        "Waiting for customer",
        created="2026-10-15T09:00:00.000-0700",
        updated="2026-10-20T14:00:00.000-0700",
        prio="Low",
        reporter="sam",
        assignee="jo",
        group="it-desktop-support",
        ttr=sla(False, done=False),
    )
    for n, (day, who) in enumerate(
        [("2026-11-02", "sam"), ("2026-11-07", "jo"), ("2026-11-14", "dana")]
    ):
        key = f"ITSM-{109 + n}"
        issue(
            key,
            "Incident",
            f"Checkout page times out at payment step ({['EU', 'US', 'APAC'][n]})",
            "Resolved",
            created=f"{day}T10:00:00.000-0700",
            updated=f"{day}T13:00:00.000-0700",
            prio="High",
            reporter=who,
            assignee="priya",
            res="Done",
            resolved=f"{day}T12:30:00.000-0700",
            team="payments",
            services=("checkout",),
            ttr=ttr_done,
            notes=adf("Restarted the checkout pods; timeouts stopped."),
        )
    issue(
        "ITSM-112",
        "Incident",
        "Printer on floor 3 offline",
        "Canceled",
        created="2026-11-12T09:00:00.000-0700",
        updated="2026-11-12T09:20:00.000-0700",
        prio=None,
        reporter="sam",
        assignee=None,
        res="Duplicate",
        resolved="2026-11-12T09:20:00.000-0700",
    )
    issue(
        "ITSM-113",
        "Incident",
        "SSO for the HR portal rejects new hires",
        "Awaiting vendor",
        created="2026-11-16T10:00:00.000+0530",
        updated="2026-11-19T11:00:00.000+0530",
        prio="Medium",
        reporter="priya",
        assignee="ravi",
        team="platform",
        services=("identity",),
        ttr=ttr_ok,
    )

    # --- service requests --------------------------------------------------------------
    issue(
        "ITSM-501",
        "Service request with approvals",
        "Access to the payments production console",
        "Resolved",
        created="2026-11-02T09:00:00.000+0530",
        updated="2026-11-03T12:00:00.000+0530",
        reporter="priya",
        assignee="jo",
        res="Done",
        resolved="2026-11-03T12:00:00.000+0530",
        group="it-access-management",
        approvals=[
            approval(
                "501",
                [("dana", "approved")],
                "approved",
                "2026-11-02T09:00:00.000+0530",
                "2026-11-02T21:00:00.000-0700",
            )
        ],
        notes=adf("Access granted for 90 days."),
    )
    issue(
        "ITSM-502",
        "Service request with approvals",
        "Admin rights on analytics laptop",
        "Resolved",
        created="2026-11-06T09:00:00.000+0530",
        updated="2026-11-07T10:00:00.000+0530",
        reporter="ravi",
        assignee="jo",
        res="Done",
        resolved="2026-11-07T10:00:00.000+0530",
        group="it-access-management",
        approvals=[
            approval(
                "502",
                [("dana", "declined")],
                "declined",
                "2026-11-06T09:00:00.000+0530",
                "2026-11-06T15:00:00.000-0700",
            )
        ],
        notes=adf("Local admin rights granted by the desktop team."),
    )
    issue(
        "ITSM-503",
        "Service request",
        "New monitor for the Pune office",
        "Closed",
        created="2026-11-03T11:00:00.000+0530",
        updated="2026-11-08T10:00:00.000+0530",
        reporter="priya",
        assignee="sam",
        res="Done",
        resolved="2026-11-05T16:00:00.000+0530",
        group="it-desktop-support",
        approvals=[],
    )
    issue(
        "ITSM-504",
        "Service request",
        "Add Ravi to the on-call calendar",
        "Waiting for support",
        created="2026-11-19T09:00:00.000+0530",
        updated="2026-11-19T09:00:00.000+0530",
        reporter="ravi",
        assignee=None,
        group="it-service-desk",
        approvals=[],
    )

    # --- problems ----------------------------------------------------------------------
    issue(
        "ITSM-301",
        "Problem",
        "EU region failover does not trigger automatically",
        "Under investigation",
        created="2026-11-05T07:00:00.000-0700",
        updated="2026-11-16T10:00:00.000-0700",
        prio="High",
        reporter="priya",
        assignee="marco",
        team="platform",
        services=("payments",),
        links=(link("causes", "out", "ITSM-105", "40105", "Incident", "Resolved"),),
    )
    issue(
        "ITSM-302",
        "Problem",
        "Recurring refund worker crashes",
        "Resolved",
        created="2026-10-01T09:00:00.000-0700",
        updated="2026-11-01T09:00:00.000-0700",
        prio="Medium",
        reporter="ravi",
        assignee="ravi",
        res="Done",
        resolved="2026-11-01T09:00:00.000-0700",
        team="payments",
        services=("payments",),
        root_cause=adf(""),
        workaround=adf("Restart the refund worker."),
    )
    issue(
        "ITSM-303",
        "Problem",
        "Identity DB connection exhaustion under load",
        "Under investigation",
        created="2026-10-20T09:00:00.000-0700",
        updated="2026-11-15T09:00:00.000-0700",
        prio="High",
        reporter="marco",
        assignee="priya",
        team="platform",
        services=("identity",),
        labels=("known-error", "identity"),
    )
    issue(
        "ITSM-304",
        "Problem",
        "Intermittent VPN certificate validation failures",
        "Open",
        created="2026-07-20T09:00:00.000-0700",
        updated="2026-08-01T09:00:00.000-0700",
        prio="Low",
        reporter="jo",
        assignee="jo",
        team="platform",
        services=("vpn",),
    )
    issue(
        "ITSM-305",
        "Problem",
        "Email relay queue backs up during marketing sends",
        "Known error",
        created="2026-10-10T09:00:00.000-0700",
        updated="2026-11-12T09:00:00.000-0700",
        prio="Medium",
        reporter="marco",
        assignee="sam",
        team="platform",
        services=("mail",),
        root_cause=adf("Relay rate limit is per-node and marketing bursts hit a single node."),
        workaround=adf("Spread sends over the relay pool with the campaign throttle at 200 msg/s."),
    )

    # --- post-incident reviews -------------------------------------------------------
    issue(
        "ITSM-401",
        "Post-incident review",
        "PIR: identity provider outage 2026-10-28",
        "Done",
        created="2026-10-29T09:00:00.000-0700",
        updated="2026-11-02T10:00:00.000-0700",
        prio="Medium",
        reporter="jo",
        assignee="marco",
        res="Done",
        resolved="2026-11-02T10:00:00.000-0700",
        team="platform",
        links=(link("review", "out", "ITSM-106", "40106", "Incident", "Resolved"),),
    )
    issue(
        "ITSM-402",
        "Post-incident review",
        "PIR: emergency WAF block 2026-11-03",
        "Done",
        created="2026-11-05T09:00:00.000-0700",
        updated="2026-11-07T10:00:00.000-0700",
        prio="Medium",
        reporter="jo",
        assignee="marco",
        res="Done",
        resolved="2026-11-07T10:00:00.000-0700",
        team="platform",
        links=(link("review", "out", "ITSM-206", "40206", "Change", "Closed"),),
    )


def main() -> None:
    build()
    names = {fid: name for fid, (name, _t) in SYSTEM.items()}
    names.update({fid: spec[0] for fid, spec in CUSTOM.items()})
    wanted = list(dict.fromkeys(f for issue_ in ISSUES for f in issue_["fields"]))
    search = {"issues": ISSUES, "names": {f: names[f] for f in wanted}, "isLast": True}
    (HERE / "search.json").write_text(json.dumps(search, indent=2) + "\n")
    bulk = {
        "issueChangeLogs": [{"issueId": iid, "changeHistories": h} for iid, h in HISTORIES.items()],
        "nextPageToken": None,
    }
    (HERE / "changelog.json").write_text(json.dumps(bulk, indent=2) + "\n")
    fields = []
    for fid, (name, kind) in SYSTEM.items():
        fields.append(
            {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [fid],
                "schema": {"type": kind, "system": fid},
            }
        )
    for fid, (name, custom, kind) in CUSTOM.items():
        number = int(fid.split("_")[1])
        fields.append(
            {
                "id": fid,
                "key": fid,
                "name": name,
                "untranslatedName": name,
                "custom": True,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": kind, "custom": custom, "customId": number},
            }
        )
    (HERE / "field.json").write_text(json.dumps(fields, indent=2) + "\n")
    statuses = []
    for name, (sid, cat) in STATUSES.items():
        c = CATEGORIES[cat]
        statuses.append(
            {
                "self": f"{BASE}/rest/api/2/status/{sid}",
                "description": "",
                "iconUrl": f"{BASE}/images/icons/statuses/generic.png",
                "name": name,
                "untranslatedName": name,
                "id": sid,
                "statusCategory": {"self": f"{BASE}/rest/api/2/statuscategory/{c['id']}", **c},
                "scope": {"type": "PROJECT", "project": {"id": "10020"}},
            }
        )
    (HERE / "status.json").write_text(json.dumps(statuses, indent=2) + "\n")


if __name__ == "__main__":
    main()
