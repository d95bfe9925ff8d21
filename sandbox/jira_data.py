"""Seeded Jira Service Management data: field list, statuses, issues, changelogs, approvals.

Issues are built lazily by index (``issue(idx)``) in Jira Cloud REST v3 shapes (ADF for
rich text; ``v2=True`` gives plain strings as REST v2 does). Timestamps are rendered in the
API user's time zone, as Jira renders them for the caller. Writes (labels, comments,
``/_sandbox/mutate``) are overlays on top of the generated issue.
"""

from __future__ import annotations

import bisect
import random
import threading
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ticketlint.sandbox import scenario as S
from ticketlint.sandbox.data import SERVICES, hexid, jira_text

if TYPE_CHECKING:
    from ticketlint.sandbox.data import Dataset

TYPES = [
    "Incident",
    "Change",
    "Problem",
    "Service request",
    "Service request with approvals",
    "Post-incident review",
]
TYPE_WEIGHTS = [42, 25, 8, 15, 6]
PIR = 5
CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = [  # name, category
    ("Open", "new"),
    ("Waiting for support", "new"),
    ("Waiting for approval", "new"),
    ("Work in progress", "indeterminate"),
    ("In progress", "indeterminate"),
    ("Escalated", "indeterminate"),
    ("Pending", "indeterminate"),
    ("Waiting for customer", "indeterminate"),
    ("Resolved", "done"),
    ("Completed", "done"),
    ("Closed", "done"),
    ("Canceled", "done"),
    ("Declined", "done"),
    ("Done", "done"),
    ("Under investigation", "indeterminate"),
    ("Root cause identified", "indeterminate"),
    ("Planning", "indeterminate"),
    ("Awaiting approval", "indeterminate"),
    ("Awaiting CAB approval", "indeterminate"),
    ("Awaiting implementation", "indeterminate"),
    ("Implementing", "indeterminate"),
    ("Review", "indeterminate"),
    ("Failed", "done"),
]
STATUS_IDS = {name: str(10000 + i) for i, (name, _) in enumerate(STATUSES)}
STATUS_CATEGORY = dict(STATUSES)
STATE_STATUS = {
    "incident": {
        "new": "Open",
        "in_progress": "Work in progress",
        "on_hold": "Pending",
        "resolved": "Resolved",
        "closed": "Closed",
        "cancelled": "Canceled",
    },
    "service_request": {
        "new": "Waiting for support",
        "in_progress": "In progress",
        "resolved": "Resolved",
        "closed": "Closed",
        "cancelled": "Canceled",
    },
    "problem": {
        "new": "Open",
        "in_progress": "Under investigation",
        "resolved": "Resolved",
        "closed": "Closed",
        "cancelled": "Canceled",
    },
    "change": {
        "new": "Open",
        "assess": "Planning",
        "authorize": "Awaiting approval",
        "scheduled": "Awaiting implementation",
        "implement": "Implementing",
        "review": "Review",
        "closed": "Completed",
        "cancelled": "Canceled",
    },
}
PRIORITIES = {1: "Highest", 2: "High", 3: "Medium", 4: "Low", 5: "Lowest"}
_SELECT = "com.atlassian.jira.plugin.system.customfieldtypes:select"
_TEXTAREA = "com.atlassian.jira.plugin.system.customfieldtypes:textarea"
_DATETIME = "com.atlassian.jira.plugin.system.customfieldtypes:datetime"
CUSTOM_FIELDS = [  # display name, schema type, custom type, items
    ("Change type", "option", _SELECT, None),
    ("Change risk", "option", _SELECT, None),
    ("Impact", "option", _SELECT, None),
    ("Implementation plan", "string", _TEXTAREA, None),
    ("Backout plan", "string", _TEXTAREA, None),
    ("Test plan", "string", _TEXTAREA, None),
    ("Planned start", "datetime", _DATETIME, None),
    ("Planned end", "datetime", _DATETIME, None),
    (
        "Major incident",
        "string",
        "com.atlassian.servicedesk.incident-management-plugin:major-incident-entity-field-cftype",
        None,
    ),
    ("Root cause", "string", _TEXTAREA, None),
    ("Workaround", "string", _TEXTAREA, None),
    ("Approvals", "sd-approvals", "com.atlassian.servicedesk.approvals-plugin:sd-approvals", None),
    (
        "Affected services",
        "array",
        "com.atlassian.jira.plugins.service-entity:service-entity-field-cftype",
        "service-entity-field-cftype",
    ),
    (
        "Time to resolution",
        "sd-servicelevelagreement",
        "com.atlassian.servicedesk:sd-sla-field",
        None,
    ),
    ("Team", "team", "com.atlassian.jira.plugin.system.customfieldtypes:atlassian-team", None),
    ("Resolution notes", "string", _TEXTAREA, None),
    ("Request Type", "sd-customerrequesttype", "com.atlassian.servicedesk:vp-origin", None),
    ("Request participants", "array", "com.atlassian.servicedesk:sd-request-participants", "user"),
    (
        "Time to first response",
        "sd-servicelevelagreement",
        "com.atlassian.servicedesk:sd-sla-field",
        None,
    ),
    ("Satisfaction", "sd-feedback", "com.atlassian.servicedesk:sd-request-feedback", None),
    ("Start date", "date", "com.atlassian.jira.plugin.system.customfieldtypes:datepicker", None),
]
SYSTEM_FIELDS = [  # id, name, schema type, navigable
    ("summary", "Summary", "string"),
    ("status", "Status", "status"),
    ("issuetype", "Issue Type", "issuetype"),
    ("project", "Project", "project"),
    ("priority", "Priority", "priority"),
    ("assignee", "Assignee", "user"),
    ("reporter", "Reporter", "user"),
    ("created", "Created", "datetime"),
    ("updated", "Updated", "datetime"),
    ("resolution", "Resolution", "resolution"),
    ("resolutiondate", "Resolved", "datetime"),
    ("labels", "Labels", "array"),
    ("issuelinks", "Linked Issues", "array"),
    ("comment", "Comment", "comments-page"),
    ("description", "Description", "string"),
]
LINK_PIR = {
    "id": "10300",
    "name": "Post-Incident Review",
    "inward": "is reviewed by",
    "outward": "reviews",
}
LINK_PROBLEM = {
    "id": "10301",
    "name": "Problem/Incident",
    "inward": "is caused by",
    "outward": "causes",
}
NOTES = [
    "Restarted the service and confirmed recovery with the customer.",
    "Root cause traced to an expired certificate; renewed and monitored for 24h.",
    "Rolled out the fix; error rate back to baseline.",
    "Access granted as requested; ticket verified.",
    "Replaced the failed disk; RAID rebuild completed.",
    "Configuration corrected and documented in the runbook.",
]
SUMMARIES = {
    "incident": [
        "{svc} is returning 5xx errors",
        "Users cannot log in to {svc}",
        "{svc} slow for EU users",
        "Disk full on {svc} host",
        "Certificate expired for {svc}",
        "{svc} timeouts after deploy",
    ],
    "change": [
        "Upgrade {svc} to the next minor release",
        "Rotate TLS certificates for {svc}",
        "Patch OS on {svc} hosts",
        "Migrate {svc} database to new cluster",
        "Scale out {svc}",
    ],
    "problem": [
        "Recurring outages of {svc}",
        "Memory leak in {svc}",
        "Intermittent DNS failures affecting {svc}",
    ],
    "service_request": [
        "Access to {svc}",
        "New laptop for a starter",
        "Mailbox quota increase",
        "VPN token for contractor",
        "Software install: {svc} client",
    ],
}


@dataclass
class Plan:
    type: int
    sc: S.Scenario
    summary: str
    services: list[str]
    noise: int  # extra non-status histories (some exceed the 40 embedded in a search)
    comments: int
    label_known_error: bool


def adf(text: str) -> dict[str, Any]:
    """Atlassian Document Format for one paragraph, as REST v3 returns rich text."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


SYSTEM_PREFIX = "[System] "
SEARCH_COMMENT_LIMIT = 1
"""Comments a search returns per issue in the real-shapes mode (``total`` says how many)."""


class JiraData:
    real_shapes: bool = False
    """The shapes of a real JSM Cloud site (issue 19), off by default so the seeded data
    and its expectations stay as they are: ITSM issue types named "[System] Incident" and
    so on, searches that truncate comment lists to :data:`SEARCH_COMMENT_LIMIT` (the list
    endpoint gives them all), and closed incidents without ``resolutiondate`` one in four
    (their closing time is only in the history)."""

    def __init__(self, ds: Dataset, n: int) -> None:
        self.ds, self.n_main = ds, n
        self.seed = ds.seed
        self.zone = ZoneInfo(ds.users[0].zone)
        self.lock = threading.RLock()
        rng = random.Random(f"{self.seed}:jira-fields")
        ids = rng.sample(
            range(10000 + (self.seed * 37) % 400, 10000 + (self.seed * 37) % 400 + 90),
            len(CUSTOM_FIELDS),
        )
        self.field_ids = {
            name: f"customfield_{i}" for (name, *_), i in zip(CUSTOM_FIELDS, ids, strict=False)
        }
        self.hot_services = SERVICES[: 2 + n // 400]
        self.types = bytearray()
        self.updated = array("q")
        self.keynum = array("i")
        self.links: dict[
            int, list[tuple[dict[str, str], str, int]]
        ] = {}  # idx -> (type, inward|outward, other)
        self.pir_target: list[int] = []
        counters = {"OPS": 0, "CHG": 0}
        majors: list[int] = []
        problems: list[int] = []
        for i in range(n):
            plan = self._plan(i)
            self._append(plan, counters)
            if plan.sc.process == "incident" and plan.sc.major and plan.sc.problem_link:
                majors.append(i)
            if plan.sc.process == "problem":
                problems.append(i)
            if plan.sc.review:
                self.pir_target.append(i)
        for i in majors:
            if problems:
                p = problems[int(hexid(self.seed, i, n=6), 16) % len(problems)]
                self.links.setdefault(i, []).append((LINK_PROBLEM, "inward", p))
                self.links.setdefault(p, []).append((LINK_PROBLEM, "outward", i))
        for j, target in enumerate(self.pir_target):
            idx = n + j
            self._append(self._plan(idx), counters)
            self.links.setdefault(target, []).append((LINK_PIR, "inward", idx))
            self.links.setdefault(idx, []).append((LINK_PIR, "outward", target))
        self.key_index = {self.key(i): i for i in range(len(self.types))}
        self.overrides: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.next_comment = 9_000_000
        self.deleted: set[int] = set()
        """Issues deleted through ``/_sandbox/mutate``: gone from search and GET."""
        self.moved: dict[int, str] = {}
        """Issues moved to another project (out of a ``project in (...)`` scope)."""
        self._orders: dict[tuple[tuple[str, bool], ...], list[tuple[Any, ...]]] = {}

    # -- generation ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.types)

    def _append(self, plan: Plan, counters: dict[str, int]) -> None:
        project = "CHG" if plan.type == 1 else "OPS"
        counters[project] += 1
        self.types.append(plan.type)
        self.updated.append(plan.sc.updated)
        self.keynum.append(counters[project])

    def _plan(self, idx: int) -> Plan:
        rng = random.Random(f"{self.seed}:jira:{idx}")
        anchor = self.ds.anchor
        if idx >= self.n_main:
            return self._pir_plan(idx, rng)
        t = rng.choices(range(5), TYPE_WEIGHTS)[0]
        if t == 0:
            sc = S.incident(rng, anchor, hot_share=0.04)
        elif t == 1:
            sc = S.change(rng, anchor)
        elif t == 2:
            sc = S.problem(rng, anchor)
        else:
            sc = S.request(rng, anchor, with_approvals_share=1.0 if t == 4 else 0.0)
        n_svc = sc.ci_count
        services = [rng.choice(self.hot_services if sc.hot_ci else SERVICES) for _ in range(n_svc)]
        summary = rng.choice(SUMMARIES[sc.process]).format(
            svc=services[0] if services else rng.choice(SERVICES)
        )
        noise = rng.randrange(41, 48) if rng.random() < 0.03 else rng.randrange(0, 4)
        comments = 0 if not sc.close_notes else rng.randrange(0, 3)
        return Plan(
            t,
            sc,
            summary,
            list(dict.fromkeys(services)),
            noise,
            comments,
            sc.process == "problem" and sc.known_error,
        )

    def _pir_plan(self, idx: int, rng: random.Random) -> Plan:
        target = self._plan(self.pir_target[idx - self.n_main])
        t = target.sc
        end = t.closed or t.resolved or t.updated
        created = min(end + S.HOUR, self.ds.anchor - 3 * S.HOUR)
        resolved = min(created + rng.randrange(S.HOUR, 3 * S.DAY), self.ds.anchor - 2 * S.HOUR)
        sc = S.Scenario(
            "review",
            "closed",
            created,
            resolved + 60_000,
            resolved=resolved,
            closed=resolved,
            requester=t.assignee or 11,
            assignee=t.assignee,
            group=t.group,
            ci_count=0,
        )
        return Plan(PIR, sc, f"PIR: {target.summary}", [], 0, 1, False)

    def key(self, idx: int) -> str:
        return f"{'CHG' if self.types[idx] == 1 else 'OPS'}-{self.keynum[idx]}"

    def issue_id(self, idx: int) -> str:
        return str(10000 + idx)

    def index_of(self, key_or_id: str) -> int | None:
        if key_or_id.isdigit():
            idx: int | None = int(key_or_id) - 10000
            if not 0 <= idx < len(self.types):  # type: ignore[operator]
                return None
        else:
            idx = self.key_index.get(key_or_id.upper())
        return None if idx is None or idx in self.deleted else idx

    def type_name(self, idx: int) -> str:
        return self.type_label(self.types[idx])

    def type_label(self, t: int) -> str:
        """The site's name of type ``t``: "[System] Incident" in the real-shapes mode."""
        return SYSTEM_PREFIX + TYPES[t] if self.real_shapes else TYPES[t]

    def issue_types(self) -> list[dict[str, Any]]:
        """``GET /rest/api/2/issuetype``: every type the site has (a "Task" too)."""
        out = [self.issuetype(t) for t in range(len(TYPES))]
        base = self.ds.base_url
        out.append(
            {
                "self": f"{base}/rest/api/3/issuetype/10099",
                "id": "10099",
                "description": "A small piece of work.",
                "iconUrl": f"{base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/10318?size=medium",
                "name": "Task",
                "untranslatedName": "Task",
                "subtask": False,
                "avatarId": 10318,
                "hierarchyLevel": 0,
            }
        )
        return out

    def notes_in_comments(self, idx: int, plan: Plan) -> bool:
        """Real-shapes mode: half the incidents with several comments leave "Resolution
        notes" empty, so the last comment (beyond a search's truncated list) decides INC001."""
        return (
            self.real_shapes
            and plan.sc.process == "incident"
            and plan.comments >= 2
            and idx % 2 == 0
        )

    def _empty_last_comment(self, plan: Plan) -> bool:
        return (
            self.real_shapes
            and plan.sc.process == "incident"
            and plan.comments >= 2
            and not plan.sc.close_notes
            and plan.sc.state in ("resolved", "closed")
        )

    def hides_resolution_date(self, idx: int) -> bool:
        """Real-shapes mode: a closed incident without ``resolutiondate`` (one in four)."""
        return self.real_shapes and self.types[idx] == 0 and idx % 4 == 1

    def project(self, idx: int) -> str:
        if idx in self.moved:
            return self.moved[idx]
        return "CHG" if self.types[idx] == 1 else "OPS"

    # -- shapes ----------------------------------------------------------------------
    def time(self, ms: int | None) -> str | None:
        return None if ms is None else jira_text(ms, self.zone)

    def user(self, index: int | None, *, v2: bool = False) -> dict[str, Any] | None:
        if index is None:
            return None
        u = self.ds.users[index]
        base = self.ds.base_url
        avatar = f"https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/initials/{u.name[:1]}{u.name.split()[-1][:1]}-5.png"
        return {
            "self": f"{base}/rest/api/{2 if v2 else 3}/user?accountId={u.account_id}",
            "accountId": u.account_id,
            "emailAddress": u.email,
            "avatarUrls": {f"{s}x{s}": f"{avatar}?size={s}&s={s}" for s in (48, 24, 16, 32)},
            "displayName": u.name,
            "active": True,
            "timeZone": u.zone,
            "accountType": "atlassian",
        }

    def status(self, name: str) -> dict[str, Any]:
        base = self.ds.base_url
        cat = CATEGORIES[STATUS_CATEGORY[name]]
        return {
            "self": f"{base}/rest/api/3/status/{STATUS_IDS[name]}",
            "description": "",
            "iconUrl": f"{base}/images/icons/statuses/generic.png",
            "name": name,
            "id": STATUS_IDS[name],
            "statusCategory": {"self": f"{base}/rest/api/3/statuscategory/{cat['id']}", **cat},
        }

    def issuetype(self, t: int) -> dict[str, Any]:
        base = self.ds.base_url
        return {
            "self": f"{base}/rest/api/3/issuetype/{10100 + t}",
            "id": str(10100 + t),
            "description": "",
            "iconUrl": f"{base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/{10500 + t}?size=medium",
            "name": self.type_label(t),
            "untranslatedName": self.type_label(t),
            "subtask": False,
            "avatarId": 10500 + t,
            "hierarchyLevel": 0,
        }

    def _status_name(self, plan: Plan) -> str:
        sc = plan.sc
        if plan.type == PIR:
            return "Done"
        if sc.process == "change" and sc.state == "closed" and sc.outcome == "unsuccessful":
            return "Failed"
        if sc.process == "service_request" and sc.state == "new" and sc.approvals:
            return "Waiting for approval"
        if sc.process == "problem" and sc.state == "in_progress" and sc.root_cause:
            return "Root cause identified"
        return STATE_STATUS[sc.process][sc.state]

    def _resolution(self, plan: Plan) -> dict[str, Any] | None:
        sc = plan.sc
        if sc.state not in ("resolved", "closed", "cancelled"):
            return None
        if sc.state == "cancelled":
            name = "Won't Do"
        elif not sc.close_code:
            return None
        elif sc.process == "change" and sc.outcome == "successful_with_issues":
            name = "Completed with issues"
        elif sc.process == "change" and sc.outcome == "unsuccessful":
            name = "Failed"
        else:
            name = "Done"
        rid = {
            "Done": "10000",
            "Won't Do": "10001",
            "Completed with issues": "10002",
            "Failed": "10003",
        }[name]
        return {
            "self": f"{self.ds.base_url}/rest/api/3/resolution/{rid}",
            "id": rid,
            "description": "",
            "name": name,
        }

    def _text(self, text: str | None, v2: bool) -> Any:
        if text is None:
            return None
        return text if v2 else adf(text)

    def _option(self, field: str, value: str) -> dict[str, Any]:
        oid = str(10400 + int(hexid(field, value, n=4), 16) % 500)
        return {
            "self": f"{self.ds.base_url}/rest/api/3/customFieldOption/{oid}",
            "value": value,
            "id": oid,
        }

    def _approvals(self, idx: int, plan: Plan) -> list[dict[str, Any]]:
        out = []
        base = self.ds.base_url
        by_final: dict[str, list[S.Approval]] = {}
        for a in plan.sc.approvals:
            by_final.setdefault("one", []).append(a)
        for n, group in enumerate(by_final.values()):
            decisions = {a.decision for a in group}
            final = (
                "declined"
                if "rejected" in decisions
                else "pending"
                if "pending" in decisions
                else "approved"
            )
            completed = (
                max((a.decided_at for a in group if a.decided_at), default=None)
                if final != "pending"
                else None
            )
            approval_id = str(idx * 3 + n + 1)
            entry: dict[str, Any] = {
                "id": approval_id,
                "name": "Change approval" if plan.sc.process == "change" else "Approve request",
                "finalDecision": final,
                "canAnswerApproval": False,
                "approvers": [
                    {
                        "approver": {
                            k: v
                            for k, v in (self.user(a.approver) or {}).items()
                            if k
                            in (
                                "accountId",
                                "displayName",
                                "emailAddress",
                                "self",
                                "active",
                                "timeZone",
                            )
                        },
                        "approverDecision": {"rejected": "declined"}.get(a.decision, a.decision),
                    }
                    for a in group
                ],
                "createdDate": self._date_dto(group[0].created_at),
                "_links": {
                    "self": f"{base}/rest/servicedeskapi/request/{self.issue_id(idx)}/approval/{approval_id}"
                },
            }
            if completed:
                entry["completedDate"] = self._date_dto(completed)
            out.append(entry)
        return out

    def _date_dto(self, ms: int) -> dict[str, Any]:
        text = jira_text(ms, self.zone)
        iso = text[:19] + text[23:]
        return {
            "iso8601": iso,
            "jira": text,
            "friendly": text[:16].replace("T", " "),
            "epochMillis": ms,
        }

    def _sla(self, plan: Plan) -> dict[str, Any]:
        sc = plan.sc
        goal = S.TARGET_HOURS.get(sc.priority or 3, 24) * S.HOUR
        base = self.ds.base_url

        def dur(ms: int) -> dict[str, Any]:
            return {"millis": ms, "friendly": f"{ms // S.HOUR}h {(ms % S.HOUR) // 60000}m"}

        sla: dict[str, Any] = {
            "id": "2",
            "name": "Time to resolution",
            "_links": {"self": f"{base}/rest/servicedeskapi/request/0/sla/2"},
            "completedCycles": [],
        }
        if sc.resolved is not None:
            elapsed = sc.resolved - sc.created
            sla["completedCycles"].append(
                {
                    "startTime": self._date_dto(sc.created),
                    "stopTime": self._date_dto(sc.resolved),
                    "breached": sc.sla_breached,
                    "goalDuration": dur(goal),
                    "elapsedTime": dur(elapsed),
                    "remainingTime": dur(goal - elapsed),
                }
            )
        else:
            sla["ongoingCycle"] = {
                "startTime": self._date_dto(sc.created),
                "breachTime": self._date_dto(sc.created + goal),
                "breached": sc.sla_breached,
                "paused": False,
                "withinCalendarHours": True,
                "goalDuration": dur(goal),
                "elapsedTime": dur(0),
                "remainingTime": dur(goal),
            }
        return sla

    def _comment(
        self, idx: int, cid: int, author: int, ms: int, text: str, v2: bool
    ) -> dict[str, Any]:
        base = self.ds.base_url
        return {
            "self": f"{base}/rest/api/{2 if v2 else 3}/issue/{self.issue_id(idx)}/comment/{cid}",
            "id": str(cid),
            "author": self.user(author, v2=v2),
            "body": self._text(text, v2),
            "updateAuthor": self.user(author, v2=v2),
            "created": self.time(ms),
            "updated": self.time(ms),
            "jsdPublic": True,
        }

    def transitions(self, idx: int) -> list[dict[str, Any]]:
        """What ``expand=transitions`` adds to an issue: the moves its workflow allows
        from the current status (every other status of the process, as Jira lists them)."""
        plan = self._plan(idx)
        current = self._status_name(plan)
        process = "incident" if plan.type == PIR else plan.sc.process
        targets = dict.fromkeys(STATE_STATUS[process].values())
        return [
            {
                "id": str(11 + n),
                "name": f"To {name}",
                "to": self.status(name),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            for n, name in enumerate(targets)
            if name != current
        ]

    def comment_list(self, idx: int, *, v2: bool = False) -> list[dict[str, Any]]:
        plan = self._plan(idx)
        sc = plan.sc
        out = []
        for k in range(plan.comments):
            ms = min(sc.created + (k + 1) * S.HOUR, sc.updated)
            text = (
                NOTES[(idx + k) % len(NOTES)]
                if k == plan.comments - 1
                else "Investigating, will update shortly."
            )
            if k == plan.comments - 1 and self._empty_last_comment(plan):
                text = ""  # real shapes: the last comment, the one that counts, is empty
            out.append(
                self._comment(idx, 10000 + idx * 10 + k, sc.assignee or sc.requester, ms, text, v2)
            )
        with self.lock:
            for c in self.comments.get(idx, []):
                out.append(self._comment(idx, c["id"], 0, c["ms"], c["text"], v2))
        return out

    def issue(self, idx: int, *, v2: bool = False) -> dict[str, Any]:
        """The full issue (every field); the API layer picks the requested ones."""
        plan = self._plan(idx)
        sc = plan.sc
        base = self.ds.base_url
        fid = self.field_ids
        iid = self.issue_id(idx)
        status = self._status_name(plan)
        proj = self.project(idx)
        comments = self.comment_list(idx, v2=v2)
        group = self.ds.groups[sc.group] if sc.group is not None else None
        fields: dict[str, Any] = {
            "summary": plan.summary,
            "status": self.status(status),
            "issuetype": self.issuetype(plan.type),
            "project": {
                "self": f"{base}/rest/api/3/project/{10000 + (proj == 'CHG')}",
                "id": str(10000 + (proj == "CHG")),
                "key": proj,
                "name": "IT Operations" if proj == "OPS" else "Change Management",
                "projectTypeKey": "service_desk",
                "simplified": False,
            },
            "priority": (
                {
                    "self": f"{base}/rest/api/3/priority/{sc.priority}",
                    "iconUrl": f"{base}/images/icons/priorities/{PRIORITIES[sc.priority].lower()}.svg",
                    "name": PRIORITIES[sc.priority],
                    "id": str(sc.priority),
                }
                if sc.priority
                else None
            ),
            "assignee": self.user(sc.assignee, v2=v2),
            "reporter": self.user(sc.requester, v2=v2),
            "created": self.time(sc.created),
            "updated": self.time(self.updated[idx]),
            "resolution": self._resolution(plan),
            "resolutiondate": self.time(sc.resolved)
            if sc.state in ("resolved", "closed", "cancelled")
            and not (sc.state == "closed" and self.hides_resolution_date(idx))
            else None,
            "labels": ["known-error"] if plan.label_known_error else [],
            "issuelinks": self._links(idx),
            "comment": {
                "comments": comments,
                "self": f"{base}/rest/api/3/issue/{iid}/comment",
                "maxResults": len(comments),
                "total": len(comments),
                "startAt": 0,
            },
            "description": self._text(f"{plan.summary}. Reported via the portal.", v2),
            fid["Team"]: (
                {
                    "id": group.team_id,
                    "name": group.name,
                    "avatarUrl": "",
                    "isVisible": True,
                    "isVerified": False,
                    "title": group.name,
                    "isShared": True,
                }
                if group
                else None
            ),
            fid["Request Type"]: None,
            fid["Request participants"]: [],
            fid["Satisfaction"]: None,
            fid["Start date"]: None,
            fid["Time to first response"]: None,
        }
        p = sc.process
        services = [
            {"id": f"ari:cloud:graph::service/{hexid(self.seed, 'svc', s, n=8)}", "name": s}
            for s in plan.services
        ]
        resolved_like = sc.state in ("resolved", "closed")
        notes = NOTES[idx % len(NOTES)] if (sc.close_notes and resolved_like) else None
        if p in ("incident", "problem", "change", "service_request"):
            fields[fid["Affected services"]] = services if p != "service_request" else []
        if p == "incident":
            fields[fid["Major incident"]] = "MAJOR_INCIDENT" if sc.major else None
            fields[fid["Time to resolution"]] = self._sla(plan)
            fields[fid["Resolution notes"]] = self._text(
                None if self.notes_in_comments(idx, plan) else notes, v2
            )
            fields[fid["Impact"]] = self._option(
                "Impact", "Significant / Large" if sc.priority in (1, 2) else "Minor / Localized"
            )
        elif p == "service_request":
            fields[fid["Resolution notes"]] = self._text(notes, v2)
            fields[fid["Time to resolution"]] = self._sla(plan)
            fields[fid["Approvals"]] = self._approvals(idx, plan) if plan.type == 4 else []
        elif p == "problem":
            fields[fid["Root cause"]] = self._text(
                "Connection pool exhausted under peak load." if sc.root_cause else None, v2
            )
            fields[fid["Workaround"]] = self._text(
                "Restart the affected node and drain traffic."
                if sc.workaround and sc.known_error
                else None,
                v2,
            )
            fields[fid["Resolution notes"]] = self._text(notes, v2)
        elif p == "change":
            fields[fid["Change type"]] = (
                self._option("Change type", sc.change_type.capitalize()) if sc.change_type else None
            )
            fields[fid["Change risk"]] = (
                self._option("Change risk", ["Low", "Medium", "High"][idx % 3]) if sc.risk else None
            )
            fields[fid["Impact"]] = (
                self._option("Impact", "Moderate / Limited") if sc.impact else None
            )
            fields[fid["Implementation plan"]] = self._text(
                "1. Drain node\n2. Apply update\n3. Verify health checks"
                if sc.implementation_plan
                else None,
                v2,
            )
            fields[fid["Backout plan"]] = self._text(
                "Redeploy the previous release from the artifact store."
                if sc.backout_plan
                else None,
                v2,
            )
            fields[fid["Test plan"]] = self._text(
                "Run the smoke test suite and check dashboards." if sc.test_plan else None, v2
            )
            fields[fid["Planned start"]] = self.time(sc.planned_start)
            fields[fid["Planned end"]] = self.time(sc.planned_end)
            fields[fid["Approvals"]] = self._approvals(idx, plan)
            fields[fid["Resolution notes"]] = self._text(
                (
                    "Change implemented as planned."
                    if sc.outcome == "successful"
                    else "Implemented; see notes on issues found."
                )
                if (sc.close_notes and sc.state == "closed")
                else None,
                v2,
            )
        elif plan.type == PIR:
            fields[fid["Resolution notes"]] = self._text("Review held; actions recorded.", v2)
        with self.lock:
            over = self.overrides.get(idx)
            if over:
                for name, value in over.items():
                    if isinstance(value, dict) and "__text__" in value:  # a text in v2 or v3 shape
                        value = self._text(value["__text__"], v2)
                    fields[self.field_ids.get(name, name)] = value
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": iid,
            "self": f"{base}/rest/api/{2 if v2 else 3}/issue/{iid}",
            "key": self.key(idx),
            "fields": fields,
        }

    def _links(self, idx: int) -> list[dict[str, Any]]:
        out = []
        base = self.ds.base_url
        for n, (ltype, direction, other) in enumerate(self.links.get(idx, [])):
            if other in self.deleted:  # deleting an issue removes its links
                continue
            oplan = self._plan(other)
            status = (self.overrides.get(other) or {}).get("status")
            brief = {
                "id": self.issue_id(other),
                "key": self.key(other),
                "self": f"{base}/rest/api/3/issue/{self.issue_id(other)}",
                "fields": {
                    "summary": oplan.summary,
                    "status": status or self.status(self._status_name(oplan)),
                    "priority": None,
                    "issuetype": self.issuetype(oplan.type),
                },
            }
            lid = str(20000 + min(idx, other) * 4 + n)
            out.append(
                {
                    "id": lid,
                    "self": f"{base}/rest/api/3/issueLink/{lid}",
                    "type": {**ltype, "self": f"{base}/rest/api/3/issueLinkType/{ltype['id']}"},
                    f"{direction}Issue": brief,
                }
            )
        return out

    def changelog(self, idx: int) -> list[dict[str, Any]]:
        """Every history of the issue, oldest first (status transitions plus noise)."""
        plan = self._plan(idx)
        sc = plan.sc
        steps = self._status_path(plan)
        rng = random.Random(f"{self.seed}:jira-log:{idx}")
        histories: list[tuple[int, dict[str, Any]]] = []
        prev = "Open" if plan.type != 3 else "Waiting for support"
        author = sc.assignee or sc.requester
        for name, ms in steps:
            if name == prev:
                continue
            histories.append(
                (
                    ms,
                    {
                        "field": "status",
                        "fieldtype": "jira",
                        "fieldId": "status",
                        "from": STATUS_IDS[prev],
                        "fromString": prev,
                        "to": STATUS_IDS[name],
                        "toString": name,
                    },
                )
            )
            prev = name
        span = max(sc.updated - sc.created, 60_000)
        for k in range(plan.noise):
            ms = sc.created + rng.randrange(1, span)
            histories.append(
                (
                    ms,
                    {
                        "field": "labels",
                        "fieldtype": "jira",
                        "fieldId": "labels",
                        "from": None,
                        "fromString": "",
                        "to": None,
                        "toString": f"triage-{k}",
                    },
                )
            )
        histories.sort(key=lambda h: h[0])
        return [
            {
                "id": str(idx * 100 + n),
                "author": self.user(author),
                "created": self.time(ms),
                "items": [item],
            }
            for n, (ms, item) in enumerate(histories)
        ]

    def _status_path(self, plan: Plan) -> list[tuple[str, int]]:
        sc = plan.sc
        final = self._status_name(plan)
        c = sc.created
        end = sc.closed or sc.resolved or sc.updated
        if plan.type == PIR:
            return [("In progress", c + 60_000), ("Done", sc.resolved or end)]
        if sc.state == "cancelled":
            return [(final, end)]
        if sc.process == "change":
            order = [
                "Planning",
                "Awaiting approval",
                "Awaiting implementation",
                "Implementing",
                "Review",
                final,
            ]
            decided = next((a.decided_at for a in sc.approvals if a.decided_at), None)
            times = {
                "Planning": c + 60_000,
                "Awaiting approval": c + 120_000,
                "Awaiting implementation": decided or c + 180_000,
                "Implementing": sc.actual_start,
                "Review": sc.actual_end,
                final: sc.closed,
            }
            if sc.change_type == "standard" or sc.change_type == "":
                order.remove("Awaiting approval")
            states = ["new", "assess", "authorize", "scheduled", "implement", "review", "closed"]
            upto = {
                "Planning": "assess",
                "Awaiting approval": "authorize",
                "Awaiting implementation": "scheduled",
                "Implementing": "implement",
                "Review": "review",
                final: "closed",
            }
            path = []
            for name in order:
                if states.index(upto[name]) <= states.index(sc.state):
                    t = times[name] or c + 240_000
                    if name == "Awaiting implementation" and sc.actual_start is not None:
                        t = (
                            min(t, sc.actual_start - 60_000)
                            if sc.change_type != "normal" or "CHG002" not in sc.violations
                            else min(c + 180_000, sc.actual_start - 60_000)
                        )
                    path.append((name, t))
            return path
        mid = {
            "incident": "Work in progress",
            "service_request": "In progress",
            "problem": "Under investigation",
        }[sc.process]
        path = [(mid, c + 300_000)] if sc.state != "new" else []
        if sc.state == "on_hold":
            path.append(("Pending", min(c + 600_000, sc.updated)))
        if sc.process == "problem" and sc.state == "in_progress" and final != mid:
            path.append((final, min(c + 900_000, sc.updated)))
        if sc.state in ("resolved", "closed"):
            path.append(("Resolved", sc.resolved or end))
        if sc.state == "closed":
            path.append(("Closed", sc.closed or end))
        return path

    def approvals(self, idx: int) -> list[dict[str, Any]]:
        plan = self._plan(idx)
        return self._approvals(idx, plan) if plan.sc.approvals else []

    # -- ordering, writes ------------------------------------------------------------
    def sort_key(self, idx: int, field: str) -> Any:
        if field == "updated":
            return self.updated[idx]
        if field == "created":
            return self._plan(idx).sc.created
        if field == "key":
            return (self.project(idx), self.keynum[idx])
        return idx

    def ordered(self, order: tuple[tuple[str, bool], ...]) -> list[tuple[Any, ...]]:
        """Sorted (sort key..., idx) tuples for an ORDER BY, cached until a write."""
        with self.lock:
            cached = self._orders.get(order)
            if cached is None:
                cached = sorted(self._order_tuple(i, order) for i in range(len(self.types)))
                self._orders[order] = cached
            return cached

    def _order_tuple(self, idx: int, order: tuple[tuple[str, bool], ...]) -> tuple[Any, ...]:
        parts: list[Any] = []
        for field, asc in order:
            v = self.sort_key(idx, field)
            if not asc:
                v = (-v[1], v[0]) if isinstance(v, tuple) else -v
            parts.append(v)
        return (*parts, idx)

    def position_after(
        self, order: tuple[tuple[str, bool], ...], after: tuple[Any, ...] | None
    ) -> int:
        rows = self.ordered(order)
        return 0 if after is None else bisect.bisect_right(rows, after)

    def touch(self, idx: int, ms: int | None = None) -> None:
        with self.lock:
            self.updated[idx] = max(ms or self.ds.clock(), max(self.updated) + 1)
            self._orders.clear()

    def set_fields(self, idx: int, values: dict[str, Any]) -> None:
        with self.lock:
            self.overrides.setdefault(idx, {}).update(values)
            self.touch(idx)

    def add_comment(self, idx: int, text: str) -> int:
        with self.lock:
            self.next_comment += 1
            cid = self.next_comment
            self.comments.setdefault(idx, []).append(
                {"id": cid, "ms": self.ds.clock(), "text": text}
            )
            self.touch(idx)
            return cid

    def update_comment(self, idx: int, cid: int, text: str) -> bool:
        with self.lock:
            for c in self.comments.get(idx, []):
                if c["id"] == cid:
                    c["text"] = text
                    self.touch(idx)
                    return True
            return False
