"""Seeded ServiceNow tables: incident, change_request, problem, sc_req_item, cmdb_ci,
sysapproval_approver, task_ci, sys_user, sys_user_group, sys_choice.

Task and CI rows are built lazily by index with raw values (every value a string,
references as sys_ids, datetimes ``yyyy-MM-dd HH:mm:ss`` UTC), as the Table API returns
them with ``sysparm_display_value=false``. Approval and task_ci rows are small tuples
built at start, because a task's approvals must be findable by ``sysapprovalIN...`` and
by dot-walked conditions on the task (``sysapproval.sys_updated_on>=...``).
"""

from __future__ import annotations

import random
import threading
from array import array
from typing import TYPE_CHECKING, Any

from ticketlint.sandbox import scenario as S
from ticketlint.sandbox.data import SERVICES, hexid, utc_text

if TYPE_CHECKING:
    from ticketlint.sandbox.data import Dataset

TASK_TABLES = {
    "incident": ("INC", 10001, 40),
    "change_request": ("CHG", 30001, 22),
    "problem": ("PRB", 40001, 8),
    "sc_req_item": ("RITM", 10001, 18),
}
TABLE_WEIGHTS = {
    "incident": 40,
    "change_request": 22,
    "problem": 8,
    "sc_req_item": 18,
    "cmdb_ci": 12,
}
STATE_CODE = {
    "incident": {
        "new": "1",
        "in_progress": "2",
        "on_hold": "3",
        "resolved": "6",
        "closed": "7",
        "cancelled": "8",
    },
    "change_request": {
        "new": "-5",
        "assess": "-4",
        "authorize": "-3",
        "scheduled": "-2",
        "implement": "-1",
        "review": "0",
        "closed": "3",
        "cancelled": "4",
    },
    "problem": {
        "new": "101",
        "in_progress": "103",
        "resolved": "106",
        "closed": "107",
        "cancelled": "107",
    },
    "sc_req_item": {
        "new": "1",
        "in_progress": "2",
        "resolved": "3",
        "closed": "3",
        "cancelled": "7",
    },
}
_STRING, _INT, _TIME, _REF = "string", "integer", "glide_date_time", "reference"
DICTIONARY: dict[str, dict[str, tuple[str, int]]] = {
    # table -> column -> (internal_type, max_length), as a current release declares them
    # (the columns of task are inherited by incident, change_request, problem, sc_req_item)
    "task": {
        "sys_id": ("GUID", 32),
        "number": (_STRING, 40),
        "sys_class_name": ("sys_class_name", 80),
        "short_description": (_STRING, 160),
        "description": (_STRING, 4000),
        "state": (_INT, 40),
        "active": ("boolean", 40),
        "priority": (_INT, 40),
        "impact": (_INT, 40),
        "urgency": (_INT, 40),
        "assigned_to": (_REF, 32),
        "assignment_group": (_REF, 32),
        "opened_by": (_REF, 32),
        "opened_at": (_TIME, 40),
        "closed_at": (_TIME, 40),
        "closed_by": (_REF, 32),
        "cmdb_ci": (_REF, 32),
        "work_notes": ("journal_input", 4000),
        "comments": ("journal_input", 4000),
        "approval": (_STRING, 40),
        "close_notes": (_STRING, 4000),
        "sys_domain": ("domain_id", 32),
        "sys_created_on": (_TIME, 40),
        "sys_created_by": (_STRING, 40),
        "sys_updated_on": (_TIME, 40),
        "sys_updated_by": (_STRING, 40),
        "sys_mod_count": (_INT, 40),
    },
    "incident": {
        "caller_id": (_REF, 32),
        "category": (_STRING, 40),
        "resolved_at": (_TIME, 40),
        "close_code": (_STRING, 40),
        "major_incident_state": (_STRING, 40),
        "problem_id": (_REF, 32),
        "rfc": (_REF, 32),
        "caused_by": (_REF, 32),
        "made_sla": ("boolean", 40),
    },
    "change_request": {
        "type": (_STRING, 40),
        "risk": (_INT, 40),
        "impact": (_INT, 40),
        "requested_by": (_REF, 32),
        "implementation_plan": (_STRING, 4000),
        "backout_plan": (_STRING, 4000),
        "test_plan": (_STRING, 4000),
        "start_date": (_TIME, 40),
        "end_date": (_TIME, 40),
        "work_start": (_TIME, 40),
        "work_end": (_TIME, 40),
        "close_code": (_STRING, 40),
        "cab_required": ("boolean", 40),
        "cab_date": (_TIME, 40),
        "cab_date_time": (_TIME, 40),
        "review_date": (_TIME, 40),
        "review_comments": (_STRING, 4000),
        "review_status": (_INT, 40),
        "phase": (_STRING, 40),
    },
    "problem": {
        "cause_notes": ("html", 65000),
        "fix_notes": ("html", 65000),
        "workaround": (_STRING, 4000),
        "known_error": ("boolean", 40),
        "resolved_at": (_TIME, 40),
        "resolution_code": (_STRING, 40),
    },
    "sc_req_item": {
        "cat_item": (_REF, 32),
        "requested_for": (_REF, 32),
        "request": (_REF, 32),
    },
    "cmdb": {
        "sys_id": ("GUID", 32),
        "name": (_STRING, 255),
        "sys_class_name": ("sys_class_name", 80),
        "owned_by": (_REF, 32),
        "managed_by": (_REF, 32),
        "assigned_to": (_REF, 32),
        "support_group": (_REF, 32),
        "asset_tag": (_STRING, 40),
        "manufacturer": (_REF, 32),
        "sys_created_on": (_TIME, 40),
        "sys_updated_on": (_TIME, 40),
        "sys_updated_by": (_STRING, 40),
    },
    "cmdb_ci": {
        "install_status": (_INT, 40),
        "operational_status": (_INT, 40),
        "last_discovered": (_TIME, 40),
        "ip_address": ("ip_addr", 255),
    },
}
"""``sys_dictionary``: with ``real_shapes`` ``change_request.cab_date`` is a ``glide_date``
(date only, as on current releases; ``cab_date_time`` holds the time)."""

CHOICES = {  # (table, element) -> [(value, label)]
    ("incident", "state"): [
        ("1", "New"),
        ("2", "In Progress"),
        ("3", "On Hold"),
        ("6", "Resolved"),
        ("7", "Closed"),
        ("8", "Canceled"),
    ],
    ("change_request", "state"): [
        ("-5", "New"),
        ("-4", "Assess"),
        ("-3", "Authorize"),
        ("-2", "Scheduled"),
        ("-1", "Implement"),
        ("0", "Review"),
        ("3", "Closed"),
        ("4", "Canceled"),
    ],
    ("problem", "state"): [
        ("101", "New"),
        ("102", "Assess"),
        ("103", "Root Cause Analysis"),
        ("104", "Fix in Progress"),
        ("106", "Resolved"),
        ("107", "Closed"),
    ],
    ("sc_req_item", "state"): [
        ("-5", "Pending"),
        ("1", "Open"),
        ("2", "Work in Progress"),
        ("3", "Closed Complete"),
        ("4", "Closed Incomplete"),
        ("7", "Closed Skipped"),
    ],
    ("task", "priority"): [
        ("1", "1 - Critical"),
        ("2", "2 - High"),
        ("3", "3 - Moderate"),
        ("4", "4 - Low"),
        ("5", "5 - Planning"),
    ],
    ("task", "impact"): [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")],
    ("change_request", "risk"): [
        ("1", "Very High"),
        ("2", "High"),
        ("3", "Moderate"),
        ("4", "Low"),
    ],
    ("change_request", "type"): [
        ("standard", "Standard"),
        ("normal", "Normal"),
        ("emergency", "Emergency"),
    ],
    ("change_request", "close_code"): [
        ("successful", "Successful"),
        ("successful_issues", "Successful with issues"),
        ("unsuccessful", "Unsuccessful"),
    ],
    ("incident", "close_code"): [
        ("Solution provided", "Solution provided"),
        ("Workaround provided", "Workaround provided"),
        ("Resolved by change", "Resolved by change"),
        ("User error", "User error"),
    ],
    ("problem", "resolution_code"): [
        ("fix_applied", "Fix Applied"),
        ("risk_accepted", "Risk Accepted"),
        ("canceled", "Canceled"),
        ("duplicate", "Duplicate"),
    ],
    ("task", "approval"): [
        ("not requested", "Not Yet Requested"),
        ("requested", "Requested"),
        ("approved", "Approved"),
        ("rejected", "Rejected"),
    ],
    ("sysapproval_approver", "state"): [
        ("not requested", "Not Yet Requested"),
        ("requested", "Requested"),
        ("approved", "Approved"),
        ("rejected", "Rejected"),
        ("cancelled", "Cancelled"),
        ("not_required", "No Longer Required"),
    ],
    ("cmdb_ci", "install_status"): [
        ("1", "Installed"),
        ("2", "On Order"),
        ("3", "In Maintenance"),
        ("4", "Pending Install"),
        ("6", "In Stock"),
        ("7", "Retired"),
    ],
    ("incident", "major_incident_state"): [
        ("proposed", "Proposed"),
        ("accepted", "Accepted"),
        ("rejected", "Rejected"),
    ],
}
REFERENCES = {  # field -> table ("task" = any task table)
    "assigned_to": "sys_user",
    "assignment_group": "sys_user_group",
    "caller_id": "sys_user",
    "opened_by": "sys_user",
    "requested_by": "sys_user",
    "closed_by": "sys_user",
    "requested_for": "sys_user",
    "cmdb_ci": "cmdb_ci",
    "problem_id": "problem",
    "rfc": "change_request",
    "caused_by": "change_request",
    "owned_by": "sys_user",
    "managed_by": "sys_user",
    "support_group": "sys_user_group",
    "sysapproval": "task",
    "document_id": "task",
    "approver": "sys_user",
    "task": "task",
    "ci_item": "cmdb_ci",
    "manager": "sys_user",
    "element_id": "task",
}
CI_CLASSES = [
    "cmdb_ci_linux_server",
    "cmdb_ci_win_server",
    "cmdb_ci_app_server",
    "cmdb_ci_db_instance",
    "cmdb_ci_service",
    "cmdb_ci_netgear",
]
INSTALL = {"installed": "1", "in_maintenance": "3", "planned": "2", "retired": "7"}
NOTES = [
    "Restarted the application pool; service restored.",
    "Applied vendor patch KB5031; verified.",
    "User error: walked the caller through the correct procedure.",
    "Replaced faulty NIC on the host.",
    "Cleared the stuck queue and monitored for an hour.",
]


class ServiceNowData:
    real_shapes: bool = False
    """The shapes of a current ServiceNow release (issue 19), off by default:
    ``change_request.cab_date`` is a ``glide_date`` (``2026-03-03``, no time), and
    ``sys_dictionary`` declares it so; ``cab_date_time`` holds the time."""

    def __init__(self, ds: Dataset, n: int, *, hidden_share: float = 0.01) -> None:
        self.ds, self.seed, self.hidden_share = ds, ds.seed, hidden_share
        self.lock = threading.RLock()
        total = sum(TABLE_WEIGHTS.values())
        self.counts = {t: max(3, n * w // total) for t, w in TABLE_WEIGHTS.items()}
        self.sys_ids: dict[str, list[str]] = {}
        self.updated: dict[str, array[int]] = {}
        self.where: dict[str, tuple[str, int]] = {}
        n_ci = self.counts["cmdb_ci"]
        self.hot_cis = list(range(min(n_ci, 2 + n_ci // 60)))
        for table in ("cmdb_ci", *TASK_TABLES):
            ids = [hexid(self.seed, table, i) for i in range(self.counts[table])]
            self.sys_ids[table] = ids
            for i, sid in enumerate(ids):
                self.where[sid] = (table, i)
            self.updated[table] = array("q", [0] * len(ids))
        # eager side tables: (sys_id, task table, task idx, approver user, state, created, updated)
        self.approvals: list[tuple[str, str, int, int, str, int, int]] = []
        self.task_ci: list[
            tuple[str, str, int, int, int]
        ] = []  # (sys_id, table, idx, ci idx, updated)
        self.by_task: dict[str, list[int]] = {}
        self.ci_by_task: dict[str, list[int]] = {}
        for table in ("cmdb_ci", *TASK_TABLES):
            for i in range(self.counts[table]):
                sc, extra = self._plan(table, i)
                self.updated[table][i] = sc.updated
                if table in ("change_request", "sc_req_item"):
                    for k, a in enumerate(sc.approvals):
                        sid = hexid(self.seed, "sysapproval_approver", table, i, k)
                        row = (
                            sid,
                            table,
                            i,
                            a.approver,
                            {"pending": "requested"}.get(a.decision, a.decision),
                            a.created_at,
                            a.decided_at or a.created_at,
                        )
                        self.by_task.setdefault(self.sys_ids[table][i], []).append(
                            len(self.approvals)
                        )
                        self.approvals.append(row)
                if table in ("change_request", "incident"):
                    cis = extra["cis"] if table == "change_request" else extra["cis"][1:]
                    for k, ci in enumerate(cis):
                        if ci < 0:
                            continue
                        sid = hexid(self.seed, "task_ci", table, i, k)
                        self.ci_by_task.setdefault(self.sys_ids[table][i], []).append(
                            len(self.task_ci)
                        )
                        self.task_ci.append((sid, table, i, ci, sc.created + 60_000))
        for k, row in enumerate(self.approvals):
            self.where[row[0]] = ("sysapproval_approver", k)
        for k, link in enumerate(self.task_ci):
            self.where[link[0]] = ("task_ci", k)
        for u in ds.users:
            self.where[u.sys_id] = ("sys_user", u.index)
        for g in ds.groups:
            self.where[g.sys_id] = ("sys_user_group", g.index)
        self.choices = [
            {
                "sys_id": hexid(self.seed, "sys_choice", t, e, v),
                "name": t,
                "element": e,
                "value": v,
                "label": label,
                "language": "en",
                "inactive": "false",
                "sequence": str(k),
                "sys_updated_on": utc_text(ds.anchor - 400 * S.DAY),
            }
            for (t, e), values in CHOICES.items()
            for k, (v, label) in enumerate(values)
        ]
        self.overrides: dict[tuple[str, int], dict[str, str]] = {}
        self._dictionary: dict[bool, list[dict[str, str]]] = {}
        self.journal: list[dict[str, str]] = []
        self.deleted: set[tuple[str, int]] = set()
        """Tasks and CIs deleted through ``/_sandbox/mutate`` (their approvals and CI links go too)."""
        self.deleted_task_ci: set[int] = set()
        self.extra_updated = 0
        """The newest time an approval row was given alone (bumps sort after it)."""
        self._orders: dict[tuple[str, tuple[tuple[str, bool], ...]], list[int]] = {}
        self._order_keys: dict[tuple[str, tuple[tuple[str, bool], ...]], list[str]] = {}
        """The first order field's value along each cached order (for bisecting keyset pages)."""

    # -- generation ------------------------------------------------------------------
    def _plan(self, table: str, idx: int) -> tuple[S.Scenario, dict[str, Any]]:
        rng = random.Random(f"{self.seed}:snow:{table}:{idx}")
        anchor = self.ds.anchor
        if table == "incident":
            sc = S.incident(rng, anchor, hot_share=0.03)
        elif table == "change_request":
            sc = S.change(rng, anchor)
        elif table == "problem":
            sc = S.problem(rng, anchor)
        elif table == "sc_req_item":
            sc = S.request(rng, anchor, with_approvals_share=0.3)
        else:
            sc = S.ci(rng, anchor)
        n_ci = self.counts["cmdb_ci"]
        cis = []
        for _ in range(sc.ci_count if table in ("incident", "change_request", "problem") else 0):
            cis.append(rng.choice(self.hot_cis) if sc.hot_ci else rng.randrange(n_ci))
        if cis and rng.random() < 0.03:
            cis[0] = -1  # a reference to a CI that is not in cmdb_ci (CFG003)
            sc.violations.add("CFG003")
        extra = {
            "cis": cis,
            "ci_class": rng.choice(CI_CLASSES),
            "subcat": rng.randrange(1000),
            "problem": rng.randrange(max(1, self.counts.get("problem", 1))),
        }
        return sc, extra

    def table_size(self, table: str) -> int:
        if table in self.sys_ids:
            return len(self.sys_ids[table])
        return {
            "sysapproval_approver": len(self.approvals),
            "task_ci": len(self.task_ci),
            "sys_user": len(self.ds.users),
            "sys_user_group": len(self.ds.groups),
            "sys_choice": len(self.choices),
            "sys_journal_field": len(self.journal),
            "sys_dictionary": len(self.dictionary_rows()),
        }.get(table, 0)

    def tables(self) -> list[str]:
        return [
            *self.sys_ids,
            "sysapproval_approver",
            "task_ci",
            "sys_user",
            "sys_user_group",
            "sys_choice",
            "sys_journal_field",
            "sys_dictionary",
        ]

    def hidden(self, table: str, idx: int) -> bool:
        """Rows an ACL hides from the API user (returned as ``{}`` in lists)."""
        if table not in self.sys_ids or self.hidden_share <= 0:
            return False
        return int(self.sys_ids[table][idx][:6], 16) % 100_000 < self.hidden_share * 100_000

    def row(self, table: str, idx: int) -> dict[str, str]:
        """The full row with raw values."""
        if table in TASK_TABLES:
            out = self._task_row(table, idx)
        elif table == "cmdb_ci":
            out = self._ci_row(idx)
        elif table == "sysapproval_approver":
            sid, ttable, tidx, approver, state, created, updated = self.approvals[idx]
            task = self.sys_ids[ttable][tidx]
            out = {
                "sys_id": sid,
                "sysapproval": task,
                "document_id": task,
                "source_table": ttable,
                "approver": self.ds.users[approver].sys_id,
                "state": state,
                "comments": "",
                "group": "",
                "sys_created_on": utc_text(created),
                "sys_updated_on": utc_text(updated),
                "sys_created_by": "system",
                "sys_updated_by": self.ds.users[approver].user_name,
            }
        elif table == "task_ci":
            sid, ttable, tidx, ci, ms = self.task_ci[idx]
            out = {
                "sys_id": sid,
                "task": self.sys_ids[ttable][tidx],
                "ci_item": self.sys_ids["cmdb_ci"][ci],
                "applied": "false",
                "sys_created_on": utc_text(ms),
                "sys_updated_on": utc_text(ms),
            }
        elif table == "sys_user":
            u = self.ds.users[idx]
            out = {
                "sys_id": u.sys_id,
                "user_name": u.user_name,
                "name": u.name,
                "email": u.email,
                "time_zone": u.zone,
                "active": "true",
                "sys_updated_on": utc_text(self.ds.anchor - 500 * S.DAY),
            }
        elif table == "sys_user_group":
            g = self.ds.groups[idx]
            out = {
                "sys_id": g.sys_id,
                "name": g.name,
                "active": "true",
                "manager": self.ds.users[1 + idx % 10].sys_id,
                "sys_updated_on": utc_text(self.ds.anchor - 500 * S.DAY),
            }
        elif table == "sys_choice":
            out = dict(self.choices[idx])
        elif table == "sys_journal_field":
            out = dict(self.journal[idx])
        elif table == "sys_dictionary":
            out = dict(self.dictionary_rows()[idx])
        else:
            raise KeyError(table)
        with self.lock:
            over = self.overrides.get((table, idx))
            if over:
                out.update(over)
        return out

    def dictionary_rows(self) -> list[dict[str, str]]:
        """``sys_dictionary`` rows of the columns the sandbox's tables hold (raw values;
        ``internal_type`` references ``sys_glide_object`` by name)."""
        cached = self._dictionary.get(self.real_shapes)
        if cached is not None:
            return cached
        rows = []
        for table, columns in DICTIONARY.items():
            for element, (kind, length) in columns.items():
                if table == "change_request" and element == "cab_date_time":
                    if not self.real_shapes:
                        continue  # older releases: cab_date holds the time itself
                elif (table, element) == ("change_request", "cab_date") and self.real_shapes:
                    kind = "glide_date"
                rows.append(
                    {
                        "sys_id": hexid(self.seed, "sys_dictionary", table, element),
                        "name": table,
                        "element": element,
                        "internal_type": kind,
                        "max_length": str(length),
                        "column_label": element.replace("_", " ").capitalize(),
                        "active": "true",
                        "sys_updated_on": utc_text(self.ds.anchor - 600 * S.DAY),
                    }
                )
        self._dictionary[self.real_shapes] = rows
        return rows

    def _ref_user(self, index: int | None) -> str:
        return "" if index is None else self.ds.users[index].sys_id

    def _task_row(self, table: str, idx: int) -> dict[str, str]:
        sc, extra = self._plan(table, idx)
        prefix, start, _ = TASK_TABLES[table]
        users = self.ds.users
        t = utc_text
        cis = extra["cis"]
        ci_ref = ""
        if cis:
            ci_ref = (
                self.sys_ids["cmdb_ci"][cis[0]]
                if cis[0] >= 0
                else hexid(self.seed, "ghost-ci", table, idx)
            )
        done = sc.state in ("resolved", "closed")
        row = {
            "sys_id": self.sys_ids[table][idx],
            "number": f"{prefix}{start + idx:07d}",
            "sys_class_name": table,
            "short_description": f"{SERVICES[extra['subcat'] % len(SERVICES)]}: {sc.process.replace('_', ' ')} {idx}",
            "description": "",
            "state": STATE_CODE[table][sc.state],
            "active": "false" if done or sc.state == "cancelled" else "true",
            "priority": str(sc.priority) if sc.priority else "",
            "impact": str(min(3, max(1, (sc.priority or 3) - 1))),
            "urgency": str(min(3, max(1, (sc.priority or 3) - 1))),
            "assigned_to": self._ref_user(sc.assignee),
            "assignment_group": self.ds.groups[sc.group].sys_id if sc.group is not None else "",
            "opened_by": users[sc.requester].sys_id,
            "opened_at": t(sc.created),
            "sys_created_on": t(sc.created),
            "sys_created_by": users[sc.requester].user_name,
            "sys_updated_on": t(self.updated[table][idx]),
            "sys_updated_by": self._login(sc.assignee),
            "sys_mod_count": str(3 + idx % 9),
            "closed_at": t(sc.closed) if sc.closed else "",
            "closed_by": self._ref_user(sc.assignee) if sc.closed else "",
            "cmdb_ci": ci_ref,
            "work_notes": "",
            "comments": "",
            "sys_domain": "global",
            "approval": "not requested",
        }
        if table == "incident":
            row.update(
                {
                    "caller_id": users[sc.requester].sys_id,
                    "category": ["software", "hardware", "network", "inquiry"][idx % 4],
                    "resolved_at": t(sc.resolved)
                    if sc.resolved and sc.state != "cancelled"
                    else "",
                    "close_code": ("Solution provided" if sc.close_code else "") if done else "",
                    "close_notes": (NOTES[idx % len(NOTES)] if sc.close_notes else "")
                    if done
                    else "",
                    "major_incident_state": "accepted" if sc.major else "",
                    "problem_id": self.sys_ids["problem"][extra["problem"]]
                    if sc.major and sc.problem_link
                    else "",
                    "rfc": "",
                    "caused_by": "",
                    "made_sla": "false" if sc.sla_breached else "true",
                }
            )
        elif table == "change_request":
            approval = "not requested"
            if sc.approvals:
                decisions = {a.decision for a in sc.approvals}
                approval = (
                    "approved"
                    if "approved" in decisions
                    else "rejected"
                    if "rejected" in decisions
                    else "requested"
                )
            row.update(
                {
                    "type": sc.change_type,
                    "risk": ("4", "3", "2")[idx % 3] if sc.risk else "",
                    "impact": "2" if sc.impact else "",
                    "requested_by": users[sc.requester].sys_id,
                    "implementation_plan": "Drain traffic, apply the update, run health checks."
                    if sc.implementation_plan
                    else "",
                    "backout_plan": "Redeploy the previous version from the artifact store."
                    if sc.backout_plan
                    else "",
                    "test_plan": "Run smoke tests and watch the dashboards for 30 minutes."
                    if sc.test_plan
                    else "",
                    "start_date": t(sc.planned_start) if sc.planned_start else "",
                    "end_date": t(sc.planned_end) if sc.planned_end else "",
                    "work_start": t(sc.actual_start) if sc.actual_start else "",
                    "work_end": t(sc.actual_end) if sc.actual_end else "",
                    "close_code": {
                        "successful": "successful",
                        "successful_with_issues": "successful_issues",
                        "unsuccessful": "unsuccessful",
                    }.get(sc.outcome or "", "")
                    if sc.state == "closed"
                    else "",
                    "close_notes": ("Implemented as planned." if sc.close_notes else "")
                    if sc.state == "closed"
                    else "",
                    "cab_required": "true" if sc.cab_required else "false",
                    "cab_date": (
                        t(sc.planned_start - 2 * S.DAY)[:10]
                        if self.real_shapes
                        else t(sc.planned_start - 2 * S.DAY)
                    )
                    if sc.cab_date and sc.planned_start
                    else "",
                    **(
                        {
                            "cab_date_time": t(sc.planned_start - 2 * S.DAY)
                            if sc.cab_date and sc.planned_start
                            else ""
                        }
                        if self.real_shapes
                        else {}
                    ),
                    "review_date": t(sc.closed + S.DAY) if sc.review and sc.closed else "",
                    "review_comments": "PIR held with the CAB; actions recorded."
                    if sc.review
                    else "",
                    "review_status": "",
                    "approval": approval,
                    "phase": "requested",
                }
            )
        elif table == "problem":
            row.update(
                {
                    "state": ("101", "102", "103", "104")[idx % 4]
                    if sc.state == "in_progress"
                    else row["state"],
                    "cause_notes": "Connection pool exhausted under peak load."
                    if sc.root_cause
                    else "",
                    "fix_notes": "",
                    "workaround": "Restart the node and drain traffic."
                    if sc.workaround and sc.known_error
                    else "",
                    "known_error": "true" if sc.known_error else "false",
                    "resolved_at": t(sc.resolved)
                    if sc.resolved and sc.state in ("resolved", "closed")
                    else "",
                    "resolution_code": (
                        "canceled" if sc.state == "cancelled" else "fix_applied" if done else ""
                    ),
                }
            )
            if sc.state == "in_progress" and row["state"] == "101":
                row["state"] = "102"
        elif table == "sc_req_item":
            approval = "not requested"
            if sc.approval_required:
                approval = {"approved": "approved", "rejected": "rejected", "pending": "requested"}[
                    sc.approvals[0].decision
                ]
            row.update(
                {
                    "state": "4" if sc.state == "closed" and idx % 7 == 0 else row["state"],
                    "cat_item": hexid(self.seed, "cat_item", idx % 12),
                    "requested_for": users[sc.requester].sys_id,
                    "request": hexid(self.seed, "sc_request", idx),
                    "approval": approval,
                    "cmdb_ci": "",
                    "close_notes": (NOTES[idx % len(NOTES)] if sc.close_notes else "")
                    if done
                    else "",
                }
            )
        return row

    def _login(self, index: int | None) -> str:
        return "system" if index is None else self.ds.users[index].user_name

    def _ci_row(self, idx: int) -> dict[str, str]:
        sc, extra = self._plan("cmdb_ci", idx)
        cls = extra["ci_class"]
        kind = {
            "cmdb_ci_linux_server": "lnx",
            "cmdb_ci_win_server": "win",
            "cmdb_ci_app_server": "app",
            "cmdb_ci_db_instance": "db",
            "cmdb_ci_service": "svc",
            "cmdb_ci_netgear": "sw",
        }[cls]
        return {
            "sys_id": self.sys_ids["cmdb_ci"][idx],
            "name": f"{kind}-{['lon', 'fra', 'nyc', 'sgp'][idx % 4]}-{idx:05d}",
            "sys_class_name": cls,
            "install_status": INSTALL[sc.ci_status],
            "operational_status": "1" if sc.ci_status == "installed" else "2",
            "owned_by": self._ref_user(sc.assignee) if sc.owner else "",
            "assigned_to": self._ref_user(sc.assignee) if sc.owner and idx % 3 == 0 else "",
            "managed_by": self._ref_user(sc.assignee) if sc.owner and idx % 2 else "",
            "support_group": self.ds.groups[sc.group].sys_id
            if sc.support_group and sc.group is not None
            else "",
            "last_discovered": utc_text(sc.last_verified) if sc.last_verified else "",
            "ip_address": f"10.{idx % 250}.{(idx // 250) % 250}.{(idx * 7) % 250 + 1}",
            "asset_tag": f"P{100000 + idx}",
            "manufacturer": "",
            "sys_created_on": utc_text(sc.created),
            "sys_updated_on": utc_text(self.updated["cmdb_ci"][idx]),
            "sys_updated_by": "discovery",
        }

    def violations(self, table: str, idx: int) -> set[str]:
        return self._plan(table, idx)[0].violations

    # -- cheap fields, ordering, writes -----------------------------------------------
    def cheap(self, table: str, idx: int, field: str) -> str | None:
        """``sys_id`` / ``sys_updated_on`` (and a task's class, an approval's or task_ci's
        parent) without building the row: keyset paging and dot-walked conditions."""
        if table in self.sys_ids:
            if field == "sys_id":
                return self.sys_ids[table][idx]
            if field == "sys_updated_on":
                return utc_text(self.updated[table][idx])
            if field == "sys_class_name" and table in TASK_TABLES:
                return table
        elif table == "sysapproval_approver" and field in (
            "sys_id",
            "sysapproval",
            "document_id",
            "source_table",
        ):
            row = self.approvals[idx]
            if field == "source_table":
                return row[1]
            return row[0] if field == "sys_id" else self.sys_ids[row[1]][row[2]]
        elif table == "task_ci" and field in ("sys_id", "task"):
            link = self.task_ci[idx]
            return link[0] if field == "sys_id" else self.sys_ids[link[1]][link[2]]
        return None

    def cheap_as_written(self, table: str, idx: int, field: str) -> str | None:
        """:meth:`cheap`, unless a PATCH wrote to the row (then only :meth:`row` knows)."""
        return None if (table, idx) in self.overrides else self.cheap(table, idx, field)

    def field(self, table: str, idx: int, name: str) -> str | None:
        """One column of a row as :meth:`row` gives it (None: the row has no such column),
        without building the row where :meth:`cheap_as_written` knows the column."""
        cheap = self.cheap_as_written(table, idx, name)
        return cheap if cheap is not None else self.row(table, idx).get(name)

    def lookup(self, sys_id: str) -> tuple[str, int] | None:
        found = self.where.get(sys_id)
        return None if found is None or self.gone(*found) else found

    def gone(self, table: str, idx: int) -> bool:
        """Deleted: the row itself, or (approvals, CI links) its task or CI."""
        if not self.deleted and not self.deleted_task_ci:
            return False
        if table == "sysapproval_approver":
            row = self.approvals[idx]
            return (row[1], row[2]) in self.deleted
        if table == "task_ci":
            _sid, ttable, tidx, ci, _ = self.task_ci[idx]
            return (
                idx in self.deleted_task_ci
                or (ttable, tidx) in self.deleted
                or ("cmdb_ci", ci) in self.deleted
            )
        return (table, idx) in self.deleted

    def bump(self, table: str, idx: int) -> None:
        """Move a task or CI's ``sys_updated_on`` past every other row (a concurrent edit)."""
        with self.lock:
            newest = max(
                [max(a) if len(a) else 0 for a in self.updated.values()] + [self.extra_updated]
            )
            self.updated[table][idx] = max(self.ds.clock(), newest + 1000) // 1000 * 1000
            self._orders.clear()
            self._order_keys.clear()

    def write(
        self, table: str, idx: int, values: dict[str, str], *, who: str = "svc_ticketlint"
    ) -> None:
        with self.lock:
            sys_id = self.sys_ids[table][idx]
            for name, value in values.items():
                if name in ("work_notes", "comments"):
                    self.journal.append(
                        {
                            "sys_id": hexid(self.seed, "journal", len(self.journal)),
                            "element": name,
                            "element_id": sys_id,
                            "name": table,
                            "value": str(value),
                            "sys_created_on": utc_text(self.ds.clock()),
                            "sys_created_by": who,
                        }
                    )
                else:
                    self.overrides.setdefault((table, idx), {})[name] = str(value)
            self.bump(table, idx)
